package s3

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/modelsync/modelsync/internal/storageclass"
	"github.com/modelsync/modelsync/reconciler"
)

// Payload is the JSON payload of every action this target plans: enough for
// Apply to act without listing again. Apply re-reads each object only to pin
// the copy to the planned ETag and to verify the result.
type Payload struct {
	Bucket string `json:"bucket"`
	Prefix string `json:"prefix"`
	// Versions are the versions whose files these are.
	Versions []int `json:"versions"`
	// To is the class a transition copies to; for a restore, the class the
	// restored objects will be copied to afterwards.
	To string `json:"to,omitempty"`
	// Tier and Days configure a restore.
	Tier    string          `json:"tier,omitempty"`
	Days    int32           `json:"days,omitempty"`
	Objects []PayloadObject `json:"objects"`
}

// PayloadObject is one object an action concerns, as observed.
type PayloadObject struct {
	Key  string `json:"key"`
	Size int64  `json:"size"`
	ETag string `json:"etag"`
	From string `json:"from"`
}

// Bytes is the total size of the payload's objects.
func (p Payload) Bytes() int64 {
	var n int64
	for _, o := range p.Objects {
		n += o.Size
	}
	return n
}

// DecodePayload reads an action's payload.
func DecodePayload(a reconciler.Action) (Payload, error) {
	var p Payload
	if err := json.Unmarshal(a.Payload, &p); err != nil {
		return Payload{}, fmt.Errorf("s3: action %s: payload: %w", a.ID(), err)
	}
	return p, nil
}

// Plan implements reconciler.TypedTarget. It reads nothing but its
// arguments; idle times are measured against the observation's clock
// reading.
func (t *Target) Plan(desired *reconciler.DesiredState, obs *Observation) reconciler.TargetPlan {
	var tp reconciler.TargetPlan
	for i := range obs.Models {
		ms := &obs.Models[i]
		m, ok := desired.Model(ms.Model)
		if !ok || m.Suspended {
			continue
		}
		if ms.Error != "" {
			tp.Errors = append(tp.Errors, reconciler.ModelError{Model: m.Name, Target: Name, Message: ms.Error})
			continue
		}
		t.planModel(desired.Revision, m, ms, obs.At, &tp)
	}
	return tp
}

func (t *Target) planModel(revision string, m *reconciler.DesiredModel, ms *ModelState, at time.Time, tp *reconciler.TargetPlan) {
	ds := decisions(m, ms, at)
	roles := prefixRoles(m, ms, at)
	var deletes, restores, transitions []reconciler.Action
	for _, p := range ms.Prefixes {
		role := roles[p.Location]
		vs := owners(ms, p.Location)
		reason := ownerReasons(vs, ds)
		base := reconciler.Action{Target: Name, Model: m.Name, Resource: p.Location.String(), Revision: revision, Reason: reason}
		payload := Payload{Bucket: p.Bucket, Prefix: p.Prefix, Versions: vs}
		if role == RoleKeep || len(p.Objects) == 0 {
			continue
		}
		if role == RoleDeleted {
			del := payload
			for _, o := range p.Objects {
				del.Objects = append(del.Objects, payloadObject(o))
			}
			a := base
			a.Kind, a.Op, a.From = KindDelete, reconciler.OpDelete, classesOf(del.Objects)
			a.Payload = mustJSON(del)
			deletes = append(deletes, a)
			continue
		}
		to, _ := role.Class(m.Lifecycle)
		tr, rs := payload, payload
		tr.To, rs.To = to, to
		rs.Tier, rs.Days = t.cfg.RestoreTier, t.cfg.RestoreDays
		for _, o := range p.Objects {
			switch {
			case storageclass.Normalize(o.Class) == to:
			case !o.archived() || (o.Restore != nil && o.Restore.Readable()):
				tr.Objects = append(tr.Objects, payloadObject(o))
			case o.Restore == nil || !o.Restore.Requested:
				rs.Objects = append(rs.Objects, payloadObject(o))
			}
			// An object whose restore is running needs nothing until it ends.
		}
		if len(rs.Objects) > 0 {
			a := base
			a.Kind, a.Op, a.From = KindRestore, reconciler.OpUpdate, classesOf(rs.Objects)
			a.To = fmt.Sprintf("readable for %dd (%s tier), then %s", rs.Days, rs.Tier, to)
			a.Payload = mustJSON(rs)
			restores = append(restores, a)
		}
		if len(tr.Objects) > 0 {
			a := base
			a.Kind, a.Op, a.From, a.To = KindTransition, reconciler.OpUpdate, classesOf(tr.Objects), to
			a.Payload = mustJSON(tr)
			transitions = append(transitions, a)
		}
	}
	// Deletions lead so that a reviewer sees them first.
	tp.Actions = append(tp.Actions, deletes...)
	tp.Actions = append(tp.Actions, restores...)
	tp.Actions = append(tp.Actions, transitions...)
	tp.Waits = append(tp.Waits, t.waits(m, ms)...)
}

