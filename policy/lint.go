package policy

import (
	"cmp"
	"context"
	"fmt"
	"regexp"
	"slices"
	"strings"

	"github.com/open-policy-agent/opa/v1/ast"
)

// LintIssue is one problem LintBundle found in a rule.
type LintIssue struct {
	File    string `json:"file"`
	Line    int    `json:"line"`
	Rule    string `json:"rule"`
	Message string `json:"message"`
}

func (i LintIssue) String() string {
	return fmt.Sprintf("%s:%d: %s: %s", i.File, i.Line, i.Rule, i.Message)
}

// conftestRuleName matches every rule name conftest treats as a result.
var conftestRuleName = regexp.MustCompile(`^(deny|violation|warn)(_.*)?$`)

// LintBundle checks the bundle's policy files (tests excluded) for rules
// that conftest and modelsync would read differently or that reviewers
// cannot read at all:
//
//   - every deny and warn rule has a METADATA block with a title and a
//     description, and a custom.id used by no other rule;
//   - deny and warn are multi-value rules (`deny contains msg if`); the
//     `deny[msg] if` form parses in Rego v1 but builds an object of
//     msg → true, which conftest rejects and modelsync fails closed on;
//   - no rule is named violation, deny_* or warn_*: conftest evaluates
//     those, modelsync does not, so the two gates would disagree.
//
// It returns the issues sorted by file and line; an error means the bundle
// could not be read.
func LintBundle(ctx context.Context, src Source) ([]LintIssue, error) {
	b, err := readBundle(ctx, src)
	if err != nil {
		return nil, err
	}
	var modules []*ast.Module
	for _, m := range b.Modules {
		if !isTestFile(m.Path) {
			modules = append(modules, m.Parsed)
		}
	}
	as, errs := ast.BuildAnnotationSet(modules)
	if len(errs) > 0 {
		return nil, fmt.Errorf("policy bundle %s: METADATA: %w", src, errs)
	}
	var issues []LintIssue
	ids := map[string]string{}
	for _, m := range modules {
		pkg := strings.TrimPrefix(m.Package.Path.String(), "data.")
		for _, r := range m.Rules {
			ref := r.Head.Ref()
			v, ok := ref[0].Value.(ast.Var)
			if !ok || !conftestRuleName.MatchString(string(v)) {
				continue
			}
			name := string(v)
			add := func(format string, args ...any) {
				issues = append(issues, LintIssue{
					File: r.Location.File, Line: r.Location.Row,
					Rule: pkg + "." + name, Message: fmt.Sprintf(format, args...),
				})
			}
			if name != "deny" && name != "warn" {
				add("modelsync evaluates only rules named deny and warn, but conftest also runs %s; rename it", name)
				continue
			}
			switch {
			case len(ref) > 1:
				add("`%s` builds an object, not a set; write `%s contains msg if { ... }`", ref, name)
			case r.Head.RuleKind() != ast.MultiValue:
				add("%s must be a set; write `%s contains msg if { ... }`", name, name)
			}
			var title, desc, id string
			for _, a := range as.GetRuleScope(r) {
				title = cmp.Or(title, strings.TrimSpace(a.Title))
				desc = cmp.Or(desc, strings.TrimSpace(a.Description))
				if s, ok := a.Custom["id"].(string); ok {
					id = cmp.Or(id, s)
				}
			}
			if title == "" {
				add("no METADATA title")
			}
			if desc == "" {
				add("no METADATA description")
			}
			switch prev, dup := ids[id]; {
			case id == "":
				add("no METADATA custom.id naming the rule")
			case dup:
				add("custom.id %q is also used at %s", id, prev)
			default:
				ids[id] = fmt.Sprintf("%s:%d", r.Location.File, r.Location.Row)
			}
		}
	}
	slices.SortFunc(issues, func(a, b LintIssue) int {
		return cmp.Or(strings.Compare(a.File, b.File), cmp.Compare(a.Line, b.Line), strings.Compare(a.Message, b.Message))
	})
	return issues, nil
}
