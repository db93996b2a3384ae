package policy

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/bundle"
	"github.com/open-policy-agent/opa/v1/rego"
)

// DefaultTimeout bounds one evaluation. The default rules take well under
// a millisecond for a typical pull request; the bound is for a bundle from
// the base branch that loops.
const DefaultTimeout = 5 * time.Second

// unsafeBuiltins may not appear in a bundle: a gate that can reach the
// network or the host's runtime details is neither deterministic nor safe
// to run on a policy read from a repository.
var unsafeBuiltins = []string{"http.send", "net.lookup_ip_addr", "opa.runtime"}

// Option configures Load.
type Option func(*options)

type options struct {
	config  map[string]any
	timeout time.Duration
}

// WithConfig overrides thresholds under data.modelsync.config. Objects
// merge key by key with the bundle's defaults (data.json), so
// {"performance": {"minimum": 0.85}} changes only that threshold. Values
// must be JSON-like (maps, slices, strings, numbers, booleans).
func WithConfig(overrides map[string]any) Option {
	return func(o *options) { o.config = overrides }
}

// WithTimeout bounds each evaluation; an evaluation that runs out of time
// fails closed. Non-positive values keep DefaultTimeout.
func WithTimeout(d time.Duration) Option {
	return func(o *options) {
		if d > 0 {
			o.timeout = d
		}
	}
}

// Engine holds one compiled policy revision. Its policy is immutable and it
// is safe for concurrent use: Evaluate may be called from many goroutines at
// once. To move to a new policy revision, Load a new Engine and swap the
// pointer. Besides the compiled query it keeps only a bounded cache of
// converted manifests, which never changes a verdict.
type Engine struct {
	query    rego.PreparedEvalQuery
	bindings []binding
	rules    map[string]ruleInfo
	timeout  time.Duration
	info     PolicyInfo
	// scratch pools *scratch buffers for input conversion.
	scratch sync.Pool
	// manifests caches converted manifests across evaluations; nil
	// disables it.
	manifests *termCache
}

// binding is one variable of the prepared query: the deny or warn set of
// one package.
type binding struct {
	name string // query variable
	pkg  string // package path without "data."
	kind string // "deny" or "warn"
}

// ruleInfo is the METADATA of one deny or warn rule definition.
type ruleInfo struct {
	title, description string
}

// ErrNoRules means a bundle defines no deny rule, so it could never fail a
// pull request.
var ErrNoRules = errors.New("policy bundle defines no deny rule")

// Load reads the bundle from src and compiles it once into an Engine.
// Bundles that use a network or runtime built-in (http.send,
// net.lookup_ip_addr, opa.runtime), do not compile, or define no deny rule
// are rejected. _test.rego files are left out of evaluation.
func Load(ctx context.Context, src Source, opts ...Option) (*Engine, error) {
	o := options{timeout: DefaultTimeout}
	for _, opt := range opts {
		opt(&o)
	}
	full, err := readBundle(ctx, src)
	if err != nil {
		return nil, err
	}
	b := withConfig(withoutTests(full), o.config)
	e := &Engine{timeout: o.timeout, rules: map[string]ruleInfo{}, manifests: newTermCache()}
	e.info = PolicyInfo{Revision: cmp.Or(src.revision, b.Manifest.Revision, src.String()), Source: src.String()}

	modules := make([]*ast.Module, 0, len(b.Modules))
	for _, m := range b.Modules {
		modules = append(modules, m.Parsed)
	}
	e.bindings = ruleBindings(modules)
	if !slices.ContainsFunc(e.bindings, func(b binding) bool { return b.kind == "deny" }) {
		return nil, fmt.Errorf("policy bundle %s: %w", src, ErrNoRules)
	}
	as, errs := ast.BuildAnnotationSet(modules)
	if len(errs) > 0 {
		return nil, fmt.Errorf("policy bundle %s: METADATA: %w", src, errs)
	}
	for _, m := range modules {
		for _, r := range m.Rules {
			if _, ok := gateRuleName(r); !ok {
				continue
			}
			for _, a := range as.GetRuleScope(r) {
				if id, ok := a.Custom["id"].(string); ok && id != "" {
					e.rules[id] = ruleInfo{title: a.Title, description: strings.TrimSpace(a.Description)}
				}
			}
		}
	}

	var q strings.Builder
	for i, bd := range e.bindings {
		if i > 0 {
			q.WriteString("; ")
		}
		fmt.Fprintf(&q, "%s := data.%s.%s", bd.name, bd.pkg, bd.kind)
	}
	blocked := make(map[string]struct{}, len(unsafeBuiltins))
	for _, name := range unsafeBuiltins {
		blocked[name] = struct{}{}
	}
	r := rego.New(
		rego.Query(q.String()),
		rego.ParsedBundle("modelsync", b),
		rego.SetRegoVersion(ast.RegoV1),
		rego.UnsafeBuiltins(blocked),
		rego.StrictBuiltinErrors(true),
	)
	pq, err := r.PrepareForEval(ctx)
	if err != nil {
		return nil, fmt.Errorf("compiling policy bundle %s: %w", src, err)
	}
	e.query = pq
	return e, nil
}

