package scanrecord

import (
	"time"

	"github.com/modelsync/modelsync/policy"
)

// PolicyFacts is the record as the policy input's security section holds
// it.
func (r Record) PolicyFacts() policy.SecurityVersion {
	f := policy.SecurityVersion{Result: string(r.Result), Digest: r.Digest, Scanner: r.Scanner, ScannedAt: r.ScannedAt,
		Dangerous: r.Findings.Dangerous, Unknown: r.Findings.Unknown,
		DangerousGlobals: nonNil(r.Findings.Globals.Dangerous), UnknownGlobals: nonNil(r.Findings.Globals.Unknown),
		Truncated: r.Findings.Truncated, Approved: r.Approved}
	if f.Approved == nil {
		f.Approved = map[string]string{}
	}
	if d := r.Dependencies; d != nil {
		pd := &policy.SecurityDependencies{Vulnerabilities: []policy.SecurityVulnerability{}, Unpinned: nonNil(d.Unpinned),
			ExpiredAllows: nonNil(d.ExpiredAllows), Truncated: d.Truncated}
		for _, v := range d.Vulnerabilities {
			pv := policy.SecurityVulnerability{ID: v.ID, Package: v.Package, Version: v.Version, Severity: v.Severity,
				Fixed: nonNil(v.Fixed), Allowed: v.Allowed, AllowReason: v.AllowReason}
			if !v.AllowExpires.IsZero() {
				t := v.AllowExpires.UTC().Truncate(time.Second)
				pv.AllowExpires = &t
			}
			pd.Vulnerabilities = append(pd.Vulnerabilities, pv)
		}
		f.Dependencies = pd
	}
	return f
}

// SecurityFacts reads the scan records in registry facts' version tags:
// the policy input's security section. Versions never scanned are left
// out, which security.not_scanned reports.
func SecurityFacts(registry map[string]policy.RegistryModel) map[string]policy.SecurityModel {
	out := map[string]policy.SecurityModel{}
	for model, rm := range registry {
		sm := policy.SecurityModel{Versions: map[string]policy.SecurityVersion{}}
		for v, rv := range rm.Versions {
			if rec, ok := FromTags(rv.Tags); ok {
				sm.Versions[v] = rec.PolicyFacts()
			}
		}
		out[model] = sm
	}
	return out
}

func nonNil[T any](s []T) []T {
	if s == nil {
		return []T{}
	}
	return s
}
