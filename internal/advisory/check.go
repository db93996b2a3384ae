package advisory

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"
)

// Allow lets one advisory through until Expires, for a reason someone
// wrote down. An expired entry stops applying and is reported, so an
// exception cannot outlive the decision that made it.
type Allow struct {
	ID      string    `json:"id" yaml:"id"`
	Expires time.Time `json:"expires" yaml:"expires"`
	Reason  string    `json:"reason" yaml:"reason"`
	// Models limits the entry to these models; empty means every model.
	Models []string `json:"models,omitempty" yaml:"models,omitempty"`
}

// appliesTo reports whether the entry names the advisory (by ID or alias)
// for model.
func (a Allow) appliesTo(model string, r *Record) bool {
	if len(a.Models) > 0 && !slices.Contains(a.Models, model) {
		return false
	}
	return strings.EqualFold(a.ID, r.ID) || slices.ContainsFunc(r.Aliases, func(s string) bool { return strings.EqualFold(s, a.ID) })
}

// Vulnerability is one advisory affecting one required package.
type Vulnerability struct {
	ID       string   `json:"id"`
	Aliases  []string `json:"aliases"`
	Package  string   `json:"package"`
	Version  string   `json:"version"`
	Severity string   `json:"severity"`
	Score    float64  `json:"score,omitempty"`
	Summary  string   `json:"summary,omitempty"`
	Fixed    []string `json:"fixed"`
	Source   string   `json:"source"`
	// Allowed is set when an unexpired allow-list entry covers it; the
	// policy still sees it, with the entry's reason and expiry.
	Allowed      bool      `json:"allowed"`
	AllowReason  string    `json:"allowReason,omitempty"`
	AllowExpires time.Time `json:"allowExpires,omitzero"`
}

// Result is the dependency check of one model version.
type Result struct {
	Requirements    []Requirement   `json:"requirements"`
	Unpinned        []Requirement   `json:"unpinned"`
	Vulnerabilities []Vulnerability `json:"vulnerabilities"`
	// ExpiredAllows are allow-list entries that would have matched but
	// expired; the vulnerabilities they covered count again.
	ExpiredAllows []Allow `json:"expiredAllows"`
	// Advisories is how many advisories were consulted (local) and
	// whether the online source answered.
	Advisories int  `json:"advisories"`
	Online     bool `json:"online"`
}

// Checker matches requirements with advisories.
type Checker struct {
	DB *DB
	// Online, when set, is asked for the pinned requirements too; its
	// records are merged with the local ones (deduplicated by ID).
	Online *Client
	Allow  []Allow
	// Now decides which allow-list entries have expired.
	Now func() time.Time
}

// Check judges reqs of model. Unpinned requirements are reported and not
// matched: without one exact version there is nothing to compare.
func (c *Checker) Check(ctx context.Context, model string, reqs []Requirement) (Result, error) {
	now := time.Now()
	if c.Now != nil {
		now = c.Now()
	}
	res := Result{Requirements: nonNil(reqs), Unpinned: []Requirement{}, Vulnerabilities: []Vulnerability{}, ExpiredAllows: []Allow{}, Advisories: c.DB.Len()}
	var pinned []Requirement
	for _, r := range reqs {
		if r.Pinned {
			pinned = append(pinned, r)
		} else {
			res.Unpinned = append(res.Unpinned, r)
		}
	}
	online := make([][]*Record, len(pinned))
	if c.Online != nil && len(pinned) > 0 {
		var err error
		if online, err = c.Online.QueryBatch(ctx, pinned); err != nil {
			return res, fmt.Errorf("model %s: %w", model, err)
		}
		res.Online = true
	}
	seenVuln := map[string]bool{}
	expired := map[string]bool{}
	for i, r := range pinned {
		recs := c.DB.Lookup(r.Name, r.Version)
		for _, o := range online[i] {
			if o.Affects(r.Name, r.Version) && !slices.ContainsFunc(recs, func(x *Record) bool { return x.ID == o.ID }) {
				recs = append(recs, o)
			}
		}
		for _, rec := range recs {
			k := rec.ID + "\x00" + NormalizeName(r.Name) + "\x00" + r.Version
			if seenVuln[k] {
				continue
			}
			seenVuln[k] = true
			level, score := rec.RecordSeverity()
			v := Vulnerability{ID: rec.ID, Aliases: nonNil(rec.Aliases), Package: NormalizeName(r.Name), Version: r.Version,
				Severity: level, Score: score, Summary: rec.Summary, Fixed: nonNil(rec.Fixed(r.Name)), Source: r.Source}
			for _, a := range c.Allow {
				if !a.appliesTo(model, rec) {
					continue
				}
				if !now.Before(a.Expires) {
					if !expired[a.ID] {
						expired[a.ID] = true
						res.ExpiredAllows = append(res.ExpiredAllows, a)
					}
					continue
				}
				v.Allowed, v.AllowReason, v.AllowExpires = true, a.Reason, a.Expires
				break
			}
			res.Vulnerabilities = append(res.Vulnerabilities, v)
		}
	}
	slices.SortFunc(res.Vulnerabilities, func(a, b Vulnerability) int {
		return strings.Compare(a.Package+"\x00"+a.ID, b.Package+"\x00"+b.ID)
	})
	return res, nil
}

func nonNil[T any](s []T) []T {
	if s == nil {
		return []T{}
	}
	return s
}
