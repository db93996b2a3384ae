# Test fixtures shared by the rule tests: one pull request that passes
# every rule (it promotes churn v4 as a prod canary), and helpers that
# derive failing variants from it with JSON patches.
package modelsync.fixtures

# The passing pull request; policy/testdata/input.example.json holds the
# same document for the Go tests and the README.
pr := {
	"pr": {
		"number": 42,
		"author": "alice",
		"base": {
			"ref": "main",
			"sha": "1f0c6a4e1b7d2f3a9c8e5d4b3a2f1e0d9c8b7a6f",
		},
		"head": {
			"ref": "promote-churn-v4",
			"sha": "9e8d7c6b5a4f3e2d1c0b9a8f7e6d5c4b3a2f1e0d",
		},
		"labels": [
			"promotion",
		],
		"changed_files": [
			"models/churn/model.yaml",
		],
	},
	"reviews": [
		{
			"user": "bob",
			"state": "COMMENTED",
			"submitted_at": "2026-03-02T09:00:00Z",
			"commit_id": "9e8d7c6b5a4f3e2d1c0b9a8f7e6d5c4b3a2f1e0d",
		},
		{
			"user": "bob",
			"state": "APPROVED",
			"submitted_at": "2026-03-02T10:15:00Z",
			"commit_id": "9e8d7c6b5a4f3e2d1c0b9a8f7e6d5c4b3a2f1e0d",
		},
		{
			"user": "carol",
			"state": "APPROVED",
			"submitted_at": "2026-03-02T11:40:00Z",
			"commit_id": "9e8d7c6b5a4f3e2d1c0b9a8f7e6d5c4b3a2f1e0d",
		},
	],
	"plan": {
		"revision": "promote-churn-v4@sha1:9e8d7c6b5a4f3e2d1c0b9a8f7e6d5c4b3a2f1e0d",
		"targets": [
			"mlflow",
			"kserve",
			"storage",
		],
		"summary": {
			"create": 1,
			"update": 1,
			"delete": 0,
			"drift": 0,
			"errors": 0,
			"waits": 0,
			"held": 0,
		},
		"actions": [
			{
				"target": "mlflow",
				"kind": "alias",
				"model": "churn",
				"environment": "prod",
				"resource": "alias prod-canary",
				"op": "create",
				"to": "4",
				"reason": "canary v4 starts in prod",
				"revision": "promote-churn-v4@sha1:9e8d7c6b5a4f3e2d1c0b9a8f7e6d5c4b3a2f1e0d",
			},
			{
				"target": "kserve",
				"kind": "InferenceService",
				"model": "churn",
				"environment": "prod",
				"resource": "ml-prod/churn",
				"op": "update",
				"from": "v3",
				"to": "v3 + canary v4 at 10%",
				"reason": "canary v4 starts in prod",
				"revision": "promote-churn-v4@sha1:9e8d7c6b5a4f3e2d1c0b9a8f7e6d5c4b3a2f1e0d",
			},
		],
		"errors": [],
		"waits": [],
		"warnings": [],
		"held": [],
		"unobservedTargets": [],
		"changes": [
			{
				"model": "churn",
				"environment": "prod",
				"from_version": 3,
				"to_version": 3,
				"canary_from": 0,
				"canary_to": 4,
				"analysis": {
					"provider": "http://prometheus.monitoring:9090",
					"interval_seconds": 300,
					"step_duration_seconds": 600,
					"min_samples": 500,
					"max_duration_seconds": 0,
					"alpha": 0.05,
					"on_inconclusive": "hold",
					"metrics": [{
						"name": "errors",
						"kind": "errors",
						"margin": 1.2,
						"guard_max_rate": 0,
					}],
					"guards": ["error-rate"],
					"post_promotion_seconds": 0,
				},
			},
		],
	},
	"models": {
		"churn": {
			"before": {
				"apiVersion": "modelsync.dev/v1alpha1",
				"kind": "Model",
				"metadata": {
					"name": "churn",
				},
				"spec": {
					"registry": {},
					"team": "growth",
					"owners": [
						"bob",
						"dana",
					],
					"environments": {
						"prod": {
							"version": 3,
						},
						"staging": {
							"version": 4,
						},
					},
					"serving": {
						"path": "serving",
						"modelFormat": "sklearn",
					},
					"lifecycle": {},
					"modelCard": {
						"description": "Predicts which subscribers will cancel within 30 days.",
						"intendedUse": "Ranking accounts for the retention team's outreach.",
						"datasets": [
							{
								"name": "subscriptions-2025",
								"version": "2025-12-31",
							},
						],
						"metrics": {
							"f1": 0.86,
						},
						"limitations": [
							"Not calibrated for accounts younger than 14 days.",
						],
						"license": "Proprietary",
						"contact": "growth-ml@example.com",
					},
					"compliance": [
						"GDPR",
						"SOC2",
					],
					"dependencies": [
						"scikit-learn==1.5.2",
					],
				},
			},
			"after": {
				"apiVersion": "modelsync.dev/v1alpha1",
				"kind": "Model",
				"metadata": {
					"name": "churn",
				},
				"spec": {
					"registry": {},
					"team": "growth",
					"owners": [
						"bob",
						"dana",
					],
					"environments": {
						"prod": {
							"version": 3,
							"canary": {
								"version": 4,
								"steps": [
									10,
									25,
									50,
								],
								"analysis": {
									"interval": "5m0s",
									"metrics": [
										{
											"name": "error-rate",
											"query": "sum(rate(errors[5m]))",
											"max": 0.01,
										},
									],
								},
							},
						},
						"staging": {
							"version": 4,
						},
					},
					"serving": {
						"path": "serving",
						"modelFormat": "sklearn",
					},
					"lifecycle": {},
					"modelCard": {
						"description": "Predicts which subscribers will cancel within 30 days.",
						"intendedUse": "Ranking accounts for the retention team's outreach.",
						"datasets": [
							{
								"name": "subscriptions-2025",
								"version": "2025-12-31",
							},
						],
						"metrics": {
							"f1": 0.87,
						},
						"limitations": [
							"Not calibrated for accounts younger than 14 days.",
						],
						"license": "Proprietary",
						"contact": "growth-ml@example.com",
					},
					"compliance": [
						"GDPR",
						"SOC2",
					],
					"dependencies": [
						"scikit-learn==1.5.2",
					],
				},
			},
			"file": "models/churn/model.yaml",
			"lines": {
				"metadata.name": 4,
				"spec.owners": 6,
				"spec.environments.staging.version": 10,
				"spec.environments.prod": 11,
				"spec.environments.prod.version": 12,
				"spec.environments.prod.canary": 13,
				"spec.environments.prod.canary.version": 14,
				"spec.environments.prod.canary.steps": 15,
				"spec.modelCard": 24,
				"spec.compliance": 36,
				"spec.dependencies": 37,
				"spec.dependencies[0]": 38,
			},
		},
	},
	"registry": {
		"churn": {
			"prod_version": 3,
			"versions": {
				"3": {
					"run_metrics": {
						"accuracy": 0.91,
						"precision": 0.88,
						"recall": 0.84,
						"f1": 0.86,
					},
					"tags": {
						"modelsync.audit.staging.since": "2026-01-10T08:00:00Z",
						"modelsync.audit.staging.until": "2026-01-20T08:00:00Z",
					},
					"created_at": "2026-01-09T17:30:00Z",
					"aliases": [
						"prod",
					],
					"staging_hours": 240,
				},
				"4": {
					"run_metrics": {
						"accuracy": 0.92,
						"precision": 0.87,
						"recall": 0.86,
						"f1": 0.87,
					},
					"tags": {
						"modelsync.audit.staging.since": "2026-02-27T09:00:00Z",
					},
					"created_at": "2026-02-26T15:00:00Z",
					"aliases": [
						"staging",
					],
					"staging_hours": 74.5,
				},
			},
		},
	},
	"releases": {
		"churn": {
			"before": "v1.2.0",
			"after": "v1.3.0",
		},
	},
	"config_changes": [],
	"manifest_errors": [],
	"registry_configured": true,
	"policy": {
		"revision": "main@sha1:1f0c6a4e1b7d2f3a9c8e5d4b3a2f1e0d9c8b7a6f",
		"source": "base",
	},
	"now": "2026-03-02T11:45:00Z",
}

# patch returns the passing input with RFC 6902 operations applied.
patch(ops) := json.patch(pr, ops)

# ids lists the rule ids of a set of violations.
ids(violations) := {v.rule | some v in violations}
