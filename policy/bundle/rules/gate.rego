# METADATA
# title: Gate integrity
# description: |
#   Checks that the gate itself can judge the pull request: the policy
#   configuration is complete and the input has every section the rules
#   read. A rule that cannot see its facts would otherwise pass silently.
package modelsync.rules.gate

import data.modelsync.lib

# Each configuration key the rules read, with the type it must have.
config_keys := [
	[["environments", "production"], "string"],
	[["environments", "staging"], "string"],
	[["performance", "environments"], "array"],
	[["performance", "metrics"], "array"],
	[["performance", "minimum"], "number"],
	[["performance", "max_regression"], "number"],
	[["compliance", "required_tags"], "object"],
	[["model_card", "required"], "array"],
	[["promotion", "min_staging_hours"], "number"],
	[["approvals", "environments"], "array"],
	[["approvals", "min_approvals"], "number"],
	[["approvals", "require_owner"], "boolean"],
	[["approvals", "require_current_head"], "boolean"],
	[["canary", "max_first_step"], "number"],
	[["canary", "require_analysis"], "array"],
	[["canary", "max_alpha"], "number"],
	[["canary", "max_margin"], "number"],
]

# Each input section the rules read, with the type it must have. Strings
# must also be non-empty.
input_keys := [
	[["pr", "head", "sha"], "string"],
	[["pr", "author"], "string"],
	[["reviews"], "array"],
	[["plan", "changes"], "array"],
	[["plan", "errors"], "array"],
	[["plan", "waits"], "array"],
	[["models"], "object"],
	[["registry"], "object"],
	[["releases"], "object"],
	[["config_changes"], "array"],
	[["manifest_errors"], "array"],
	[["registry_configured"], "boolean"],
]

# The checks are negated through these helpers because in `not f(g(x))` an
# undefined g(x) fails the whole body: a missing data.modelsync.config or
# input would otherwise raise no violation at all.
config_ok(path, want) if type_name(object.get(data.modelsync.config, path, null)) == want

input_ok(path, want) if {
	value := object.get(input, path, null)
	type_name(value) == want
	value != ""
}

has_manifest(model) if is_object(input.models[model])

# METADATA
# title: Policy configuration complete
# description: |
#   Every threshold under data.modelsync.config exists with the right type.
#   A partial override must not switch a rule off.
# custom:
#   id: gate.config_invalid
deny contains v if {
	some [path, want] in config_keys
	not config_ok(path, want)
	meta := rego.metadata.rule()
	msg := sprintf("policy configuration data.modelsync.config.%s must be a %s", [concat(".", path), want])
	v := lib.finding(meta, "", "", "", msg)
}

# METADATA
# title: Input complete
# description: |
#   The input document has every section the rules read; a missing section
#   means the gate was called wrongly, not that there is nothing to check.
# custom:
#   id: gate.input_invalid
deny contains v if {
	some [path, want] in input_keys
	not input_ok(path, want)
	meta := rego.metadata.rule()
	article := {"string": "a non-empty", "array": "an", "object": "an", "boolean": "a"}[want]
	msg := sprintf("input.%s must be %s %s", [concat(".", path), article, want])
	v := lib.finding(meta, "", "", "", msg)
}

# METADATA
# title: Change has a manifest
# description: |
#   Every planned change names a model whose manifest is in input.models,
#   so the manifest rules can judge it.
# custom:
#   id: gate.change_without_manifest
deny contains v if {
	some c in input.plan.changes
	not has_manifest(c.model)
	meta := rego.metadata.rule()
	msg := sprintf("%s: the plan changes %s but input.models has no entry for the model", [c.model, c.environment])
	v := lib.finding(meta, c.model, c.environment, "", msg)
}

# METADATA
# title: Manifests valid
# description: |
#   Every manifest the pull request adds or edits, and modelsync.yaml,
#   decodes and validates on the head. A broken manifest is no model the
#   other rules can judge, so it must not pass as "no changes".
# custom:
#   id: gate.manifest_invalid
deny contains v if {
	some e in input.manifest_errors
	meta := rego.metadata.rule()
	where := concat(": ", [x | some x in [sprintf("%s:%d", [e.file, e.line]), e.field]; x != ""])
	msg := sprintf("%s: %s", [where, e.message])
	# The model stays out of the finding: its entry in input.models, if
	# any, describes the base, whose lines are not the head's.
	v := object.union(lib.finding(meta, "", "", e.field, msg), {"_loc": {"file": e.file, "line": e.line}})
}

# METADATA
# title: Model could not be planned
# description: |
#   The reconciler could not plan a model the pull request touches, so
#   what it would do after merge is unknown.
# custom:
#   id: gate.plan_error
warn contains v if {
	some e in input.plan.errors
	e.model in lib.subjects
	meta := rego.metadata.rule()
	msg := sprintf("%s: the reconciler cannot plan this model: %s", [e.model, e.message])
	v := lib.finding(meta, e.model, object.get(e, "environment", ""), "", msg)
}

# METADATA
# title: Change will wait
# description: |
#   A change the pull request makes is held back by the reconciler until a
#   precondition is met, such as artifacts restored from cold storage.
# custom:
#   id: gate.plan_wait
warn contains v if {
	some w in input.plan.waits
	w.model in lib.subjects
	meta := rego.metadata.rule()
	msg := sprintf("%s: the change will wait: %s", [w.model, w.reason])
	v := lib.finding(meta, w.model, object.get(w, "environment", ""), "", msg)
}
