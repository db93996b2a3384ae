package policy

import (
	"encoding/json"
	"fmt"
	"maps"
	"reflect"
	"slices"
	"strings"

	"github.com/modelsync/modelsync/internal/manifest"
)

// ConfigChange is one difference in modelsync.yaml as it concerns one
// environment. modelsync.yaml decides where and how every model runs, so a
// change to it is a change to each environment it touches even when no
// version moves: a repository-wide setting (the environment order, the
// registry mode, prune, serving options, allowedSources, lifecycle
// defaults) is listed once for every environment.
type ConfigChange struct {
	Environment string `json:"environment"`
	// Field names the setting as modelsync.yaml spells it: an environment's
	// "namespace", "alias", "source" or "prerelease", "syncWindows" for the
	// windows that apply to the environment, "environments" for the
	// promotion order, or a repository-wide path such as
	// "defaults.registry.mode" or "serving.allowRemoteBases".
	Field string `json:"field"`
	// From and To are the values on the base and on the head as text; ""
	// means absent (an environment added or removed). Defaults are
	// applied, so only changes in effect are listed: an alias left out is
	// the environment's name, a registry mode left out is "aliases".
	From string `json:"from"`
	To   string `json:"to"`
	// File and Line locate the setting on the head, or the nearest enclosing
	// key when the head removes it.
	File string `json:"file"`
	Line int    `json:"line"`
}

// Field names of ConfigChange that are not paths of a single setting.
const (
	ConfigFieldOrder       = "environments"
	ConfigFieldSyncWindows = "syncWindows"
)

// BuildConfigChanges compares modelsync.yaml on the base and the head and
// lists, per environment, every setting whose value in effect differs,
// sorted by environment and field. A side whose configuration is missing
// or invalid counts as empty, so a repaired configuration lists every
// setting; a broken head is judged by its problems instead (see
// BuildManifestErrors).
func BuildConfigChanges(before, after *manifest.Repo) []ConfigChange {
	var bc, ac *manifest.RepoConfig
	var pos manifest.Positions
	if before != nil {
		bc = before.Config
	}
	if after != nil {
		ac, pos = after.Config, after.ConfigLines
	}
	if ac == nil {
		return []ConfigChange{}
	}
	bEnvs, aEnvs := envSettings(bc), envSettings(ac)
	bRepo, aRepo := repoSettings(bc), repoSettings(ac)

	names := slices.Collect(maps.Keys(bEnvs))
	for n := range aEnvs {
		if _, ok := bEnvs[n]; !ok {
			names = append(names, n)
		}
	}
	slices.Sort(names)
	index := map[string]int{}
	for i, e := range ac.Environments {
		index[e.Name] = i
	}

	changes := []ConfigChange{}
	for _, env := range names {
		b, a := bEnvs[env], aEnvs[env]
		prefix := ConfigFieldOrder
		if i, ok := index[env]; ok {
			prefix = fmt.Sprintf("%s[%d]", ConfigFieldOrder, i)
		}
		for _, field := range unionKeys(b, a) {
			if b[field] == a[field] {
				continue
			}
			at := prefix + "." + field
			if field == ConfigFieldSyncWindows {
				at = ConfigFieldSyncWindows
			}
			changes = append(changes, ConfigChange{Environment: env, Field: field, From: b[field], To: a[field],
				File: manifest.ConfigFile, Line: lineOf(pos, at)})
		}
		for _, field := range unionKeys(bRepo, aRepo) {
			if bRepo[field] == aRepo[field] {
				continue
			}
			changes = append(changes, ConfigChange{Environment: env, Field: field, From: bRepo[field], To: aRepo[field],
				File: manifest.ConfigFile, Line: lineOf(pos, field)})
		}
	}
	slices.SortStableFunc(changes, func(x, y ConfigChange) int {
		if c := strings.Compare(x.Environment, y.Environment); c != 0 {
			return c
		}
		return strings.Compare(x.Field, y.Field)
	})
	return changes
}

// envSettings flattens each environment's own settings, defaults applied,
// plus the sync windows that apply to it.
func envSettings(c *manifest.RepoConfig) map[string]map[string]string {
	out := map[string]map[string]string{}
	if c == nil {
		return out
	}
	for _, e := range c.Environments {
		e.Alias = e.AliasName()
		m := map[string]string{}
		flatten("", reflect.ValueOf(e), m)
		delete(m, "name")
		var windows []string
		for _, w := range c.SyncWindows {
			if len(w.Environments) == 0 || slices.Contains(w.Environments, e.Name) {
				tz := w.TimeZone
				if tz == "" {
					tz = "UTC"
				}
				windows = append(windows, fmt.Sprintf("%s %q for %s (%s)", w.Kind, w.Schedule, w.Duration, tz))
			}
		}
		// Deny wins wherever windows overlap, so their order means nothing.
		slices.Sort(windows)
		m[ConfigFieldSyncWindows] = strings.Join(windows, "; ")
		out[e.Name] = m
	}
	return out
}

