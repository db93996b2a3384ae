package kserve

import (
	"fmt"
	"io/fs"
	"net/url"
	"path"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"
	"unicode"

	"sigs.k8s.io/kustomize/api/konfig"
	"sigs.k8s.io/kustomize/api/provider"
	"sigs.k8s.io/kustomize/api/resmap"
	"sigs.k8s.io/kustomize/api/resource"
	ktypes "sigs.k8s.io/kustomize/api/types"
	"sigs.k8s.io/kustomize/kyaml/filesys"

	"github.com/modelsync/modelsync/internal/manifest"
)

// How a render decides which references kustomize may follow.
//
// Kustomize clones with the git program any reference its URL parser
// accepts (user@host:path, ssh://, file://, git::, github.com/..., a
// query string), and that parser runs before it looks at the file system,
// so a reference that also exists as a local directory is still cloned.
// It fetches http(s) URLs named as files with its own HTTP client. Neither
// can be turned off or redirected through the file system it is given, so
// every reference is judged here first, by what it provably is rather than
// by what it looks like: a reference is local only when it is a relative
// path of ordinary file-name characters that kustomize's parser cannot
// read as a URL, inside the model folder (or inside the clone it comes
// from), and present there. Anything else is remote and needs
// serving.allowRemoteBases, and even then only https:// URLs of a host in
// serving.remoteBaseHosts with plain ref values pass.

// remotePolicy is what a repository lets kustomizations fetch.
type remotePolicy struct {
	allow bool
	hosts []string
}

func remotePolicyOf(p manifest.ServingPolicy) remotePolicy {
	rp := remotePolicy{allow: p.AllowRemoteBases}
	for _, h := range p.RemoteBaseHosts {
		if h = strings.TrimSpace(h); h != "" {
			rp.hosts = append(rp.hosts, h)
		}
	}
	return rp
}

// maxCloneTimeout bounds the timeout= a remote base may ask kustomize to
// give git.
const maxCloneTimeout = 5 * time.Minute

// kustRef is one path a kustomization refers to.
type kustRef struct {
	field, value string
	// base: kustomize may take the reference as a directory or a Git
	// repository (resources, components, generators, ...), not only as a file.
	base bool
}

// refusal is one reference a render refuses.
type refusal struct {
	// file holds the reference, as shown to users.
	file, field, value, reason string
	// remote: the reference is not provably local.
	remote bool
}

func (r refusal) String() string {
	if r.field == "" {
		return r.file + ": " + r.reason
	}
	return fmt.Sprintf("%s: %s %q %s", r.file, r.field, r.value, r.reason)
}

// refusalError joins refusals into one error whose cause is ErrRemoteBase
// when any reference is remote, else ErrOutsideModel.
func refusalError(rs []refusal) error {
	return &RefusalError{refusals: slices.Clone(rs)}
}

// RefusalError is a render refused for references in kustomizations or
// plugin configurations; References lists them one by one, so `validate`
// can point at each. Its cause (errors.Is) is ErrRemoteBase when any
// reference is remote, else ErrOutsideModel.
type RefusalError struct {
	refusals []refusal
}

// Reference is one refused reference: the file holding it (a repository
// path), the field (e.g. resources) and value, and why it is refused.
type Reference struct {
	File, Field, Value, Reason string
}

// References returns the refused references, without repeats.
func (e *RefusalError) References() []Reference {
	seen := map[refusal]bool{}
	var out []Reference
	for _, r := range e.refusals {
		if !seen[r] {
			seen[r] = true
			out = append(out, Reference{File: r.file, Field: r.field, Value: r.value, Reason: r.reason})
		}
	}
	return out
}

func (e *RefusalError) cause() error {
	for _, r := range e.refusals {
		if r.remote {
			return ErrRemoteBase
		}
	}
	return ErrOutsideModel
}

func (e *RefusalError) Error() string {
	msgs := make([]string, 0, len(e.refusals))
	seen := map[string]bool{}
	for _, r := range e.refusals {
		if s := r.String(); !seen[s] {
			seen[s] = true
			msgs = append(msgs, s)
		}
	}
	sort.Strings(msgs)
	return fmt.Sprintf("%v: %s", e.cause(), strings.Join(msgs, "; "))
}

