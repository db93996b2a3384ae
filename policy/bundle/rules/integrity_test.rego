package modelsync.rules.integrity_test

import data.modelsync.fixtures
import data.modelsync.rules.integrity

test_same_digest_passes if {
	count(integrity.deny) == 0 with input as fixtures.pr
}

test_changed_digest_denied if {
	inp := fixtures.patch([{"op": "replace", "path": "/security/churn/versions/4/digest", "value": "sha256:ffff"}])
	ds := integrity.deny with input as inp
	fixtures.ids(ds) == {"integrity.artifact_changed"}
	some d in ds
	contains(d.msg, "approved for staging")
	contains(d.msg, "sha256:ffff")
	d.environment == "prod"
}

test_no_approval_yet_passes if {
	inp := fixtures.patch([{"op": "replace", "path": "/security/churn/versions/4/approved", "value": {}}])
	count(integrity.deny) == 0 with input as inp
}

test_switch_off if {
	inp := fixtures.patch([{"op": "replace", "path": "/security/churn/versions/4/digest", "value": "sha256:ffff"}])
	count(integrity.deny) == 0 with input as inp with data.modelsync.config.security.integrity as false
}
