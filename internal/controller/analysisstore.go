package controller

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/modelsync/modelsync/internal/analysis"
	"github.com/modelsync/modelsync/internal/canary"
)

// Outcome is where a canary's analysis ended. Until Git agrees with a
// terminal outcome, the record holds the environment there, as a pin does.
type Outcome string

const (
	// OutcomeRunning: looks continue; the record's step weight is live.
	OutcomeRunning Outcome = "running"
	// OutcomePromoted: the candidate serves all traffic until Git names it
	// as the version and drops the canary.
	OutcomePromoted Outcome = "promoted"
	// OutcomeRolledBack: the stable version serves all traffic until Git
	// drops the canary.
	OutcomeRolledBack Outcome = "rolled-back"
	// OutcomeReverted: the promoted candidate failed its check after
	// promotion (postPromotion); the stable version serves all traffic
	// until Git names it without a canary.
	OutcomeReverted Outcome = "reverted"
	// OutcomeNotRunning (status only): the analysis cannot run, e.g. no
	// Prometheus address; the canary stays at the weight in Git.
	OutcomeNotRunning Outcome = "not-running"
)

// CanaryRecord is one canary's durable analysis: the statistics' state and
// what the controller did with it. It is stored after every look, before
// any action, so a restarted or new leader continues the same test: a new
// test would spend alpha again.
type CanaryRecord struct {
	Model            string           `json:"model"`
	Environment      string           `json:"environment"`
	StableVersion    int              `json:"stableVersion"`
	CandidateVersion int              `json:"candidateVersion"`
	Revisions        canary.Revisions `json:"revisions"`
	State            analysis.State   `json:"state"`
	// Decision is the last look's decision.
	Decision *analysis.Decision `json:"decision,omitempty"`
	Outcome  Outcome            `json:"outcome"`
	// PendingAdvance is set between an advance decision and the moment
	// the next weight is applied; the next step's counts start then.
	PendingAdvance bool      `json:"pendingAdvance,omitempty"`
	LastLook       time.Time `json:"lastLook,omitzero"`
	// WriteBack says where the outcome was recorded in Git (a pull
	// request URL or a commit), or why it could not be.
	WriteBack      string `json:"writeBack,omitempty"`
	WriteBackError string `json:"writeBackError,omitempty"`
	// Verification is the check after promotion when the analysis has
	// postPromotion; it outlives Git's canary block (see canary.Verification).
	Verification *canary.Verification `json:"verification,omitempty"`

	// resourceVersion is the ConfigMap's, for optimistic concurrency.
	resourceVersion string
}

// matches reports whether the record belongs to the canary Git asks for
// now: the same stable and candidate versions. Another pair is a new canary
// with a new test.
func (r *CanaryRecord) matches(stable, candidate int) bool {
	return r != nil && r.StableVersion == stable && r.CandidateVersion == candidate
}

// CanaryStore keeps canary records in the cluster.
type CanaryStore interface {
	// Get returns the key's record, or nil when there is none.
	Get(ctx context.Context, k Key) (*CanaryRecord, error)
	// Put writes rec, failing with ErrConflict when the record changed
	// since it was read (another replica wrote it).
	Put(ctx context.Context, rec *CanaryRecord) error
	// Delete removes the key's record; a missing record is no error.
	Delete(ctx context.Context, k Key) error
}

// ErrConflict means a record was written by someone else since it was read.
var ErrConflict = errors.New("canary record changed since it was read")

// ConfigMapStore keeps each canary's record in a ConfigMap of the
// controller's namespace, named after the model and environment.
//
// A ConfigMap rather than an annotation on the InferenceService: the
// InferenceService is rendered from Git and server-side applied by the
// KServe target, and anyone who may edit it could rewrite the evidence; a
// ConfigMap in the controller's own namespace needs only a namespaced Role
// there, holds up to 1 MiB (annotations share 256 KiB with everything else
// on the object), and survives the InferenceService being recreated. Its
// resourceVersion gives optimistic concurrency: a write based on a stale
// read fails instead of overwriting a newer look.
type ConfigMapStore struct {
	Client    kubernetes.Interface
	Namespace string
}