// gateRuleName returns "deny" or "warn" for the rules the gate evaluates.
func gateRuleName(r *ast.Rule) (string, bool) {
	ref := r.Head.Ref()
	if len(ref) == 0 {
		return "", false
	}
	v, ok := ref[0].Value.(ast.Var)
	if !ok {
		return "", false
	}
	switch name := string(v); name {
	case "deny", "warn":
		return name, true
	}
	return "", false
}

// ruleBindings lists, in a stable order, the deny and warn sets the query
// reads: one per package that defines them.
func ruleBindings(modules []*ast.Module) []binding {
	seen := map[string]bool{}
	var out []binding
	for _, m := range modules {
		pkg := strings.TrimPrefix(m.Package.Path.String(), "data.")
		for _, r := range m.Rules {
			kind, ok := gateRuleName(r)
			if !ok || seen[pkg+"\x00"+kind] {
				continue
			}
			seen[pkg+"\x00"+kind] = true
			out = append(out, binding{pkg: pkg, kind: kind})
		}
	}
	slices.SortFunc(out, func(a, b binding) int {
		return cmp.Or(strings.Compare(a.pkg, b.pkg), strings.Compare(a.kind, b.kind))
	})
	for i := range out {
		out[i].name = fmt.Sprintf("%s_%d", out[i].kind, i)
	}
	return out
}

// Policy names the rules this engine evaluates.
func (e *Engine) Policy() PolicyInfo { return e.info }

// Violation is one deny or warn result, ready for a check-run annotation.
type Violation struct {
	// Rule is the rule's id (METADATA custom.id), e.g. "approvals.too_few".
	Rule        string `json:"rule"`
	Title       string `json:"title"`
	Description string `json:"description,omitempty"`
	Message     string `json:"message"`
	Model       string `json:"model,omitempty"`
	Environment string `json:"environment,omitempty"`
	// File and Line locate the manifest field concerned; Line is 0 when
	// unknown.
	File string `json:"file,omitempty"`
	Line int    `json:"line,omitempty"`
}

// Result is the gate's verdict on one input.
type Result struct {
	Denies   []Violation `json:"denies"`
	Warnings []Violation `json:"warnings"`
	// Failed means the policy could not be evaluated; Reason says why.
	// A failed result never passes, whatever Denies holds.
	Failed bool       `json:"failed,omitempty"`
	Reason string     `json:"reason,omitempty"`
	Policy PolicyInfo `json:"policy"`
}

// Passed reports whether the pull request may merge: the policy was
// evaluated and denied nothing.
func (r Result) Passed() bool { return !r.Failed && len(r.Denies) == 0 }

// FailureKind classifies why an evaluation failed.
type FailureKind string

// Failure kinds.
const (
	FailureInput     FailureKind = "input"     // the input could not be encoded
	FailureEval      FailureKind = "error"     // the rules raised an error
	FailureTimeout   FailureKind = "timeout"   // the evaluation ran out of time
	FailureCanceled  FailureKind = "canceled"  // the caller's context ended
	FailureUndefined FailureKind = "undefined" // a deny or warn set was undefined
	FailureMalformed FailureKind = "malformed" // a result had the wrong shape
)

