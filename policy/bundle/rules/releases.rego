# METADATA
# title: Release tags
# description: |
#   A model's release tag, which decides what prod may run, only moves
#   forward in semantic-version order.
package modelsync.rules.releases

import data.modelsync.lib

# Tags are written vX.Y.Z (optionally after "<model>/"); semver has no "v".
semver_of(tag) := trim_prefix(regex.replace(tag, `^.*/`, ""), "v")

valid(tag) if {
	is_string(tag)
	semver.is_valid(semver_of(tag))
}

release_field := "metadata.name"

# METADATA
# title: Release tag is semantic
# description: |
#   A new release tag must be a semantic version such as v1.4.0.
# custom:
#   id: releases.invalid_tag
deny contains v if {
	some model, r in input.releases
	tag := object.get(r, "after", null)
	tag != null
	not valid(tag)
	meta := rego.metadata.rule()
	msg := sprintf("%s: release tag %v is not a semantic version (vMAJOR.MINOR.PATCH)", [model, tag])
	v := lib.finding(meta, model, lib.prod_env, release_field, msg)
}

# METADATA
# title: Release tag moves forward
# description: |
#   The new release must be a higher semantic version than the current one;
#   rolling back is done with a new, higher release of the old content.
# custom:
#   id: releases.moves_backward
deny contains v if {
	some model, r in input.releases
	valid(r.before)
	valid(r.after)
	semver.compare(semver_of(r.after), semver_of(r.before)) < 0
	meta := rego.metadata.rule()
	msg := sprintf("%s: release %s would replace the newer %s; releases only move forward", [model, r.after, r.before])
	v := lib.finding(meta, model, lib.prod_env, release_field, msg)
}

# METADATA
# title: Release tag kept
# description: |
#   An existing release cannot be withdrawn: prod would fall back to an
#   older release without anyone choosing it.
# custom:
#   id: releases.removed
deny contains v if {
	some model, r in input.releases
	is_string(r.before)
	r.before != ""
	object.get(r, "after", null) in {null, ""}
	meta := rego.metadata.rule()
	msg := sprintf("%s: release %s would be removed; releases only move forward", [model, r.before])
	v := lib.finding(meta, model, lib.prod_env, release_field, msg)
}
