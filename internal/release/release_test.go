package release

import (
	"errors"
	"math/rand"
	"strings"
	"testing"
)

func TestParseVersion(t *testing.T) {
	cases := []struct {
		in      string
		want    Version
		wantErr string
	}{
		{in: "0.0.0", want: Version{}},
		{in: "1.2.3", want: Version{Major: 1, Minor: 2, Patch: 3}},
		{in: "10.20.30", want: Version{Major: 10, Minor: 20, Patch: 30}},
		{in: "1.0.0-rc.1", want: Version{Major: 1, Pre: []string{"rc", "1"}}},
		{in: "1.0.0-alpha-beta.0.x-1", want: Version{Major: 1, Pre: []string{"alpha-beta", "0", "x-1"}}},
		{in: "1.0.0-0A", want: Version{Major: 1, Pre: []string{"0A"}}},
		{in: "", wantErr: "empty"},
		{in: "1.2", wantErr: "want MAJOR.MINOR.PATCH"},
		{in: "1.2.3.4", wantErr: "want MAJOR.MINOR.PATCH"},
		{in: "01.2.3", wantErr: "leading zero"},
		{in: "1.02.3", wantErr: "leading zero"},
		{in: "1.2.03", wantErr: "leading zero"},
		{in: "1.x.3", wantErr: "not a non-negative integer"},
		{in: "-1.2.3", wantErr: "want MAJOR.MINOR.PATCH"},
		{in: "1.2.3-", wantErr: "empty pre-release"},
		{in: "1.2.3-rc..1", wantErr: "empty identifier"},
		{in: "1.2.3-01", wantErr: "leading zero"},
		{in: "1.2.3-rc_1", wantErr: "not allowed"},
		{in: "1.2.3+build.5", wantErr: "build metadata"},
		{in: "99999999999999999999.0.0", wantErr: "out of range"},
		{in: "v1.2.3", wantErr: "major component"},
	}
	for _, tc := range cases {
		t.Run(tc.in, func(t *testing.T) {
			got, err := ParseVersion(tc.in)
			if tc.wantErr != "" {
				if err == nil {
					t.Fatalf("ParseVersion(%q) = %v, want error containing %q", tc.in, got, tc.wantErr)
				}
				if !errors.Is(err, ErrInvalidVersion) || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("ParseVersion(%q) error = %v, want ErrInvalidVersion containing %q", tc.in, err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("ParseVersion(%q): %v", tc.in, err)
			}
			if got.Compare(tc.want) != 0 || got.String() != tc.in {
				t.Fatalf("ParseVersion(%q) = %#v (%s), want %#v", tc.in, got, got, tc.want)
			}
		})
	}
}

// The precedence chain is the example from semver.org §11.
func TestComparePrecedence(t *testing.T) {
	chain := []string{
		"1.0.0-alpha", "1.0.0-alpha.1", "1.0.0-alpha.beta", "1.0.0-beta",
		"1.0.0-beta.2", "1.0.0-beta.11", "1.0.0-rc.1", "1.0.0",
		"1.0.1", "1.1.0", "1.10.0", "2.0.0-0", "2.0.0-1", "2.0.0-10", "2.0.0-a", "2.0.0",
		"18446744073709551615.0.0",
	}
	vs := make([]Version, len(chain))
	for i, s := range chain {
		vs[i] = MustParseVersion(s)
	}
	for i := range vs {
		for j := range vs {
			want := 0
			if i < j {
				want = -1
			} else if i > j {
				want = 1
			}
			if got := vs[i].Compare(vs[j]); got != want {
				t.Errorf("Compare(%s, %s) = %d, want %d", vs[i], vs[j], got, want)
			}
		}
	}
}

func TestParseTag(t *testing.T) {
	cases := []struct {
		in        string
		wantModel string
		wantVer   string
		wantErr   string
	}{
		{in: "churn/v1.2.3", wantModel: "churn", wantVer: "1.2.3"},
		{in: "refs/tags/churn/v1.2.3", wantModel: "churn", wantVer: "1.2.3"},
		{in: "fraud-detector-2/v0.0.1-rc.1", wantModel: "fraud-detector-2", wantVer: "0.0.1-rc.1"},
		{in: "churn/v1.2", wantErr: "want MAJOR.MINOR.PATCH"},
		{in: "churn/1.2.3", wantErr: "must start with 'v'"},
		{in: "churn/v01.2.3", wantErr: "leading zero"},
		{in: "churn/v1.2.3+meta", wantErr: "build metadata"},
		{in: "churn/V1.2.3", wantErr: "must start with 'v'"},
		{in: "Churn/v1.2.3", wantErr: "only lowercase"},
		{in: "-churn/v1.2.3", wantErr: "start and end"},
		{in: "team/churn/v1.2.3", wantErr: "only lowercase"},
		{in: "/v1.2.3", wantErr: "model name is empty"},
		{in: "v1.2.3", wantErr: "want <model>/v"},
		{in: strings.Repeat("a", 64) + "/v1.0.0", wantErr: "longer than 63"},
	}
	for _, tc := range cases {
		t.Run(tc.in, func(t *testing.T) {
			got, err := ParseTag(tc.in)
			if tc.wantErr != "" {
				if err == nil {
					t.Fatalf("ParseTag(%q) = %+v, want error containing %q", tc.in, got, tc.wantErr)
				}
				if !errors.Is(err, ErrInvalidTag) || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("ParseTag(%q) error = %v, want ErrInvalidTag containing %q", tc.in, err, tc.wantErr)
				}
				if !strings.Contains(err.Error(), tc.in) {
					t.Fatalf("ParseTag(%q) error %q does not name the tag", tc.in, err)
				}
				return
			}
			if err != nil {
				t.Fatalf("ParseTag(%q): %v", tc.in, err)
			}
			if got.Model != tc.wantModel || got.Version.String() != tc.wantVer {
				t.Fatalf("ParseTag(%q) = %+v, want model %s version %s", tc.in, got, tc.wantModel, tc.wantVer)
			}
			if got.Name != strings.TrimPrefix(tc.in, "refs/tags/") || FormatTag(got.Model, got.Version) != got.Name {
				t.Fatalf("ParseTag(%q) name %q does not round-trip", tc.in, got.Name)
			}
		})
	}
}

