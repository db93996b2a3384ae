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

# Gated environments whose modelsync.yaml settings the pull request changes.
# A source, alias, namespace, order or mode rewires every model running
# there, so it needs what a change to those models would need.
config_gated contains env if {
	some env in lib.config_changed_envs
	env in conf.environments
}

# Models running in a gated environment whose configuration changes, with
# no approving review from one of their owners.
config_unowned(env) := sort({model |
	some model, _ in input.models
	lib.runs_in(model, env)
	count(approvers & owners(model)) == 0
})

# At most this many models are named in one message; the rest are counted.
max_named := 5

named(models) := sprintf("%s and %d more", [named_list(models), rest]) if {
	rest := count(models) - max_named
	rest > 0
} else := named_list(models)

named_list(models) := concat(", ", [sprintf("%s (%s)", [m, concat(", ", sort(owners(m)))]) |
	some m in array.slice(models, 0, max_named)
])

# METADATA
# title: Enough approving reviews for configuration
# description: |
#   A change to modelsync.yaml that touches an environment in
#   approvals.environments (its source, alias, namespace, order, registry
#   mode, windows, prune or serving options) needs as many approving
#   reviews as a change of a model there.
# custom:
#   id: approvals.config_too_few
deny contains v if {
	some env in config_gated
	count(approvers) < conf.min_approvals
	meta := rego.metadata.rule()
	msg := sprintf("modelsync.yaml changes %s: %s; that needs %d approving reviews, the pull request has %d", [env, lib.config_summary(env), conf.min_approvals, count(approvers)])
	v := object.union(lib.finding(meta, "", env, "", msg), lib.config_location(env))
}

# METADATA
# title: Owner approval for configuration
# description: |
#   A change to modelsync.yaml that touches a gated environment changes
#   every model running there, so each of those models needs an approving
#   review from one of its owners, as a change of the model itself would.
# custom:
#   id: approvals.config_owner_missing
deny contains v if {
	conf.require_owner
	some env in config_gated
	models := config_unowned(env)
	count(models) > 0
	meta := rego.metadata.rule()
	msg := sprintf("modelsync.yaml changes %s: %s; models running there need an approving review from one of their owners: %s", [env, lib.config_summary(env), named(models)])
	v := object.union(lib.finding(meta, "", env, "", msg), lib.config_location(env))
}
