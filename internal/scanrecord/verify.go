package scanrecord

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"time"

	"github.com/modelsync/modelsync/internal/advisory"
	"github.com/modelsync/modelsync/internal/mlflowclient"
	"github.com/modelsync/modelsync/internal/scan"
	"github.com/modelsync/modelsync/reconciler"
)

// TagDepKey keys the cached dependency summary: the advisories, the
// allow-list and spec.dependencies it was made with.
const TagDepKey = "modelsync.scan.depkey"

// maxRequirementFile bounds a dependency file kept while it streams past
// the scanner; MLflow writes a few hundred bytes.
const maxRequirementFile = 1 << 20

// Registry is the part of the MLflow client the verifier uses.
type Registry interface {
	GetModelVersion(ctx context.Context, model string, version int) (*mlflowclient.ModelVersion, error)
	SetModelVersionTag(ctx context.Context, model string, version int, key, value string) error
}

// Locator maps a version to its storage URI (mlflowclient.Locator).
type Locator interface {
	ArtifactURI(ctx context.Context, model string, version int) (string, error)
}

// Verifier scans versions at most once per artifact digest and scanner
// version, and checks that a version serves the artifacts it was approved
// with.
type Verifier struct {
	Registry Registry
	Locator  Locator
	S3       S3API
	// Checker checks dependencies; nil leaves them unchecked (no
	// dependencies tag, which the policy reports as not checked).
	Checker *advisory.Checker
	Options scan.Options
	Now     func() time.Time
}

// Subject is one version to verify.
type Subject struct {
	// Model is the manifest's name (allow-lists are per model); Registered
	// the MLflow registered model.
	Model, Registered string
	Version           int
	// SpecDependencies are the manifest's spec.dependencies.
	SpecDependencies []string
}

// Outcome is what Ensure did.
type Outcome struct {
	Record Record
	// Report is the full scan when one ran; nil when the tags were reused.
	Report *scan.Report
	// Reused is true when nothing but the listing was read.
	Reused bool
	// DependencyFilesRead counts files re-read for a dependency check
	// alone (advisories or allow-list changed since the scan).
	DependencyFilesRead int
}

func (v *Verifier) now() time.Time {
	if v.Now != nil {
		return v.Now()
	}
	return time.Now()
}

