// Package mlflow is the MLflow registry target: it keeps each
// environment's alias (or stage) on the version Git names, archives versions
// no environment uses any more, and writes audit tags that say which Git
// revision put a version where.
package mlflow

import (
	"time"

	"github.com/modelsync/modelsync/internal/mlflowclient"
	"github.com/modelsync/modelsync/reconciler"
)

// Name is the target's name in plans.
const Name = "mlflow"

// Action kinds this target plans.
const (
	KindSetAlias    = "set-alias"
	KindDeleteAlias = "delete-alias"
	KindStage       = "transition-stage"
	KindAuditTags   = "tag-version"
	KindArchive     = "archive-version"
	KindUnarchive   = "unarchive-version"
)

// Target is the MLflow registry target: reconciler.Typed makes it a
// reconciler.Target.
type Target struct {
	client *mlflowclient.Client
	now    func() time.Time
	// pageSize bounds search pages; version searches batch many models
	// where the server allows it (mlflowclient.Capabilities).
	pageSize int
}

// Option configures a Target.
type Option func(*Target)

// WithClock sets the clock used for archived_at timestamps.
func WithClock(now func() time.Time) Option { return func(t *Target) { t.now = now } }

// New returns the MLflow target.
func New(client *mlflowclient.Client, opts ...Option) *Target {
	t := &Target{client: client, now: time.Now, pageSize: 1000}
	for _, o := range opts {
		o(t)
	}
	return t
}

// Name implements reconciler.TypedTarget.
func (t *Target) Name() string { return Name }

var (
	_ reconciler.TypedTarget[*observation] = (*Target)(nil)
	_ reconciler.ActionValidator           = (*Target)(nil)
)
