# METADATA
# title: Artifact security
# description: |
#   A version entering an environment has been scanned (its MLflow tags
#   modelsync.scan.*), its artifacts import nothing dangerous, nothing
#   unknown where that is not accepted, and its dependencies have no
#   advisory at or above the configured severity that is not allow-listed.
package modelsync.rules.security

import data.modelsync.lib

conf := lib.cfg.security

record(d) := input.security[d.model].versions[format_int(d.version, 10)]

# Through a helper: `not record(d)` alone would be undefined, not false,
# for a model missing from input.security.
scanned(d) if is_object(record(d))

severity_rank := {"low": 1, "medium": 2, "high": 3, "critical": 4}

# A misspelt min_severity fails closed: everything from low up is denied.
threshold := severity_rank[conf.min_severity] if conf.min_severity in object.keys(severity_rank) else := 1

# A record that states no severity counts as at the threshold: the PyPA
# database publishes none, and "unknown" must not read as harmless.
rank(s) := severity_rank[s] if s in object.keys(severity_rank) else := threshold

allowed_global(model, g) if {
	some pattern in object.get(conf.allowed_globals, model, [])
	glob.match(pattern, null, g)
}

allow_current(v) if {
	v.allowed == true
	is_string(v.allow_expires)
	time.parse_rfc3339_ns(v.allow_expires) > time.parse_rfc3339_ns(input.now)
}

label(d) := sprintf("%s v%d (%s in %s)", [d.model, d.version, d.role, d.environment])

# METADATA
# title: Artifact scanned
# description: |
#   A version entering an environment in security.scan_environments (default
#   staging and prod) must have a scan record (modelsync scan MODEL VERSION
#   writes one). Without a registry the record cannot be read: the rule
#   fails closed and says so.
# custom:
#   id: security.not_scanned
deny contains v if {
	some d in lib.deployments
	d.environment in conf.scan_environments
	not scanned(d)
	meta := rego.metadata.rule()
	msg := not_scanned_msg(d)
	v := lib.finding(meta, d.model, d.environment, d.field, msg)
}

# The command works as written from the models repository's root (scan
# reads the manifest there for the registered name and spec.dependencies).
not_scanned_msg(d) := sprintf("%s: no scan of its artifacts: run `modelsync scan %s %d` in the models repository (with the same --mlflow-uri and artifact store access), or judge with `modelsync check --scan`", [label(d), d.model, d.version]) if {
	lib.registry_configured
} else := sprintf("%s: no registry configured: scan records cannot be read", [label(d)])

# METADATA
# title: No dangerous artifact
# description: |
#   A version whose artifacts import a dangerous global (os.system,
#   subprocess, builtins.eval, …: code that runs when the serving runtime
#   loads the file) or are malformed in a dangerous way never enters any
#   environment.
# custom:
#   id: security.dangerous_artifact
deny contains v if {
	some d in lib.deployments
	r := record(d)
	r.result == "dangerous"
	meta := rego.metadata.rule()
	names := concat(", ", object.get(r, "dangerous_globals", []))
	msg := sprintf("%s: the scan found %d dangerous finding(s) in its artifacts (%s), digest %s", [label(d), r.dangerous, names, r.digest])
	v := lib.finding(meta, d.model, d.environment, d.field, msg)
}

unknown_left(d) := [g |
	some g in object.get(record(d), "unknown_globals", [])
	not allowed_global(d.model, g)
]

# METADATA
# title: No unknown globals where denied
# description: |
#   Globals the scanner can neither clear nor condemn are denied in the
#   environments of security.unknown_globals_deny (default prod) unless
#   security.allowed_globals lists them for the model (exact names or
#   globs such as mypkg.*).
# custom:
#   id: security.unknown_globals
deny contains v if {
	some d in lib.deployments
	d.environment in conf.unknown_globals_deny
	left := unknown_left(d)
	count(left) > 0
	meta := rego.metadata.rule()
	msg := sprintf("%s: its artifacts import globals the scanner does not know: %s (allow them per model in security.allowed_globals)", [label(d), concat(", ", left)])
	v := lib.finding(meta, d.model, d.environment, d.field, msg)
}

# METADATA
# title: Unknown globals reported
# description: |
#   Elsewhere the same globals are reported for review.
# custom:
#   id: security.unknown_globals_review
warn contains v if {
	some d in lib.deployments
	not d.environment in conf.unknown_globals_deny
	left := unknown_left(d)
	count(left) > 0
	meta := rego.metadata.rule()
	msg := sprintf("%s: its artifacts import globals the scanner does not know: %s", [label(d), concat(", ", left)])
	v := lib.finding(meta, d.model, d.environment, d.field, msg)
}

vulns(d) := object.get(record(d), ["dependencies", "vulnerabilities"], [])

# METADATA
# title: No vulnerable dependency
# description: |
#   No required package (spec.dependencies, requirements.txt, conda.yaml,
#   python_env.yaml) has an OSV advisory at or above security.min_severity
#   (default high; a record without severity counts as at it) unless an
#   allow-list entry that has not expired covers it.
# custom:
#   id: security.vulnerable_dependency
deny contains v if {
	some d in lib.deployments
	some x in vulns(d)
	rank(x.severity) >= threshold
	not allow_current(x)
	meta := rego.metadata.rule()
	fixed := concat(", ", object.get(x, "fixed", []))
	msg := sprintf("%s: %s==%s has advisory %s (%s)%s", [label(d), x.package, x.version, x.id, x.severity, fixed_hint(fixed)])
	v := lib.finding(meta, d.model, d.environment, d.field, msg)
}

fixed_hint(f) := "" if f == "" else := sprintf("; fixed in %s", [f])

# METADATA
# title: Vulnerable dependency below the threshold
# description: |
#   Advisories below security.min_severity, and allow-listed ones, are
#   reported so reviewers see them.
# custom:
#   id: security.vulnerable_dependency_review
warn contains v if {
	some d in lib.deployments
	some x in vulns(d)
	below_or_allowed(x)
	meta := rego.metadata.rule()
	msg := sprintf("%s: %s==%s has advisory %s (%s)%s", [label(d), x.package, x.version, x.id, x.severity, allow_note(x)])
	v := lib.finding(meta, d.model, d.environment, d.field, msg)
}

below_or_allowed(x) if rank(x.severity) < threshold

below_or_allowed(x) if allow_current(x)

allow_note(x) := sprintf(", allowed until %s: %s", [x.allow_expires, x.allow_reason]) if allow_current(x) else := ""

# METADATA
# title: Expired allow-list entry
# description: |
#   An allow-list entry past its expiry no longer applies; it is reported
#   so it is renewed with a reason or removed.
# custom:
#   id: security.allow_expired
warn contains v if {
	some d in lib.deployments
	some id in object.get(record(d), ["dependencies", "expired_allows"], [])
	meta := rego.metadata.rule()
	msg := sprintf("%s: the allow-list entry for %s has expired and no longer applies", [label(d), id])
	v := lib.finding(meta, d.model, d.environment, d.field, msg)
}