const (
	canaryRecordKey   = "record.json"
	labelManagedBy    = "app.kubernetes.io/managed-by"
	labelComponent    = "app.kubernetes.io/component"
	annotationModel   = "modelsync.dev/model"
	annotationEnv     = "modelsync.dev/environment"
	canaryConfigMapPx = "modelsync-canary-"
)

// ConfigMapName names a key's ConfigMap: readable when it fits, with a
// hash suffix so two keys never share one (model "a-b" in "c" and model
// "a" in "b-c" would otherwise collide).
func ConfigMapName(k Key) string {
	sum := sha256.Sum256([]byte(k.Model + "\x00" + k.Environment))
	suffix := hex.EncodeToString(sum[:4])
	base := k.Model + "-" + k.Environment
	if max := 253 - len(canaryConfigMapPx) - len(suffix) - 1; len(base) > max {
		base = base[:max]
	}
	return canaryConfigMapPx + base + "-" + suffix
}

// Get implements CanaryStore.
func (s *ConfigMapStore) Get(ctx context.Context, k Key) (*CanaryRecord, error) {
	cm, err := s.Client.CoreV1().ConfigMaps(s.Namespace).Get(ctx, ConfigMapName(k), metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("reading the canary record of model %s environment %s: %w", k.Model, k.Environment, err)
	}
	var rec CanaryRecord
	if err := json.Unmarshal([]byte(cm.Data[canaryRecordKey]), &rec); err != nil {
		return nil, fmt.Errorf("canary record %s/%s of model %s environment %s: %w", s.Namespace, cm.Name, k.Model, k.Environment, err)
	}
	if rec.Model != k.Model || rec.Environment != k.Environment {
		return nil, fmt.Errorf("canary record %s/%s names model %s environment %s, not %s/%s", s.Namespace, cm.Name, rec.Model, rec.Environment, k.Model, k.Environment)
	}
	rec.resourceVersion = cm.ResourceVersion
	return &rec, nil
}

// Put implements CanaryStore: a create when the record was never stored,
// else an update conditioned on the resourceVersion it was read at.
func (s *ConfigMapStore) Put(ctx context.Context, rec *CanaryRecord) error {
	k := Key{Model: rec.Model, Environment: rec.Environment}
	b, err := json.Marshal(rec)
	if err != nil {
		return err
	}
	cm := &corev1.ConfigMap{
		ObjectMeta: metav1.ObjectMeta{
			Name: ConfigMapName(k), Namespace: s.Namespace, ResourceVersion: rec.resourceVersion,
			Labels:      map[string]string{labelManagedBy: "modelsync", labelComponent: "canary-analysis"},
			Annotations: map[string]string{annotationModel: k.Model, annotationEnv: k.Environment},
		},
		Data: map[string]string{canaryRecordKey: string(b)},
	}
	cms := s.Client.CoreV1().ConfigMaps(s.Namespace)
	var out *corev1.ConfigMap
	if rec.resourceVersion == "" {
		out, err = cms.Create(ctx, cm, metav1.CreateOptions{FieldManager: "modelsync-controller"})
	} else {
		out, err = cms.Update(ctx, cm, metav1.UpdateOptions{FieldManager: "modelsync-controller"})
	}
	if apierrors.IsConflict(err) || apierrors.IsAlreadyExists(err) {
		return fmt.Errorf("storing the canary record of model %s environment %s: %w", k.Model, k.Environment, ErrConflict)
	}
	if err != nil {
		return fmt.Errorf("storing the canary record of model %s environment %s: %w", k.Model, k.Environment, err)
	}
	rec.resourceVersion = out.ResourceVersion
	return nil
}

// Delete implements CanaryStore.
func (s *ConfigMapStore) Delete(ctx context.Context, k Key) error {
	err := s.Client.CoreV1().ConfigMaps(s.Namespace).Delete(ctx, ConfigMapName(k), metav1.DeleteOptions{})
	if err != nil && !apierrors.IsNotFound(err) {
		return fmt.Errorf("deleting the canary record of model %s environment %s: %w", k.Model, k.Environment, err)
	}
	return nil
}
