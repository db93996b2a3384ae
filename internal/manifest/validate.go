package manifest

import (
	"fmt"
	"path"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/modelsync/modelsync/internal/cron"
	"github.com/modelsync/modelsync/internal/storageclass"
)

var (
	// dnsLabel is a Kubernetes namespace or resource name segment.
	dnsLabel = regexp.MustCompile(`^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$`)
	envName  = regexp.MustCompile(`^[a-z][a-z0-9-]{0,30}$`)
	// mlflowAlias follows MLflow's own alias validation.
	mlflowAlias       = regexp.MustCompile(`^[\w\-]{1,255}$`)
	mlflowVersionLike = regexp.MustCompile(`^[vV]\d+$`)
	branchName        = regexp.MustCompile(`^[A-Za-z0-9._/-]+$`)
)

// Registry modes.
const (
	ModeAliases = "aliases"
	ModeStages  = "stages"
	ModeBoth    = "both"
)

// validator collects problems of one file, pointing at positions the
// decoder recorded.
type validator struct {
	file string
	pos  Positions
	errs ErrorList
}

// at returns the position of field, or of its nearest recorded parent when
// the field itself is missing from the file.
func (v *validator) at(field string) Pos {
	for f := field; ; {
		if p, ok := v.pos.Get(f); ok {
			return p
		}
		i := strings.LastIndexAny(f, ".[")
		if i < 0 {
			return Pos{Line: 1, Column: 1}
		}
		f = f[:i]
	}
}

func (v *validator) fail(field, format string, args ...any) {
	p := v.at(field)
	v.errs = append(v.errs, &FieldError{File: v.file, Line: p.Line, Column: p.Column, Field: field, Message: fmt.Sprintf(format, args...)})
}

func (v *validator) header(apiVersion, kind, wantKind string) {
	if apiVersion != APIVersion {
		v.fail("apiVersion", "expected %q, got %q", APIVersion, apiVersion)
	}
	if kind != wantKind {
		v.fail("kind", "expected %q, got %q", wantKind, kind)
	}
}