// waits holds every environment that uses a version with unreadable files.
func (t *Target) waits(m *reconciler.DesiredModel, ms *ModelState) []reconciler.Wait {
	var ws []reconciler.Wait
	for _, v := range m.ReferencedVersions() {
		i := slices.IndexFunc(ms.Versions, func(s VersionState) bool { return s.Version == v })
		if i < 0 {
			continue
		}
		loc := ms.Versions[i].Location
		var total, unready int
		var tier string
		var started time.Time
		requested, recorded := true, true
		for _, p := range ms.Prefixes {
			if !p.Location.within(loc) {
				continue
			}
			for _, o := range p.Objects {
				total++
				if o.readable() {
					continue
				}
				unready++
				switch {
				case o.Restore == nil || !o.Restore.Requested:
					requested = false
				case o.RestoreRequest == nil:
					recorded = false
				default:
					tier = o.RestoreRequest.Tier
					if started.IsZero() || o.RestoreRequest.At.Before(started) {
						started = o.RestoreRequest.At
					}
				}
			}
		}
		if unready == 0 {
			continue
		}
		var state string
		switch {
		case !requested:
			state = fmt.Sprintf("tier %s, requested by this plan", t.cfg.RestoreTier)
		case !recorded || started.IsZero():
			state = "tier unknown, started at unknown: no record of the request could be read"
		default:
			state = fmt.Sprintf("tier %s, started at %s", tier, started.UTC().Format(time.RFC3339))
		}
		reason := fmt.Sprintf("%s%d are not readable yet: waiting for restore (%s) of %d of %d objects under %s",
			waitPrefix, v, state, unready, total, loc)
		for _, env := range environmentsUsing(m, v) {
			ws = append(ws, reconciler.Wait{Model: m.Name, Environment: env, Target: Name, Reason: reason})
		}
	}
	return ws
}

func payloadObject(o Object) PayloadObject {
	return PayloadObject{Key: o.Key, Size: o.Size, ETag: o.ETag, From: storageclass.Normalize(o.Class)}
}

func classesOf(objs []PayloadObject) string {
	var cs []string
	for _, o := range objs {
		cs = append(cs, o.From)
	}
	slices.Sort(cs)
	return strings.Join(slices.Compact(cs), "+")
}

func ownerReasons(vs []int, ds map[int]Decision) string {
	parts := make([]string, 0, len(vs))
	for _, v := range vs {
		d := ds[v]
		parts = append(parts, fmt.Sprintf("v%d %s: %s", v, d.Role, d.Reason))
	}
	return strings.Join(parts, "; ")
}

func mustJSON(v any) json.RawMessage {
	b, err := json.Marshal(v)
	if err != nil {
		// Payload holds only strings, ints and slices of them.
		panic(fmt.Sprintf("s3: marshal payload: %v", err))
	}
	return b
}
