# METADATA
# title: Artifact integrity
# description: |
#   A version serves the artifacts it was approved with: the digest
#   recorded when it was first served in an environment
#   (modelsync.approved.<env>.digest) equals the digest of its latest scan.
package modelsync.rules.integrity

import data.modelsync.lib

record(d) := input.security[d.model].versions[format_int(d.version, 10)]

# METADATA
# title: Artifacts unchanged since approval
# description: |
#   A version whose artifacts were replaced after it was first served
#   somewhere (a different artifact digest than the one recorded then) is
#   denied everywhere: the files under review are not the files approved.
# custom:
#   id: integrity.artifact_changed
deny contains v if {
	lib.cfg.security.integrity == true
	some d in lib.deployments
	r := record(d)
	some env, approved in object.get(r, "approved", {})
	approved != r.digest
	meta := rego.metadata.rule()
	msg := sprintf("%s v%d (%s in %s): its artifacts changed since it was approved for %s (approved digest %s, now %s)", [d.model, d.version, d.role, d.environment, env, approved, r.digest])
	v := lib.finding(meta, d.model, d.environment, d.field, msg)
}