// Ensure returns the version's scan record, scanning only when the tags
// do not hold a current one for the objects listed now.
func (v *Verifier) Ensure(ctx context.Context, s Subject) (Outcome, error) {
	wrap := func(err error) error {
		return fmt.Errorf("model %s (registered %s) version %d: %w", s.Model, s.Registered, s.Version, err)
	}
	mv, err := v.Registry.GetModelVersion(ctx, s.Registered, s.Version)
	if err != nil {
		return Outcome{}, wrap(err)
	}
	uri, err := v.Locator.ArtifactURI(ctx, s.Registered, s.Version)
	if err != nil {
		return Outcome{}, wrap(err)
	}
	loc, err := ParseLocation(uri)
	if err != nil {
		return Outcome{}, wrap(err)
	}
	objs, err := List(ctx, v.S3, loc)
	if err != nil {
		return Outcome{}, wrap(err)
	}
	if len(objs) == 0 {
		return Outcome{}, wrap(fmt.Errorf("no artifacts at %s", loc))
	}
	listing := Fingerprint(objs)
	depKey := v.depKey(s)
	rec, ok := FromTags(mv.Tags)
	if ok && rec.Current() && rec.Listing == listing {
		out := Outcome{Record: rec, Reused: true}
		if v.Checker != nil && mv.Tags[TagDepKey] != depKey {
			// Only the advisories moved: read the few dependency files.
			var files []Object
			for _, o := range objs {
				if advisory.IsRequirementFile(o.Path) {
					files = append(files, o)
				}
			}
			reqs, err := v.readRequirements(ctx, loc, files)
			if err != nil {
				return Outcome{}, wrap(err)
			}
			out.DependencyFilesRead = len(files)
			d, err := v.checkDeps(ctx, s, reqs)
			if err != nil {
				return Outcome{}, wrap(err)
			}
			out.Record.Dependencies = &d
			if err := v.setTags(ctx, s, map[string]string{TagDependencies: fitDependencies(d), TagDepKey: depKey}); err != nil {
				return Outcome{}, wrap(err)
			}
		}
		return out, nil
	}

	tee := &teeSource{Source: &S3Source{API: v.S3, Location: loc, Objects: objs}, files: map[string][]byte{}}
	rep, err := scan.Scan(ctx, tee, v.Options)
	if err != nil {
		return Outcome{}, wrap(err)
	}
	rec = Record{Result: rep.Verdict, Digest: rep.Digest, Scanner: rep.Scanner, Listing: listing, ScannedAt: v.now().UTC().Truncate(time.Second),
		Findings: Summarize(rep), Approved: rec.Approved}
	fl := ListFiles(rep)
	rec.Files = &fl
	tags := rec.Tags()
	if v.Checker != nil {
		var reqs []advisory.Requirement
		for path, b := range tee.files {
			r, err := advisory.ParseRequirementFile(path, b)
			if err != nil {
				return Outcome{}, wrap(err)
			}
			reqs = append(reqs, r...)
		}
		d, err := v.checkDeps(ctx, s, reqs)
		if err != nil {
			return Outcome{}, wrap(err)
		}
		rec.Dependencies = &d
		tags[TagDependencies] = fitDependencies(d)
		tags[TagDepKey] = depKey
	}
	if err := v.setTags(ctx, s, tags); err != nil {
		return Outcome{}, wrap(err)
	}
	return Outcome{Record: rec, Report: &rep}, nil
}

func (v *Verifier) checkDeps(ctx context.Context, s Subject, reqs []advisory.Requirement) (Dependencies, error) {
	reqs = append(advisory.ParseSpecDependencies(s.SpecDependencies), reqs...)
	res, err := v.Checker.Check(ctx, s.Model, reqs)
	if err != nil {
		return Dependencies{}, err
	}
	return SummarizeDependencies(res), nil
}

func (v *Verifier) depKey(s Subject) string {
	if v.Checker == nil {
		return ""
	}
	h := sha256.New()
	online := ""
	if v.Checker.Online != nil {
		online = v.Checker.Online.BaseURL
	}
	// The day matters too: an allow-list entry expires with it.
	_ = json.NewEncoder(h).Encode([]any{scan.ScannerVersion, v.Checker.DB.Fingerprint(), v.Checker.Allow, s.SpecDependencies, online, v.now().UTC().Format(time.DateOnly)})
	return hex.EncodeToString(h.Sum(nil))[:32]
}

func (v *Verifier) setTags(ctx context.Context, s Subject, tags map[string]string) error {
	return WriteTags(ctx, v.Registry, s.Registered, s.Version, tags)
}

// WriteTags sets a record's tags (Record.Tags) on a registered version.
// The digest goes last: a reader that sees it sees the rest.
func WriteTags(ctx context.Context, reg Registry, model string, version int, tags map[string]string) error {
	for k, val := range tags {
		if k == TagDigest {
			continue
		}
		if err := reg.SetModelVersionTag(ctx, model, version, k, val); err != nil {
			return fmt.Errorf("tag %s: %w", k, err)
		}
	}
	if d, ok := tags[TagDigest]; ok {
		if err := reg.SetModelVersionTag(ctx, model, version, TagDigest, d); err != nil {
			return fmt.Errorf("tag %s: %w", TagDigest, err)
		}
	}
	return nil
}

