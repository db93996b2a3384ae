package modelsync.rules.modelcard_test

import data.modelsync.fixtures
import data.modelsync.rules.modelcard

card := "/models/churn/after/spec/modelCard"

test_complete_card_passes if {
	count(modelcard.deny) == 0 with input as fixtures.pr
}

test_each_missing_field_denied if {
	every field in ["description", "intendedUse", "datasets", "limitations", "license", "contact"] {
		inp := fixtures.patch([{"op": "remove", "path": concat("/", [card, field])}])
		ds := modelcard.deny with input as inp
		fixtures.ids(ds) == {"modelcard.field_missing"}
		{d.field | some d in ds} == {sprintf("spec.modelCard.%s", [field])}
	}
}

test_blank_text_counts_as_missing if {
	inp := fixtures.patch([
		{"op": "replace", "path": concat("/", [card, "description"]), "value": "   "},
		{"op": "replace", "path": concat("/", [card, "limitations"]), "value": []},
		{"op": "replace", "path": concat("/", [card, "contact"]), "value": ["", "x"]},
	])
	count(modelcard.deny) == 3 with input as inp
}

test_missing_card_points_at_spec if {
	inp := fixtures.patch([{"op": "remove", "path": card}])
	ds := modelcard.deny with input as inp
	count(ds) == 6
	every d in ds {
		d._loc.line == 24
	}
}

test_dataset_without_version_denied if {
	inp := fixtures.patch([{"op": "add", "path": concat("/", [card, "datasets", "-"]), "value": {"name": "events-2026"}}])
	ds := modelcard.deny with input as inp
	fixtures.ids(ds) == {"modelcard.dataset_unversioned"}
	some d in ds
	d.field == "spec.modelCard.datasets[1]"
}

test_dataset_with_blank_name_denied if {
	inp := fixtures.patch([{"op": "replace", "path": concat("/", [card, "datasets", "0", "name"]), "value": ""}])
	fixtures.ids(modelcard.deny) == {"modelcard.dataset_unversioned"} with input as inp
}

test_unchanged_model_not_judged if {
	inp := fixtures.patch([
		{"op": "remove", "path": card},
		{"op": "copy", "from": "/models/churn/after", "path": "/models/churn/before"},
		{"op": "replace", "path": "/plan/changes", "value": []},
	])
	count(modelcard.deny) == 0 with input as inp
}

test_required_fields_come_from_config if {
	inp := fixtures.patch([{"op": "remove", "path": concat("/", [card, "description"])}])
	count(modelcard.deny) == 0 with input as inp with data.modelsync.config.model_card.required as ["license"]
}
