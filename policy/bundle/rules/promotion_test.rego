package modelsync.rules.promotion_test

import data.modelsync.fixtures
import data.modelsync.rules.promotion

test_soaked_version_passes if {
	count(promotion.deny) == 0 with input as fixtures.pr
}

test_short_soak_denied if {
	inp := fixtures.patch([{"op": "replace", "path": "/registry/churn/versions/4/staging_hours", "value": 10}])
	ds := promotion.deny with input as inp
	fixtures.ids(ds) == {"promotion.staging_too_short"}
	some d in ds
	contains(d.msg, "ran 10 h in staging; 24 h are required")
}

test_exact_soak_passes if {
	inp := fixtures.patch([{"op": "replace", "path": "/registry/churn/versions/4/staging_hours", "value": 24}])
	count(promotion.deny) == 0 with input as inp
}

test_no_staging_record_denied if {
	inp := fixtures.patch([{"op": "remove", "path": "/registry/churn/versions/4/staging_hours"}])
	fixtures.ids(promotion.deny) == {"promotion.no_staging_record"} with input as inp
}

test_unknown_version_denied if {
	inp := fixtures.patch([{"op": "remove", "path": "/registry/churn"}])
	fixtures.ids(promotion.deny) == {"promotion.no_staging_record"} with input as inp
}

test_stable_promotion_checked if {
	inp := fixtures.patch([
		{"op": "replace", "path": "/plan/changes/0", "value": {"model": "churn", "environment": "prod", "from_version": 3, "to_version": 4, "canary_from": 0, "canary_to": 0}},
		{"op": "replace", "path": "/registry/churn/versions/4/staging_hours", "value": 1},
	])
	ds := promotion.deny with input as inp
	some d in ds
	d.field == "spec.environments.prod.version"
}

test_rollback_to_prod_version_needs_no_soak if {
	inp := fixtures.patch([
		{"op": "replace", "path": "/plan/changes/0", "value": {"model": "churn", "environment": "prod", "from_version": 4, "to_version": 3, "canary_from": 0, "canary_to": 0}},
		{"op": "remove", "path": "/registry/churn/versions/3/staging_hours"},
	])
	count(promotion.deny) == 0 with input as inp
}

test_staging_deployment_not_checked if {
	inp := fixtures.patch([
		{"op": "replace", "path": "/plan/changes/0", "value": {"model": "churn", "environment": "staging", "from_version": 3, "to_version": 4, "canary_from": 0, "canary_to": 0}},
		{"op": "remove", "path": "/registry/churn/versions/4/staging_hours"},
	])
	count(promotion.deny) == 0 with input as inp
}

test_minimum_comes_from_config if {
	fixtures.ids(promotion.deny) == {"promotion.staging_too_short"} with input as fixtures.pr
		with data.modelsync.config.promotion.min_staging_hours as 100
}

test_no_registry_configured_says_so if {
	inp := fixtures.patch([
		{"op": "replace", "path": "/registry", "value": {}},
		{"op": "replace", "path": "/registry_configured", "value": false},
	])
	{d.msg | some d in promotion.deny with input as inp} == {"churn v4 (canary) cannot enter prod: no registry configured: its time in staging cannot be judged"}
}
