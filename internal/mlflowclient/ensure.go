package mlflowclient

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"
)

// The Ensure* helpers make writes safe to repeat. Each one reads the live
// state, writes only when it differs, and after a write whose outcome is
// unknown (connection dropped after sending, 500/502/504, attempt timeout)
// reads again instead of blindly resending. A write therefore takes effect
// at most once per helper call however the network behaves, and changed
// reports whether the registry was modified.

// converge writes until check reports the desired state. knownDone, when
// non-nil, replaces the first check (the caller already read the state).
func (c *Client) converge(ctx context.Context, knownDone *bool, check func(context.Context) (bool, error), write func(context.Context) error) (bool, error) {
	var done bool
	if knownDone != nil {
		done = *knownDone
	} else {
		var err error
		if done, err = check(ctx); err != nil {
			return false, err
		}
	}
	if done {
		return false, nil
	}
	for attempt := 0; ; attempt++ {
		werr := write(ctx)
		if werr == nil {
			return true, nil
		}
		// Rejected by the server, unrecoverable, or already retried as far as
		// the policy allows: nothing a re-read can change.
		if ctx.Err() != nil || !IsRetryable(werr) || definitelyFailed(werr) || surelyNotApplied(werr) {
			return false, werr
		}
		done, err := check(ctx)
		if err != nil {
			return false, fmt.Errorf("%w (state unknown: re-read failed: %v)", werr, err)
		}
		if done {
			return true, nil
		}
		if attempt >= c.maxRetries {
			return false, werr
		}
		if err := sleepCtx(ctx, c.backoff(attempt)); err != nil {
			return false, werr
		}
	}
}

