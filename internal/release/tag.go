package release

import (
	"errors"
	"fmt"
	"sort"
	"strings"
)

// Tag is a model release tag <model>/v<version>.
type Tag struct {
	// Name is the full tag name, e.g. "churn/v1.2.0" (no refs/tags/ prefix).
	Name string
	// Model is the model folder name the tag releases.
	Model string
	// Version is the parsed semantic version.
	Version Version
	// Commit is the hex hash of the commit the tag points at (peeled through
	// annotated tag objects). Empty when the tag was parsed from a bare name.
	Commit string
}

// ErrInvalidTag is matched (errors.Is) by every ParseTag failure.
var ErrInvalidTag = errors.New("invalid release tag")

// maxModelNameLen follows the DNS-1123 label limit so a model name can be
// used verbatim in Kubernetes object names.
const maxModelNameLen = 63

// ValidateModelName checks that name is a DNS-1123 label: 1–63 characters of
// lowercase letters, digits and '-', starting and ending with a letter or
// digit.
func ValidateModelName(name string) error {
	if name == "" {
		return errors.New("model name is empty")
	}
	if len(name) > maxModelNameLen {
		return fmt.Errorf("model name %q is longer than %d characters", name, maxModelNameLen)
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-') {
			return fmt.Errorf("model name %q contains %q: only lowercase letters, digits and '-' are allowed", name, c)
		}
	}
	if name[0] == '-' || name[len(name)-1] == '-' {
		return fmt.Errorf("model name %q must start and end with a lowercase letter or digit", name)
	}
	return nil
}

// ParseTag parses a release tag name "<model>/vMAJOR.MINOR.PATCH[-PRE]". A
// leading "refs/tags/" is accepted and stripped.
func ParseTag(name string) (Tag, error) {
	short := strings.TrimPrefix(name, "refs/tags/")
	i := strings.LastIndexByte(short, '/')
	if i < 0 {
		return Tag{}, fmt.Errorf("%w %q: want <model>/vMAJOR.MINOR.PATCH[-PRERELEASE], e.g. churn/v1.2.0", ErrInvalidTag, name)
	}
	model, ver := short[:i], short[i+1:]
	if err := ValidateModelName(model); err != nil {
		return Tag{}, fmt.Errorf("%w %q: %v", ErrInvalidTag, name, err)
	}
	if !strings.HasPrefix(ver, "v") {
		return Tag{}, fmt.Errorf("%w %q: version %q must start with 'v' (e.g. %s/v1.2.0)", ErrInvalidTag, name, ver, model)
	}
	v, err := ParseVersion(ver[1:])
	if err != nil {
		return Tag{}, fmt.Errorf("%w %q for model %s: %w", ErrInvalidTag, name, model, err)
	}
	return Tag{Name: short, Model: model, Version: v}, nil
}

// LooksLikeReleaseTag reports whether a tag name appears intended as a
// release tag (its last path segment is "v" followed by a digit and there is
// a model prefix). Callers use it to report malformed release tags while
// silently ignoring unrelated tags such as "v1.0.0" or "nightly".
func LooksLikeReleaseTag(name string) bool {
	short := strings.TrimPrefix(name, "refs/tags/")
	i := strings.LastIndexByte(short, '/')
	if i <= 0 {
		return false
	}
	last := short[i+1:]
	return len(last) >= 2 && last[0] == 'v' && last[1] >= '0' && last[1] <= '9'
}

// FormatTag returns the tag name releasing model at version v.
func FormatTag(model string, v Version) string {
	return model + "/v" + v.String()
}

// Latest returns the highest-precedence tag of model. Pre-releases are
// considered only when allowPrerelease is true. The boolean is false when no
// tag qualifies.
func Latest(tags []Tag, model string, allowPrerelease bool) (Tag, bool) {
	var best Tag
	found := false
	for _, t := range tags {
		if t.Model != model {
			continue
		}
		if t.Version.IsPrerelease() && !allowPrerelease {
			continue
		}
		if !found || t.Version.Compare(best.Version) > 0 {
			best, found = t, true
		}
	}
	return best, found
}

// NextRelease returns the tag the next release of model gets, as
// `modelsync release` cuts it: bump applied to the model's newest release,
// pre-releases included (so a release candidate is finalised), or
// FirstVersion for a model never released. after is that newest release,
// nil for the first. The tag's Commit is left empty. Every place that
// predicts or creates a release tag asks this function, so the gate, the
// release command and rollback agree on the name.
func NextRelease(tags []Tag, model, bump string) (next Tag, after *Tag, err error) {
	var prev *Version
	if t, ok := Latest(tags, model, true); ok {
		after, prev = &t, &t.Version
	}
	v, err := Next(prev, bump)
	if err != nil {
		return Tag{}, nil, fmt.Errorf("next release of model %s: %w", model, err)
	}
	return Tag{Name: FormatTag(model, v), Model: model, Version: v}, after, nil
}

// Sort orders tags by model name, then by ascending version precedence, then
// by name so the order is total.
func Sort(tags []Tag) {
	sort.SliceStable(tags, func(i, j int) bool {
		a, b := tags[i], tags[j]
		if a.Model != b.Model {
			return a.Model < b.Model
		}
		if c := a.Version.Compare(b.Version); c != 0 {
			return c < 0
		}
		return a.Name < b.Name
	})
}
