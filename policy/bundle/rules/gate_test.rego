package modelsync.rules.gate_test

import data.modelsync.fixtures
import data.modelsync.rules.gate

test_complete_input_and_config_pass if {
	count(gate.deny) == 0 with input as fixtures.pr
	count(gate.warn) == 0 with input as fixtures.pr
}

test_missing_config_denied_per_key if {
	ds := gate.deny with input as fixtures.pr with data.modelsync.config as {}
	fixtures.ids(ds) == {"gate.config_invalid"}
	count(ds) == count(gate.config_keys)
}

test_mistyped_config_denied if {
	ds := gate.deny with input as fixtures.pr with data.modelsync.config.performance.minimum as "0.8"
	{d.msg | some d in ds} == {"policy configuration data.modelsync.config.performance.minimum must be a number"}
}

test_missing_input_section_denied if {
	inp := fixtures.patch([{"op": "remove", "path": "/plan/changes"}])
	ds := gate.deny with input as inp
	{d.msg | some d in ds} == {"input.plan.changes must be an array"}
}

test_empty_head_sha_denied if {
	inp := fixtures.patch([{"op": "replace", "path": "/pr/head/sha", "value": ""}])
	{d.msg | some d in gate.deny with input as inp} == {"input.pr.head.sha must be a non-empty string"}
}

test_null_input_section_denied if {
	inp := fixtures.patch([{"op": "replace", "path": "/reviews", "value": null}])
	fixtures.ids(gate.deny) == {"gate.input_invalid"} with input as inp
}

test_empty_input_denied_for_every_section if {
	ds := gate.deny with input as {}
	count(ds) == count(gate.input_keys)
}

test_change_without_manifest_denied if {
	inp := fixtures.patch([{"op": "add", "path": "/plan/changes/-", "value": {"model": "ghost", "environment": "prod", "from_version": 1, "to_version": 2, "canary_from": 0, "canary_to": 0}}])
	fixtures.ids(gate.deny) == {"gate.change_without_manifest"} with input as inp
}

test_plan_error_for_touched_model_warns if {
	inp := fixtures.patch([{"op": "replace", "path": "/plan/errors", "value": [
		{"model": "churn", "environment": "prod", "target": "kserve", "message": "kustomize build failed"},
		{"model": "other", "message": "unrelated"},
	]}])
	ws := gate.warn with input as inp
	fixtures.ids(ws) == {"gate.plan_error"}
	count(ws) == 1
}

test_plan_wait_for_touched_model_warns if {
	inp := fixtures.patch([{"op": "replace", "path": "/plan/waits", "value": [
		{"model": "churn", "environment": "prod", "target": "storage", "reason": "restoring v4 from GLACIER"},
	]}])
	fixtures.ids(gate.warn) == {"gate.plan_wait"} with input as inp
}

test_missing_new_sections_denied if {
	inp := fixtures.patch([
		{"op": "remove", "path": "/config_changes"},
		{"op": "replace", "path": "/registry_configured", "value": "yes"},
	])
	{d.msg | some d in gate.deny with input as inp} == {
		"input.config_changes must be an array",
		"input.registry_configured must be a boolean",
	}
}

# A broken manifest is a deny naming file and line, not an absent model
# that no rule looks at (issue 13).
test_manifest_errors_denied_with_file_and_line if {
	inp := fixtures.patch([{"op": "replace", "path": "/manifest_errors", "value": [
		{"model": "churn", "file": "models/churn/model.yaml", "line": 12, "field": "spec.environments.prod.version", "message": "expected an integer, got \"three\""},
		{"model": "big", "file": "models/big/model.yaml", "line": 1, "field": "", "message": "file is 5242880 bytes; at most 1048576 are accepted"},
		{"model": "", "file": "modelsync.yaml", "line": 7, "field": "environments[0].namespace", "message": "expected a namespace no other environment uses"},
	]}])
	ds := gate.deny with input as inp
	fixtures.ids(ds) == {"gate.manifest_invalid"}
	{[d.msg, d._loc.file, d._loc.line] | some d in ds} == {
		["models/churn/model.yaml:12: spec.environments.prod.version: expected an integer, got \"three\"", "models/churn/model.yaml", 12],
		["models/big/model.yaml:1: file is 5242880 bytes; at most 1048576 are accepted", "models/big/model.yaml", 1],
		["modelsync.yaml:7: environments[0].namespace: expected a namespace no other environment uses", "modelsync.yaml", 7],
	}
}
