package modelsync.rules.dependencies_test

import data.modelsync.fixtures
import data.modelsync.rules.dependencies

with_deps(deps) := fixtures.patch([{"op": "replace", "path": "/models/churn/after/spec/dependencies", "value": deps}])

test_exact_pins_pass if {
	count(dependencies.deny) == 0 with input as fixtures.pr
	count(dependencies.deny) == 0 with input as with_deps([
		"scikit-learn==1.5.2",
		"torch==2.1.0+cu118",
		"uvicorn[standard]==0.30.1",
		"numpy == 1.26.4",
		"my_pkg.sub==1!2.0.post1",
	])
}

test_unpinned_dependencies_denied if {
	every dep in ["numpy", "numpy>=1.26", "numpy~=1.26", "numpy==1.*", "numpy===1.26", "numpy==1.26,<2", "numpy==", "numpy<2,==1.26.4", "==1.0"] {
		ds := dependencies.deny with input as with_deps(["scikit-learn==1.5.2", dep])
		fixtures.ids(ds) == {"dependencies.unpinned"}
		{d.field | some d in ds} == {"spec.dependencies[1]"}
	}
}

test_line_points_at_entry if {
	ds := dependencies.deny with input as with_deps(["pandas"])
	some d in ds
	d._loc.line == 38
}

test_unchanged_model_not_judged if {
	inp := fixtures.patch([
		{"op": "replace", "path": "/models/churn/after/spec/dependencies", "value": ["pandas"]},
		{"op": "copy", "from": "/models/churn/after", "path": "/models/churn/before"},
	])
	count(dependencies.deny) == 0 with input as inp
	edited := json.patch(inp, [{"op": "replace", "path": "/models/churn/after/spec/team", "value": "retention"}])
	count(dependencies.deny) == 1 with input as edited
}
