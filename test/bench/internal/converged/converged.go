// Package converged makes what the benchmarks start from: the generated
// models repository (n models × dev, staging, prod) and the registry a
// finished first sync of it leaves in MLflow's PostgreSQL store. The
// controller and plan benchmarks share it so they measure the same state.
package converged

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"time"

	"github.com/modelsync/modelsync/test/testenv"
)

// ModelName is the generated repository's name of model i.
func ModelName(i int) string { return fmt.Sprintf("model-%04d", i) }

// ModelYAML is model i's model.yaml as generated (before its release line).
func ModelYAML(i int) string {
	return fmt.Sprintf(`apiVersion: modelsync.dev/v1alpha1
kind: Model
metadata:
  name: %s
spec:
  owners: [owner-%d]
  environments:
    dev: {version: 3}
    staging: {version: 2}
    prod: {version: 1}
  serving: {path: serving, modelFormat: sklearn}
`, ModelName(i), i%50)
}

const RepoConfig = `apiVersion: modelsync.dev/v1alpha1
kind: Repository
environments:
  - {name: dev, namespace: models-dev, source: main}
  - {name: staging, namespace: models-staging, source: main}
  - {name: prod, namespace: models-prod, source: releases}
`

// Generate writes a repository of n models into dir with git fast-import
// (a commit and a tag per model through git commands took minutes per
// thousand models): one commit with every model (dev v3, staging v2 on
// main, prod v1), then one release commit per model that appends a line to
// its model.yaml (batch models per release commit), tagged <model>/v1.0.0
// with an annotated tag. The work
// tree is checked out, for the benchmark's later commits.
func Generate(dir string, n, batch int) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	if err := Git(dir, "init", "-q", "-b", "main", "."); err != nil {
		return err
	}
	cmd := exec.Command("git", "fast-import", "--quiet", "--done")
	cmd.Dir = dir
	cmd.Stderr = os.Stderr
	in, err := cmd.StdinPipe()
	if err != nil {
		return err
	}
	if err := cmd.Start(); err != nil {
		return err
	}
	w := bufio.NewWriterSize(in, 1<<20)
	base := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC).Unix()
	data := func(s string) { fmt.Fprintf(w, "data %d\n%s\n", len(s), s) }
	file := func(path, body string) {
		fmt.Fprintf(w, "M 100644 inline %s\n", path)
		data(body)
	}
	fmt.Fprintf(w, "commit refs/heads/main\nmark :1\ncommitter bench <bench@example.com> %d +0000\n", base)
	data("generated")
	file("modelsync.yaml", RepoConfig)
	for i := range n {
		name := ModelName(i)
		file("models/"+name+"/model.yaml", ModelYAML(i))
		file("models/"+name+"/serving/kustomization.yaml", "resources: [isvc.yaml]\n")
		file("models/"+name+"/serving/isvc.yaml", "apiVersion: serving.kserve.io/v1beta1\nkind: InferenceService\nmetadata: {name: "+name+"}\nspec: {predictor: {model: {modelFormat: {name: sklearn}}}}\n")
	}
	// Models are released batch models at a commit (1: each at its own,
	// as in a repository where models ship independently), so prod reads
	// n/batch commits' trees, not one. Each release commit writes a new
	// models/ directory of n entries: at batch 1 that is n² entries, which
	// past 10,000 models takes longer to generate than anything measured.
	batch = max(1, batch)
	for first := 0; first < n; first += batch {
		mark := first/batch + 2
		at := base + int64(mark)
		fmt.Fprintf(w, "commit refs/heads/main\nmark :%d\ncommitter bench <bench@example.com> %d +0000\n", mark, at)
		data(fmt.Sprintf("release %s and %d more", ModelName(first), min(batch, n-first)-1))
		for i := first; i < min(first+batch, n); i++ {
			name := ModelName(i)
			file("models/"+name+"/model.yaml", ModelYAML(i)+"# released as "+name+"/v1.0.0\n")
		}
		for i := first; i < min(first+batch, n); i++ {
			fmt.Fprintf(w, "tag %s/v1.0.0\nfrom :%d\ntagger bench <bench@example.com> %d +0000\n", ModelName(i), mark, at)
			data("release")
		}
	}
	fmt.Fprintln(w, "done")
	if err := w.Flush(); err != nil {
		return err
	}
	if err := in.Close(); err != nil {
		return err
	}
	if err := cmd.Wait(); err != nil {
		return fmt.Errorf("git fast-import: %w", err)
	}
	return Git(dir, "reset", "-q", "--hard", "main")
}

