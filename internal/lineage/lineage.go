// Package lineage reads where a registry version came from (run,
// parameters, metrics, datasets, artifacts) and which Git revision
// deployed it. `modelsync lineage` prints it; the dashboard shows it on
// the model page.
package lineage

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/modelsync/modelsync/internal/mlflowclient"
	"github.com/modelsync/modelsync/internal/redact"
	"github.com/modelsync/modelsync/internal/scan"
	"github.com/modelsync/modelsync/internal/scanrecord"
	"github.com/modelsync/modelsync/reconciler"
)

// Lineage is where one registry version came from: `modelsync lineage -o json`
// and the dashboard's model page show it.
type Lineage struct {
	Model       string             `json:"model"`
	Version     int                `json:"version"`
	Status      string             `json:"status"`
	Stage       string             `json:"stage,omitempty"`
	Aliases     []string           `json:"aliases"`
	CreatedAt   time.Time          `json:"createdAt"`
	Source      string             `json:"source"`
	ArtifactURI string             `json:"artifactUri,omitempty"`
	ArtifactErr string             `json:"artifactError,omitempty"`
	RunID       string             `json:"runId,omitempty"`
	Params      map[string]string  `json:"params,omitempty"`
	Metrics     map[string]float64 `json:"metrics,omitempty"`
	// DatasetInputs are the datasets the run logged with mlflow.log_input.
	DatasetInputs []DatasetInput `json:"datasetInputs"`
	// Datasets are tags whose key mentions a dataset, on the version or its
	// run ("run:" prefix): how datasets were recorded before log_input.
	Datasets   map[string]string `json:"datasets,omitempty"`
	Deployment Deployment        `json:"deployment"`
	// Scan is the artifact scan recorded on the version (modelsync scan,
	// check --scan or the reconciler), nil when it was never scanned.
	Scan        *Scan             `json:"scan"`
	VersionTags map[string]string `json:"versionTags,omitempty"`
	TrackingURI string            `json:"trackingUri"`
}

// DatasetInput is one dataset the version's run used.
type DatasetInput struct {
	Name       string `json:"name"`
	Digest     string `json:"digest,omitempty"`
	Context    string `json:"context,omitempty"`
	SourceType string `json:"sourceType,omitempty"`
	// Source is MLflow's JSON description of the source, e.g. {"uri": "s3://..."}.
	Source string            `json:"source,omitempty"`
	Tags   map[string]string `json:"tags,omitempty"`
}

// Deployment is what modelsync recorded on the version.
type Deployment struct {
	Revision     string `json:"revision,omitempty"`
	Environments string `json:"environments,omitempty"`
	DeployedBy   string `json:"deployedBy,omitempty"`
	Lifecycle    string `json:"lifecycle,omitempty"`
	ArchivedAt   string `json:"archivedAt,omitempty"`
}

// Scan is the version's recorded artifact scan, read from its tags.
type Scan struct {
	Result    scan.Verdict `json:"result"`
	Digest    string       `json:"digest"`
	Scanner   string       `json:"scanner"`
	ScannedAt time.Time    `json:"scannedAt"`
	// Current is false when another scanner version made the record: the
	// gate and the reconciler scan again before trusting it.
	Current  bool                     `json:"current"`
	Findings scanrecord.Findings      `json:"findings"`
	Files    []ScanFile               `json:"files"`
	Deps     *scanrecord.Dependencies `json:"dependencies,omitempty"`
	// Approved maps environments to the digest first served there.
	Approved map[string]string `json:"approved"`
	// OmittedFiles counts files without findings the tags leave out.
	OmittedFiles int `json:"omittedFiles,omitempty"`
}

// ScanFile is one file of the recorded scan with its findings.
type ScanFile struct {
	Path     string         `json:"path"`
	Format   string         `json:"format"`
	Verdict  scan.Verdict   `json:"verdict"`
	SHA256   string         `json:"sha256,omitempty"`
	Findings []scan.Finding `json:"findings"`
}

