# METADATA
# title: Promotion order
# description: |
#   A version reaches prod only after it has run in staging for a minimum
#   time, as recorded by the registry's audit tags.
package modelsync.rules.promotion

import data.modelsync.lib

min_hours := lib.cfg.promotion.min_staging_hours

# A version already serving prod is not being promoted: rolling a canary
# back to it, or re-pinning it, needs no new staging time.
entering_prod contains d if {
	some d in lib.deployments
	d.environment == lib.prod_env
	not d.version == input.registry[d.model].prod_version
}

# Negated through a helper: `not is_number(x.y)` with x.y undefined fails
# the body instead of succeeding.
soak_recorded(d) if is_number(lib.version_facts(d.model, d.version).staging_hours)

# METADATA
# title: Staging soak time recorded
# description: |
#   The registry must know how long the version ran in staging; a version
#   with no staging record never went through staging.
# custom:
#   id: promotion.no_staging_record
deny contains v if {
	some d in entering_prod
	not soak_recorded(d)
	meta := rego.metadata.rule()
	msg := sprintf("%s v%d (%s) cannot enter %s: %s", [d.model, d.version, d.role, d.environment, no_record_reason])
	v := lib.finding(meta, d.model, d.environment, d.field, msg)
}

no_record_reason := sprintf("the registry has no record of it running in %s", [lib.staging_env]) if {
	lib.registry_configured
} else := "no registry configured: its time in staging cannot be judged"

# METADATA
# title: Staging soak time reached
# description: |
#   The version must have run in staging for at least
#   promotion.min_staging_hours (default 24) before it enters prod.
# custom:
#   id: promotion.staging_too_short
deny contains v if {
	some d in entering_prod
	hours := lib.version_facts(d.model, d.version).staging_hours
	is_number(hours)
	hours < min_hours
	meta := rego.metadata.rule()
	msg := sprintf("%s v%d (%s) ran %v h in %s; %v h are required before %s", [d.model, d.version, d.role, hours, lib.staging_env, min_hours, d.environment])
	v := lib.finding(meta, d.model, d.environment, d.field, msg)
}
