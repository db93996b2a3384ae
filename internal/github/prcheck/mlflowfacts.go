package prcheck

import (
	"context"
	"fmt"
	"math"
	"strconv"
	"time"

	"github.com/modelsync/modelsync/internal/manifest"
	"github.com/modelsync/modelsync/internal/mlflowclient"
	"github.com/modelsync/modelsync/policy"
)

// MLflowFacts reads registry facts from an MLflow tracking server: for each
// model a comparison changes, the versions it moves in and the version
// serving prod, with their runs' metrics and audit tags.
type MLflowFacts struct {
	Client *mlflowclient.Client
	// Production and Staging name the environments the promotion and
	// performance rules speak of; empty means "prod" and "staging", the
	// default bundle's configuration.
	Production, Staging string
}

// Facts implements RegistryFacts. A version the registry does not know is
// left out, so the rules treat its facts as missing and deny; any other
// registry error fails the whole evaluation.
func (f *MLflowFacts) Facts(ctx context.Context, c *Comparison, now time.Time) (map[string]policy.RegistryModel, error) {
	prodEnv, stagingEnv := f.Production, f.Staging
	if prodEnv == "" {
		prodEnv = "prod"
	}
	if stagingEnv == "" {
		stagingEnv = "staging"
	}
	if now.IsZero() {
		now = time.Now()
	}
	wanted := map[string][]int{}
	for _, ch := range c.Changes {
		for _, v := range []int{ch.ToVersion, ch.CanaryTo, ch.FromVersion} {
			if v > 0 {
				wanted[ch.Model] = append(wanted[ch.Model], v)
			}
		}
	}
	out := map[string]policy.RegistryModel{}
	for model, versions := range wanted {
		registered := model
		if m, ok := c.Head.Model(model); ok {
			registered = m.RegisteredModel
		} else if m, ok := c.Base.Model(model); ok {
			registered = m.RegisteredModel
		}
		rm := policy.RegistryModel{Versions: map[string]policy.RegistryVersion{}}
		prod, err := f.prodVersion(ctx, c, model, registered, prodEnv)
		if err != nil {
			return nil, err
		}
		rm.ProdVersion = prod
		if prod > 0 {
			versions = append(versions, prod)
		}
		for _, v := range versions {
			key := strconv.Itoa(v)
			if _, done := rm.Versions[key]; done {
				continue
			}
			rv, ok, err := f.version(ctx, registered, v, stagingEnv, now)
			if err != nil {
				return nil, fmt.Errorf("model %s (registered %s) version %d: %w", model, registered, v, err)
			}
			if ok {
				rm.Versions[key] = rv
			}
		}
		out[model] = rm
	}
	return out, nil
}

// prodVersion is the version the registry serves in prod now: the prod
// alias in aliases mode; in stages mode the registry cannot say which
// stage holds prod's traffic, so the base's desired prod version is used.
func (f *MLflowFacts) prodVersion(ctx context.Context, c *Comparison, model, registered, prodEnv string) (int, error) {
	cfg := c.Base.Config
	if cfg == nil {
		return 0, nil
	}
	env, ok := cfg.Environment(prodEnv)
	if !ok {
		return 0, nil
	}
	if cfg.RegistryMode() != manifest.ModeAliases {
		if m, ok := c.Base.Model(model); ok {
			if e, ok := m.Env(prodEnv); ok {
				return e.Version, nil
			}
		}
		return 0, nil
	}
	mv, err := f.Client.GetModelVersionByAlias(ctx, registered, env.AliasName())
	if err != nil {
		if mlflowclient.IsNotFound(err) {
			return 0, nil
		}
		return 0, fmt.Errorf("model %s (registered %s): %s alias %q: %w", model, registered, prodEnv, env.AliasName(), err)
	}
	return mv.Version, nil
}

func (f *MLflowFacts) version(ctx context.Context, registered string, v int, stagingEnv string, now time.Time) (policy.RegistryVersion, bool, error) {
	mv, err := f.Client.GetModelVersion(ctx, registered, v)
	if err != nil {
		if mlflowclient.IsNotFound(err) {
			return policy.RegistryVersion{}, false, nil
		}
		return policy.RegistryVersion{}, false, err
	}
	rv := policy.RegistryVersion{RunMetrics: map[string]float64{}, Tags: mv.Tags, Aliases: mv.Aliases,
		CreatedAt: time.UnixMilli(mv.CreationTimestamp).UTC()}
	if rv.Tags == nil {
		rv.Tags = map[string]string{}
	}
	if rv.Aliases == nil {
		rv.Aliases = []string{}
	}
	if h, ok := policy.SoakHours(mv.Tags, stagingEnv, now); ok {
		rv.StagingHours = &h
	}
	if mv.RunID != "" {
		run, err := f.Client.GetRun(ctx, mv.RunID)
		if err != nil && !mlflowclient.IsNotFound(err) {
			return policy.RegistryVersion{}, false, fmt.Errorf("run %s: %w", mv.RunID, err)
		}
		if run != nil {
			for k, x := range run.MetricMap() {
				// JSON cannot carry NaN or infinities; a missing metric
				// is what the rules expect for them.
				if !math.IsNaN(x) && !math.IsInf(x, 0) {
					rv.RunMetrics[k] = x
				}
			}
		}
	}
	return rv, true, nil
}
