# METADATA
# title: modelsync policy library
# description: |
#   Shared helpers for the modelsync PR gate: configuration, the set of
#   models and deployments a pull request touches, registry facts, and the
#   shape of a violation. Rules import this package; it defines no rules of
#   its own that deny or warn.
package modelsync.lib

# Thresholds and environment names. The bundle's data.json holds the
# defaults; the rules.config package denies when a key is missing, so a
# broken override fails closed instead of silently disabling a rule.
cfg := data.modelsync.config

prod_env := cfg.environments.production

staging_env := cfg.environments.staging

# The manifest as it is on the PR head, or null when the PR deletes it.
after(model) := input.models[model].after

# The manifest as it is on the base branch, or null for a new model.
before(model) := input.models[model].before

# Models whose manifest the PR changes (added or edited; deletions have
# nothing left to judge). Unchanged models may be present in input.models
# and are never judged, so a tightened policy does not block unrelated PRs.
changed_models contains name if {
	some name, m in input.models
	is_object(m.after)
	m.after != m.before
}

# Models the PR affects: changed manifests plus models the plan moves.
subjects contains name if some name in changed_models

subjects contains c.model if {
	some c in input.plan.changes
	is_object(input.models[c.model].after)
}

# Versions entering an environment: a new stable version or a new canary.
deployments contains d if {
	some c in input.plan.changes
	c.to_version > 0
	c.to_version != c.from_version
	d := {
		"model": c.model,
		"environment": c.environment,
		"version": c.to_version,
		"role": "version",
		"field": sprintf("spec.environments.%s.version", [c.environment]),
	}
}

deployments contains d if {
	some c in input.plan.changes
	c.canary_to > 0
	c.canary_to != c.canary_from
	d := {
		"model": c.model,
		"environment": c.environment,
		"version": c.canary_to,
		"role": "canary",
		"field": sprintf("spec.environments.%s.canary.version", [c.environment]),
	}
}

# A model registry supplied input.registry. Without one, rules that need
# registry facts still deny, but say that they cannot judge instead of
# blaming the registry for a missing fact.
registry_configured if input.registry_configured == true

# Environments whose modelsync.yaml settings the pull request changes.
config_changed_envs contains c.environment if some c in input.config_changes

# The settings changed for env, e.g. "source (releases → main)", sorted.
config_summary(env) := concat(", ", sort({sprintf("%s (%s → %s)", [c.field, or_dash(c.from), or_dash(c.to)]) |
	some c in input.config_changes
	c.environment == env
}))

# Where the first changed setting of env is, for annotations.
config_location(env) := {"_loc": {"file": first[1], "line": first[0]}} if {
	first := min({[c.line, c.file] |
		some c in input.config_changes
		c.environment == env
	})
}

or_dash(s) := "-" if s == "" else := s

# Models that run in env on the base or on the head, by their manifests.
runs_in(model, env) if is_object(before(model).spec.environments[env])

runs_in(model, env) if is_object(after(model).spec.environments[env])

# Registry facts about one version, keyed by its decimal number.
version_facts(model, version) := input.registry[model].versions[format_int(version, 10)]

run_metrics(model, version) := version_facts(model, version).run_metrics

# Where a field of a model's manifest starts, for annotations. The most
# specific known ancestor is used when the field itself has no line (for
# example a key that is missing and must be added).
location(model, field) := {"_loc": {"file": input.models[model].file, "line": line_of(model, field)}} if {
	is_string(input.models[model].file)
} else := {}

line_of(model, field) := n if {
	lines := object.get(input.models[model], "lines", {})
	known := [l |
		some p in ancestors(field)
		l := lines[p]
	]
	count(known) > 0
	n := known[0]
} else := 1

# ancestors("a.b[2].c") = ["a.b[2].c", "a.b[2]", "a.b", "a"], most specific first.
ancestors(field) := [p |
	parts := split(replace(field, "[", ".["), ".")
	some i in numbers.range(count(parts), 1)
	p := replace(concat(".", array.slice(parts, 0, i)), ".[", "[")
] if {
	field != ""
} else := []

# finding is the element every deny and warn rule emits. meta is
# rego.metadata.rule() of the emitting rule, so title and id live in one
# place: the rule's METADATA block.
finding(meta, model, env, field, msg) := object.union(
	{
		"msg": msg,
		"rule": object.get(meta, ["custom", "id"], "unnamed"),
		"title": object.get(meta, "title", ""),
		"model": model,
		"environment": env,
		"field": field,
	},
	location(model, field),
)

# A login compared the way GitHub does: case-insensitively.
login(s) := lower(s)
