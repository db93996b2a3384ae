package s3

import (
	"context"

	"github.com/modelsync/modelsync/internal/storageclass"
	"github.com/modelsync/modelsync/reconciler"
)

// StorageUsage implements reconciler.StorageReporter: it observes and
// plans as a reconcile would, and reports what each model stores with the
// class the plan would move each object to.
func (t *Target) StorageUsage(ctx context.Context, desired *reconciler.DesiredState) ([]reconciler.ArtifactUsage, []reconciler.ModelError, error) {
	obs, err := t.Observe(ctx, desired)
	if err != nil {
		return nil, nil, err
	}
	tp := t.Plan(desired, obs)
	return usageOf(obs, tp.Actions), tp.Errors, nil
}

// usageOf collects the observed objects and what the plan's actions do to
// them. Restores count towards the class the object is restored for.
func usageOf(obs *Observation, actions []reconciler.Action) []reconciler.ArtifactUsage {
	planned := map[string]string{}
	for _, a := range actions {
		if a.Target != Name {
			continue
		}
		p, err := DecodePayload(a)
		if err != nil {
			continue
		}
		for _, o := range p.Objects {
			to := storageclass.Normalize(p.To)
			if a.Kind == KindDelete {
				to = reconciler.PlannedDelete
			}
			planned[a.Model+"\x00"+p.Bucket+"/"+o.Key] = to
		}
	}
	var out []reconciler.ArtifactUsage
	for _, ms := range obs.Models {
		mu := reconciler.ArtifactUsage{Model: ms.Model}
		for _, p := range ms.Prefixes {
			vs := owners(&ms, p.Location)
			for _, o := range p.Objects {
				mu.Objects = append(mu.Objects, reconciler.StoredObject{
					Versions: vs, Bucket: p.Bucket, Key: o.Key, Class: storageclass.Normalize(o.Class), Bytes: o.Size,
					Since: o.LastModified, Planned: planned[ms.Model+"\x00"+p.Bucket+"/"+o.Key],
				})
			}
		}
		out = append(out, mu)
	}
	return out
}
