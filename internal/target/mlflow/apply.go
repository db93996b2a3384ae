package mlflow

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/modelsync/modelsync/internal/mlflowclient"
	"github.com/modelsync/modelsync/reconciler"
)

// ValidateAction implements reconciler.ActionValidator: a plan whose
// payloads do not decode writes nothing.
func (t *Target) ValidateAction(a reconciler.Action) error {
	p, err := decode(a)
	if err != nil {
		return err
	}
	switch a.Kind {
	case KindSetAlias:
		if p.Alias == "" || p.Version <= 0 {
			return errors.New("set-alias needs an alias and a version")
		}
	case KindDeleteAlias:
		if p.Alias == "" {
			return errors.New("delete-alias needs an alias")
		}
	case KindStage:
		if p.Version <= 0 || p.Stage == "" {
			return errors.New("transition-stage needs a version and a stage")
		}
	case KindAuditTags, KindArchive, KindUnarchive:
		if p.Version <= 0 {
			return errors.New(a.Kind + " needs a version")
		}
		for k := range p.SetTags {
			if !strings.HasPrefix(k, mlflowclient.TagPrefix) {
				return fmt.Errorf("tag %q is outside the %s prefix", k, mlflowclient.TagPrefix)
			}
		}
		for _, k := range p.DeleteTag {
			if !strings.HasPrefix(k, mlflowclient.TagPrefix) {
				return fmt.Errorf("tag %q is outside the %s prefix", k, mlflowclient.TagPrefix)
			}
		}
		if _, set := p.SetTags[p.LastTag]; p.LastTag != "" && !set && !slices.Contains(p.DeleteTag, p.LastTag) {
			return fmt.Errorf("last tag %q is neither set nor deleted", p.LastTag)
		}
	default:
		return fmt.Errorf("unknown action kind %q", a.Kind)
	}
	return nil
}

func decode(a reconciler.Action) (payload, error) {
	var p payload
	if err := json.Unmarshal(a.Payload, &p); err != nil {
		return p, fmt.Errorf("payload: %w", err)
	}
	if p.Model == "" {
		return p, errors.New("payload names no registered model")
	}
	return p, nil
}

// Apply implements reconciler.TypedTarget. Every write is read-compare-write in
// the client, so a retried or repeated action does not write twice.
func (t *Target) Apply(ctx context.Context, a reconciler.Action) error {
	p, err := decode(a)
	if err != nil {
		return err
	}
	where := fmt.Sprintf("model %s", p.Model)
	if a.Environment != "" {
		where += " environment " + a.Environment
	}
	if p.Version > 0 {
		where += " version " + strconv.Itoa(p.Version)
	}
	switch a.Kind {
	case KindSetAlias:
		_, err = t.client.SetAliasIfDifferent(ctx, p.Model, p.Alias, p.Current, p.Version)
	case KindDeleteAlias:
		_, err = t.client.EnsureDeleteAlias(ctx, p.Model, p.Alias)
	case KindStage:
		err = t.ensureStage(ctx, p)
	default:
		// The plan compared these tags with the live version.
		err = t.client.WriteVersionTags(ctx, p.Model, p.Version, p.SetTags, p.DeleteTag, p.LastTag)
	}
	if err != nil {
		return fmt.Errorf("%s: %s %s: %w", where, a.Kind, a.Resource, err)
	}
	return nil
}

func (t *Target) ensureStage(ctx context.Context, p payload) error {
	mv, err := t.client.GetModelVersion(ctx, p.Model, p.Version)
	if err != nil {
		return err
	}
	if orStage(mv.CurrentStage) == p.Stage {
		return nil
	}
	_, err = t.client.TransitionModelVersionStage(ctx, p.Model, p.Version, p.Stage, false)
	return err
}
