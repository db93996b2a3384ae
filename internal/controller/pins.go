package controller

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"sync"
	"time"
)

// Pin holds one model in one environment at a version until Git asks for
// the same version, at which point the controller releases it. It is what
// `rollback --now` creates: the rollback takes effect at once, and the Git
// revert that follows makes it permanent without a fight between the two.
type Pin struct {
	Model       string `json:"model"`
	Environment string `json:"environment"`
	Version     int    `json:"version"`
	// Revision names the known-good state the pin returns to, e.g. the
	// revision that last deployed Version; it is recorded on the actions.
	Revision string `json:"revision,omitempty"`
	// Actor is who pinned, e.g. "cli:alice"; audit entries carry it.
	Actor     string    `json:"actor,omitempty"`
	CreatedAt time.Time `json:"createdAt"`
}

// pinStore keeps pins in <StateDir>/pins.json. Every change rewrites the
// file through a temporary file and rename, so a crash leaves either the old
// or the new set, never a torn file. Without a state dir pins live in
// memory only.
type pinStore struct {
	path string
	mu   sync.Mutex
	pins map[Key]Pin
}

const pinsFile = "pins.json"

func openPinStore(stateDir string) (*pinStore, error) {
	s := &pinStore{pins: map[Key]Pin{}}
	if stateDir == "" {
		return s, nil
	}
	if err := os.MkdirAll(stateDir, 0o700); err != nil {
		return nil, fmt.Errorf("state dir: %w", err)
	}
	s.path = filepath.Join(stateDir, pinsFile)
	b, err := os.ReadFile(s.path)
	if errors.Is(err, os.ErrNotExist) {
		return s, nil
	}
	if err != nil {
		return nil, fmt.Errorf("reading pins: %w", err)
	}
	var list []Pin
	if err := json.Unmarshal(b, &list); err != nil {
		return nil, fmt.Errorf("reading pins from %s: %w", s.path, err)
	}
	for _, p := range list {
		s.pins[Key{Model: p.Model, Environment: p.Environment}] = p
	}
	return s, nil
}

func (s *pinStore) get(k Key) (Pin, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	p, ok := s.pins[k]
	return p, ok
}

func (s *pinStore) list() []Pin {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.listLocked()
}

func (s *pinStore) listLocked() []Pin {
	out := make([]Pin, 0, len(s.pins))
	for _, p := range s.pins {
		out = append(out, p)
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Model != out[j].Model {
			return out[i].Model < out[j].Model
		}
		return out[i].Environment < out[j].Environment
	})
	return out
}

func (s *pinStore) put(p Pin) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	k := Key{Model: p.Model, Environment: p.Environment}
	old, had := s.pins[k]
	s.pins[k] = p
	if err := s.saveLocked(); err != nil {
		if had {
			s.pins[k] = old
		} else {
			delete(s.pins, k)
		}
		return err
	}
	return nil
}

// remove deletes the pin; when version is non-zero only a pin at that
// version is removed, so a release racing a new pin keeps the new one.
func (s *pinStore) remove(k Key, version int) (bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	old, ok := s.pins[k]
	if !ok || (version != 0 && old.Version != version) {
		return false, nil
	}
	delete(s.pins, k)
	if err := s.saveLocked(); err != nil {
		s.pins[k] = old
		return false, err
	}
	return true, nil
}

func (s *pinStore) saveLocked() error {
	if s.path == "" {
		return nil
	}
	b, err := json.MarshalIndent(s.listLocked(), "", "  ")
	if err != nil {
		return err
	}
	tmp, err := os.CreateTemp(filepath.Dir(s.path), ".pins-*.json")
	if err != nil {
		return fmt.Errorf("saving pins: %w", err)
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(append(b, '\n')); err != nil {
		tmp.Close()
		return fmt.Errorf("saving pins: %w", err)
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return fmt.Errorf("saving pins: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("saving pins: %w", err)
	}
	if err := os.Rename(tmp.Name(), s.path); err != nil {
		return fmt.Errorf("saving pins: %w", err)
	}
	return nil
}

// Pin holds model/env at version (see Pin). The pin is stored before the
// key is queued, so it survives a restart that happens in between.
func (c *Controller) Pin(model, env string, version int, revision, actor string) (Pin, error) {
	if model == "" || env == "" || version < 1 {
		return Pin{}, fmt.Errorf("pin needs a model, an environment and a version >= 1 (got model %q environment %q version %d)", model, env, version)
	}
	c.mu.Lock()
	d := c.desired
	c.mu.Unlock()
	if d != nil {
		m, ok := d.Model(model)
		if !ok {
			return Pin{}, &NotFoundError{What: "model " + model}
		}
		if _, ok := m.Env(env); !ok {
			return Pin{}, &NotFoundError{What: "model " + model + " in environment " + env}
		}
	}
	p := Pin{Model: model, Environment: env, Version: version, Revision: revision, Actor: actor, CreatedAt: c.opts.Now().UTC()}
	if err := c.pins.put(p); err != nil {
		return Pin{}, fmt.Errorf("pinning model %s environment %s at version %d: %w", model, env, version, err)
	}
	c.writeAudit(AuditEntry{Actor: orActor(actor), Revision: revision, Model: model, Environment: env, Action: "pin", To: "v" + strconv.Itoa(version), Result: "applied"})
	k := Key{Model: model, Environment: env}
	c.queue.Forget(k)
	c.queue.Add(k)
	return p, nil
}

// Unpin removes a pin; Git's desired state applies again.
func (c *Controller) Unpin(model, env, actor string) (bool, error) {
	k := Key{Model: model, Environment: env}
	removed, err := c.pins.remove(k, 0)
	if err != nil {
		return false, fmt.Errorf("unpinning model %s environment %s: %w", model, env, err)
	}
	if removed {
		c.writeAudit(AuditEntry{Actor: orActor(actor), Model: model, Environment: env, Action: "unpin", To: "git", Result: "applied"})
		c.queue.Forget(k)
		c.queue.Add(k)
	}
	return removed, nil
}

// Pins lists the pins in model, environment order.
func (c *Controller) Pins() []Pin { return c.pins.list() }

func orActor(a string) string {
	if a == "" {
		return "api"
	}
	return a
}

// NotFoundError means Git has no such model or environment.
type NotFoundError struct{ What string }

func (e *NotFoundError) Error() string { return e.What + " is not in the models repository" }
