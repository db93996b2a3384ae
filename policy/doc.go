// Package policy is modelsync's pull-request gate: a bundle of Rego rules
// (performance baseline, compliance tags, model card, promotion order,
// approvals, canary limits, release tags, pinned dependencies) and the Go
// that compiles it once and evaluates it for every pull request.
//
// # Where the policy comes from
//
// THE POLICY MUST NEVER BE READ FROM THE PULL REQUEST'S HEAD. A pull request
// that can edit the rules judging it can approve itself: it would delete the
// approval rule in the same commit that changes prod. Load the bundle from
// one of:
//
//   - [DefaultSource]: the rules built into this binary;
//   - [DirSource] or [TarballSource]: a bundle the operator installed;
//   - [FSSource]: a directory of the models repository read from the
//     BASE branch's tree (the branch the pull request merges into), as it is
//     before the pull request, never from the merge commit or the head.
//
// A pull request that changes the policy directory is judged by the old
// policy; the new one applies once it is merged.
//
// # Failing closed
//
// [Engine.Evaluate] never reports success it cannot prove. An evaluation
// error, a timeout, an undefined result, a result of the wrong shape or an
// input that cannot be encoded all return a [Result] with Failed set and a
// non-nil *[EvalError]; [Result.Passed] is then false. The bundle's gate
// package additionally denies when the configuration or the input lacks a
// section the rules read, since Rego treats missing data as "nothing to
// report".
//
// # conftest
//
// The bundle follows conftest's conventions (deny and warn sets of objects
// with msg, _loc pointing at the manifest line, rules in their own
// packages), so the same files run under
//
//	conftest test --all-namespaces -p policy/bundle -d policy/bundle/data.json input.json
//	conftest verify -p policy/bundle -d policy/bundle/data.json
package policy
