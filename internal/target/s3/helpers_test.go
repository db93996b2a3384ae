package s3

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/modelsync/modelsync/internal/manifest"
	"github.com/modelsync/modelsync/reconciler"
)

const day = 24 * time.Hour

func dur(d time.Duration) manifest.Duration { return manifest.Duration{Duration: d} }

// lifecycle is the built-in default lifecycle, adjusted.
func lifecycle(adjust ...func(*manifest.Lifecycle)) manifest.Lifecycle {
	l := manifest.Lifecycle{
		ActiveClass:      manifest.DefaultActiveClass,
		ArchivedClass:    manifest.DefaultArchivedClass,
		ArchiveAfter:     dur(manifest.DefaultArchiveAfter),
		DeepArchiveClass: manifest.DefaultDeepArchiveClass,
		RollbackWindow:   dur(manifest.DefaultRollbackWindow),
	}
	for _, f := range adjust {
		f(&l)
	}
	return l
}

func env(name string, v int) reconciler.DesiredEnv {
	return reconciler.DesiredEnv{Environment: name, Alias: name, Version: v}
}

func withCanary(e reconciler.DesiredEnv, v int) reconciler.DesiredEnv {
	e.Canary = &reconciler.DesiredCanary{Version: v, Alias: e.Alias + manifest.CanarySuffix, Weight: 10}
	return e
}

func model(name string, l manifest.Lifecycle, envs ...reconciler.DesiredEnv) reconciler.DesiredModel {
	return reconciler.DesiredModel{Name: name, RegisteredModel: name + "-registered", Lifecycle: l, Environments: envs}
}

func desiredState(models ...reconciler.DesiredModel) *reconciler.DesiredState {
	slices.SortFunc(models, func(a, b reconciler.DesiredModel) int {
		if a.Name < b.Name {
			return -1
		}
		if a.Name > b.Name {
			return 1
		}
		return 0
	})
	return &reconciler.DesiredState{Revision: "main@sha1:0123456789abcdef", Models: models}
}

// registry is test data standing in for what the MLflow registry would
// answer: versions with dates, and where each version's files are.
type registry struct {
	mu       sync.Mutex
	versions map[string][]reconciler.RegistryVersion
	uris     map[string]map[int]string
}

func newRegistry() *registry {
	return &registry{versions: map[string][]reconciler.RegistryVersion{}, uris: map[string]map[int]string{}}
}

func (r *registry) add(registered string, v reconciler.RegistryVersion, uri string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	vs := slices.DeleteFunc(r.versions[registered], func(x reconciler.RegistryVersion) bool { return x.Version == v.Version })
	r.versions[registered] = append(vs, v)
	if r.uris[registered] == nil {
		r.uris[registered] = map[int]string{}
	}
	r.uris[registered][v.Version] = uri
}

func (r *registry) ListVersions(_ context.Context, registered string) ([]reconciler.RegistryVersion, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	vs, ok := r.versions[registered]
	if !ok {
		return nil, fmt.Errorf("registered model %q not found", registered)
	}
	return slices.Clone(vs), nil
}

func (r *registry) ArtifactURI(_ context.Context, registered string, v int) (string, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	uri, ok := r.uris[registered][v]
	if !ok {
		return "", fmt.Errorf("registered model %q has no version %d", registered, v)
	}
	return uri, nil
}

// clock is an adjustable Config.Now.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Set(t time.Time) {
	c.mu.Lock()
	c.t = t
	c.mu.Unlock()
}

func slogTo(w io.Writer) *slog.Logger { return slog.New(slog.NewTextHandler(w, nil)) }
