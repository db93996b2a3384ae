package canary

import (
	"errors"
	"fmt"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
)

// ErrNoRevisions is wrapped when KServe has not (yet) reported both arms.
var ErrNoRevisions = errors.New("KServe has not reported both canary revisions yet")

// RevisionsOf reads the two arms from an InferenceService's status as
// KServe reports them in Knative mode. During a canary the route sends P%
// to the latest ready revision (traffic[] entry with latestRevision: true)
// and the rest to latestRolledoutRevision, the last revision that had all
// traffic: that one is the stable arm. (previousRolledoutRevision is the
// revision before the stable one; it matters after a promotion.) Both
// must be routed and differ, or the counts would not belong to a canary.
func RevisionsOf(isvc *unstructured.Unstructured) (Revisions, error) {
	name := isvc.GetNamespace() + "/" + isvc.GetName()
	pred, found, err := unstructured.NestedMap(isvc.Object, "status", "components", "predictor")
	if err != nil {
		return Revisions{}, fmt.Errorf("inferenceservice %s: status.components.predictor: %w", name, err)
	}
	if !found {
		return Revisions{}, fmt.Errorf("inferenceservice %s: %w (no status.components.predictor)", name, ErrNoRevisions)
	}
	stable, _, _ := unstructured.NestedString(pred, "latestRolledoutRevision")
	var canary string
	traffic, _, _ := unstructured.NestedSlice(pred, "traffic")
	routed := map[string]bool{}
	for _, t := range traffic {
		m, ok := t.(map[string]any)
		if !ok {
			continue
		}
		rev, _ := m["revisionName"].(string)
		if rev == "" {
			continue
		}
		routed[rev] = true
		if latest, _ := m["latestRevision"].(bool); latest {
			canary = rev
		}
	}
	switch {
	case stable == "":
		return Revisions{}, fmt.Errorf("inferenceservice %s: %w (no latestRolledoutRevision)", name, ErrNoRevisions)
	case canary == "":
		return Revisions{}, fmt.Errorf("inferenceservice %s: %w (no traffic entry with latestRevision: true)", name, ErrNoRevisions)
	case canary == stable:
		return Revisions{}, fmt.Errorf("inferenceservice %s: %w (latest revision %s is the rolled-out one: the candidate is not ready or not routed)", name, ErrNoRevisions, canary)
	case !routed[stable]:
		return Revisions{}, fmt.Errorf("inferenceservice %s: %w (stable revision %s has no traffic entry)", name, ErrNoRevisions, stable)
	}
	return Revisions{Canary: canary, Stable: stable}, nil
}

// PreviousRevision is the revision that had all traffic before the current
// one (previousRolledoutRevision), the baseline of post-promotion checks.
func PreviousRevision(isvc *unstructured.Unstructured) (string, bool) {
	s, ok, _ := unstructured.NestedString(isvc.Object, "status", "components", "predictor", "previousRolledoutRevision")
	return s, ok && s != ""
}