func validateConfig(file string, pos Positions, c *RepoConfig) ErrorList {
	v := &validator{file: file, pos: pos}
	v.header(c.APIVersion, c.Kind, KindRepository)
	if len(c.Environments) == 0 {
		v.fail("environments", "expected at least one environment")
	}
	allowed := validateAllowedSources(v, c.AllowedSources)
	names := map[string]int{}
	// Aliases and namespaces are compared case-insensitively: MLflow
	// front ends and some registries fold alias case, and two environments
	// whose names differ only in case invite the same mistake.
	aliases := map[string]int{}
	namespaces := map[string]int{}
	for i, e := range c.Environments {
		f := fmt.Sprintf("environments[%d]", i)
		switch {
		case e.Name == "":
			v.fail(f+".name", "required: the environment's name, e.g. prod")
		case !envName.MatchString(e.Name):
			v.fail(f+".name", "expected lowercase letters, digits and '-', starting with a letter (at most 31 characters), got %q", e.Name)
		}
		j, dupName := names[e.Name]
		if dupName && e.Name != "" {
			v.fail(f+".name", "duplicate environment %q (also environments[%d])", e.Name, j)
		}
		names[e.Name] = i
		if e.Namespace == "" {
			v.fail(f+".namespace", "required: the Kubernetes namespace of this environment")
		} else if !dnsLabel.MatchString(e.Namespace) {
			v.fail(f+".namespace", "expected a Kubernetes namespace name (DNS-1123 label), got %q", e.Namespace)
		} else if j, dup := namespaces[strings.ToLower(e.Namespace)]; dup {
			// Two environments in one namespace write the same
			// InferenceService: whichever applies last serves both.
			v.fail(f+".namespace", "expected a namespace no other environment uses; %q is already environments[%d] (%s)'s namespace", e.Namespace, j, c.Environments[j].Name)
		} else {
			namespaces[strings.ToLower(e.Namespace)] = i
		}
		alias := e.AliasName()
		switch {
		case !mlflowAlias.MatchString(alias):
			v.fail(f+".alias", "expected an MLflow alias of letters, digits, '_' and '-', got %q", alias)
		case strings.EqualFold(alias, "latest") || mlflowVersionLike.MatchString(alias):
			v.fail(f+".alias", "%q is reserved by MLflow (\"latest\" and v<number> cannot be aliases)", alias)
		case hasSuffixFold(alias, CanarySuffix):
			v.fail(f+".alias", "%q ends in %q, which modelsync uses for canary aliases", alias, CanarySuffix)
		}
		if j, dup := aliases[strings.ToLower(alias)]; dup && !dupName {
			// Report it where the alias was written: an alias that is
			// only the environment's name is not on a line of its own.
			at, other := i, j
			if e.Alias == "" && c.Environments[j].Alias != "" {
				at, other = j, i
			}
			v.fail(fmt.Sprintf("environments[%d].alias", at), "expected an alias no other environment uses; %q is the alias of environments[%d] (%s) too, so both would move one MLflow alias",
				c.Environments[at].AliasName(), other, c.Environments[other].Name)
		} else if !dup {
			aliases[strings.ToLower(alias)] = i
		}
		switch {
		case e.Source == "":
			v.fail(f+".source", "required: a branch name such as \"main\", or %q for the newest release tag", SourceReleases)
		case e.Source != SourceReleases && !validBranch(e.Source):
			v.fail(f+".source", "expected a branch name or %q, got %q%s", SourceReleases, e.Source, releasesHint(e.Source))
		case e.Source != SourceReleases && allowed != nil && !allowed[e.Source]:
			v.fail(f+".source", "expected %q or a branch listed in allowedSources (%s), got %q%s", SourceReleases, strings.Join(c.AllowedSources, ", "), e.Source, releasesHint(e.Source))
		case e.Prerelease && e.Source != SourceReleases:
			v.fail(f+".prerelease", "only applies to source %q; this environment follows branch %q", SourceReleases, e.Source)
		}
	}
	switch c.Defaults.Registry.Mode {
	case "", ModeAliases, ModeStages, ModeBoth:
	default:
		v.fail("defaults.registry.mode", "expected one of aliases, stages, both; got %q", c.Defaults.Registry.Mode)
	}
	extraClasses := validateExtraStorageClasses(v, c.ExtraStorageClasses)
	validateLifecycle(v, "defaults.lifecycle", c.Defaults.Lifecycle)
	validateClasses(v, "defaults.lifecycle", c.Defaults.Lifecycle, extraClasses)
	for i, w := range c.SyncWindows {
		f := fmt.Sprintf("syncWindows[%d]", i)
		if w.Kind != "allow" && w.Kind != "deny" {
			v.fail(f+".kind", "expected allow or deny, got %q", w.Kind)
		}
		if _, err := cron.Parse(w.Schedule); err != nil {
			v.fail(f+".schedule", "%v", err)
		}
		if w.Duration.Duration <= 0 {
			v.fail(f+".duration", "expected a positive duration such as \"8h\", got %q", w.Duration)
		}
		for j, env := range w.Environments {
			if _, ok := names[env]; !ok {
				v.fail(fmt.Sprintf("%s.environments[%d]", f, j), "unknown environment %q", env)
			}
		}
		if w.TimeZone != "" {
			if _, err := time.LoadLocation(w.TimeZone); err != nil {
				v.fail(f+".timeZone", "expected an IANA time zone such as Europe/Berlin, got %q", w.TimeZone)
			}
		}
	}
	for i, a := range c.Security.Advisories.Allow {
		f := fmt.Sprintf("security.advisories.allow[%d]", i)
		if strings.TrimSpace(a.ID) == "" {
			v.fail(f+".id", "expected an advisory ID such as GHSA-xxxx-xxxx-xxxx or PYSEC-2024-1")
		}
		if _, err := a.ExpiresAt(); err != nil {
			v.fail(f+".expires", "expected a date such as 2027-01-31, got %q", a.Expires)
		}
		if strings.TrimSpace(a.Reason) == "" {
			v.fail(f+".reason", "expected the reason the advisory is accepted")
		}
	}
	if u := c.Security.Advisories.URL; u != "" && !strings.HasPrefix(u, "https://") && !strings.HasPrefix(u, "http://") {
		v.fail("security.advisories.url", "expected an http(s) URL, got %q", u)
	} else if strings.Contains(strings.SplitN(strings.SplitN(u, "://", 2)[len(strings.SplitN(u, "://", 2))-1], "/", 2)[0], "@") {
		// Credentials in a file everyone with the repository reads.
		v.fail("security.advisories.url", "remove the credentials from the URL")
	}
	for i, k := range c.Serving.ExtraKinds {
		switch kind, _, _ := strings.Cut(k, "."); {
		case k == "" || kind == "InferenceService":
			v.fail(fmt.Sprintf("serving.extraKinds[%d]", i), "expected a Kubernetes kind other than InferenceService, got %q", k)
		case !extraKind.MatchString(k):
			// A kind is compared as written: "configmap" would never
			// match a ConfigMap, and the render would refuse it later.
			v.fail(fmt.Sprintf("serving.extraKinds[%d]", i), "expected a Kubernetes kind such as ConfigMap, optionally with its API group (ServiceMonitor.monitoring.coreos.com), got %q", k)
		}
	}
	validateAnalysisDefaults(v, "analysis", c.Analysis)
	return v.errs
}

