package modelsync.rules.canary_test

import data.modelsync.fixtures
import data.modelsync.rules.canary

prod_canary := "/models/churn/after/spec/environments/prod/canary"

test_small_ascending_analysed_canary_passes if {
	count(canary.deny) == 0 with input as fixtures.pr
	count(canary.warn) == 0 with input as fixtures.pr
}

test_large_first_step_denied if {
	inp := fixtures.patch([{"op": "replace", "path": concat("/", [prod_canary, "steps"]), "value": [60, 80, 90]}])
	ds := canary.deny with input as inp
	fixtures.ids(ds) == {"canary.first_step_too_large"}
	some d in ds
	d._loc.line == 15
}

test_first_step_at_limit_passes if {
	inp := fixtures.patch([{"op": "replace", "path": concat("/", [prod_canary, "steps"]), "value": [50, 75]}])
	count(canary.deny) == 0 with input as inp
}

test_weight_without_steps_is_the_first_step if {
	inp := fixtures.patch([
		{"op": "remove", "path": concat("/", [prod_canary, "steps"])},
		{"op": "add", "path": concat("/", [prod_canary, "weight"]), "value": 70},
	])
	fixtures.ids(canary.deny) == {"canary.first_step_too_large"} with input as inp
}

test_repeated_step_denied if {
	inp := fixtures.patch([{"op": "replace", "path": concat("/", [prod_canary, "steps"]), "value": [10, 10, 50]}])
	ds := canary.deny with input as inp
	fixtures.ids(ds) == {"canary.steps_not_ascending"}
	{d.field | some d in ds} == {"spec.environments.prod.canary.steps[1]"}
}

test_shrinking_step_denied if {
	inp := fixtures.patch([{"op": "replace", "path": concat("/", [prod_canary, "steps"]), "value": [10, 50, 25, 30]}])
	ds := canary.deny with input as inp
	count(ds) == 1
	fixtures.ids(ds) == {"canary.steps_not_ascending"}
}

test_prod_canary_without_analysis_denied if {
	inp := fixtures.patch([{"op": "remove", "path": concat("/", [prod_canary, "analysis"])}])
	fixtures.ids(canary.deny) == {"canary.analysis_missing"} with input as inp
}

test_analysis_without_metrics_denied if {
	inp := fixtures.patch([{"op": "replace", "path": concat("/", [prod_canary, "analysis", "metrics"]), "value": []}])
	fixtures.ids(canary.deny) == {"canary.analysis_missing"} with input as inp
}

test_staging_canary_without_analysis_warns if {
	inp := fixtures.patch([{"op": "add", "path": "/models/churn/after/spec/environments/staging/canary", "value": {"version": 5, "steps": [20, 40]}}])
	count(canary.deny) == 0 with input as inp
	fixtures.ids(canary.warn) == {"canary.analysis_recommended"} with input as inp
}

test_untouched_canary_not_judged if {
	bad := {"version": 4, "steps": [90, 10]}
	inp := fixtures.patch([
		{"op": "replace", "path": prod_canary, "value": bad},
		{"op": "copy", "from": "/models/churn/after", "path": "/models/churn/before"},
		{"op": "replace", "path": "/models/churn/after/spec/team", "value": "retention"},
	])
	count(canary.deny) == 0 with input as inp
}

test_limits_come_from_config if {
	fixtures.ids(canary.deny) == {"canary.first_step_too_large"} with input as fixtures.pr
		with data.modelsync.config.canary.max_first_step as 5
	inp := fixtures.patch([{"op": "remove", "path": concat("/", [prod_canary, "analysis"])}])
	count(canary.deny) == 0 with input as inp with data.modelsync.config.canary.require_analysis as []
}

analysis_path := "/plan/changes/0/analysis"

test_large_alpha_denied if {
	inp := fixtures.patch([{"op": "replace", "path": concat("/", [analysis_path, "alpha"]), "value": 0.3}])
	ds := canary.deny with input as inp
	fixtures.ids(ds) == {"canary.analysis_alpha_too_large"}
	{d.field | some d in ds} == {"spec.environments.prod.canary.analysis.alpha"}
}

test_alpha_at_limit_passes if {
	inp := fixtures.patch([{"op": "replace", "path": concat("/", [analysis_path, "alpha"]), "value": 0.1}])
	count(canary.deny) == 0 with input as inp
}

test_wide_margin_warns if {
	inp := fixtures.patch([{"op": "replace", "path": concat("/", [analysis_path, "metrics", "0", "margin"]), "value": 3}])
	fixtures.ids(canary.warn) == {"canary.analysis_margin_wide"} with input as inp
	count(canary.deny) == 0 with input as inp
}
