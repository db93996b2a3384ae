# METADATA
# title: Performance baseline
# description: |
#   A version entering a gated environment must have every required metric
#   recorded on its training run, each at least the configured minimum, and
#   none more than the allowed regression below the version now in prod.
package modelsync.rules.performance

import data.modelsync.lib

conf := lib.cfg.performance

# Metrics are decimals written in binary floating point: 0.86 - 0.84 is a
# hair above 0.02. A regression exactly at the limit is allowed.
epsilon := 1e-9

gated contains d if {
	some d in lib.deployments
	d.environment in conf.environments
}

metric(d, name) := lib.run_metrics(d.model, d.version)[name]

# Negations go through helper rules: in `not f(g(x))` an undefined g(x)
# makes the whole rule body fail instead of the negation succeed.
recorded(model, version, name) if is_number(lib.run_metrics(model, version)[name])

prod_version(model) := v if {
	v := input.registry[model].prod_version
	is_number(v)
	v > 0
}

# METADATA
# title: Required metric recorded
# description: |
#   The run that produced the version must log each metric listed in
#   performance.metrics (by default accuracy, precision, recall and f1).
#   Without a model registry nothing can be read: the rule then fails
#   closed and says so.
# custom:
#   id: performance.metric_missing
deny contains v if {
	some d in gated
	some msg in missing(d)
	meta := rego.metadata.rule()
	v := lib.finding(meta, d.model, d.environment, d.field, msg)
}

missing(d) := {msg |
	some name in conf.metrics
	not recorded(d.model, d.version, name)
	msg := sprintf("%s v%d (%s in %s): the registry has no %q metric for this version's run", [d.model, d.version, d.role, d.environment, name])
} if {
	lib.registry_configured
} else := {sprintf("%s v%d (%s in %s): no registry configured: performance rules cannot be judged", [d.model, d.version, d.role, d.environment])}

# METADATA
# title: Metric at or above the minimum
# description: |
#   Each required metric must be at least performance.minimum (default 0.8).
# custom:
#   id: performance.metric_below_minimum
deny contains v if {
	some d in gated
	some name in conf.metrics
	value := metric(d, name)
	is_number(value)
	value < conf.minimum
	meta := rego.metadata.rule()
	msg := sprintf("%s v%d (%s in %s): %s is %v, below the minimum %v", [d.model, d.version, d.role, d.environment, name, value, conf.minimum])
	v := lib.finding(meta, d.model, d.environment, d.field, msg)
}

# METADATA
# title: No regression against prod
# description: |
#   Each required metric may be at most performance.max_regression (default
#   0.02) below the same metric of the version currently serving prod.
# custom:
#   id: performance.regression
deny contains v if {
	some d in gated
	current := prod_version(d.model)
	current != d.version
	some name in conf.metrics
	value := metric(d, name)
	baseline := lib.run_metrics(d.model, current)[name]
	is_number(value)
	is_number(baseline)
	baseline - value > conf.max_regression + epsilon
	meta := rego.metadata.rule()
	msg := sprintf("%s v%d (%s in %s): %s is %v, more than %v below prod v%d (%v)", [d.model, d.version, d.role, d.environment, name, value, conf.max_regression, current, baseline])
	v := lib.finding(meta, d.model, d.environment, d.field, msg)
}

# METADATA
# title: Small regression against prod
# description: |
#   A metric that is below prod's but within the allowed regression is
#   reported so reviewers see the trade-off.
# custom:
#   id: performance.small_regression
warn contains v if {
	some d in gated
	current := prod_version(d.model)
	current != d.version
	some name in conf.metrics
	value := metric(d, name)
	baseline := lib.run_metrics(d.model, current)[name]
	is_number(value)
	is_number(baseline)
	value < baseline
	baseline - value <= conf.max_regression + epsilon
	meta := rego.metadata.rule()
	msg := sprintf("%s v%d (%s in %s): %s is %v, below prod v%d (%v) but within the allowed %v", [d.model, d.version, d.role, d.environment, name, value, current, baseline, conf.max_regression])
	v := lib.finding(meta, d.model, d.environment, d.field, msg)
}

# METADATA
# title: Prod baseline available
# description: |
#   When the version serving prod has no value for a required metric the
#   regression check cannot run for it; the gap is reported.
# custom:
#   id: performance.baseline_missing
warn contains v if {
	some d in gated
	current := prod_version(d.model)
	current != d.version
	some name in conf.metrics
	not recorded(d.model, current, name)
	meta := rego.metadata.rule()
	msg := sprintf("%s v%d (%s in %s): prod v%d has no %q metric to compare against", [d.model, d.version, d.role, d.environment, current, name])
	v := lib.finding(meta, d.model, d.environment, d.field, msg)
}
