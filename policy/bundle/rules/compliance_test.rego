package modelsync.rules.compliance_test

import data.modelsync.fixtures
import data.modelsync.rules.compliance

test_tagged_prod_model_passes if {
	count(compliance.deny) == 0 with input as fixtures.pr
}

test_missing_soc2_denied if {
	inp := fixtures.patch([{"op": "replace", "path": "/models/churn/after/spec/compliance", "value": ["GDPR"]}])
	ds := compliance.deny with input as inp
	fixtures.ids(ds) == {"compliance.tag_missing"}
	count(ds) == 1
	some d in ds
	contains(d.msg, `"SOC2"`)
	d._loc.line == 36
}

test_no_tags_denied_for_each if {
	inp := fixtures.patch([{"op": "remove", "path": "/models/churn/after/spec/compliance"}])
	count(compliance.deny) == 2 with input as inp
}

test_tags_compare_case_insensitively if {
	inp := fixtures.patch([{"op": "replace", "path": "/models/churn/after/spec/compliance", "value": ["gdpr", "Soc2"]}])
	count(compliance.deny) == 0 with input as inp
}

test_model_outside_prod_needs_no_tags if {
	inp := fixtures.patch([
		{"op": "remove", "path": "/models/churn/after/spec/environments/prod"},
		{"op": "remove", "path": "/models/churn/after/spec/compliance"},
		{"op": "replace", "path": "/plan/changes", "value": []},
	])
	count(compliance.deny) == 0 with input as inp
}

test_required_tags_come_from_config if {
	fixtures.ids(compliance.deny) == {"compliance.tag_missing"} with input as fixtures.pr
		with data.modelsync.config.compliance.required_tags as {"prod": ["GDPR", "SOC2", "HIPAA"]}
}

test_plan_change_alone_is_judged if {
	# The manifest is unchanged but the plan moves the model in prod (for
	# example a new release tag), so its tags are still checked.
	inp := fixtures.patch([
		{"op": "remove", "path": "/models/churn/after/spec/compliance"},
		{"op": "remove", "path": "/models/churn/before/spec/compliance"},
		{"op": "replace", "path": "/models/churn/before", "value": null},
	])
	count(compliance.deny) == 2 with input as inp
}
