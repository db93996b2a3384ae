package modelsync.rules.performance_test

import data.modelsync.fixtures
import data.modelsync.rules.performance

v4 := "/registry/churn/versions/4/run_metrics"

prod_metrics := "/registry/churn/versions/3/run_metrics"

test_good_metrics_pass if {
	count(performance.deny) == 0 with input as fixtures.pr
}

test_missing_metric_denied if {
	inp := fixtures.patch([{"op": "remove", "path": concat("/", [v4, "recall"])}])
	ds := performance.deny with input as inp
	fixtures.ids(ds) == {"performance.metric_missing"}
	some d in ds
	contains(d.msg, `"recall"`)
	d._loc == {"file": "models/churn/model.yaml", "line": 14}
}

test_unknown_version_denied_for_every_metric if {
	inp := fixtures.patch([{"op": "remove", "path": "/registry/churn/versions/4"}])
	ds := performance.deny with input as inp
	count(ds) == 4
	fixtures.ids(ds) == {"performance.metric_missing"}
}

test_non_numeric_metric_denied if {
	inp := fixtures.patch([{"op": "replace", "path": concat("/", [v4, "f1"]), "value": "0.9"}])
	fixtures.ids(performance.deny) == {"performance.metric_missing"} with input as inp
}

test_below_minimum_denied if {
	inp := fixtures.patch([
		{"op": "replace", "path": concat("/", [v4, "recall"]), "value": 0.79},
		{"op": "replace", "path": concat("/", [prod_metrics, "recall"]), "value": 0.79},
	])
	fixtures.ids(performance.deny) == {"performance.metric_below_minimum"} with input as inp
}

test_exact_minimum_passes if {
	inp := fixtures.patch([
		{"op": "replace", "path": concat("/", [v4, "recall"]), "value": 0.8},
		{"op": "replace", "path": concat("/", [prod_metrics, "recall"]), "value": 0.8},
	])
	count(performance.deny) == 0 with input as inp
}

test_regression_against_prod_denied if {
	inp := fixtures.patch([{"op": "replace", "path": concat("/", [v4, "f1"]), "value": 0.83}])
	ds := performance.deny with input as inp
	fixtures.ids(ds) == {"performance.regression"}
	some d in ds
	contains(d.msg, "prod v3")
}

test_regression_at_the_limit_only_warns if {
	inp := fixtures.patch([{"op": "replace", "path": concat("/", [v4, "f1"]), "value": 0.84}])
	count(performance.deny) == 0 with input as inp
	"performance.small_regression" in fixtures.ids(performance.warn) with input as inp
}

test_thresholds_come_from_config if {
	fixtures.ids(performance.deny) == {"performance.metric_below_minimum"} with input as fixtures.pr
		with data.modelsync.config.performance.minimum as 0.9
	fixtures.ids(performance.deny) == {"performance.regression"} with input as fixtures.pr
		with data.modelsync.config.performance.max_regression as 0.005
}

test_ungated_environment_not_checked if {
	inp := fixtures.patch([
		{"op": "replace", "path": "/plan/changes/0/environment", "value": "dev"},
		{"op": "remove", "path": "/registry/churn/versions/4"},
	])
	count(performance.deny) == 0 with input as inp
}

test_stable_version_change_is_checked if {
	inp := fixtures.patch([
		{"op": "replace", "path": "/plan/changes/0", "value": {"model": "churn", "environment": "staging", "from_version": 3, "to_version": 4, "canary_from": 0, "canary_to": 0}},
		{"op": "replace", "path": concat("/", [v4, "accuracy"]), "value": 0.5},
	])
	ds := performance.deny with input as inp
	some d in ds
	d.rule == "performance.metric_below_minimum"
	d.field == "spec.environments.staging.version"
}

test_version_already_in_prod_not_compared_with_itself if {
	inp := fixtures.patch([
		{"op": "replace", "path": "/registry/churn/prod_version", "value": 4},
		{"op": "remove", "path": "/registry/churn/versions/3"},
	])
	count(performance.deny) == 0 with input as inp
	count(performance.warn) == 0 with input as inp
}

test_missing_prod_baseline_warns if {
	inp := fixtures.patch([{"op": "remove", "path": concat("/", [prod_metrics, "f1"])}])
	count(performance.deny) == 0 with input as inp
	fixtures.ids(performance.warn) == {"performance.baseline_missing", "performance.small_regression"} with input as inp
}

# Without a registry the rule still fails closed, but says why instead of
# claiming the registry lacks each metric (issue 13).
test_no_registry_configured_says_so_once_per_deployment if {
	inp := fixtures.patch([
		{"op": "replace", "path": "/registry", "value": {}},
		{"op": "replace", "path": "/registry_configured", "value": false},
	])
	ds := performance.deny with input as inp
	{d.msg | some d in ds} == {"churn v4 (canary in prod): no registry configured: performance rules cannot be judged"}
	fixtures.ids(ds) == {"performance.metric_missing"}
}
