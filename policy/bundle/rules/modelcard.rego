# METADATA
# title: Model card
# description: |
#   Every model a pull request adds or changes documents itself: what it is,
#   what it is for, what data trained it, where it falls short, its license
#   and who to contact.
package modelsync.rules.modelcard

import data.modelsync.lib

card(model) := object.get(lib.after(model), ["spec", "modelCard"], {})

# Text fields count only when they hold more than whitespace.
filled(x) if {
	is_string(x)
	trim_space(x) != ""
}

filled(x) if {
	is_array(x)
	count(x) > 0
	every item in x {
		filled_item(item)
	}
}

filled_item(x) if {
	is_string(x)
	trim_space(x) != ""
}

filled_item(x) if is_object(x)

present(model, field) if filled(card(model)[field])

# METADATA
# title: Model card field present
# description: |
#   Each field listed in model_card.required (by default description,
#   intendedUse, datasets, limitations, license and contact) must be filled
#   in spec.modelCard.
# custom:
#   id: modelcard.field_missing
deny contains v if {
	some model in lib.changed_models
	some field in lib.cfg.model_card.required
	not present(model, field)
	meta := rego.metadata.rule()
	msg := sprintf("%s: spec.modelCard.%s is missing or empty", [model, field])
	v := lib.finding(meta, model, "", sprintf("spec.modelCard.%s", [field]), msg)
}

# METADATA
# title: Datasets are versioned
# description: |
#   Every dataset in the model card names both the dataset and the exact
#   version used, so the training data can be found again.
# custom:
#   id: modelcard.dataset_unversioned
deny contains v if {
	some model in lib.changed_models
	"datasets" in lib.cfg.model_card.required
	some i, ds in object.get(card(model), "datasets", [])
	some key in ["name", "version"]
	not filled(object.get(ds, key, ""))
	meta := rego.metadata.rule()
	msg := sprintf("%s: spec.modelCard.datasets[%d] has no %s", [model, i, key])
	v := lib.finding(meta, model, "", sprintf("spec.modelCard.datasets[%d]", [i]), msg)
}