// EvalError is returned with every failed Result.
type EvalError struct {
	Kind FailureKind
	// PR and Policy say which evaluation failed.
	PR     int
	Policy string
	Err    error
}

func (e *EvalError) Error() string {
	return fmt.Sprintf("policy %s on pull request #%d failed closed (%s): %v", e.Policy, e.PR, e.Kind, e.Err)
}

func (e *EvalError) Unwrap() error { return e.Err }

// Retryable reports whether evaluating the same input again may succeed:
// only time limits are transient; errors and bad results are in the rules
// or the input.
func (e *EvalError) Retryable() bool {
	return e.Kind == FailureTimeout || e.Kind == FailureCanceled
}

// Evaluate judges in. The rules see the engine's policy as input.policy
// and, when in.Now is zero, the current time as input.now; in itself is
// not modified.
//
// It fails closed: when the policy cannot be evaluated the Result has
// Failed set, a Reason, and no Denies or Warnings, and the returned error is
// an *EvalError. Result.Passed is false in that case, so a caller that only
// looks at the Result cannot mistake a failure for success.
func (e *Engine) Evaluate(ctx context.Context, in *Input) (Result, error) {
	res := Result{Policy: e.info, Denies: []Violation{}, Warnings: []Violation{}}
	fail := func(kind FailureKind, err error) (Result, error) {
		ee := &EvalError{Kind: kind, Policy: e.info.Revision, Err: err}
		if in != nil {
			ee.PR = in.PR.Number
		}
		return Result{Policy: e.info, Failed: true, Reason: fmt.Sprintf("%s: %v", kind, err)}, ee
	}
	if in == nil {
		return fail(FailureInput, errors.New("no input"))
	}
	if err := ctx.Err(); err != nil {
		return fail(FailureCanceled, err)
	}
	doc := in.normalized()
	doc.Policy = e.info
	if doc.Now.IsZero() {
		doc.Now = time.Now().UTC()
	}
	value, err := e.inputValue(&doc)
	if err != nil {
		return fail(FailureInput, err)
	}
	evalCtx, cancel := context.WithTimeout(ctx, e.timeout)
	defer cancel()
	rs, err := e.query.Eval(evalCtx, rego.EvalParsedInput(value), rego.EvalTime(doc.Now))
	if err != nil {
		switch {
		case ctx.Err() != nil:
			return fail(FailureCanceled, fmt.Errorf("%w: %w", ctx.Err(), err))
		case evalCtx.Err() != nil:
			return fail(FailureTimeout, fmt.Errorf("evaluation exceeded %s: %w", e.timeout, err))
		default:
			return fail(FailureEval, err)
		}
	}
	if len(rs) == 0 {
		return fail(FailureUndefined, errors.New(undefinedReason(e.bindings)))
	}
	if len(rs) > 1 {
		return fail(FailureMalformed, fmt.Errorf("policy query returned %d results; want exactly one", len(rs)))
	}
	for _, bd := range e.bindings {
		raw, ok := rs[0].Bindings[bd.name]
		if !ok {
			return fail(FailureUndefined, fmt.Errorf("data.%s.%s is undefined", bd.pkg, bd.kind))
		}
		vs, err := e.decode(bd, raw, &doc)
		if err != nil {
			return fail(FailureMalformed, err)
		}
		if bd.kind == "deny" {
			res.Denies = append(res.Denies, vs...)
		} else {
			res.Warnings = append(res.Warnings, vs...)
		}
	}
	sortViolations(res.Denies)
	sortViolations(res.Warnings)
	return res, nil
}

func undefinedReason(bs []binding) string {
	names := make([]string, len(bs))
	for i, b := range bs {
		names[i] = "data." + b.pkg + "." + b.kind
	}
	return "one of " + strings.Join(names, ", ") + " is undefined (a deny or warn rule must be a set: `deny contains msg if { ... }`)"
}