// SeedMLflow writes into MLflow's PostgreSQL store, by SQL, what the
// first sync of the generated repository leaves in the registry: n
// registered models with versions 1-3 (READY), the aliases dev→3,
// staging→2, prod→1, and on each version the audit tags modelsync writes
// (environments, the residency stamp, revision and deployed_by of the same
// shape). Registering through the API and a first sync take minutes per
// thousand models on this machine; the runs that follow measure against
// the same server either way, and the benchmark checks that the
// controller's first pass over the seeded store writes nothing.
func SeedMLflow(ctx context.Context, srv *testenv.MLflow, n int) error {
	pg := srv.Postgres()
	if pg == nil {
		return errors.New("-seed needs -backend postgres")
	}
	ms := time.Now().UnixMilli()
	stamp := time.Now().UTC().Format(time.RFC3339)
	names := fmt.Sprintf(`(SELECT 'model-' || CASE WHEN i < 10000 THEN lpad(i::text, 4, '0') ELSE i::text END AS name
		FROM generate_series(0, %d) AS i) AS m`, n-1)
	placements := `(VALUES (1, 'prod'), (2, 'staging'), (3, 'dev')) AS p(version, env)`
	stmts := []string{
		fmt.Sprintf(`INSERT INTO registered_models (name, creation_time, last_updated_time) SELECT name, %d, %d FROM %s`, ms, ms, names),
		fmt.Sprintf(`INSERT INTO model_versions (name, version, creation_time, last_updated_time, current_stage, source, status, storage_location)
			SELECT name, version, %d, %d, 'None', 's3://models/' || name || '/' || version, 'READY', 's3://models/' || name || '/' || version
			FROM %s CROSS JOIN %s`, ms, ms, names, placements),
		fmt.Sprintf(`INSERT INTO registered_model_aliases (alias, version, name) SELECT env, version, name FROM %s CROSS JOIN %s`, names, placements),
		fmt.Sprintf(`INSERT INTO model_version_tags (key, value, name, version)
			SELECT t.key, t.value, name, version FROM %s CROSS JOIN %s CROSS JOIN LATERAL (VALUES
				('modelsync.environments', env),
				('modelsync.audit.' || env || '.since', '%s'),
				('modelsync.deployed_by', 'bench <bench@example.com>'),
				('modelsync.revision', CASE WHEN env = 'prod' THEN name || '/v1.0.0' ELSE 'main' END || '@sha1:' || substr(md5(name) || md5(env), 1, 40))
			) AS t(key, value)`, names, placements, stamp),
	}
	for _, s := range stmts {
		if _, err := pg.Query(ctx, "", s); err != nil {
			return fmt.Errorf("seeding %d models: %w", n, err)
		}
	}
	got, err := pg.Query(ctx, "", "SELECT count(*) FROM registered_model_aliases")
	if err != nil {
		return err
	}
	if strings.TrimSpace(got) != fmt.Sprint(3*n) {
		return fmt.Errorf("seeded %s aliases, want %d", got, 3*n)
	}
	return nil
}

// Git runs git in dir as the benchmark's committer.
func Git(dir string, args ...string) error {
	cmd := exec.Command("git", append([]string{"-c", "user.name=bench", "-c", "user.email=bench@example.com"}, args...)...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "GIT_TERMINAL_PROMPT=0", "GIT_CONFIG_NOSYSTEM=1")
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("git %s: %w\n%s", args[0], err, out)
	}
	return nil
}