func TestLooksLikeReleaseTag(t *testing.T) {
	cases := map[string]bool{
		"churn/v1.2.3":   true,
		"churn/v1.2":     true,
		"Churn/v1":       true,
		"refs/tags/a/v9": true,
		"churn/1.2.3":    false,
		"v1.2.3":         false,
		"nightly":        false,
		"team/very-old":  false,
		"churn/v":        false,
		"/v1.0.0":        false,
	}
	for in, want := range cases {
		if got := LooksLikeReleaseTag(in); got != want {
			t.Errorf("LooksLikeReleaseTag(%q) = %v, want %v", in, got, want)
		}
	}
}

func mustTags(t *testing.T, names ...string) []Tag {
	t.Helper()
	out := make([]Tag, 0, len(names))
	for _, n := range names {
		tag, err := ParseTag(n)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, tag)
	}
	return out
}

func TestLatest(t *testing.T) {
	tags := mustTags(t,
		"churn/v1.9.0", "churn/v1.10.0", "churn/v2.0.0-rc.1", "churn/v1.10.0-rc.3",
		"fraud/v3.0.0", "fraud/v3.1.0-beta.2", "fraud/v3.1.0-beta.10",
		"pre-only/v0.1.0-alpha",
	)
	cases := []struct {
		model      string
		allowPre   bool
		want       string
		wantExists bool
	}{
		{model: "churn", want: "churn/v1.10.0", wantExists: true},
		{model: "churn", allowPre: true, want: "churn/v2.0.0-rc.1", wantExists: true},
		{model: "fraud", want: "fraud/v3.0.0", wantExists: true},
		{model: "fraud", allowPre: true, want: "fraud/v3.1.0-beta.10", wantExists: true},
		{model: "pre-only", wantExists: false},
		{model: "pre-only", allowPre: true, want: "pre-only/v0.1.0-alpha", wantExists: true},
		{model: "missing", allowPre: true, wantExists: false},
	}
	for _, tc := range cases {
		// Input order must not matter.
		for seed := int64(0); seed < 5; seed++ {
			shuffled := append([]Tag(nil), tags...)
			rand.New(rand.NewSource(seed)).Shuffle(len(shuffled), func(i, j int) { shuffled[i], shuffled[j] = shuffled[j], shuffled[i] })
			got, ok := Latest(shuffled, tc.model, tc.allowPre)
			if ok != tc.wantExists || (ok && got.Name != tc.want) {
				t.Fatalf("Latest(%s, allowPre=%v) = %q,%v want %q,%v", tc.model, tc.allowPre, got.Name, ok, tc.want, tc.wantExists)
			}
		}
	}
}