// validateAllowedSources checks allowedSources and returns it as a set;
// nil when the list is absent or empty, meaning the config branch only.
func validateAllowedSources(v *validator, list []string) map[string]bool {
	if len(list) == 0 {
		return nil
	}
	set := make(map[string]bool, len(list))
	for i, b := range list {
		f := fmt.Sprintf("allowedSources[%d]", i)
		switch {
		case b == SourceReleases:
			v.fail(f, "%q is always allowed and is not a branch; list branch names only", SourceReleases)
		case !validBranch(b):
			v.fail(f, "expected a branch name such as \"main\", got %q", b)
		case set[b]:
			v.fail(f, "duplicate branch %q", b)
		}
		set[b] = true
	}
	return set
}

// releasesHint suggests "releases" for a source that is a slip of it
// ("release", "Releases", "relases"): taken for a branch, such a source
// only shows up later, when the branch is not found.
func releasesHint(source string) string {
	if editDistance(strings.ToLower(source), SourceReleases) <= 2 {
		return fmt.Sprintf(" (did you mean %q?)", SourceReleases)
	}
	return ""
}

// editDistance is the Levenshtein distance of two short strings.
func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}

func validBranch(b string) bool {
	return branchName.MatchString(b) && !strings.Contains(b, "..") && !strings.HasSuffix(b, "/") && !strings.HasPrefix(b, "-")
}

func hasSuffixFold(s, suffix string) bool {
	return len(s) >= len(suffix) && strings.EqualFold(s[len(s)-len(suffix):], suffix)
}

// SourceErrors checks the environments' sources against the branch
// modelsync.yaml was read from. With allowedSources absent, that branch is
// the only one an environment may follow (besides "releases"); with the
// list present, validation at load time already checked it. A broken
// configuration has nothing to check.
func (r *Repo) SourceErrors(configBranch string) ErrorList {
	if r.Config == nil || len(r.Config.AllowedSources) > 0 {
		return nil
	}
	v := &validator{file: ConfigFile, pos: r.ConfigLines}
	for i, e := range r.Config.Environments {
		if e.Source != SourceReleases && e.Source != configBranch {
			v.fail(fmt.Sprintf("environments[%d].source", i), "expected %q or %q (the branch modelsync.yaml is read from), got %q%s; list other branches in allowedSources",
				SourceReleases, configBranch, e.Source, releasesHint(e.Source))
		}
	}
	return v.errs
}

// extraKind is a Kubernetes kind (UpperCamelCase), optionally followed by
// a dot and its API group.
var extraKind = regexp.MustCompile(`^[A-Z][A-Za-z0-9]*(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*)?$`)

// storageClassName is how S3 and S3-compatible stores write class names.
var storageClassName = regexp.MustCompile(`^[A-Z][A-Z0-9_]{0,63}$`)

// validateExtraStorageClasses checks extraStorageClasses and returns the
// set of their normalized names.
func validateExtraStorageClasses(v *validator, list []string) map[string]bool {
	set := make(map[string]bool, len(list))
	for i, c := range list {
		f := fmt.Sprintf("extraStorageClasses[%d]", i)
		switch {
		case !storageClassName.MatchString(c):
			v.fail(f, "expected a storage class name of capital letters, digits and '_' such as COLD, got %q", c)
		case storageclass.IsKnown(c):
			v.fail(f, "%q is an S3 storage class already; list only the classes of your store that S3 does not define", c)
		case set[c]:
			v.fail(f, "duplicate storage class %q", c)
		}
		set[storageclass.Normalize(c)] = true
	}
	return set
}

