package modelsync.rules.releases_test

import data.modelsync.fixtures
import data.modelsync.rules.releases

with_release(r) := fixtures.patch([{"op": "replace", "path": "/releases/churn", "value": r}])

test_forward_release_passes if {
	count(releases.deny) == 0 with input as fixtures.pr
}

test_first_release_passes if {
	count(releases.deny) == 0 with input as with_release({"before": null, "after": "v1.0.0"})
	count(releases.deny) == 0 with input as with_release({"after": "v0.1.0"})
}

test_backward_release_denied if {
	ds := releases.deny with input as with_release({"before": "v1.3.0", "after": "v1.2.9"})
	fixtures.ids(ds) == {"releases.moves_backward"}
	some d in ds
	d.model == "churn"
	d._loc.line == 4
}

test_semver_order_not_string_order if {
	count(releases.deny) == 0 with input as with_release({"before": "v1.9.0", "after": "v1.10.0"})
	fixtures.ids(releases.deny) == {"releases.moves_backward"} with input as with_release({"before": "v1.10.0", "after": "v1.9.0"})
}

test_prerelease_precedes_release if {
	count(releases.deny) == 0 with input as with_release({"before": "v1.3.0-rc.1", "after": "v1.3.0"})
	fixtures.ids(releases.deny) == {"releases.moves_backward"} with input as with_release({"before": "v1.3.0", "after": "v1.3.0-rc.1"})
}

test_model_prefixed_tags_accepted if {
	count(releases.deny) == 0 with input as with_release({"before": "churn/v1.2.0", "after": "churn/v1.2.1"})
}

test_invalid_tag_denied if {
	fixtures.ids(releases.deny) == {"releases.invalid_tag"} with input as with_release({"before": "v1.2.0", "after": "v1.3"})
	fixtures.ids(releases.deny) == {"releases.invalid_tag"} with input as with_release({"before": "v1.2.0", "after": 13})
}

test_removed_release_denied if {
	fixtures.ids(releases.deny) == {"releases.removed"} with input as with_release({"before": "v1.2.0", "after": null})
	fixtures.ids(releases.deny) == {"releases.removed"} with input as with_release({"before": "v1.2.0"})
}
