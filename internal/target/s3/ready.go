package s3

import (
	"fmt"
	"slices"
	"strings"

	"github.com/modelsync/modelsync/reconciler"
)

// waitPrefix starts the reason of every wait this target emits, followed by
// the version number; Readiness parses it back.
const waitPrefix = "artifacts of v"

// ModelVersion names one version of a model (the modelsync model name, not
// the registered model name).
type ModelVersion struct {
	Model   string `json:"model"`
	Version int    `json:"version"`
}

// Readiness says which referenced versions cannot be read yet, because some
// of their files are archived and not (yet) restored. A KServe target should
// not point a predictor at such a version, and the MLflow target should not
// move an alias to it.
type Readiness struct {
	waiting map[ModelVersion][]reconciler.Wait
}

// ReadinessOf reads the storage waits out of a list of waits, such as
// (*reconciler.Plan).Waits() or a TargetPlan's Waits; waits of other targets
// are ignored.
func ReadinessOf(waits []reconciler.Wait) Readiness {
	r := Readiness{waiting: map[ModelVersion][]reconciler.Wait{}}
	for _, w := range waits {
		if w.Target != Name || !strings.HasPrefix(w.Reason, waitPrefix) {
			continue
		}
		var v int
		if _, err := fmt.Sscanf(w.Reason[len(waitPrefix):], "%d", &v); err != nil {
			continue
		}
		k := ModelVersion{Model: w.Model, Version: v}
		r.waiting[k] = append(r.waiting[k], w)
	}
	return r
}

// Ready reads a built plan's storage waits.
func Ready(p *reconciler.Plan) Readiness { return ReadinessOf(p.Waits()) }

// Readable reports whether every file of the version can be read now.
func (r Readiness) Readable(model string, version int) bool {
	return len(r.waiting[ModelVersion{Model: model, Version: version}]) == 0
}

// Reason explains why a version is not readable; "" when it is.
func (r Readiness) Reason(model string, version int) string {
	ws := r.waiting[ModelVersion{Model: model, Version: version}]
	if len(ws) == 0 {
		return ""
	}
	return ws[0].Reason
}

// NotReadable lists the versions that are not readable, sorted.
func (r Readiness) NotReadable() []ModelVersion {
	var out []ModelVersion
	for k := range r.waiting {
		out = append(out, k)
	}
	slices.SortFunc(out, func(a, b ModelVersion) int {
		if c := strings.Compare(a.Model, b.Model); c != 0 {
			return c
		}
		return a.Version - b.Version
	})
	return out
}
