# METADATA
# title: Approvals
# description: |
#   Changes to a gated environment need enough approving reviews, one of them
#   from the model's owners. Each reviewer's latest decisive review counts,
#   as on GitHub: a later comment does not withdraw an approval, a later
#   change request or dismissal does.
package modelsync.rules.approvals

import data.modelsync.lib

conf := lib.cfg.approvals

# Review states that change a reviewer's verdict; COMMENTED and PENDING do not.
decisive := {"APPROVED", "CHANGES_REQUESTED", "DISMISSED"}

reviewers contains lib.login(r.user) if {
	some r in input.reviews
	r.state in decisive
}

# The reviewer's last decisive review. Ties on time fall to the later entry
# in input.reviews, the order GitHub lists them in.
latest(user) := sorted[count(sorted) - 1][2] if {
	sorted := sort([[time.parse_rfc3339_ns(r.submitted_at), i, r] |
		some i, r in input.reviews
		r.state in decisive
		lib.login(r.user) == user
	])
}

counts(review) if {
	review.state == "APPROVED"
	not stale(review)
}

# With approvals.require_current_head, an approval of an older commit does
# not cover what was pushed after it.
stale(review) if {
	conf.require_current_head
	not review.commit_id == input.pr.head.sha
}

approvers contains user if {
	some user in reviewers
	user != lib.login(input.pr.author)
	counts(latest(user))
}

# Owners come from the base branch when the model exists there, so a pull
# request cannot name its own approvers.
owners(model) := {lib.login(o) | some o in lib.before(model).spec.owners} if {
	is_object(lib.before(model))
} else := {lib.login(o) | some o in object.get(lib.after(model), ["spec", "owners"], [])}

gated contains [c.model, c.environment] if {
	some c in input.plan.changes
	c.environment in conf.environments
}

# METADATA
# title: Enough approving reviews
# description: |
#   A change to an environment in approvals.environments (default prod)
#   needs at least approvals.min_approvals (default 2) approving reviews
#   from people other than the author.
# custom:
#   id: approvals.too_few
deny contains v if {
	some [model, env] in gated
	count(approvers) < conf.min_approvals
	meta := rego.metadata.rule()
	msg := sprintf("%s: changing %s needs %d approving reviews, the pull request has %d", [model, env, conf.min_approvals, count(approvers)])
	v := lib.finding(meta, model, env, sprintf("spec.environments.%s", [env]), msg)
}

# METADATA
# title: Owner approval
# description: |
#   One of the approving reviews must come from an owner of the model, as
#   listed in spec.owners on the base branch.
# custom:
#   id: approvals.owner_missing
deny contains v if {
	conf.require_owner
	some [model, env] in gated
	count(approvers & owners(model)) == 0
	meta := rego.metadata.rule()
	msg := sprintf("%s: changing %s needs an approving review from an owner (%s)", [model, env, concat(", ", sort(owners(model)))])
	v := lib.finding(meta, model, env, "spec.owners", msg)
}
