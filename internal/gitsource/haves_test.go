package gitsource

import (
	"fmt"
	"testing"

	"github.com/go-git/go-git/v5/plumbing"
)

// A repository with more refs than maxHaves offers the branches and then
// the first other refs by name, and a later fetch still brings what is
// new.
func TestHavesAreBoundedBranchesFirst(t *testing.T) {
	w, _, src, _ := servedRepo(t)
	for i := range maxHaves + 40 {
		w.Tag(fmt.Sprintf("m%03d/v1.0.0", i), "release") // annotated: one object each
	}
	w.Push("--tags")
	if _, err := src.Sync(t.Context()); err != nil {
		t.Fatal(err)
	}
	src.mu.Lock()
	have, err := src.localRefs()
	var haves []plumbing.Hash
	if err == nil {
		haves = src.havesLocked(have)
	}
	src.mu.Unlock()
	if err != nil {
		t.Fatal(err)
	}
	if len(have) <= maxHaves || len(haves) != maxHaves {
		t.Fatalf("%d refs gave %d haves, want %d", len(have), len(haves), maxHaves)
	}
	if main := plumbing.NewHash(have["refs/heads/main"]); haves[0] != main {
		t.Fatalf("first have %s, want main's tip %s", haves[0], main)
	}

	w.WriteFile("models/churn/model.yaml", "name: churn\nv: 2\n")
	next := w.Commit("next")
	w.Push()
	res, err := src.Sync(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if res.Heads["main"] != next {
		t.Fatalf("main after the fetch = %s, want %s", res.Heads["main"], next)
	}
	if _, err := src.ChangedPaths(have["refs/heads/main"], next); err != nil {
		t.Fatal(err)
	}
}
