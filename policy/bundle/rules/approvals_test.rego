package modelsync.rules.approvals_test

import data.modelsync.fixtures
import data.modelsync.rules.approvals

head := "9e8d7c6b5a4f3e2d1c0b9a8f7e6d5c4b3a2f1e0d"

review(user, state, at) := {"user": user, "state": state, "submitted_at": at, "commit_id": head}

with_reviews(rs) := fixtures.patch([{"op": "replace", "path": "/reviews", "value": rs}])

test_two_approvals_with_owner_pass if {
	count(approvals.deny) == 0 with input as fixtures.pr
	approvals.approvers == {"bob", "carol"} with input as fixtures.pr
}

test_one_approval_denied if {
	inp := with_reviews([review("bob", "APPROVED", "2026-03-02T10:00:00Z")])
	ds := approvals.deny with input as inp
	fixtures.ids(ds) == {"approvals.too_few"}
	some d in ds
	contains(d.msg, "needs 2 approving reviews, the pull request has 1")
}

test_no_owner_approval_denied if {
	inp := with_reviews([
		review("carol", "APPROVED", "2026-03-02T10:00:00Z"),
		review("erin", "APPROVED", "2026-03-02T10:05:00Z"),
	])
	ds := approvals.deny with input as inp
	fixtures.ids(ds) == {"approvals.owner_missing"}
	some d in ds
	contains(d.msg, "(bob, dana)")
	d._loc.line == 6
}

test_later_change_request_withdraws_approval if {
	inp := with_reviews([
		review("bob", "APPROVED", "2026-03-02T10:00:00Z"),
		review("carol", "APPROVED", "2026-03-02T10:05:00Z"),
		review("bob", "CHANGES_REQUESTED", "2026-03-02T11:00:00Z"),
	])
	fixtures.ids(approvals.deny) == {"approvals.too_few", "approvals.owner_missing"} with input as inp
}

test_order_is_by_time_not_position if {
	inp := with_reviews([
		review("bob", "CHANGES_REQUESTED", "2026-03-02T11:00:00Z"),
		review("carol", "APPROVED", "2026-03-02T10:05:00Z"),
		review("bob", "APPROVED", "2026-03-02T12:00:00Z"),
	])
	count(approvals.deny) == 0 with input as inp
}

test_later_comment_keeps_approval if {
	inp := with_reviews([
		review("bob", "APPROVED", "2026-03-02T10:00:00Z"),
		review("carol", "APPROVED", "2026-03-02T10:05:00Z"),
		review("bob", "COMMENTED", "2026-03-02T11:00:00Z"),
		review("carol", "PENDING", "2026-03-02T11:30:00Z"),
	])
	count(approvals.deny) == 0 with input as inp
}

test_dismissed_approval_does_not_count if {
	inp := with_reviews([
		review("bob", "APPROVED", "2026-03-02T10:00:00Z"),
		review("carol", "APPROVED", "2026-03-02T10:05:00Z"),
		review("carol", "DISMISSED", "2026-03-02T10:30:00Z"),
	])
	fixtures.ids(approvals.deny) == {"approvals.too_few"} with input as inp
}

test_same_time_falls_to_later_entry if {
	inp := with_reviews([
		review("bob", "APPROVED", "2026-03-02T10:00:00Z"),
		review("carol", "APPROVED", "2026-03-02T10:05:00Z"),
		review("carol", "CHANGES_REQUESTED", "2026-03-02T10:05:00Z"),
	])
	fixtures.ids(approvals.deny) == {"approvals.too_few"} with input as inp
}

test_approval_of_older_commit_is_stale if {
	inp := fixtures.patch([{"op": "replace", "path": "/reviews/2/commit_id", "value": "0000000000000000000000000000000000000000"}])
	fixtures.ids(approvals.deny) == {"approvals.too_few"} with input as inp
	count(approvals.deny) == 0 with input as inp with data.modelsync.config.approvals.require_current_head as false
}

test_approval_without_commit_is_stale if {
	inp := fixtures.patch([{"op": "remove", "path": "/reviews/2/commit_id"}])
	fixtures.ids(approvals.deny) == {"approvals.too_few"} with input as inp
}

test_author_cannot_approve if {
	inp := fixtures.patch([{"op": "replace", "path": "/pr/author", "value": "Carol"}])
	fixtures.ids(approvals.deny) == {"approvals.too_few"} with input as inp
}

test_logins_compare_case_insensitively if {
	inp := fixtures.patch([{"op": "replace", "path": "/reviews/1/user", "value": "BOB"}])
	count(approvals.deny) == 0 with input as inp
}

