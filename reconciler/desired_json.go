package reconciler

import (
	"encoding/json"
	"slices"
)

// MarshalJSON writes the state with every list present, [] when empty, so
// programs (and desired.schema.json) never meet null.
func (d DesiredState) MarshalJSON() ([]byte, error) {
	type plain DesiredState // no MarshalJSON: no recursion
	out := plain(d)
	out.Models = make([]DesiredModel, 0, len(d.Models))
	for _, m := range d.Models {
		m.Owners = nonNil(m.Owners)
		envs := make([]DesiredEnv, 0, len(m.Environments))
		for _, e := range m.Environments {
			if e.Canary != nil {
				c := *e.Canary
				c.Steps = nonNil(slices.Clone(c.Steps))
				e.Canary = &c
			}
			envs = append(envs, e)
		}
		m.Environments = envs
		out.Models = append(out.Models, m)
	}
	out.Errors = nonNil(d.Errors)
	out.Warnings = nonNil(d.Warnings)
	return json.Marshal(out)
}
