package modelsync.rules.security_test

import data.modelsync.fixtures
import data.modelsync.rules.security

rec := "/security/churn/versions/4"

with_rec(ops) := fixtures.patch(ops)

test_scanned_safe_version_passes if {
	count(security.deny) == 0 with input as fixtures.pr
	count(security.warn) == 0 with input as fixtures.pr
}

test_not_scanned_denied_in_gated_env if {
	inp := fixtures.patch([{"op": "remove", "path": rec}])
	ds := security.deny with input as inp
	fixtures.ids(ds) == {"security.not_scanned"}
	some d in ds
	contains(d.msg, "`modelsync scan churn 4`")
	contains(d.msg, "`modelsync check --scan`")
	d.environment == "prod"
}

test_not_scanned_allowed_outside_gated_envs if {
	inp := fixtures.patch([{"op": "remove", "path": rec}])
	count(security.deny) == 0 with input as inp with data.modelsync.config.security.scan_environments as ["staging"]
}

test_not_scanned_without_registry_says_so if {
	inp := fixtures.patch([{"op": "remove", "path": "/security/churn"}, {"op": "replace", "path": "/registry_configured", "value": false}])
	some d in security.deny with input as inp
	contains(d.msg, "no registry configured")
}

test_dangerous_denied_everywhere if {
	every env in ["dev", "staging", "prod"] {
		inp := fixtures.patch([
			{"op": "replace", "path": "/plan/changes/0/environment", "value": env},
			{"op": "replace", "path": sprintf("%s/result", [rec]), "value": "dangerous"},
			{"op": "replace", "path": sprintf("%s/dangerous", [rec]), "value": 2},
			{"op": "replace", "path": sprintf("%s/dangerous_globals", [rec]), "value": ["os.system", "builtins.eval"]},
		])
		ds := security.deny with input as inp
		fixtures.ids(ds) == {"security.dangerous_artifact"}
		some d in ds
		contains(d.msg, "os.system")
	}
}

unknown := fixtures.patch([
	{"op": "replace", "path": sprintf("%s/result", [rec]), "value": "unknown"},
	{"op": "replace", "path": sprintf("%s/unknown", [rec]), "value": 1},
	{"op": "replace", "path": sprintf("%s/unknown_globals", [rec]), "value": ["churnlib.features.Encoder"]},
])

test_unknown_globals_denied_in_prod_warned_elsewhere if {
	fixtures.ids(security.deny) == {"security.unknown_globals"} with input as unknown
	staging := json.patch(unknown, [{"op": "replace", "path": "/plan/changes/0/environment", "value": "staging"}])
	count(security.deny) == 0 with input as staging
	fixtures.ids(security.warn) == {"security.unknown_globals_review"} with input as staging
}

test_unknown_globals_allow_list_per_model if {
	count(security.deny) == 0 with input as unknown with data.modelsync.config.security.allowed_globals as {"churn": ["churnlib.*"]}
	count(security.deny) == 0 with input as unknown with data.modelsync.config.security.allowed_globals as {"churn": ["churnlib.features.Encoder"]}
	# another model's allow-list does not apply
	count(security.deny) == 1 with input as unknown with data.modelsync.config.security.allowed_globals as {"fraud": ["churnlib.*"]}
}

vuln(sev, allowed, expires) := fixtures.patch([{"op": "replace", "path": sprintf("%s/dependencies/vulnerabilities", [rec]), "value": [{
	"id": "GHSA-aaaa-bbbb-cccc", "package": "scikit-learn", "version": "1.4.2", "severity": sev, "fixed": ["1.5.0"],
	"allowed": allowed, "allow_expires": expires, "allow_reason": "not reachable",
}]}])

test_vulnerable_dependency_threshold if {
	fixtures.ids(security.deny) == {"security.vulnerable_dependency"} with input as vuln("high", false, null)
	fixtures.ids(security.deny) == {"security.vulnerable_dependency"} with input as vuln("critical", false, null)
	fixtures.ids(security.deny) == {"security.vulnerable_dependency"} with input as vuln("unknown", false, null)
	count(security.deny) == 0 with input as vuln("medium", false, null)
	fixtures.ids(security.warn) == {"security.vulnerable_dependency_review"} with input as vuln("medium", false, null)
	count(security.deny) == 1 with input as vuln("medium", false, null) with data.modelsync.config.security.min_severity as "medium"
	# a misspelt threshold fails closed
	count(security.deny) == 1 with input as vuln("low", false, null) with data.modelsync.config.security.min_severity as "hihg"
	some d in security.deny with input as vuln("high", false, null)
	contains(d.msg, "fixed in 1.5.0")
}

test_allow_list_applies_until_expiry if {
	# input.now is 2026-03-02T11:45:00Z
	count(security.deny) == 0 with input as vuln("critical", true, "2026-04-01T00:00:00Z")
	fixtures.ids(security.warn) == {"security.vulnerable_dependency_review"} with input as vuln("critical", true, "2026-04-01T00:00:00Z")
	fixtures.ids(security.deny) == {"security.vulnerable_dependency"} with input as vuln("critical", true, "2026-03-02T11:45:00Z")
	fixtures.ids(security.deny) == {"security.vulnerable_dependency"} with input as vuln("critical", true, null)
}

test_expired_allow_reported if {
	inp := fixtures.patch([{"op": "replace", "path": sprintf("%s/dependencies/expired_allows", [rec]), "value": ["GHSA-old"]}])
	fixtures.ids(security.warn) == {"security.allow_expired"} with input as inp
}

test_message_without_fix if {
	inp := json.patch(vuln("high", false, null), [{"op": "replace", "path": sprintf("%s/dependencies/vulnerabilities/0/fixed", [rec]), "value": []}])
	some d in security.deny with input as inp
	endswith(d.msg, "(high)")
}