// repoSettings flattens every repository-wide setting. Fields are found by
// reflection, so a setting added to manifest.RepoConfig later is compared
// without anyone remembering to list it here.
func repoSettings(c *manifest.RepoConfig) map[string]string {
	m := map[string]string{}
	if c == nil {
		return m
	}
	cp := *c
	cp.Defaults.Registry.Mode = c.RegistryMode()
	names := make([]string, len(c.Environments))
	for i, e := range c.Environments {
		names[i] = e.Name
	}
	// Environments and sync windows are compared per environment; the
	// promotion order is what is left of the list.
	cp.Environments, cp.SyncWindows = nil, nil
	flatten("", reflect.ValueOf(cp), m)
	delete(m, ConfigFieldOrder)
	delete(m, ConfigFieldSyncWindows)
	m[ConfigFieldOrder] = strings.Join(names, ", ")
	return m
}

var stringerType = reflect.TypeFor[fmt.Stringer]()

// flatten writes v's leaves into out keyed by their YAML path (a.b.c);
// lists, maps and values with a String method are leaves.
func flatten(prefix string, v reflect.Value, out map[string]string) {
	if v.Type().Implements(stringerType) {
		out[prefix] = v.Interface().(fmt.Stringer).String()
		if v.IsZero() {
			out[prefix] = ""
		}
		return
	}
	switch v.Kind() {
	case reflect.Struct:
		t := v.Type()
		for i := range t.NumField() {
			f := t.Field(i)
			if !f.IsExported() {
				continue
			}
			name, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
			if name == "-" {
				continue
			}
			if name == "" {
				name = f.Name
			}
			if prefix != "" {
				name = prefix + "." + name
			}
			flatten(name, v.Field(i), out)
		}
	case reflect.Pointer:
		if v.IsNil() {
			out[prefix] = ""
			return
		}
		flatten(prefix, v.Elem(), out)
	case reflect.Slice, reflect.Map:
		if v.Len() == 0 {
			out[prefix] = ""
			return
		}
		b, err := json.Marshal(v.Interface())
		if err != nil {
			b = fmt.Appendf(nil, "%v", v.Interface())
		}
		out[prefix] = string(b)
	default:
		out[prefix] = fmt.Sprint(v.Interface())
	}
}

func unionKeys(a, b map[string]string) []string {
	keys := slices.Collect(maps.Keys(a))
	for k := range b {
		if _, ok := a[k]; !ok {
			keys = append(keys, k)
		}
	}
	slices.Sort(keys)
	return keys
}

// lineOf is the line of field in pos, or of its nearest recorded parent; 1
// when none is known, so an annotation still lands in the file.
func lineOf(pos manifest.Positions, field string) int {
	for f := field; f != ""; {
		if p, ok := pos.Get(f); ok && p.Line > 0 {
			return p.Line
		}
		i := strings.LastIndexAny(f, ".[")
		if i < 0 {
			break
		}
		f = f[:i]
	}
	return 1
}

// ManifestError is a problem in a manifest on the head: a file that does
// not decode, is too large, or fails validation. It carries no model
// manifest, so it is its own section of the input rather than part of
// Models.
type ManifestError struct {
	// Model is the model the file belongs to; "" for modelsync.yaml.
	Model string `json:"model"`
	File  string `json:"file"`
	// Line is 1 for a problem of the whole file (missing, too large).
	Line    int    `json:"line"`
	Field   string `json:"field"`
	Message string `json:"message"`
}

// MaxManifestErrors bounds input.manifest_errors: past it one entry says
// how many more there are, so a pull request of a thousand broken files
// still yields a short plan comment and a bounded input.
const MaxManifestErrors = 100

// BuildManifestErrors lists the head's manifest problems a pull request is
// answerable for: every problem of modelsync.yaml (configProblems, which
// include checks that need the config branch), and the problems of each
// model whose folder the pull request changes or that was valid on the
// base. A model already broken on the base in a folder the pull request
// does not touch is left out, so it blocks only the pull request that
// fixes or edits it. before may be nil.
func BuildManifestErrors(before, after *manifest.Repo, configProblems manifest.ErrorList, changedFiles []string) []ManifestError {
	out := []ManifestError{}
	if after == nil {
		return out
	}
	touched := map[string]bool{}
	for _, p := range changedFiles {
		if rest, ok := strings.CutPrefix(p, manifest.ModelsDir+"/"); ok {
			name, _, _ := strings.Cut(rest, "/")
			touched[name] = true
		}
	}
	total := 0
	add := func(model string, e *manifest.FieldError) {
		total++
		if len(out) < MaxManifestErrors {
			out = append(out, ManifestError{Model: model, File: e.File, Line: max(e.Line, 1), Field: e.Field, Message: e.Message})
		}
	}
	for _, e := range configProblems {
		add("", e)
	}
	for _, name := range slices.Sorted(maps.Keys(after.Problems)) {
		brokenBefore := false
		if before != nil {
			_, brokenBefore = before.Problems[name]
		}
		if !touched[name] && brokenBefore {
			continue
		}
		for _, e := range after.Problems[name] {
			add(name, e)
		}
	}
	if total > len(out) {
		last := &out[len(out)-1]
		last.Message += fmt.Sprintf(" (and %d more problems; run modelsync validate for all of them)", total-len(out))
	}
	return out
}