func TestSort(t *testing.T) {
	tags := mustTags(t, "b/v1.0.0", "a/v1.10.0", "a/v1.2.0", "a/v1.10.0-rc.1", "b/v0.9.0")
	Sort(tags)
	var got []string
	for _, tag := range tags {
		got = append(got, tag.Name)
	}
	want := "a/v1.2.0 a/v1.10.0-rc.1 a/v1.10.0 b/v0.9.0 b/v1.0.0"
	if strings.Join(got, " ") != want {
		t.Fatalf("Sort = %v, want %s", got, want)
	}
}

func TestNext(t *testing.T) {
	cases := []struct {
		latest  string // "" = no release yet
		bump    string
		want    string
		wantErr string
	}{
		{latest: "", bump: BumpPatch, want: "1.0.0"},
		{latest: "", bump: BumpMinor, want: "1.0.0"},
		{latest: "", bump: BumpMajor, want: "1.0.0"},
		{latest: "1.2.3", bump: BumpPatch, want: "1.2.4"},
		{latest: "1.2.3", bump: BumpMinor, want: "1.3.0"},
		{latest: "1.2.3", bump: BumpMajor, want: "2.0.0"},
		{latest: "0.9.9", bump: BumpMajor, want: "1.0.0"},
		// Pre-releases are finalised when they already anticipate the bump.
		{latest: "1.2.4-rc.1", bump: BumpPatch, want: "1.2.4"},
		{latest: "1.2.4-rc.1", bump: BumpMinor, want: "1.3.0"},
		{latest: "1.2.4-rc.1", bump: BumpMajor, want: "2.0.0"},
		{latest: "1.3.0-rc.1", bump: BumpPatch, want: "1.3.0"},
		{latest: "1.3.0-rc.1", bump: BumpMinor, want: "1.3.0"},
		{latest: "1.3.0-rc.1", bump: BumpMajor, want: "2.0.0"},
		{latest: "2.0.0-rc.1", bump: BumpPatch, want: "2.0.0"},
		{latest: "2.0.0-rc.1", bump: BumpMinor, want: "2.0.0"},
		{latest: "2.0.0-rc.1", bump: BumpMajor, want: "2.0.0"},
		{latest: "1.2.3", bump: "prerelease", wantErr: "unknown version bump"},
		{latest: "", bump: "", wantErr: "unknown version bump"},
	}
	for _, tc := range cases {
		t.Run(tc.latest+"/"+tc.bump, func(t *testing.T) {
			var latest *Version
			if tc.latest != "" {
				v := MustParseVersion(tc.latest)
				latest = &v
			}
			got, err := Next(latest, tc.bump)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("Next(%s, %q) = %v, %v; want error %q", tc.latest, tc.bump, got, err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got.String() != tc.want {
				t.Fatalf("Next(%s, %s) = %s, want %s", tc.latest, tc.bump, got, tc.want)
			}
			if latest != nil && got.Compare(*latest) <= 0 {
				t.Fatalf("Next(%s, %s) = %s does not increase precedence", tc.latest, tc.bump, got)
			}
		})
	}
}

// NextRelease is what `modelsync release`, the gate's prospective release
// and rollback's release tag all use: a release candidate is finalised, and
// other models' tags do not count.
func TestNextRelease(t *testing.T) {
	tag := func(name string) Tag {
		tg, err := ParseTag(name)
		if err != nil {
			t.Fatal(err)
		}
		return tg
	}
	tags := []Tag{tag("churn/v1.2.3"), tag("churn/v1.3.0-rc.1"), tag("fraud/v4.0.0")}
	for _, c := range []struct{ model, bump, want, after string }{
		{"churn", BumpPatch, "churn/v1.3.0", "churn/v1.3.0-rc.1"},
		{"churn", BumpMajor, "churn/v2.0.0", "churn/v1.3.0-rc.1"},
		{"fraud", BumpPatch, "fraud/v4.0.1", "fraud/v4.0.0"},
		{"llama", BumpMinor, "llama/v1.0.0", ""},
	} {
		next, after, err := NextRelease(tags, c.model, c.bump)
		if err != nil {
			t.Fatal(err)
		}
		got := ""
		if after != nil {
			got = after.Name
		}
		if next.Name != c.want || next.Model != c.model || got != c.after {
			t.Errorf("NextRelease(%s, %s) = %s after %q, want %s after %q", c.model, c.bump, next.Name, got, c.want, c.after)
		}
	}
	if _, _, err := NextRelease(tags, "churn", "huge"); err == nil {
		t.Error("an unknown bump was accepted")
	}
}
