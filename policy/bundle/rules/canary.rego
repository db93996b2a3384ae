# METADATA
# title: Canary limits
# description: |
#   Progressive rollouts start small, only ever grow, and in prod are
#   watched by automated analysis.
package modelsync.rules.canary

import data.modelsync.lib

conf := lib.cfg.canary

# Canaries the PR adds or edits. An untouched canary was judged when it was
# introduced and is left alone.
canaries contains [model, env, c] if {
	some model in lib.changed_models
	some env, spec in object.get(lib.after(model), ["spec", "environments"], {})
	c := spec.canary
	is_object(c)
	c != object.get(lib.before(model), ["spec", "environments", env, "canary"], null)
}

steps(c) := object.get(c, "steps", [])

# Without steps the configured weight is the only, and so the first, step.
first_step(c) := steps(c)[0] if count(steps(c)) > 0

first_step(c) := c.weight if {
	count(steps(c)) == 0
	is_number(c.weight)
}

has_analysis(c) if count(object.get(c, ["analysis", "metrics"], [])) > 0

# METADATA
# title: First canary step is small
# description: |
#   The first traffic step of a canary may be at most canary.max_first_step
#   percent (default 50).
# custom:
#   id: canary.first_step_too_large
deny contains v if {
	some [model, env, c] in canaries
	first := first_step(c)
	first > conf.max_first_step
	meta := rego.metadata.rule()
	msg := sprintf("%s in %s: the canary starts at %v%% of traffic; at most %v%% is allowed", [model, env, first, conf.max_first_step])
	v := lib.finding(meta, model, env, sprintf("spec.environments.%s.canary.steps", [env]), msg)
}

# METADATA
# title: Canary steps ascend
# description: |
#   Each traffic step must be larger than the one before it; a rollout never
#   shrinks or stalls part-way.
# custom:
#   id: canary.steps_not_ascending
deny contains v if {
	some [model, env, c] in canaries
	s := steps(c)
	some i in numbers.range(1, count(s) - 1)
	s[i] <= s[i - 1]
	meta := rego.metadata.rule()
	msg := sprintf("%s in %s: canary step %d (%v%%) is not larger than step %d (%v%%)", [model, env, i, s[i], i - 1, s[i - 1]])
	v := lib.finding(meta, model, env, sprintf("spec.environments.%s.canary.steps[%d]", [env, i]), msg)
}

# METADATA
# title: Prod canaries are analysed
# description: |
#   A canary in an environment listed in canary.require_analysis (default
#   prod) must configure analysis with at least one metric.
# custom:
#   id: canary.analysis_missing
deny contains v if {
	some [model, env, c] in canaries
	env in conf.require_analysis
	not has_analysis(c)
	meta := rego.metadata.rule()
	msg := sprintf("%s in %s: the canary has no analysis metrics; automated analysis is required here", [model, env])
	v := lib.finding(meta, model, env, sprintf("spec.environments.%s.canary", [env]), msg)
}

# METADATA
# title: Canary without analysis
# description: |
#   Outside the environments that require it, a canary without analysis is
#   allowed but only a person watches it.
# custom:
#   id: canary.analysis_recommended
warn contains v if {
	some [model, env, c] in canaries
	not env in conf.require_analysis
	not has_analysis(c)
	meta := rego.metadata.rule()
	msg := sprintf("%s in %s: the canary has no analysis metrics; nothing stops a bad version automatically", [model, env])
	v := lib.finding(meta, model, env, sprintf("spec.environments.%s.canary", [env]), msg)
}

# Analyses the PR adds or edits, as the controller will run them
# (modelsync.yaml's defaults merged).
analyses contains [ch.model, ch.environment, ch.analysis] if {
	some ch in input.plan.changes
	is_object(object.get(ch, "analysis", null))
}

# METADATA
# title: Canary analysis keeps its error budget
# description: |
#   The false-rollback budget alpha of a canary analysis may be at most
#   canary.max_alpha (default 0.1): a larger one lets the analysis promote
#   a worse candidate more often than reviewers expect.
# custom:
#   id: canary.analysis_alpha_too_large
deny contains v if {
	some [model, env, a] in analyses
	a.alpha > conf.max_alpha
	meta := rego.metadata.rule()
	msg := sprintf("%s in %s: the canary analysis has alpha %v; at most %v is allowed", [model, env, a.alpha, conf.max_alpha])
	v := lib.finding(meta, model, env, sprintf("spec.environments.%s.canary.analysis.alpha", [env]), msg)
}

# METADATA
# title: Canary analysis margin is wide
# description: |
#   A non-inferiority margin above canary.max_margin (default 2) lets a
#   candidate with that many times the stable's bad events pass.
# custom:
#   id: canary.analysis_margin_wide
warn contains v if {
	some [model, env, a] in analyses
	some m in a.metrics
	m.margin > conf.max_margin
	meta := rego.metadata.rule()
	msg := sprintf("%s in %s: metric %s has margin %v; the canary may have %v times stable's bad events and still pass", [model, env, m.name, m.margin, m.margin])
	v := lib.finding(meta, model, env, sprintf("spec.environments.%s.canary.analysis.metrics", [env]), msg)
}