// storageClassSet is the set of extra class names of a valid configuration.
func (c *RepoConfig) storageClassSet() map[string]bool {
	set := make(map[string]bool, len(c.ExtraStorageClasses))
	for _, s := range c.ExtraStorageClasses {
		set[storageclass.Normalize(s)] = true
	}
	return set
}

// validateClasses refuses a lifecycle class that is neither an S3 storage
// class nor listed in extraStorageClasses: the S3 target would only find
// out when the copy into it fails, weeks after the change was merged.
func validateClasses(v *validator, field string, l Lifecycle, extra map[string]bool) {
	for _, fc := range []struct{ name, class string }{
		{"activeClass", l.ActiveClass}, {"archivedClass", l.ArchivedClass}, {"deepArchiveClass", l.DeepArchiveClass},
	} {
		if fc.class == "" || storageclass.IsKnown(fc.class) || extra[storageclass.Normalize(fc.class)] {
			continue
		}
		hint := ""
		if s := storageclass.Suggest(fc.class); s != "" {
			hint = fmt.Sprintf(" (did you mean %s?)", s)
		}
		v.fail(field+"."+fc.name, "expected an S3 storage class (%s) or one listed in extraStorageClasses of modelsync.yaml, got %q%s",
			strings.Join(storageclass.Known(), ", "), fc.class, hint)
	}
}

func validateLifecycle(v *validator, field string, l Lifecycle) {
	if l.DeepArchiveAfter.Duration > 0 && l.ArchiveAfter.Duration > 0 && l.DeepArchiveAfter.Duration <= l.ArchiveAfter.Duration {
		v.fail(field+".deepArchiveAfter", "must be longer than archiveAfter (%s), got %s", l.ArchiveAfter, l.DeepArchiveAfter)
	}
	if l.DeleteAfter.Duration > 0 {
		if !l.AllowDelete {
			v.fail(field+".deleteAfter", "set allowDelete: true as well; artifacts are never deleted without it")
		}
		for _, other := range []Duration{l.ArchiveAfter, l.DeepArchiveAfter, l.RollbackWindow} {
			if other.Duration > 0 && l.DeleteAfter.Duration <= other.Duration {
				v.fail(field+".deleteAfter", "must be longer than archiveAfter, deepArchiveAfter and rollbackWindow, got %s", l.DeleteAfter)
				break
			}
		}
	}
}

// validateModel checks one model file; folder is the model's folder name and
// cfg, when not nil, supplies the environments it may name.
func validateModel(file, folder string, pos Positions, m *Model, cfg *RepoConfig) ErrorList {
	v := &validator{file: file, pos: pos}
	v.header(m.APIVersion, m.Kind, KindModel)
	switch {
	case m.Metadata.Name == "":
		v.fail("metadata.name", "required: the model's name, equal to its folder name %q", folder)
	case !dnsLabel.MatchString(m.Metadata.Name):
		v.fail("metadata.name", "expected lowercase letters, digits and '-' (a DNS-1123 label, at most 63 characters), got %q", m.Metadata.Name)
	case m.Metadata.Name != folder:
		v.fail("metadata.name", "must equal the folder name %q, got %q", folder, m.Metadata.Name)
	}
	if strings.ContainsAny(m.Spec.Registry.Name, "/:") {
		v.fail("spec.registry.name", "MLflow registered model names may not contain '/' or ':', got %q", m.Spec.Registry.Name)
	}
	if len(m.Spec.Owners) == 0 {
		v.fail("spec.owners", "expected at least one owner (a GitHub login)")
	}
	for i, o := range m.Spec.Owners {
		if strings.TrimSpace(o) == "" {
			v.fail(fmt.Sprintf("spec.owners[%d]", i), "expected a GitHub login, got an empty string")
		}
	}
	known := map[string]bool{}
	var knownNames []string
	if cfg != nil {
		for _, e := range cfg.Environments {
			known[e.Name] = true
			knownNames = append(knownNames, e.Name)
		}
	}
	for _, env := range sortedKeys(m.Spec.Environments) {
		spec := m.Spec.Environments[env]
		f := "spec.environments." + env
		if cfg != nil && !known[env] {
			v.fail(f, "unknown environment %q; modelsync.yaml defines: %s", env, strings.Join(knownNames, ", "))
		}
		if spec.Version <= 0 {
			v.fail(f+".version", "expected a positive integer MLflow model version, got %d", spec.Version)
		}
		if c := spec.Canary; c != nil {
			validateCanary(v, f+".canary", spec.Version, c)
		}
	}
	validateServing(v, m.Spec.Serving)
	validateLifecycle(v, "spec.lifecycle", m.Spec.Lifecycle)
	if cfg != nil {
		// Without modelsync.yaml the extra classes are unknown, and a
		// class could be refused that the repository allows.
		validateClasses(v, "spec.lifecycle", m.Spec.Lifecycle, cfg.storageClassSet())
	}
	seenTags := map[string]bool{}
	for i, t := range m.Spec.Compliance {
		f := fmt.Sprintf("spec.compliance[%d]", i)
		if strings.TrimSpace(t) == "" {
			v.fail(f, "expected a compliance tag such as GDPR, got an empty string")
		}
		if seenTags[t] {
			v.fail(f, "duplicate compliance tag %q", t)
		}
		seenTags[t] = true
	}
	for i, dep := range m.Spec.Dependencies {
		if strings.TrimSpace(dep) == "" {
			v.fail(fmt.Sprintf("spec.dependencies[%d]", i), "expected a requirement such as \"scikit-learn==1.5.2\", got an empty string")
		}
	}
	for i, ds := range m.Spec.ModelCard.Datasets {
		f := fmt.Sprintf("spec.modelCard.datasets[%d]", i)
		if ds.Name == "" {
			v.fail(f+".name", "required: the dataset's name")
		}
		if ds.Version == "" {
			v.fail(f+".version", "required: the dataset's version, so the training data can be traced")
		}
	}
	return v.errs
}