func (e *RefusalError) Unwrap() error { return e.cause() }

// vetter checks kustomizations and builtin plugin configurations. It
// parses with kustomize's own resource factory so that what it takes for
// inline content kustomize takes for inline content too.
type vetter struct {
	remote remotePolicy
	rf     *resource.Factory
	rmf    *resmap.Factory
	// fetches are the remote references the policy permits, which a
	// build would clone or download; an offline build stops at them.
	fetches []string
}

func newVetter(rp remotePolicy) *vetter {
	rf := provider.NewDefaultDepProvider().GetResourceFactory()
	return &vetter{remote: rp, rf: rf, rmf: resmap.NewFactory(rf)}
}

// kustomizationResult is what one kustomization refers to.
type kustomizationResult struct {
	// resourceFiles are local files listed in resources or bases.
	resourceFiles []string
	// objectFiles are local files kustomize reads as objects, which may
	// hold builtin plugin configurations.
	objectFiles []string
	problems    []refusal
}

// kustomization checks every reference of the kustomization at file (a
// path in fsys) against root, the directory it may not leave. shown names
// the file in messages.
func (v *vetter) kustomization(fsys filesys.FileSystem, file, shown, root string, data []byte) kustomizationResult {
	var res kustomizationResult
	var k ktypes.Kustomization
	// The same decoding kustomize applies, so both read the same fields.
	if err := k.Unmarshal(data); err != nil {
		res.problems = append(res.problems, refusal{file: shown, reason: err.Error()})
		return res
	}
	dir := path.Dir(file)
	for _, ref := range v.kustomizationRefs(&k, shown, &res) {
		reason, remote := v.check(fsys, dir, root, ref)
		if reason != "" {
			res.problems = append(res.problems, refusal{file: shown, field: ref.field, value: ref.value, reason: reason, remote: remote})
			continue
		}
		if remote {
			v.fetches = append(v.fetches, shown+": "+ref.field+" "+ref.value)
			continue
		}
		target := joinRef(dir, ref.value)
		if fsys.IsDir(target) {
			continue
		}
		switch ref.field {
		case "resources", "bases":
			res.resourceFiles = append(res.resourceFiles, target)
			res.objectFiles = append(res.objectFiles, target)
		case "generators", "transformers", "validators":
			res.objectFiles = append(res.objectFiles, target)
		}
	}
	return res
}

// kustomizationRefs lists the references of k; inline generator,
// transformer and patch content is checked on the way.
func (v *vetter) kustomizationRefs(k *ktypes.Kustomization, shown string, res *kustomizationResult) []kustRef {
	var refs []kustRef
	add := func(field string, base bool, vals ...string) {
		for _, val := range vals {
			if val != "" {
				refs = append(refs, kustRef{field: field, value: val, base: base})
			}
		}
	}
	add("resources", true, k.Resources...)
	add("bases", true, k.Bases...)
	add("components", true, k.Components...)
	// Kustomize takes a generator, transformer or validator entry as
	// inline configuration when its resource factory accepts it, and as a
	// path (maybe a repository) otherwise.
	for _, fe := range []struct {
		field   string
		entries []string
	}{{"generators", k.Generators}, {"transformers", k.Transformers}, {"validators", k.Validators}} {
		field := fe.field
		for _, e := range fe.entries {
			if rm, err := v.rmf.NewResMapFromBytes([]byte(e)); err == nil {
				res.problems = append(res.problems, v.pluginConfigs(shown+": inline "+field, rm.Resources())...)
				continue
			}
			add(field, true, e)
		}
	}
	add("crds", false, k.Crds...)
	add("configurations", false, k.Configurations...)
	for _, p := range k.PatchesStrategicMerge {
		// The builtin transformer tries each entry as patch content first.
		if _, err := v.rf.SliceFromBytes([]byte(p)); err != nil {
			add("patchesStrategicMerge", false, string(p))
		}
	}
	for _, p := range k.Patches {
		add("patches.path", false, p.Path)
	}
	for _, p := range k.PatchesJson6902 {
		add("patchesJson6902.path", false, p.Path)
	}
	for _, r := range k.Replacements {
		add("replacements.path", false, r.Path)
	}
	if p, ok := k.OpenAPI["path"]; ok {
		add("openapi.path", false, p)
	}
	gens := func(field string, a ktypes.GeneratorArgs) {
		for _, f := range a.FileSources {
			add(field+".files", false, fileSourcePath(f))
		}
		add(field+".envs", false, a.EnvSources...)
		add(field+".env", false, a.EnvSource)
	}
	for _, g := range k.ConfigMapGenerator {
		gens("configMapGenerator", g.GeneratorArgs)
	}
	for _, g := range k.SecretGenerator {
		gens("secretGenerator", g.GeneratorArgs)
	}
	return refs
}

