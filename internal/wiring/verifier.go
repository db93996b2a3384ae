package wiring

import (
	"context"
	"fmt"
	"net/http"
	"time"

	"github.com/modelsync/modelsync/internal/advisory"
	"github.com/modelsync/modelsync/internal/manifest"
	"github.com/modelsync/modelsync/internal/redact"
	"github.com/modelsync/modelsync/internal/scanrecord"
)

// VerifierOptions configure Factory.Verifier.
type VerifierOptions struct {
	// Security is modelsync.yaml's security section; nil means none.
	Security *manifest.Security
	// AdvisoriesPath overrides Security.Advisories.Path (--advisories).
	AdvisoriesPath string
	Now            func() time.Time
}

// Verifier builds the scanner of registered versions: MLflow for tags and
// locations, S3 for the artifacts, and the dependency checker when
// advisories are configured (a directory, an API URL, or both).
func (f *Factory) Verifier(ctx context.Context, o VerifierOptions) (*scanrecord.Verifier, error) {
	c, err := f.MLflow()
	if err != nil {
		return nil, err
	}
	loc, err := f.Locator()
	if err != nil {
		return nil, err
	}
	s3c, err := f.S3(ctx)
	if err != nil {
		return nil, err
	}
	v := &scanrecord.Verifier{Registry: c, Locator: loc, S3: s3c, Now: o.Now}
	var sec manifest.Security
	if o.Security != nil {
		sec = *o.Security
	}
	path := sec.Advisories.Path
	if o.AdvisoriesPath != "" {
		path = o.AdvisoriesPath
	}
	if path == "" && sec.Advisories.URL == "" {
		return v, nil
	}
	ch := &advisory.Checker{Now: o.Now}
	if path != "" {
		if ch.DB, err = advisory.LoadDir(path); err != nil {
			return nil, err
		}
	}
	if u := sec.Advisories.URL; u != "" {
		if redact.HasCredentials(u) {
			return nil, fmt.Errorf("advisory URL %s: remove the credentials", redact.URL(u))
		}
		ch.Online = &advisory.Client{BaseURL: u, HTTP: &http.Client{Timeout: 30 * time.Second}}
	}
	for i, a := range sec.Advisories.Allow {
		exp, err := a.ExpiresAt()
		if err != nil {
			return nil, fmt.Errorf("security.advisories.allow[%d] (%s): %w", i, a.ID, err)
		}
		ch.Allow = append(ch.Allow, advisory.Allow{ID: a.ID, Expires: exp, Reason: a.Reason, Models: a.Models})
	}
	v.Checker = ch
	return v, nil
}