// scanOf reads the scan tags; nil when the version was never scanned.
func scanOf(tags map[string]string) *Scan {
	rec, ok := scanrecord.FromTags(tags)
	if !ok {
		return nil
	}
	s := &Scan{Result: rec.Result, Digest: rec.Digest, Scanner: rec.Scanner, ScannedAt: rec.ScannedAt, Current: rec.Current(),
		Findings: rec.Findings, Files: []ScanFile{}, Deps: rec.Dependencies, Approved: rec.Approved}
	if rec.Files != nil {
		s.OmittedFiles = rec.Files.OmittedFiles
		for _, fr := range rec.Files.Reports() {
			s.Files = append(s.Files, ScanFile{Path: fr.Path, Format: fr.Format, Verdict: fr.Verdict, SHA256: fr.SHA256, Findings: fr.Findings})
		}
	}
	return s
}

// Read gathers the lineage of one version.
func Read(ctx context.Context, c *mlflowclient.Client, loc reconciler.ArtifactLocator, model string, version int) (*Lineage, error) {
	mv, err := c.GetModelVersion(ctx, model, version)
	if err != nil {
		return nil, err
	}
	l := &Lineage{
		Model: model, Version: version, Status: mv.Status, Stage: mv.CurrentStage, Aliases: slices.Sorted(slices.Values(mv.Aliases)),
		CreatedAt: time.UnixMilli(mv.CreationTimestamp).UTC(), Source: mv.Source, RunID: mv.RunID, TrackingURI: c.TrackingURI(),
		Datasets: map[string]string{}, VersionTags: map[string]string{},
		Deployment: Deployment{
			Revision: mv.Tags[mlflowclient.TagRevision], Environments: mv.Tags[mlflowclient.TagEnvironments], DeployedBy: mv.Tags[mlflowclient.TagDeployedBy],
			Lifecycle: mv.Tags[mlflowclient.TagLifecycle], ArchivedAt: mv.Tags[mlflowclient.TagArchivedAt],
		},
	}
	if l.Aliases == nil {
		l.Aliases = []string{}
	}
	l.Scan = scanOf(mv.Tags)
	l.DatasetInputs = []DatasetInput{}
	for k, v := range mv.Tags {
		if !strings.HasPrefix(k, mlflowclient.TagPrefix) {
			l.VersionTags[k] = v
		}
		if strings.Contains(strings.ToLower(k), "dataset") {
			l.Datasets[k] = v
		}
	}
	uri, err := loc.ArtifactURI(ctx, model, version)
	if err != nil {
		l.ArtifactErr = err.Error()
	}
	l.ArtifactURI = uri
	if mv.RunID != "" {
		run, err := c.GetRun(ctx, mv.RunID)
		if err != nil {
			return nil, fmt.Errorf("model %s version %d: run %s: %w", model, version, mv.RunID, err)
		}
		l.Params = run.Params
		l.Metrics = run.MetricMap()
		for k, v := range run.Tags {
			if strings.Contains(strings.ToLower(k), "dataset") {
				l.Datasets["run:"+k] = v
			}
		}
		for _, in := range run.Inputs {
			l.DatasetInputs = append(l.DatasetInputs, DatasetInput{
				Name: in.Name, Digest: in.Digest, Context: in.Context, SourceType: in.SourceType, Source: safeSource(in.Source), Tags: in.Tags,
			})
		}
	}
	return l, nil
}

// safeSource passes every URL in a dataset source description through
// redact.URL: a source logged as a presigned or userinfo URL would
// otherwise print its credentials. A description that is not a JSON
// object is redacted as one URL.
func safeSource(src string) string {
	var fields map[string]any
	if json.Unmarshal([]byte(src), &fields) != nil {
		return redact.URL(src)
	}
	changed := false
	for k, v := range fields {
		if s, ok := v.(string); ok && strings.Contains(s, "://") {
			if r := redact.URL(s); r != s {
				fields[k], changed = r, true
			}
		}
	}
	if !changed {
		return src
	}
	b, err := json.Marshal(fields)
	if err != nil {
		return ""
	}
	return string(b)
}
