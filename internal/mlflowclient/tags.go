package mlflowclient

// Tags modelsync writes on model versions. Nothing outside this prefix is
// ever written or removed. The mlflow target writes them; lineage, the
// artifact lifecycle and the PR gate read them.
const (
	TagPrefix       = "modelsync."
	TagRevision     = "modelsync.revision"
	TagEnvironments = "modelsync.environments"
	TagDeployedBy   = "modelsync.deployed_by"
	TagLifecycle    = "modelsync.lifecycle"
	TagArchivedAt   = "modelsync.archived_at"

	LifecycleArchived = "archived"

	// TagAuditPrefix starts the per-environment residency tags
	// modelsync.audit.<env>.since and .until (RFC 3339), which the promotion
	// policy reads to know how long a version ran in staging.
	TagAuditPrefix = "modelsync.audit."
)