// fileSourcePath is the path of a generator's files entry, "[key=]path".
func fileSourcePath(f string) string {
	if _, p, ok := strings.Cut(f, "="); ok {
		return p
	}
	return f
}

// joinRef resolves a relative reference against a directory: a slash
// path in memory, or a clone directory on disk (the target is Linux).
func joinRef(dir, ref string) string { return path.Join(dir, ref) }

// check returns why ref (in a kustomization in dir) is refused, "" when
// it may be followed; remote says it is not a local path.
func (v *vetter) check(fsys filesys.FileSystem, dir, root string, ref kustRef) (reason string, remote bool) {
	val := ref.value
	why := notPlainLocal(val)
	if why == "" {
		if path.IsAbs(val) || filepath.IsAbs(val) {
			return "is an absolute path", false
		}
		target := joinRef(dir, val)
		if !within(target, root) {
			return fmt.Sprintf("resolves to %s, outside %s/", shownPath(target), shownPath(root)), false
		}
		if !fsys.Exists(target) {
			return fmt.Sprintf("names %s, which does not exist", shownPath(target)), false
		}
		if !ref.base && fsys.IsDir(target) {
			return fmt.Sprintf("names the directory %s; a file is expected", shownPath(target)), false
		}
		return "", false
	}
	if !v.remote.allow {
		how := "over HTTP"
		if ref.base {
			how = "with git or over HTTP"
		}
		return fmt.Sprintf("is not a plain local path (%s), so kustomize would fetch it %s; serving.allowRemoteBases is off", why, how), true
	}
	if reason := v.remote.checkURL(val, ref.base); reason != "" {
		return reason, true
	}
	return "", true
}

// shownPath is a file-system path as messages show it: repository paths
// without the in-memory root slash.
func shownPath(p string) string { return strings.TrimPrefix(p, "/") }

// notPlainLocal returns "" when v can only be a file-system path to
// kustomize, else what makes it more. Kustomize's URL parser needs a
// scheme (":"), a user ("@"), a "github.com" first element or a "//"
// repository marker to take a reference for a repository, and its loader
// fetches only values with an http(s) scheme; letters, digits and the few
// punctuation marks allowed here make none of those.
func notPlainLocal(v string) string {
	if v == "" {
		return "it is empty"
	}
	for _, r := range v {
		if !unicode.IsLetter(r) && !unicode.IsDigit(r) && !strings.ContainsRune("-_.+~/ ,=", r) {
			return fmt.Sprintf("it contains %q", r)
		}
	}
	if strings.Contains(strings.TrimSuffix(v, "/"), "//") {
		return "it contains //, kustomize's marker of a directory inside a repository"
	}
	if first, _, _ := strings.Cut(v, "/"); strings.EqualFold(first, "github.com") {
		return "kustomize clones paths starting with github.com"
	}
	return ""
}

