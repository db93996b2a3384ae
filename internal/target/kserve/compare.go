package kserve

import (
	"encoding/json"
	"fmt"
	"reflect"
	"sort"
	"strconv"
	"strings"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
)

// fieldPath is a path into an object: string map keys and int list indices.
type fieldPath []any

func (p fieldPath) String() string {
	var b strings.Builder
	for _, s := range p {
		switch v := s.(type) {
		case string:
			if strings.ContainsAny(v, "./") {
				fmt.Fprintf(&b, "[%q]", v)
			} else {
				b.WriteString("." + v)
			}
		case int:
			fmt.Fprintf(&b, "[%d]", v)
		}
	}
	return b.String()
}

func (p fieldPath) hasPrefix(q ...any) bool {
	if len(p) < len(q) {
		return false
	}
	for i := range q {
		if p[i] != q[i] {
			return false
		}
	}
	return true
}

func appendPath(p fieldPath, s any) fieldPath {
	out := make(fieldPath, len(p)+1)
	copy(out, p)
	out[len(p)] = s
	return out
}

// bookkeeping annotations record where the applied spec came from. They
// are not compared: KServe copies ISVC annotations into the Knative
// revision template, so rewriting them on every Git commit would roll a
// new revision even when only traffic changes.
var bookkeeping = []string{AnnotationRevision, AnnotationRollbackOf}

func isBookkeeping(p fieldPath) bool {
	for _, a := range bookkeeping {
		if p.hasPrefix("metadata", "annotations", a) {
			return true
		}
	}
	return false
}

// diffObjects is the cheap comparison: every field desired sets must have
// the same value live, and every field modelsync's last apply owned must
// still be desired (or the apply would remove it). Server-populated fields
// (defaults, status, other managers' fields) are ignored.
func diffObjects(desired, live *unstructured.Unstructured, manager string) []fieldPath {
	var diffs []fieldPath
	d := stripForCompare(desired.Object)
	l := stripForCompare(live.Object)
	subsetDiff(d, l, nil, &diffs)
	if owned := ownedFields(live, manager, metav1.ManagedFieldsOperationApply); owned != nil {
		missingOwned(owned, d, l, nil, &diffs)
	}
	out := diffs[:0]
	for _, p := range diffs {
		if !isBookkeeping(p) {
			out = append(out, p)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].String() < out[j].String() })
	return out
}

// stripForCompare drops what is never part of a desired object.
func stripForCompare(obj map[string]any) map[string]any {
	out := make(map[string]any, len(obj))
	for k, v := range obj {
		if k == "status" {
			continue
		}
		out[k] = v
	}
	if md, ok := obj["metadata"].(map[string]any); ok {
		m := make(map[string]any, len(md))
		for k, v := range md {
			switch k {
			case "managedFields", "resourceVersion", "generation", "uid", "creationTimestamp", "selfLink":
				continue
			}
			m[k] = v
		}
		out["metadata"] = m
	}
	return out
}

func subsetDiff(d, l any, p fieldPath, diffs *[]fieldPath) {
	switch dv := d.(type) {
	case map[string]any:
		lv, ok := l.(map[string]any)
		if !ok {
			*diffs = append(*diffs, p)
			return
		}
		for k, v := range dv {
			lc, ok := lv[k]
			if !ok {
				if v != nil {
					*diffs = append(*diffs, appendPath(p, k))
				}
				continue
			}
			subsetDiff(v, lc, appendPath(p, k), diffs)
		}
	case []any:
		lv, ok := l.([]any)
		if !ok || len(lv) != len(dv) {
			*diffs = append(*diffs, p)
			return
		}
		for i := range dv {
			subsetDiff(dv[i], lv[i], appendPath(p, i), diffs)
		}
	default:
		if !scalarEqual(d, l) {
			*diffs = append(*diffs, p)
		}
	}
}

func scalarEqual(a, b any) bool {
	if fa, ok := number(a); ok {
		fb, ok := number(b)
		return ok && fa == fb
	}
	return reflect.DeepEqual(a, b)
}

func number(v any) (float64, bool) {
	switch n := v.(type) {
	case int:
		return float64(n), true
	case int32:
		return float64(n), true
	case int64:
		return float64(n), true
	case float64:
		return n, true
	case json.Number:
		f, err := n.Float64()
		return f, err == nil
	}
	return 0, false
}

// ownedFields returns the fieldsV1 tree a manager owns on the main
// resource (not a subresource) through the given operation, or nil.
func ownedFields(obj *unstructured.Unstructured, manager string, op metav1.ManagedFieldsOperationType) map[string]any {
	for _, e := range managedFieldsOf(obj) {
		if e.Manager != manager || e.Operation != op || e.Subresource != "" || e.FieldsV1 == nil {
			continue
		}
		var tree map[string]any
		if err := json.Unmarshal(e.FieldsV1.Raw, &tree); err != nil {
			return nil
		}
		return tree
	}
	return nil
}