func sleepCtx(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// EnsureAlias points alias at version unless it already does. changed is
// false when no write was needed.
func (c *Client) EnsureAlias(ctx context.Context, model, alias string, version int) (bool, error) {
	changed, err := c.converge(ctx, nil, c.aliasIs(model, alias, version), func(ctx context.Context) error {
		return c.SetAlias(ctx, model, alias, version)
	})
	if err != nil {
		return changed, fmt.Errorf("ensure alias %q of model %q at version %d: %w", alias, model, version, err)
	}
	return changed, nil
}

// SetAliasIfDifferent is EnsureAlias for a caller that has already read the
// alias (current = 0 means unset), e.g. from one ReadAliases per model: it
// sends nothing when current == desired and re-reads only after a write with
// an unknown outcome.
func (c *Client) SetAliasIfDifferent(ctx context.Context, model, alias string, current, desired int) (bool, error) {
	done := current == desired
	changed, err := c.converge(ctx, &done, c.aliasIs(model, alias, desired), func(ctx context.Context) error {
		return c.SetAlias(ctx, model, alias, desired)
	})
	if err != nil {
		return changed, fmt.Errorf("move alias %q of model %q from version %d to %d: %w", alias, model, current, desired, err)
	}
	return changed, nil
}

// EnsureDeleteAlias removes alias unless it is already unset.
func (c *Client) EnsureDeleteAlias(ctx context.Context, model, alias string) (bool, error) {
	changed, err := c.converge(ctx, nil, c.aliasIs(model, alias, 0), func(ctx context.Context) error {
		return c.DeleteAlias(ctx, model, alias)
	})
	if err != nil {
		return changed, fmt.Errorf("ensure alias %q of model %q is unset: %w", alias, model, err)
	}
	return changed, nil
}

// aliasIs checks the live alias map; version 0 means "not set".
func (c *Client) aliasIs(model, alias string, version int) func(context.Context) (bool, error) {
	return func(ctx context.Context) (bool, error) {
		aliases, err := c.ReadAliases(ctx, model)
		if err != nil {
			return false, err
		}
		return aliases[alias] == version, nil
	}
}

// EnsureVersionTag sets key=value on a version unless it is already set.
func (c *Client) EnsureVersionTag(ctx context.Context, model string, version int, key, value string) (bool, error) {
	check := func(ctx context.Context) (bool, error) {
		mv, err := c.GetModelVersion(ctx, model, version)
		if err != nil {
			return false, err
		}
		v, ok := mv.Tags[key]
		return ok && v == value, nil
	}
	changed, err := c.converge(ctx, nil, check, func(ctx context.Context) error {
		return c.SetModelVersionTag(ctx, model, version, key, value)
	})
	if err != nil {
		return changed, fmt.Errorf("ensure tag %q on model %q version %d: %w", key, model, version, err)
	}
	return changed, nil
}

// EnsureDeleteVersionTag removes a version tag unless it is already absent.
func (c *Client) EnsureDeleteVersionTag(ctx context.Context, model string, version int, key string) (bool, error) {
	check := func(ctx context.Context) (bool, error) {
		mv, err := c.GetModelVersion(ctx, model, version)
		if err != nil {
			return false, err
		}
		_, ok := mv.Tags[key]
		return !ok, nil
	}
	changed, err := c.converge(ctx, nil, check, func(ctx context.Context) error {
		return c.DeleteModelVersionTag(ctx, model, version, key)
	})
	if err != nil {
		return changed, fmt.Errorf("ensure tag %q is absent from model %q version %d: %w", key, model, version, err)
	}
	return changed, nil
}

// EnsureRegisteredModelTag sets key=value on a model unless already set.
func (c *Client) EnsureRegisteredModelTag(ctx context.Context, model, key, value string) (bool, error) {
	check := func(ctx context.Context) (bool, error) {
		m, err := c.GetRegisteredModel(ctx, model)
		if err != nil {
			return false, err
		}
		v, ok := m.Tags[key]
		return ok && v == value, nil
	}
	changed, err := c.converge(ctx, nil, check, func(ctx context.Context) error {
		return c.SetRegisteredModelTag(ctx, model, key, value)
	})
	if err != nil {
		return changed, fmt.Errorf("ensure tag %q on model %q: %w", key, model, err)
	}
	return changed, nil
}

// EnsureRegisteredModel creates the model unless it exists. It does not
// reconcile the description or tags of an existing model.
func (c *Client) EnsureRegisteredModel(ctx context.Context, r CreateRegisteredModelRequest) (m *RegisteredModel, created bool, err error) {
	var found *RegisteredModel
	check := func(ctx context.Context) (bool, error) {
		got, err := c.GetRegisteredModel(ctx, r.Name)
		if IsNotFound(err) {
			return false, nil
		}
		if err != nil {
			return false, err
		}
		found = got
		return true, nil
	}
	raced := false
	changed, err := c.converge(ctx, nil, check, func(ctx context.Context) error {
		got, err := c.CreateRegisteredModel(ctx, r)
		if IsAlreadyExists(err) {
			// Another creator won, or an earlier attempt of ours landed.
			if ok, cerr := check(ctx); cerr == nil && ok {
				raced = true
				return nil
			}
		}
		if err == nil {
			found = got
		}
		return err
	})
	if err != nil {
		return nil, false, fmt.Errorf("ensure registered model %q: %w", r.Name, err)
	}
	return found, changed && !raced, nil
}

// IdempotencyTagKey is the version tag EnsureModelVersion uses to find a
// version it registered before.
const IdempotencyTagKey = "modelsync.idempotency_key"

// EnsureModelVersion registers a version at most once per key: it looks for
// a version of r.Name tagged IdempotencyTagKey=key, and creates one (with
// that tag) only when none exists. A create whose outcome is unknown is
// followed by another lookup, never by a blind resend.
func (c *Client) EnsureModelVersion(ctx context.Context, r CreateModelVersionRequest, key string) (mv *ModelVersion, created bool, err error) {
	if err := need("idempotency key", key); err != nil {
		return nil, false, err
	}
	if strings.ContainsAny(r.Name+key, "'\\") {
		return nil, false, fmt.Errorf("%w: model %q / key %q: quotes and backslashes cannot be used in a search filter", ErrInvalidArgument, r.Name, key)
	}
	filter := fmt.Sprintf("name = '%s' AND tags.`%s` = '%s'", r.Name, IdempotencyTagKey, key)
	check := func(ctx context.Context) (bool, error) {
		vs, err := c.SearchModelVersions(ctx, SearchOptions{Filter: filter, OrderBy: []string{"version_number ASC"}})
		if err != nil {
			return false, err
		}
		if len(vs) == 0 {
			return false, nil
		}
		// Two versions with one key can only come from writers outside this
		// helper; the oldest is the canonical one.
		v := vs[0]
		mv = &v
		return true, nil
	}
	tags := make(map[string]string, len(r.Tags)+1)
	for k, v := range r.Tags {
		tags[k] = v
	}
	tags[IdempotencyTagKey] = key
	r.Tags = tags
	created, err = c.converge(ctx, nil, check, func(ctx context.Context) error {
		got, err := c.CreateModelVersion(ctx, r)
		if err == nil {
			mv = got
		}
		return err
	})
	if err != nil {
		return nil, false, fmt.Errorf("ensure version of model %q with key %q: %w", r.Name, key, err)
	}
	return mv, created, nil
}

// versionTagIs checks one version tag: value when present, absence when not.
func (c *Client) versionTagIs(model string, version int, key, value string, present bool) func(context.Context) (bool, error) {
	return func(ctx context.Context) (bool, error) {
		mv, err := c.GetModelVersion(ctx, model, version)
		if err != nil {
			return false, err
		}
		v, ok := mv.Tags[key]
		if !present {
			return !ok, nil
		}
		return ok && v == value, nil
	}
}

// WriteVersionTags sets and deletes version tags that the caller has already
// compared with the live version (say, from a version search), so no read
// precedes the writes. After a write with an unknown outcome it re-reads, as
// the Ensure helpers do, so each change still takes effect at most once.
//
// MLflow takes one tag per request, so a change of several tags can stop
// halfway. last names the key (set or deleted) that callers compare to tell
// whether the change is complete; it is written after every other key, so a
// change interrupted at any point is still seen as unfinished and redone.
// The other keys go in sorted order, sets before deletes.
func (c *Client) WriteVersionTags(ctx context.Context, model string, version int, set map[string]string, del []string, last string) error {
	keys := make([]string, 0, len(set))
	for k := range set {
		if k != last {
			keys = append(keys, k)
		}
	}
	slices.Sort(keys)
	dels := slices.DeleteFunc(slices.Clone(del), func(k string) bool { return k == last })
	setTag := func(k, v string) error {
		notDone := false
		if _, err := c.converge(ctx, &notDone, c.versionTagIs(model, version, k, v, true), func(ctx context.Context) error {
			return c.SetModelVersionTag(ctx, model, version, k, v)
		}); err != nil {
			return fmt.Errorf("set tag %q on model %q version %d: %w", k, model, version, err)
		}
		return nil
	}
	deleteTag := func(k string) error {
		notDone := false
		if _, err := c.converge(ctx, &notDone, c.versionTagIs(model, version, k, "", false), func(ctx context.Context) error {
			return c.DeleteModelVersionTag(ctx, model, version, k)
		}); err != nil {
			return fmt.Errorf("delete tag %q from model %q version %d: %w", k, model, version, err)
		}
		return nil
	}
	for _, k := range keys {
		if err := setTag(k, set[k]); err != nil {
			return err
		}
	}
	for _, k := range dels {
		if err := deleteTag(k); err != nil {
			return err
		}
	}
	if v, ok := set[last]; ok && last != "" {
		return setTag(last, v)
	}
	if last != "" && slices.Contains(del, last) {
		return deleteTag(last)
	}
	return nil
}