// checkURL returns why a remote reference is refused although remote
// references are allowed. base: kustomize may clone it with git (it tries
// an http(s) GET first, and git when that fails for another reason than
// an HTTP status).
func (rp remotePolicy) checkURL(v string, base bool) string {
	const scheme = "https://"
	if !strings.HasPrefix(v, scheme) {
		return "is not an https:// URL; only https:// URLs of a host in serving.remoteBaseHosts are followed"
	}
	rest := v[len(scheme):]
	for _, r := range rest {
		if r > unicode.MaxASCII || !(unicode.IsLetter(r) || unicode.IsDigit(r) || strings.ContainsRune("-._~/?&=:", r)) {
			return fmt.Sprintf("contains %q; a remote reference may hold only letters, digits and - . _ ~ / ? & = :", r)
		}
	}
	hostPath, query, _ := strings.Cut(rest, "?")
	host, p, _ := strings.Cut(hostPath, "/")
	if !rp.hostAllowed(host) {
		if len(rp.hosts) == 0 {
			return fmt.Sprintf("names host %q, and serving.remoteBaseHosts lists no host", host)
		}
		return fmt.Sprintf("names host %q, which serving.remoteBaseHosts does not list", host)
	}
	if strings.Contains(p, ":") {
		return "has a colon in its path"
	}
	for _, seg := range strings.Split(p, "/") {
		if seg == ".." {
			return "climbs with .. in its path"
		}
	}
	values, err := url.ParseQuery(query)
	if err != nil {
		return fmt.Sprintf("has a malformed query: %v", err)
	}
	for key, vals := range values {
		if len(vals) != 1 {
			return fmt.Sprintf("gives %s more than once", key)
		}
		val := vals[0]
		switch key {
		case "ref", "version":
			if !safeRef(val) {
				return fmt.Sprintf("has %s=%q; a ref must start with a letter or digit and hold only letters, digits and . _ - /, so git cannot take it for an option", key, val)
			}
		case "submodules":
			if val != "false" {
				return "must set submodules=false: the URLs of submodules are the remote repository's choice"
			}
		case "timeout":
			if d, ok := cloneTimeout(val); !ok || d > maxCloneTimeout {
				return fmt.Sprintf("has timeout=%q; at most %s is allowed", val, maxCloneTimeout)
			}
		default:
			return fmt.Sprintf("has the query parameter %q; only ref, version, submodules and timeout are passed on", key)
		}
	}
	if base && values.Get("submodules") != "false" {
		return "must set submodules=false (kustomize clones submodules by default, and their URLs are the remote repository's choice)"
	}
	return ""
}

func (rp remotePolicy) hostAllowed(host string) bool {
	if host == "" {
		return false
	}
	for _, h := range rp.hosts {
		if strings.EqualFold(h, host) {
			return true
		}
	}
	return false
}

// safeRef: a branch, tag or commit name git cannot read as an option.
func safeRef(s string) bool {
	if s == "" {
		return false
	}
	for i, r := range s {
		alnum := r <= unicode.MaxASCII && (unicode.IsLetter(r) || unicode.IsDigit(r))
		if i == 0 && !alnum {
			return false
		}
		if !alnum && !strings.ContainsRune("._-/", r) {
			return false
		}
	}
	return !strings.Contains(s, "..")
}

// cloneTimeout parses kustomize's timeout= (seconds or a Go duration).
func cloneTimeout(s string) (time.Duration, bool) {
	if n, err := strconv.Atoi(s); err == nil && n > 0 {
		return time.Duration(n) * time.Second, true
	}
	if d, err := time.ParseDuration(s); err == nil && d > 0 {
		return d, true
	}
	return 0, false
}

// pluginFileFields are, per builtin plugin kind, the configuration fields
// whose values kustomize's loader reads (and fetches when they are URLs).
// Plugins decode their configuration with case-insensitive keys.
var pluginFileFields = map[string][]string{
	"PatchTransformer":               {"path"},
	"PatchJson6902Transformer":       {"path"},
	"PatchStrategicMergeTransformer": {"paths"},
	"ReplacementTransformer":         {"replacements.path"},
	"ConfigMapGenerator":             {"files", "envs", "env"},
	"SecretGenerator":                {"files", "envs", "env"},
	"ValueAddTransformer":            {"targetFilePath"},
}

// objectFile checks the builtin plugin configurations among the objects
// of a file kustomize reads as objects.
func (v *vetter) objectFile(shown string, data []byte) []refusal {
	res, err := v.rf.SliceFromBytes(data)
	if err != nil {
		// Not objects to kustomize either, so not plugin configurations.
		return nil
	}
	return v.pluginConfigs(shown, res)
}

