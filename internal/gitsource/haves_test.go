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

// An unchanged poll answers from the last result without parsing the tags
// again, and what a caller does to its copy stays with that caller.
func TestUnchangedPollReusesItsResult(t *testing.T) {
	w, _, src, head := servedRepo(t)
	w.Tag("churn/v1.0.0", "release")
	w.Push("--tags")
	first, err := src.Sync(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if len(first.Tags) != 1 || first.Heads["main"] != head {
		t.Fatalf("first sync: %+v", first)
	}
	first.Heads["main"] = "changed by the caller"
	first.Tags[0].Model = "changed by the caller"
	second, err := src.Sync(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if second.Changed || second.Heads["main"] != head || second.Tags[0].Model != "churn" {
		t.Fatalf("unchanged poll = %+v; a caller's change leaked into the Source", second)
	}
	src.mu.Lock()
	memo := src.knownSnap
	src.mu.Unlock()
	if memo == nil || memo.Tags[0].Model != "churn" {
		t.Fatalf("no remembered result after an unchanged poll: %+v", memo)
	}
	w.Tag("churn/v1.1.0", "release")
	w.Push("--tags")
	third, err := src.Sync(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if !third.Changed || len(third.Tags) != 2 {
		t.Fatalf("after a new tag: %+v", third)
	}
}
