package rollback

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strings"

	"github.com/modelsync/modelsync/internal/gitsource"
	"github.com/modelsync/modelsync/reconciler"
)

// Override returns a desired state that holds only model, with env at
// version and the given revision and commit, for applying a rollback ahead
// of Git. The other models are left out so nothing else is touched, and
// pruning is off: to a target that prunes, the models left out would look
// deleted.
func Override(d *reconciler.DesiredState, model, env string, version int, revision string, commit reconciler.Commit) (*reconciler.DesiredState, error) {
	m, ok := d.Model(model)
	if !ok {
		for _, e := range d.Errors {
			if e.Model == model {
				return nil, fmt.Errorf("model %s cannot be applied now, its desired state does not resolve: %w", model, e)
			}
		}
		return nil, fmt.Errorf("model %s is not in the desired state of %s", model, d.Revision)
	}
	if _, ok := m.Env(env); !ok {
		return nil, fmt.Errorf("model %s does not run in environment %s at %s", model, env, d.Revision)
	}
	mc := *m
	mc.Environments = slices.Clone(m.Environments)
	e, _ := mc.Env(env)
	e.Version = version
	if revision != "" {
		e.Revision = revision
		e.Commit = commit
	}
	out := &reconciler.DesiredState{Revision: d.Revision, Models: []reconciler.DesiredModel{mc}}
	if d.Config != nil {
		cfg := *d.Config
		cfg.Prune = false
		out.Config = &cfg
	}
	return out, nil
}

// ApplyNow plans the overridden desired state against the targets and
// applies it. It refuses, writing nothing, when the plan has errors or
// touches any model but the one rolled back.
func ApplyNow(ctx context.Context, d *reconciler.DesiredState, targets []reconciler.Target, model, env string, version int) (*reconciler.Plan, *reconciler.ApplyResult, error) {
	p, err := reconciler.BuildPlan(ctx, d, targets)
	if err != nil {
		return nil, nil, fmt.Errorf("planning the rollback of model %s in %s to version %d: %w", model, env, version, err)
	}
	if errs := p.Errors(); len(errs) > 0 {
		msgs := make([]string, len(errs))
		for i, e := range errs {
			msgs[i] = e.Error()
		}
		return p, nil, fmt.Errorf("rollback of model %s in %s to version %d cannot be applied now, nothing was changed: %s", model, env, version, strings.Join(msgs, "; "))
	}
	for _, a := range p.Actions() {
		if a.Model != model {
			return p, nil, fmt.Errorf("rollback of model %s in %s: the plan touches model %s (%s); refusing to apply", model, env, a.Model, a.ID())
		}
	}
	res, err := reconciler.Apply(ctx, p, targets, reconciler.ApplyOptions{})
	if err != nil {
		return p, res, fmt.Errorf("applying the rollback of model %s in %s to version %d: %w", model, env, version, err)
	}
	if !res.OK() {
		var msgs []string
		for _, f := range res.Failed {
			msgs = append(msgs, f.Action.ID()+": "+f.Err)
		}
		return p, res, fmt.Errorf("applying the rollback of model %s in %s to version %d failed: %s (%d action(s) skipped)", model, env, version, strings.Join(msgs, "; "), len(res.Skipped))
	}
	return p, res, nil
}

// PinRequest is the body of the controller's POST /api/v1/pins.
type PinRequest struct {
	Model       string `json:"model"`
	Environment string `json:"environment"`
	Version     int    `json:"version"`
	Revision    string `json:"revision,omitempty"`
	Actor       string `json:"actor,omitempty"`
}

// PinError is a pin the server refused or could not be asked for.
// Retryable is true for transport failures and 5xx answers.
type PinError struct {
	Server     string
	StatusCode int
	Message    string
	Retryable  bool
	Err        error
}

func (e *PinError) Error() string {
	if e.StatusCode != 0 {
		return fmt.Sprintf("pinning at %s: HTTP %d: %s", e.Server, e.StatusCode, e.Message)
	}
	return fmt.Sprintf("pinning at %s: %v", e.Server, e.Err)
}

func (e *PinError) Unwrap() error { return e.Err }

// Pin asks a running controller to hold the model in the environment at
// the version until Git names it, so the reconcile loop does not undo an
// applied rollback before its pull request is merged.
func Pin(ctx context.Context, client *http.Client, server string, req PinRequest) error {
	if client == nil {
		client = http.DefaultClient
	}
	safe := gitsource.SanitizeURL(server)
	body, err := json.Marshal(req)
	if err != nil {
		return err
	}
	hr, err := http.NewRequestWithContext(ctx, http.MethodPost, strings.TrimSuffix(server, "/")+"/api/v1/pins", bytes.NewReader(body))
	if err != nil {
		return &PinError{Server: safe, Err: errors.New("invalid server URL")}
	}
	hr.Header.Set("Content-Type", "application/json")
	resp, err := client.Do(hr)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err // *url.Error repeats the URL, which may hold credentials
		}
		return &PinError{Server: safe, Retryable: ctx.Err() == nil, Err: err}
	}
	defer resp.Body.Close()
	if resp.StatusCode/100 == 2 {
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
		return nil
	}
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 4<<10))
	msg := strings.TrimSpace(string(b))
	var e struct {
		Error string `json:"error"`
	}
	if json.Unmarshal(b, &e) == nil && e.Error != "" {
		msg = e.Error
	}
	return &PinError{Server: safe, StatusCode: resp.StatusCode, Message: msg, Retryable: resp.StatusCode >= 500}
}
