package kserve

import (
	"context"
	"fmt"
	"strings"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/modelsync/modelsync/reconciler"
)

// HealthStatus is an InferenceService's health, in Argo CD's vocabulary.
type HealthStatus string

// Health states. Only Healthy means the object serves what it was asked to.
const (
	Healthy     HealthStatus = "Healthy"
	Progressing HealthStatus = "Progressing"
	Degraded    HealthStatus = "Degraded"
	Suspended   HealthStatus = "Suspended"
	Missing     HealthStatus = "Missing"
)

// Health judges an InferenceService the way Argo CD's rule for this kind
// does: only status.modelStatus.transitionStatus can make it Degraded
// (BlockedByFailedLoad, InvalidSpec, ...); a Stopped=True condition makes
// it Suspended; any other non-True condition keeps it Progressing. A
// missing transitionStatus counts as in progress rather than fine, since
// KServe has then not reported on the model yet. reason is the first
// failing condition's reason (or the transition status); message lists
// every non-True condition.
func Health(obj *unstructured.Unstructured) (status HealthStatus, reason, message string) {
	if obj == nil {
		return Missing, "NotFound", "InferenceService does not exist"
	}
	st, ok := obj.Object["status"].(map[string]any)
	if !ok || len(st) == 0 {
		return Progressing, "", "waiting for status"
	}
	progressing, degraded := false, false
	transition, _, _ := unstructured.NestedString(st, "modelStatus", "transitionStatus")
	switch transition {
	case "UpToDate":
	case "", "InProgress":
		progressing = true
	default:
		degraded = true
	}
	var failing []condition
	for _, c := range conditionsOf(st) {
		if c.Type == "Stopped" {
			if c.Status == "True" {
				return Suspended, nonEmpty(c.Reason, "Stopped"), nonEmpty(c.Message, "the InferenceService is stopped")
			}
			continue
		}
		if c.Status == "False" || c.Status == "Unknown" {
			failing = append(failing, c)
		}
	}
	if !progressing && !degraded && len(failing) == 0 {
		return Healthy, "", "InferenceService is ready"
	}
	// The Ready condition summarises the others; name it first when it fails.
	for i, c := range failing {
		if c.Type == "Ready" && i > 0 {
			failing[0], failing[i] = failing[i], failing[0]
		}
	}
	var parts []string
	if transition == "" {
		parts = append(parts, "modelStatus not reported yet")
	} else if transition != "UpToDate" {
		part := "modelStatus " + transition
		fr, fm := failureInfo(st)
		if info := joinNonEmpty(": ", fr, fm); info != "" {
			part += " (" + info + ")"
		}
		parts = append(parts, part)
		if degraded {
			reason = nonEmpty(fr, transition)
		}
	}
	for _, c := range failing {
		parts = append(parts, c.String())
	}
	if reason == "" && len(failing) > 0 {
		reason = nonEmpty(failing[0].Reason, failing[0].Type+"="+failing[0].Status)
	}
	if reason == "" {
		reason = nonEmpty(transition, "NoModelStatus")
	}
	message = strings.Join(parts, "; ")
	if !degraded {
		return Progressing, reason, message
	}
	return Degraded, reason, message
}

type condition struct {
	Type, Status, Reason, Message string
}

func (c condition) String() string {
	s := c.Type + "=" + c.Status
	if c.Reason != "" {
		s += " " + c.Reason
	}
	if c.Message != "" {
		s += ": " + c.Message
	}
	return s
}

func conditionsOf(st map[string]any) []condition {
	raw, _, _ := unstructured.NestedSlice(st, "conditions")
	out := make([]condition, 0, len(raw))
	for _, r := range raw {
		m, ok := r.(map[string]any)
		if !ok {
			continue
		}
		str := func(k string) string { s, _ := m[k].(string); return s }
		out = append(out, condition{Type: str("type"), Status: str("status"), Reason: str("reason"), Message: str("message")})
	}
	return out
}

func failureInfo(st map[string]any) (reason, message string) {
	reason, _, _ = unstructured.NestedString(st, "modelStatus", "lastFailureInfo", "reason")
	message, _, _ = unstructured.NestedString(st, "modelStatus", "lastFailureInfo", "message")
	return reason, message
}

func joinNonEmpty(sep string, parts ...string) string {
	var out []string
	for _, p := range parts {
		if p != "" {
			out = append(out, p)
		}
	}
	return strings.Join(out, sep)
}