// decode turns one deny or warn set into violations. A set element may be
// a string (the message) or an object with at least a string msg, as in
// conftest; anything else fails the evaluation.
func (e *Engine) decode(bd binding, raw any, in *Input) ([]Violation, error) {
	elems, ok := raw.([]any)
	if !ok {
		return nil, fmt.Errorf("data.%s.%s is a %T, not a set (write `%s contains msg if`, not `%s[msg] if`)", bd.pkg, bd.kind, raw, bd.kind, bd.kind)
	}
	out := make([]Violation, 0, len(elems))
	for _, el := range elems {
		v := Violation{Rule: bd.pkg + "." + bd.kind}
		switch x := el.(type) {
		case string:
			v.Message = x
		case map[string]any:
			msg, ok := x["msg"].(string)
			if !ok || msg == "" {
				return nil, fmt.Errorf("data.%s.%s has an element without a string msg: %v", bd.pkg, bd.kind, x)
			}
			v.Message = msg
			if s, ok := x["rule"].(string); ok && s != "" && s != "unnamed" {
				v.Rule = s
			}
			v.Title, _ = x["title"].(string)
			v.Model, _ = x["model"].(string)
			v.Environment, _ = x["environment"].(string)
			field, _ := x["field"].(string)
			v.File, v.Line = locate(in, v.Model, field, x["_loc"])
		default:
			return nil, fmt.Errorf("data.%s.%s has an element of type %T; want a string or an object with msg", bd.pkg, bd.kind, el)
		}
		if info, ok := e.rules[v.Rule]; ok {
			v.Title = cmp.Or(v.Title, info.title)
			v.Description = info.description
		}
		out = append(out, v)
	}
	return out, nil
}

// locate finds the manifest line of a field: the line of the field or of
// its nearest ancestor in input.models[model].lines (0 when none is known).
// The element's own _loc is used for a model absent from input.models and
// when it names a file other than the model's manifest.
func locate(in *Input, model, field string, loc any) (string, int) {
	// A rule may point at another file than the model's manifest, e.g. a
	// line of modelsync.yaml that changes where the model runs.
	if file, line := explicitLoc(loc); file != "" {
		if m, ok := in.Models[model]; !ok || model == "" || file != m.File {
			return file, line
		}
	}
	if m, ok := in.Models[model]; ok && model != "" {
		for _, p := range fieldAncestors(field) {
			if n, ok := m.Lines[p]; ok {
				return m.File, n
			}
		}
		return m.File, 0
	}
	return explicitLoc(loc)
}

// explicitLoc reads an element's _loc: {"file": ..., "line": ...}.
func explicitLoc(loc any) (string, int) {
	l, ok := loc.(map[string]any)
	if !ok {
		return "", 0
	}
	file, _ := l["file"].(string)
	var line int
	if n, ok := l["line"].(json.Number); ok {
		if i, err := n.Int64(); err == nil {
			line = int(i)
		}
	}
	return file, line
}

// fieldAncestors("a.b[2].c") = a.b[2].c, a.b[2], a.b, a: the same walk as
// lib.ancestors in the bundle.
func fieldAncestors(field string) []string {
	if field == "" {
		return nil
	}
	var out []string
	for p := field; p != ""; {
		out = append(out, p)
		i := strings.LastIndexAny(p, ".[")
		if i <= 0 {
			break
		}
		p = p[:i]
	}
	return out
}

func sortViolations(vs []Violation) {
	slices.SortFunc(vs, func(a, b Violation) int {
		return cmp.Or(
			strings.Compare(a.Model, b.Model),
			strings.Compare(a.Environment, b.Environment),
			strings.Compare(a.Rule, b.Rule),
			strings.Compare(a.Message, b.Message),
		)
	})
}

// policyModules returns the parsed policy modules of b (tests excluded)
// keyed by file path.
func policyModules(b *bundle.Bundle) map[string]*ast.Module {
	out := map[string]*ast.Module{}
	for _, m := range b.Modules {
		if !isTestFile(m.Path) {
			out[m.Path] = m.Parsed
		}
	}
	return out
}