func validateCanary(v *validator, f string, stable int, c *Canary) {
	if c.Version <= 0 {
		v.fail(f+".version", "expected a positive integer MLflow model version, got %d", c.Version)
	} else if c.Version == stable {
		v.fail(f+".version", "the canary version must differ from the stable version %d", stable)
	}
	prev := 0
	for i, s := range c.Steps {
		sf := fmt.Sprintf("%s.steps[%d]", f, i)
		switch {
		case s <= 0 || s >= 100:
			v.fail(sf, "expected a traffic percentage from 1 to 99 (100 is a promotion: set version instead), got %d", s)
		case s <= prev:
			v.fail(sf, "steps must be strictly ascending; %d follows %d", s, prev)
		}
		if s > prev {
			prev = s
		}
	}
	if c.Weight != 0 && (c.Weight < 0 || c.Weight >= 100) {
		v.fail(f+".weight", "expected a traffic percentage from 1 to 99 (100 is a promotion: set version instead), got %d", c.Weight)
	}
	if c.Weight > 0 && c.Weight < 100 && len(c.Steps) > 0 && !slices.Contains(c.Steps, c.Weight) {
		// The weight is where the rollout stands; a weight off the steps
		// sends traffic no reviewed step (and no policy on the first step) allows.
		v.fail(f+".weight", "expected one of the steps %v (the rollout's current step), got %d", c.Steps, c.Weight)
	}
	if c.Weight == 0 && len(c.Steps) == 0 {
		v.fail(f, "expected steps (e.g. [10, 25, 50]) or a weight")
	}
	if c.Analysis != nil {
		validateAnalysis(v, f+".analysis", c.Analysis)
	}
}

// ServingPathValid reports whether p is a relative path that stays inside
// the model folder, the only serving paths a render may follow.
func ServingPathValid(p string) bool {
	return p != "" && !strings.HasPrefix(p, "/") && !strings.Contains(p, `\`) &&
		path.Clean(p) != ".." && !strings.HasPrefix(path.Clean(p), "../")
}

func validateServing(v *validator, s Serving) {
	switch p := s.Path; {
	case p == "":
		v.fail("spec.serving.path", "required: the kustomize directory inside the model folder, e.g. \"serving\"")
	case strings.HasPrefix(p, "/") || strings.Contains(p, `\`):
		v.fail("spec.serving.path", "expected a relative path inside the model folder, got %q", p)
	case path.Clean(p) == ".." || strings.HasPrefix(path.Clean(p), "../"):
		v.fail("spec.serving.path", "leaves the model folder: %q", p)
	}
	if s.ModelFormat == "" {
		v.fail("spec.serving.modelFormat", "required: the KServe model format, e.g. sklearn, huggingface, pytorch")
	}
}