func nonEmpty(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

// TrafficTarget is one entry of status.components.predictor.traffic.
type TrafficTarget struct {
	Tag            string `json:"tag,omitempty"`
	RevisionName   string `json:"revisionName,omitempty"`
	LatestRevision bool   `json:"latestRevision,omitempty"`
	Percent        int64  `json:"percent"`
}

// Progress is what KServe reports about the predictor's revisions and
// traffic. In Knative mode a canary is "latest" at Percent of the traffic
// and LatestRolledoutRevision takes the rest.
type Progress struct {
	DeploymentMode            string          `json:"deploymentMode,omitempty"`
	URL                       string          `json:"url,omitempty"`
	LatestCreatedRevision     string          `json:"latestCreatedRevision,omitempty"`
	LatestReadyRevision       string          `json:"latestReadyRevision,omitempty"`
	LatestRolledoutRevision   string          `json:"latestRolledoutRevision,omitempty"`
	PreviousRolledoutRevision string          `json:"previousRolledoutRevision,omitempty"`
	Traffic                   []TrafficTarget `json:"traffic,omitempty"`
}

// LatestPercent is the share of the entry marked latestRevision, or -1.
func (p Progress) LatestPercent() int64 {
	for _, t := range p.Traffic {
		if t.LatestRevision {
			return t.Percent
		}
	}
	return -1
}

// PreviousPercent is the share of the revision tagged "prev", or -1.
func (p Progress) PreviousPercent() int64 {
	for _, t := range p.Traffic {
		if t.Tag == "prev" {
			return t.Percent
		}
	}
	return -1
}

func (p Progress) String() string {
	var tr []string
	for _, t := range p.Traffic {
		name := t.RevisionName
		if t.Tag != "" {
			name = t.Tag + ":" + name
		}
		tr = append(tr, fmt.Sprintf("%s %d%%", name, t.Percent))
	}
	return fmt.Sprintf("latest ready %s, rolled out %s (previous %s), traffic [%s]",
		nonEmpty(p.LatestReadyRevision, "-"), nonEmpty(p.LatestRolledoutRevision, "-"),
		nonEmpty(p.PreviousRolledoutRevision, "-"), strings.Join(tr, ", "))
}

// ProgressOf reads status.components.predictor and status.deploymentMode.
func ProgressOf(obj *unstructured.Unstructured) Progress {
	var p Progress
	if obj == nil {
		return p
	}
	p.DeploymentMode, _, _ = unstructured.NestedString(obj.Object, "status", "deploymentMode")
	pred, _, _ := unstructured.NestedMap(obj.Object, "status", "components", "predictor")
	str := func(k string) string { s, _ := pred[k].(string); return s }
	p.URL = str("url")
	p.LatestCreatedRevision = str("latestCreatedRevision")
	p.LatestReadyRevision = str("latestReadyRevision")
	p.LatestRolledoutRevision = str("latestRolledoutRevision")
	p.PreviousRolledoutRevision = str("previousRolledoutRevision")
	traffic, _ := pred["traffic"].([]any)
	for _, t := range traffic {
		m, ok := t.(map[string]any)
		if !ok {
			continue
		}
		tt := TrafficTarget{}
		tt.Tag, _ = m["tag"].(string)
		tt.RevisionName, _ = m["revisionName"].(string)
		tt.LatestRevision, _ = m["latestRevision"].(bool)
		tt.Percent = toInt64(m["percent"])
		p.Traffic = append(p.Traffic, tt)
	}
	return p
}

func toInt64(v any) int64 {
	switch n := v.(type) {
	case int64:
		return n
	case int:
		return int64(n)
	case int32:
		return int64(n)
	case float64:
		return int64(n)
	}
	return 0
}

// ServingHealth implements reconciler.HealthReporter from the informer
// cache, so a health check per model and environment costs no request
// once the namespace is watched. The InferenceService is found by
// modelsync's model and environment labels rather than by name: a
// kustomization may name it anything.
func (t *Target) ServingHealth(ctx context.Context, model string, env reconciler.DesiredEnv) (reconciler.ServingHealth, error) {
	if err := t.caches.ensure(ctx, inferenceServiceGVR, []string{env.Namespace}, t.cfg.syncTimeout()); err != nil {
		return reconciler.ServingHealth{}, fmt.Errorf("model %s environment %s: watching InferenceServices in %s: %w", model, env.Environment, env.Namespace, err)
	}
	t.caches.catchUp(ctx, t.cfg.catchUpTimeout())
	var obj *unstructured.Unstructured
	for _, o := range t.caches.listManaged(inferenceServiceGVR, env.Namespace) {
		if l := o.GetLabels(); l[LabelModel] == model && l[LabelEnvironment] == env.Environment {
			obj = o
			break
		}
	}
	st, reason, msg := Health(obj)
	out := reconciler.ServingHealth{Status: string(st), Reason: reason, Message: msg}
	if env.Canary != nil && obj != nil {
		p := ProgressOf(obj)
		out.CanaryStep = p.String()
		for _, t := range p.Traffic {
			out.Traffic = append(out.Traffic, reconciler.TrafficSplit{Revision: t.RevisionName, Tag: t.Tag, Percent: int(t.Percent), Latest: t.LatestRevision})
		}
	}
	return out, nil
}
