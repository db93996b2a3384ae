package policy

import (
	"context"
	"strings"
	"testing"
)

func TestLintDefaultBundleIsClean(t *testing.T) {
	issues, err := LintBundle(context.Background(), DefaultSource())
	if err != nil {
		t.Fatal(err)
	}
	for _, i := range issues {
		t.Error(i)
	}
}

func TestLintFindsEveryProblem(t *testing.T) {
	dir := writeBundle(t, map[string]string{
		"bad.rego": `package modelsync.rules.bad

# METADATA
# title: Trap
# description: Looks like a set, is an object.
# custom:
#   id: bad.trap
deny[msg] if {
	msg := "x"
}

warn contains "untitled" if true

# METADATA
# title: Complete
# description: A single value, not a set.
# custom:
#   id: bad.complete
deny := {"x"} if input.x

# METADATA
# title: Suffixed
# description: conftest runs it, modelsync does not.
# custom:
#   id: bad.suffixed
deny_extra contains "x" if true

# METADATA
# title: Duplicate
# description: Same id as the trap.
# custom:
#   id: bad.trap
deny contains "y" if input.y
`,
		// Test files are not linted.
		"bad_test.rego": "package modelsync.rules.bad_test\n\ndeny[msg] if { msg := 1 }\n",
	})
	issues, err := LintBundle(context.Background(), DirSource(dir))
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, i := range issues {
		if !strings.HasSuffix(i.File, "bad.rego") || i.Line == 0 {
			t.Errorf("issue without location: %+v", i)
		}
		got = append(got, i.String())
	}
	all := strings.Join(got, "\n")
	for _, want := range []string{
		"bad.rego:8: modelsync.rules.bad.deny: `deny[msg]` builds an object, not a set",
		"bad.rego:12: modelsync.rules.bad.warn: no METADATA title",
		"bad.rego:12: modelsync.rules.bad.warn: no METADATA description",
		"bad.rego:12: modelsync.rules.bad.warn: no METADATA custom.id",
		"bad.rego:19: modelsync.rules.bad.deny: deny must be a set",
		"bad.rego:26: modelsync.rules.bad.deny_extra: modelsync evaluates only rules named deny and warn",
		"bad.rego:33: modelsync.rules.bad.deny: custom.id \"bad.trap\" is also used at",
	} {
		if !strings.Contains(all, want) {
			t.Errorf("missing issue %q in:\n%s", want, all)
		}
	}
	if len(issues) != 7 {
		t.Errorf("%d issues, want 7:\n%s", len(issues), all)
	}
}
