// Package release parses and orders model release tags of the form
// <model>/vMAJOR.MINOR.PATCH[-PRERELEASE] and computes the next version.
//
// The package is pure: it performs no I/O and holds no state.
package release

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// Version is a semantic version (semver.org 2.0.0) without build metadata.
//
// Build metadata is rejected rather than ignored: two tags that differ only in
// metadata would have equal precedence, so "latest" would be ambiguous.
type Version struct {
	Major, Minor, Patch uint64
	// Pre holds the dot-separated pre-release identifiers; empty for a
	// final release.
	Pre []string
}

// ErrInvalidVersion is matched (errors.Is) by every version parse failure.
var ErrInvalidVersion = errors.New("invalid semantic version")

// ParseVersion parses strict semver text "MAJOR.MINOR.PATCH[-PRE]" without a
// leading "v" and without build metadata.
func ParseVersion(s string) (Version, error) {
	if s == "" {
		return Version{}, fmt.Errorf("%w: empty string", ErrInvalidVersion)
	}
	if strings.ContainsRune(s, '+') {
		return Version{}, fmt.Errorf("%w %q: build metadata (+...) is not allowed in release versions", ErrInvalidVersion, s)
	}
	core, pre, hasPre := strings.Cut(s, "-")
	parts := strings.Split(core, ".")
	if len(parts) != 3 {
		return Version{}, fmt.Errorf("%w %q: want MAJOR.MINOR.PATCH, got %d numeric component(s)", ErrInvalidVersion, s, len(parts))
	}
	var nums [3]uint64
	names := [3]string{"major", "minor", "patch"}
	for i, p := range parts {
		n, err := parseNumeric(p)
		if err != nil {
			return Version{}, fmt.Errorf("%w %q: %s component: %v", ErrInvalidVersion, s, names[i], err)
		}
		nums[i] = n
	}
	v := Version{Major: nums[0], Minor: nums[1], Patch: nums[2]}
	if hasPre {
		if pre == "" {
			return Version{}, fmt.Errorf("%w %q: empty pre-release after '-'", ErrInvalidVersion, s)
		}
		ids := strings.Split(pre, ".")
		for _, id := range ids {
			if err := validPreID(id); err != nil {
				return Version{}, fmt.Errorf("%w %q: pre-release identifier %q: %v", ErrInvalidVersion, s, id, err)
			}
		}
		v.Pre = ids
	}
	return v, nil
}

// MustParseVersion is ParseVersion for constants in tests and tables; it
// panics on malformed input.
func MustParseVersion(s string) Version {
	v, err := ParseVersion(s)
	if err != nil {
		panic(err)
	}
	return v
}

func parseNumeric(p string) (uint64, error) {
	if p == "" {
		return 0, errors.New("empty")
	}
	if !allDigits(p) {
		return 0, fmt.Errorf("%q is not a non-negative integer", p)
	}
	if len(p) > 1 && p[0] == '0' {
		return 0, fmt.Errorf("%q has a leading zero", p)
	}
	n, err := strconv.ParseUint(p, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("%q is out of range", p)
	}
	return n, nil
}

func validPreID(id string) error {
	if id == "" {
		return errors.New("empty identifier")
	}
	for _, r := range id {
		if !(r >= '0' && r <= '9' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r == '-') {
			return fmt.Errorf("character %q not allowed (only [0-9A-Za-z-])", r)
		}
	}
	if allDigits(id) && len(id) > 1 && id[0] == '0' {
		return errors.New("numeric identifier has a leading zero")
	}
	return nil
}

func allDigits(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return s != ""
}

// IsPrerelease reports whether v carries pre-release identifiers.
func (v Version) IsPrerelease() bool { return len(v.Pre) > 0 }

// String returns the canonical semver text without a "v" prefix.
func (v Version) String() string {
	s := strconv.FormatUint(v.Major, 10) + "." + strconv.FormatUint(v.Minor, 10) + "." + strconv.FormatUint(v.Patch, 10)
	if len(v.Pre) > 0 {
		s += "-" + strings.Join(v.Pre, ".")
	}
	return s
}

// Compare orders versions by semver precedence (semver.org §11): it returns
// -1 if v < o, 0 if equal, +1 if v > o.
func (v Version) Compare(o Version) int {
	if c := cmpUint(v.Major, o.Major); c != 0 {
		return c
	}
	if c := cmpUint(v.Minor, o.Minor); c != 0 {
		return c
	}
	if c := cmpUint(v.Patch, o.Patch); c != 0 {
		return c
	}
	// A final release ranks above any of its pre-releases.
	switch {
	case len(v.Pre) == 0 && len(o.Pre) == 0:
		return 0
	case len(v.Pre) == 0:
		return 1
	case len(o.Pre) == 0:
		return -1
	}
	for i := 0; i < len(v.Pre) && i < len(o.Pre); i++ {
		if c := comparePreID(v.Pre[i], o.Pre[i]); c != 0 {
			return c
		}
	}
	return cmpInt(len(v.Pre), len(o.Pre))
}

func comparePreID(a, b string) int {
	an, bn := allDigits(a), allDigits(b)
	switch {
	case an && bn:
		// Compare numerically without overflow: no leading zeros are allowed,
		// so the longer string is the larger number.
		if c := cmpInt(len(a), len(b)); c != 0 {
			return c
		}
		return strings.Compare(a, b)
	case an:
		return -1 // numeric identifiers rank below alphanumeric ones
	case bn:
		return 1
	default:
		return strings.Compare(a, b)
	}
}

func cmpUint(a, b uint64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

func cmpInt(a, b int) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// Bump kinds accepted by Next.
const (
	BumpMajor = "major"
	BumpMinor = "minor"
	BumpPatch = "patch"
)

// FirstVersion returns the version Next gives a model with no release yet:
// 1.0.0.
//
// It is 1.0.0 rather than 0.1.0 because a release tag is what allows a model
// version into prod: semver's 0.y.z range means "no compatibility promise",
// which would make the major/minor signal meaningless for the very first
// version serving production traffic.
func FirstVersion() Version { return Version{Major: 1} }

// Next returns the version following latest for the given bump kind.
//
// When latest is nil the model has never been released and the result is
// FirstVersion() whatever the bump. When latest is a pre-release the bump
// finalises it the way npm's semver does: the pre-release is dropped if it
// already is a pre-release of the requested kind of bump (1.2.4-rc.1 →
// patch → 1.2.4; 1.3.0-rc.1 → minor → 1.3.0; 2.0.0-rc.1 → major → 2.0.0),
// otherwise the component is incremented (1.2.4-rc.1 → minor → 1.3.0).
func Next(latest *Version, bump string) (Version, error) {
	switch bump {
	case BumpMajor, BumpMinor, BumpPatch:
	default:
		return Version{}, fmt.Errorf("unknown version bump %q: want %s, %s or %s", bump, BumpMajor, BumpMinor, BumpPatch)
	}
	if latest == nil {
		return FirstVersion(), nil
	}
	v := *latest
	pre := v.IsPrerelease()
	next := Version{Major: v.Major, Minor: v.Minor, Patch: v.Patch}
	switch bump {
	case BumpMajor:
		if pre && v.Minor == 0 && v.Patch == 0 {
			return next, nil
		}
		return Version{Major: v.Major + 1}, nil
	case BumpMinor:
		if pre && v.Patch == 0 {
			return next, nil
		}
		return Version{Major: v.Major, Minor: v.Minor + 1}, nil
	default: // patch
		if pre {
			return next, nil
		}
		next.Patch++
		return next, nil
	}
}
