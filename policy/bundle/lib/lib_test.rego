package modelsync.lib_test

import data.modelsync.fixtures
import data.modelsync.lib

test_ancestors_most_specific_first if {
	lib.ancestors("spec.dependencies[2]") == ["spec.dependencies[2]", "spec.dependencies", "spec"]
	lib.ancestors("spec.environments.prod.canary.steps[1]") == [
		"spec.environments.prod.canary.steps[1]",
		"spec.environments.prod.canary.steps",
		"spec.environments.prod.canary",
		"spec.environments.prod",
		"spec.environments",
		"spec",
	]
	lib.ancestors("") == []
}

test_line_of_uses_nearest_known_ancestor if {
	lib.line_of("churn", "spec.environments.prod.canary.steps[2]") == 15 with input as fixtures.pr
	lib.line_of("churn", "spec.environments.prod.canary.analysis") == 13 with input as fixtures.pr
	lib.line_of("churn", "spec.team") == 1 with input as fixtures.pr
}

test_location_absent_without_file if {
	lib.location("ghost", "spec") == {} with input as fixtures.pr
	lib.location("churn", "spec.owners") == {"_loc": {"file": "models/churn/model.yaml", "line": 6}} with input as fixtures.pr
}

test_changed_models_skips_unchanged_and_deleted if {
	inp := fixtures.patch([
		{"op": "add", "path": "/models/same", "value": {"before": {"spec": {}}, "after": {"spec": {}}, "file": "models/same/model.yaml", "lines": {}}},
		{"op": "add", "path": "/models/gone", "value": {"before": {"spec": {}}, "after": null, "file": "models/gone/model.yaml", "lines": {}}},
		{"op": "add", "path": "/models/new", "value": {"before": null, "after": {"spec": {}}, "file": "models/new/model.yaml", "lines": {}}},
	])
	lib.changed_models == {"churn", "new"} with input as inp
}

test_deployments_cover_versions_and_canaries if {
	inp := fixtures.patch([{"op": "replace", "path": "/plan/changes", "value": [
		{"model": "churn", "environment": "staging", "from_version": 4, "to_version": 5, "canary_from": 0, "canary_to": 0},
		{"model": "churn", "environment": "prod", "from_version": 3, "to_version": 3, "canary_from": 4, "canary_to": 4},
		{"model": "churn", "environment": "dev", "from_version": 5, "to_version": 0, "canary_from": 0, "canary_to": 0},
	]}])
	ds := lib.deployments with input as inp
	{[d.environment, d.version, d.role] | some d in ds} == {["staging", 5, "version"]}
}

test_finding_carries_metadata_and_location if {
	v := lib.finding({"title": "T", "custom": {"id": "x.y"}}, "churn", "prod", "spec.owners", "m") with input as fixtures.pr
	v == {
		"msg": "m", "rule": "x.y", "title": "T", "model": "churn", "environment": "prod", "field": "spec.owners",
		"_loc": {"file": "models/churn/model.yaml", "line": 6},
	}
}

test_finding_without_id_is_unnamed if {
	v := lib.finding({}, "", "", "", "m") with input as fixtures.pr
	v.rule == "unnamed"
	not v._loc
}

test_runs_in_either_side if {
	inp := fixtures.patch([
		{"op": "add", "path": "/models/gone", "value": {"before": {"spec": {"environments": {"dev": {"version": 1}}}}, "after": null, "file": "models/gone/model.yaml", "lines": {}}},
		{"op": "add", "path": "/models/new", "value": {"before": null, "after": {"spec": {"environments": {"qa": {"version": 1}}}}, "file": "models/new/model.yaml", "lines": {}}},
	])
	lib.runs_in("gone", "dev") with input as inp
	lib.runs_in("new", "qa") with input as inp
	lib.runs_in("churn", "prod") with input as inp
	not lib.runs_in("new", "prod") with input as inp
}