func (v *Verifier) readRequirements(ctx context.Context, loc Location, files []Object) ([]advisory.Requirement, error) {
	var reqs []advisory.Requirement
	src := &S3Source{API: v.S3, Location: loc, Objects: files}
	err := src.Walk(ctx, func(path string, size int64, open func() (io.ReadCloser, error)) error {
		rc, err := open()
		if err != nil {
			return err
		}
		defer rc.Close()
		b, err := io.ReadAll(io.LimitReader(rc, maxRequirementFile+1))
		if err != nil {
			return fmt.Errorf("reading %s: %w", path, err)
		}
		if len(b) > maxRequirementFile {
			return fmt.Errorf("%s: larger than %d bytes", path, maxRequirementFile)
		}
		r, err := advisory.ParseRequirementFile(path, b)
		reqs = append(reqs, r...)
		return err
	})
	return reqs, err
}

// teeSource keeps the dependency files as the scanner streams them, so
// each object is read once.
type teeSource struct {
	scan.Source
	files map[string][]byte
}

func (t *teeSource) Walk(ctx context.Context, fn func(path string, size int64, open func() (io.ReadCloser, error)) error) error {
	return t.Source.Walk(ctx, func(path string, size int64, open func() (io.ReadCloser, error)) error {
		if !advisory.IsRequirementFile(path) || size > maxRequirementFile {
			return fn(path, size, open)
		}
		return fn(path, size, func() (io.ReadCloser, error) {
			rc, err := open()
			if err != nil {
				return nil, err
			}
			buf := &bytes.Buffer{}
			t.files[path] = nil
			return &teeCloser{Reader: io.TeeReader(rc, &limitWriter{w: buf, n: maxRequirementFile}), c: rc, done: func() { t.files[path] = buf.Bytes() }}, nil
		})
	})
}

type teeCloser struct {
	io.Reader
	c    io.Closer
	done func()
}

func (t *teeCloser) Close() error { t.done(); return t.c.Close() }

type limitWriter struct {
	w io.Writer
	n int64
}

func (l *limitWriter) Write(p []byte) (int, error) {
	if l.n > 0 {
		k := min(int64(len(p)), l.n)
		_, _ = l.w.Write(p[:k])
		l.n -= k
	}
	return len(p), nil
}

// IntegrityError says a version's artifacts differ from those it was first
// served with in an environment.
type IntegrityError struct {
	Model, Environment string
	Version            int
	Approved, Current  string
}

func (e *IntegrityError) Error() string {
	return fmt.Sprintf("model %s environment %s version %d: artifacts changed since approval (approved digest %s, current %s): refusing to serve it",
		e.Model, e.Environment, e.Version, e.Approved, e.Current)
}

// Verify ensures a scan and compares its digest with the digest recorded
// when the version was first served in env, recording it now when none is
// (first serve). A mismatch is an *IntegrityError.
func (v *Verifier) Verify(ctx context.Context, s Subject, env string) (Record, error) {
	out, err := v.Ensure(ctx, s)
	if err != nil {
		return Record{}, err
	}
	rec := out.Record
	approved, ok := rec.Approved[env]
	if !ok {
		if err := v.Registry.SetModelVersionTag(ctx, s.Registered, s.Version, ApprovedTag(env), rec.Digest); err != nil {
			return rec, fmt.Errorf("model %s environment %s version %d: recording approved digest: %w", s.Model, env, s.Version, err)
		}
		if rec.Approved == nil {
			rec.Approved = map[string]string{}
		}
		rec.Approved[env] = rec.Digest
		return rec, nil
	}
	if approved != rec.Digest {
		return rec, &IntegrityError{Model: s.Model, Environment: env, Version: s.Version, Approved: approved, Current: rec.Digest}
	}
	return rec, nil
}

// VerifyServing implements the controller's ArtifactVerifier.
func (v *Verifier) VerifyServing(ctx context.Context, m *reconciler.DesiredModel, env string, version int) error {
	s := Subject{Model: m.Name, Registered: m.RegisteredModel, Version: version}
	if s.Registered == "" {
		s.Registered = m.Name
	}
	if m.Manifest != nil {
		s.SpecDependencies = m.Manifest.Spec.Dependencies
	}
	_, err := v.Verify(ctx, s, env)
	return err
}
