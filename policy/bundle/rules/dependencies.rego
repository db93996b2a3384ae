# METADATA
# title: Pinned dependencies
# description: |
#   The packages a model needs are pinned to exact versions, so the serving
#   image is what was tested.
package modelsync.rules.dependencies

import data.modelsync.lib

# name[extras] == version, where version has no wildcard and no range.
pinned := `^[A-Za-z0-9]([A-Za-z0-9._-]*[A-Za-z0-9])?(\[[A-Za-z0-9._, -]+\])?\s*==\s*[A-Za-z0-9][A-Za-z0-9.+!_-]*$`

# METADATA
# title: Dependency pinned with ==
# description: |
#   Every entry of spec.dependencies must pin one exact version with ==,
#   for example scikit-learn==1.5.2; ranges, wildcards and bare names are
#   rejected.
# custom:
#   id: dependencies.unpinned
deny contains v if {
	some model in lib.changed_models
	some i, dep in object.get(lib.after(model), ["spec", "dependencies"], [])
	not regex.match(pinned, dep)
	meta := rego.metadata.rule()
	msg := sprintf("%s: dependency %q is not pinned to one exact version with ==", [model, dep])
	v := lib.finding(meta, model, "", sprintf("spec.dependencies[%d]", [i]), msg)
}