test_owners_come_from_base if {
	inp := fixtures.patch([
		{"op": "replace", "path": "/models/churn/after/spec/owners", "value": ["erin"]},
		{"op": "replace", "path": "/reviews/1/user", "value": "erin"},
	])
	fixtures.ids(approvals.deny) == {"approvals.owner_missing"} with input as inp
}

test_new_model_owners_come_from_head if {
	inp := fixtures.patch([
		{"op": "replace", "path": "/models/churn/before", "value": null},
		{"op": "replace", "path": "/models/churn/after/spec/owners", "value": ["erin"]},
		{"op": "replace", "path": "/reviews/1/user", "value": "erin"},
	])
	count(approvals.deny) == 0 with input as inp
}

test_non_prod_change_needs_no_approval if {
	inp := fixtures.patch([
		{"op": "replace", "path": "/plan/changes/0/environment", "value": "staging"},
		{"op": "replace", "path": "/reviews", "value": []},
	])
	count(approvals.deny) == 0 with input as inp
}

test_counts_come_from_config if {
	fixtures.ids(approvals.deny) == {"approvals.too_few"} with input as fixtures.pr
		with data.modelsync.config.approvals.min_approvals as 3
	inp := with_reviews([review("carol", "APPROVED", "2026-03-02T10:00:00Z")])
	count(approvals.deny) == 0 with input as inp
		with data.modelsync.config.approvals.min_approvals as 1
		with data.modelsync.config.approvals.require_owner as false
}

# modelsync.yaml moves prod to another branch: no version moves, yet every
# model in prod is rewired (issue 13).
prod_source_moved := [{
	"environment": "prod", "field": "source", "from": "releases", "to": "main",
	"file": "modelsync.yaml", "line": 16,
}]

config_only(changes, reviews) := fixtures.patch([
	{"op": "replace", "path": "/plan/changes", "value": []},
	{"op": "replace", "path": "/models/churn/after", "value": fixtures.pr.models.churn.before},
	{"op": "replace", "path": "/config_changes", "value": changes},
	{"op": "replace", "path": "/reviews", "value": reviews},
])

test_prod_config_change_without_reviews_denied if {
	ds := approvals.deny with input as config_only(prod_source_moved, [])
	fixtures.ids(ds) == {"approvals.config_too_few", "approvals.config_owner_missing"}
	some d in ds
	d.rule == "approvals.config_too_few"
	d.msg == "modelsync.yaml changes prod: source (releases → main); that needs 2 approving reviews, the pull request has 0"
	d._loc == {"file": "modelsync.yaml", "line": 16}
	d.environment == "prod"
	some o in ds
	o.rule == "approvals.config_owner_missing"
	contains(o.msg, "models running there need an approving review from one of their owners: churn (bob, dana)")
}

test_prod_config_change_with_owner_approvals_passes if {
	count(approvals.deny) == 0 with input as config_only(prod_source_moved, fixtures.pr.reviews)
}

test_prod_config_change_without_owner_denied if {
	inp := config_only(prod_source_moved, [
		review("carol", "APPROVED", "2026-03-02T10:00:00Z"),
		review("erin", "APPROVED", "2026-03-02T10:05:00Z"),
	])
	fixtures.ids(approvals.deny) == {"approvals.config_owner_missing"} with input as inp
	count(approvals.deny) == 1 with input as inp
	count(approvals.deny) == 0 with input as inp with data.modelsync.config.approvals.require_owner as false
}

test_config_change_outside_gated_environments_passes if {
	dev := [{"environment": "dev", "field": "namespace", "from": "models-dev", "to": "models-dev2", "file": "modelsync.yaml", "line": 5}]
	count(approvals.deny) == 0 with input as config_only(dev, [])
}

test_config_change_reports_first_line_and_every_field if {
	changes := [
		{"environment": "prod", "field": "environments", "from": "dev, staging, prod", "to": "staging, prod, dev", "file": "modelsync.yaml", "line": 3},
		{"environment": "prod", "field": "defaults.registry.mode", "from": "aliases", "to": "both", "file": "modelsync.yaml", "line": 20},
		{"environment": "prod", "field": "alias", "from": "", "to": "prod", "file": "modelsync.yaml", "line": 9},
	]
	ds := approvals.deny with input as config_only(changes, [])
	some d in ds
	d.rule == "approvals.config_too_few"
	d._loc.line == 3
	contains(d.msg, "alias (- → prod), defaults.registry.mode (aliases → both), environments (dev, staging, prod → staging, prod, dev)")
}

test_config_change_names_at_most_five_models if {
	base := config_only(prod_source_moved, [])
	inp := json.patch(base, [{"op": "add", "path": sprintf("/models/m%d", [i]), "value": base.models.churn} | some i in numbers.range(1, 6)])
	ds := approvals.deny with input as inp
	some d in ds
	d.rule == "approvals.config_owner_missing"
	endswith(d.msg, "and 2 more")
}