// pluginConfigs checks the file references of builtin plugin
// configurations (apiVersion: builtin) among res.
func (v *vetter) pluginConfigs(shown string, res []*resource.Resource) []refusal {
	var out []refusal
	for _, r := range res {
		gvk := r.GetGvk()
		if gvk.Group != "" || gvk.Version != "builtin" {
			continue
		}
		fields := pluginFileFields[gvk.Kind]
		if len(fields) == 0 {
			continue
		}
		m, err := r.Map()
		if err != nil {
			out = append(out, refusal{file: shown, reason: fmt.Sprintf("%s %q: %v", gvk.Kind, r.GetName(), err)})
			continue
		}
		for _, f := range fields {
			for _, val := range stringsAt(m, strings.Split(f, ".")) {
				field := fmt.Sprintf("%s %q %s", gvk.Kind, r.GetName(), f)
				if f == "files" {
					val = fileSourcePath(val)
				}
				if f == "paths" {
					if _, err := v.rf.SliceFromBytes([]byte(val)); err == nil {
						continue // an inline patch
					}
				}
				reason, remote := v.checkPluginPath(val)
				switch {
				case reason != "":
					out = append(out, refusal{file: shown, field: field, value: val, reason: reason, remote: remote})
				case remote:
					v.fetches = append(v.fetches, shown+": "+field+" "+val)
				}
			}
		}
	}
	return out
}

// checkPluginPath judges a path a plugin loads. Which directory it is
// relative to depends on the kustomization using the plugin, so only its
// form is checked here; the guard file system confines where it leads.
func (v *vetter) checkPluginPath(val string) (reason string, remote bool) {
	if why := notPlainLocal(val); why != "" {
		if !v.remote.allow {
			return fmt.Sprintf("is not a plain local path (%s), so kustomize would fetch it over HTTP; serving.allowRemoteBases is off", why), true
		}
		return v.remote.checkURL(val, false), true
	}
	if path.IsAbs(val) || filepath.IsAbs(val) {
		return "is an absolute path", false
	}
	return "", false
}

// stringsAt collects the strings at a field path in a decoded object,
// matching keys without regard to case and descending into lists.
func stringsAt(v any, keys []string) []string {
	if len(keys) == 0 {
		switch t := v.(type) {
		case string:
			return []string{t}
		case []any:
			var out []string
			for _, e := range t {
				if s, ok := e.(string); ok {
					out = append(out, s)
				}
			}
			return out
		}
		return nil
	}
	var out []string
	switch t := v.(type) {
	case map[string]any:
		for k, e := range t {
			if strings.EqualFold(k, keys[0]) {
				out = append(out, stringsAt(e, keys[1:])...)
			}
		}
	case []any:
		for _, e := range t {
			out = append(out, stringsAt(e, keys)...)
		}
	}
	return out
}

// kustomizationNames are the file names kustomize loads a kustomization from.
var kustomizationNames = konfig.RecognizedKustomizationFileNames()

func isKustomizationName(name string) bool { return slices.Contains(kustomizationNames, name) }

// scanKustomizations checks every kustomization in the model folder, and
// the plugin configurations among the files they list, before kustomize
// runs, so a refused reference gets an error naming file and field and
// nothing is fetched. It returns the local files listed as resources.
func (v *vetter) scanKustomizations(mem filesys.FileSystem, modelRoot string) ([]string, error) {
	root := "/" + modelRoot
	var problems []refusal
	var resourceFiles, objectFiles []string
	err := mem.Walk(root, func(p string, info fs.FileInfo, err error) error {
		if err != nil || info.IsDir() || !isKustomizationName(path.Base(p)) {
			return err
		}
		data, err := mem.ReadFile(p)
		if err != nil {
			return err
		}
		res := v.kustomization(mem, p, shownPath(p), root, data)
		problems = append(problems, res.problems...)
		resourceFiles = append(resourceFiles, res.resourceFiles...)
		objectFiles = append(objectFiles, res.objectFiles...)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("scanning kustomizations: %w", err)
	}
	seen := map[string]bool{}
	for _, f := range objectFiles {
		if seen[f] {
			continue
		}
		seen[f] = true
		data, err := mem.ReadFile(f)
		if err != nil {
			return nil, fmt.Errorf("scanning kustomizations: %w", err)
		}
		problems = append(problems, v.objectFile(shownPath(f), data)...)
	}
	if len(problems) > 0 {
		return nil, refusalError(problems)
	}
	return resourceFiles, nil
}
