# METADATA
# title: Compliance tags
# description: |
#   Models running in a regulated environment carry the compliance tags that
#   environment requires (by default GDPR and SOC2 for prod).
package modelsync.rules.compliance

import data.modelsync.lib

# The required tags compare case-insensitively: "gdpr" and "GDPR" are the
# same attestation.
tags(model) := {upper(t) | some t in object.get(lib.after(model), ["spec", "compliance"], [])}

has_tag(model, tag) if upper(tag) in tags(model)

# METADATA
# title: Required compliance tags present
# description: |
#   A model whose manifest runs in an environment listed under
#   compliance.required_tags must list each of that environment's tags in
#   spec.compliance.
# custom:
#   id: compliance.tag_missing
deny contains v if {
	some model in lib.subjects
	some env, required in lib.cfg.compliance.required_tags
	lib.after(model).spec.environments[env]
	some tag in required
	not has_tag(model, tag)
	meta := rego.metadata.rule()
	msg := sprintf("%s runs in %s, which requires the %q compliance tag in spec.compliance", [model, env, tag])
	v := lib.finding(meta, model, env, "spec.compliance", msg)
}
