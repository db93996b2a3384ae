package kserve

import (
	"encoding/json"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
)

// The informers keep every watched object in memory for as long as the
// controller runs, so what they hold is cut down to what observe, plan,
// health and wait read. A KServe InferenceService carries a status of a
// few kilobytes (every condition with its timestamps, addresses and URLs
// of each component, model copies and states) and managedFields entries
// for the status writes of KServe's controller; decoded into maps, those
// cost several times their JSON size per object.

// lastApplied is kubectl's client-side apply record: a full copy of the
// object as last applied, which modelsync (a server-side applier) never
// reads.
const lastApplied = "kubectl.kubernetes.io/last-applied-configuration"

// statusRead lists the status fields modelsync reads (Health, ProgressOf,
// deploymentMode). A nil value keeps the whole field; a map lists the
// subfields kept; a list element shape applies to every element.
var statusRead = map[string]any{
	"deploymentMode": nil,
	"conditions":     []any{map[string]any{"type": nil, "status": nil, "reason": nil, "message": nil}},
	"modelStatus": map[string]any{
		"transitionStatus": nil,
		"lastFailureInfo":  map[string]any{"reason": nil, "message": nil},
	},
	"components": map[string]any{"predictor": map[string]any{
		"url":                       nil,
		"latestCreatedRevision":     nil,
		"latestReadyRevision":       nil,
		"latestRolledoutRevision":   nil,
		"previousRolledoutRevision": nil,
		"traffic": []any{map[string]any{
			"tag": nil, "revisionName": nil, "latestRevision": nil, "percent": nil,
		}},
	}},
}

// slimManaged is the managed informer's transform. It keeps spec, labels,
// annotations other than kubectl's last-applied record, finalizers and
// owner references whole (the dry-run comparison sees all of them),
// managedFields of the main resource (drift and ownership read those;
// entries of subresources such as status are never read), and of the
// status only what statusRead lists. It changes the object in place, as
// client-go allows for a freshly decoded one; anything not an
// InferenceService-shaped unstructured object passes unchanged.
func slimManaged(obj any) (any, error) {
	u, ok := obj.(*unstructured.Unstructured)
	if !ok {
		return obj, nil
	}
	slimObject(u)
	return u, nil
}

func slimObject(u *unstructured.Unstructured) {
	if md, ok := u.Object["metadata"].(map[string]any); ok {
		if ann, ok := md["annotations"].(map[string]any); ok {
			if _, has := ann[lastApplied]; has {
				delete(ann, lastApplied)
				if len(ann) == 0 {
					delete(md, "annotations")
				}
			}
		}
		if mf, ok := md["managedFields"].([]any); ok {
			kept := mf[:0]
			for _, e := range mf {
				if m, ok := e.(map[string]any); ok {
					if sub, _ := m["subresource"].(string); sub != "" {
						continue
					}
					// The field set is only ever read as JSON (see
					// managedFieldsOf); as a string it costs a tenth of
					// its decoded tree of maps.
					if tree, ok := m["fieldsV1"].(map[string]any); ok {
						if b, err := json.Marshal(tree); err == nil {
							m["fieldsV1"] = string(b)
						}
					}
				}
				kept = append(kept, e)
			}
			clear(mf[len(kept):])
			if len(kept) == 0 {
				delete(md, "managedFields")
			} else {
				md["managedFields"] = kept
			}
		}
	}
	st, ok := u.Object["status"].(map[string]any)
	if !ok || len(st) == 0 {
		return
	}
	slim, _ := keepShape(st, statusRead).(map[string]any)
	// Health tells an absent or empty status ("waiting for status") from
	// one that reports nothing it reads; the rare status of the second
	// kind is kept whole so both still read the same.
	if len(slim) > 0 {
		u.Object["status"] = slim
	}
}

// keepShape returns the parts of v that shape names (see statusRead).
func keepShape(v, shape any) any {
	switch s := shape.(type) {
	case nil:
		return v
	case map[string]any:
		m, ok := v.(map[string]any)
		if !ok {
			return v
		}
		out := make(map[string]any, len(s))
		for k, sub := range s {
			if c, has := m[k]; has {
				out[k] = keepShape(c, sub)
			}
		}
		return out
	case []any:
		l, ok := v.([]any)
		if !ok || len(s) == 0 {
			return v
		}
		out := make([]any, len(l))
		for i, e := range l {
			out[i] = keepShape(e, s[0])
		}
		return out
	}
	return v
}

// slimForeign is the metadata informer's transform. An object without
// modelsync's label is only ever looked up to refuse or adopt it, which
// reads its resourceVersion and the names of its field managers.
func slimForeign(obj any) (any, error) {
	m, ok := obj.(*metav1.PartialObjectMetadata)
	if !ok {
		return obj, nil
	}
	m.Annotations = nil
	for i := range m.ManagedFields {
		m.ManagedFields[i].FieldsV1 = nil
	}
	return m, nil
}

// managedFieldsOf returns obj's managedFields, whether their field sets are
// decoded trees (as listed) or JSON strings (as slimObject stores them).
func managedFieldsOf(obj *unstructured.Unstructured) []metav1.ManagedFieldsEntry {
	md, _ := obj.Object["metadata"].(map[string]any)
	list, _ := md["managedFields"].([]any)
	compact := false
	for _, e := range list {
		if m, ok := e.(map[string]any); ok {
			if _, ok := m["fieldsV1"].(string); ok {
				compact = true
			}
		}
	}
	if !compact {
		return obj.GetManagedFields()
	}
	out := make([]metav1.ManagedFieldsEntry, 0, len(list))
	for _, e := range list {
		m, ok := e.(map[string]any)
		if !ok {
			continue
		}
		str := func(k string) string { s, _ := m[k].(string); return s }
		entry := metav1.ManagedFieldsEntry{Manager: str("manager"), Operation: metav1.ManagedFieldsOperationType(str("operation")),
			APIVersion: str("apiVersion"), FieldsType: str("fieldsType"), Subresource: str("subresource")}
		switch f := m["fieldsV1"].(type) {
		case string:
			entry.FieldsV1 = &metav1.FieldsV1{Raw: []byte(f)}
		case map[string]any:
			if b, err := json.Marshal(f); err == nil {
				entry.FieldsV1 = &metav1.FieldsV1{Raw: b}
			}
		}
		out = append(out, entry)
	}
	return out
}