// missingOwned walks an owned fieldsV1 tree alongside the desired and live
// objects and records owned leaves the desired object no longer has.
func missingOwned(owned map[string]any, d, l any, p fieldPath, diffs *[]fieldPath) {
	for k, child := range owned {
		sub, _ := child.(map[string]any)
		switch {
		case k == ".":
			continue
		case strings.HasPrefix(k, "f:"):
			name := k[2:]
			dm, _ := d.(map[string]any)
			lm, _ := l.(map[string]any)
			dv, ok := dm[name]
			if !ok {
				if _, live := lm[name]; live {
					*diffs = append(*diffs, appendPath(p, name))
				}
				continue
			}
			if len(sub) > 0 {
				missingOwned(sub, dv, lm[name], appendPath(p, name), diffs)
			}
		case strings.HasPrefix(k, "k:"):
			dl, _ := d.([]any)
			ll, _ := l.([]any)
			var keyFields map[string]any
			if err := json.Unmarshal([]byte(k[2:]), &keyFields); err != nil {
				continue
			}
			di := findKeyed(dl, keyFields)
			li := findKeyed(ll, keyFields)
			if di < 0 {
				if li >= 0 {
					*diffs = append(*diffs, appendPath(p, li))
				}
				continue
			}
			if len(sub) > 0 && li >= 0 {
				missingOwned(sub, dl[di], ll[li], appendPath(p, li), diffs)
			}
		case strings.HasPrefix(k, "v:"):
			var val any
			if err := json.Unmarshal([]byte(k[2:]), &val); err != nil {
				continue
			}
			dl, _ := d.([]any)
			found := false
			for _, e := range dl {
				found = found || jsonEqual(e, val)
			}
			if !found {
				*diffs = append(*diffs, p)
			}
		}
	}
}

func findKeyed(list []any, keys map[string]any) int {
	for i, e := range list {
		m, ok := e.(map[string]any)
		if !ok {
			continue
		}
		match := true
		for kk, kv := range keys {
			if !jsonEqual(m[kk], kv) {
				match = false
				break
			}
		}
		if match {
			return i
		}
	}
	return -1
}

func jsonEqual(a, b any) bool {
	if scalarEqual(a, b) {
		return true
	}
	ja, errA := json.Marshal(a)
	jb, errB := json.Marshal(b)
	return errA == nil && errB == nil && string(ja) == string(jb)
}

// owners lists the managers (other than self) whose managedFields on the
// main resource cover path p of live, with the operation they used.
func owners(live *unstructured.Unstructured, p fieldPath, self string) map[string]metav1.ManagedFieldsOperationType {
	out := map[string]metav1.ManagedFieldsOperationType{}
	for _, e := range managedFieldsOf(live) {
		if e.Manager == self || e.Subresource != "" || e.FieldsV1 == nil {
			continue
		}
		var tree map[string]any
		if err := json.Unmarshal(e.FieldsV1.Raw, &tree); err != nil {
			continue
		}
		if ownsPath(tree, live.Object, p) {
			out[e.Manager] = e.Operation
		}
	}
	return out
}

func ownsPath(tree map[string]any, v any, p fieldPath) bool {
	node := tree
	cur := v
	for _, seg := range p {
		switch s := seg.(type) {
		case string:
			child, ok := node["f:"+s].(map[string]any)
			if !ok {
				return false
			}
			m, _ := cur.(map[string]any)
			node, cur = child, m[s]
		case int:
			list, _ := cur.([]any)
			if s >= len(list) {
				return false
			}
			elem := list[s]
			var next map[string]any
			for k, child := range node {
				cm, _ := child.(map[string]any)
				switch {
				case strings.HasPrefix(k, "k:"):
					var keys map[string]any
					if json.Unmarshal([]byte(k[2:]), &keys) == nil && findKeyed([]any{elem}, keys) == 0 {
						next = cm
					}
				case strings.HasPrefix(k, "v:"):
					var val any
					if json.Unmarshal([]byte(k[2:]), &val) == nil && jsonEqual(val, elem) {
						next = cm
					}
				case k == "i:"+strconv.Itoa(s):
					next = cm
				}
			}
			if next == nil {
				// An atomic list is owned as a whole by its parent entry.
				return len(node) == 0
			}
			node, cur = next, elem
		}
	}
	return true
}

// sameServedObject reports whether a dry-run result would leave the live
// object as it is (ignoring bookkeeping that changes on every write).
func sameServedObject(dryRun, live *unstructured.Unstructured) bool {
	a := stripForCompare(dryRun.Object)
	b := stripForCompare(live.Object)
	for _, m := range []map[string]any{a, b} {
		if md, ok := m["metadata"].(map[string]any); ok {
			if ann, ok := md["annotations"].(map[string]any); ok {
				c := make(map[string]any, len(ann))
				for k, v := range ann {
					c[k] = v
				}
				for _, bk := range bookkeeping {
					delete(c, bk)
				}
				md["annotations"] = c
			}
		}
	}
	return reflect.DeepEqual(a, b)
}
