package mlflowclient

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"strconv"
)

// Float is a metric value. Protobuf JSON encodes non-finite doubles as the
// strings "NaN", "Infinity" and "-Infinity", which encoding/json cannot put
// into a float64; Float accepts both forms and writes them back the same way.
type Float float64

// UnmarshalJSON accepts a JSON number or one of the non-finite strings.
func (f *Float) UnmarshalJSON(b []byte) error {
	b = bytes.TrimSpace(b)
	if len(b) > 0 && b[0] == '"' {
		var s string
		if err := json.Unmarshal(b, &s); err != nil {
			return err
		}
		switch s {
		case "NaN":
			*f = Float(math.NaN())
		case "Infinity":
			*f = Float(math.Inf(1))
		case "-Infinity":
			*f = Float(math.Inf(-1))
		default:
			// Protobuf JSON also allows finite numbers quoted; other spellings
			// of the non-finite values ("nan", "inf") are not protobuf JSON.
			v, err := strconv.ParseFloat(s, 64)
			if err != nil || math.IsNaN(v) || math.IsInf(v, 0) {
				return fmt.Errorf("mlflow: metric value %q is not a number", s)
			}
			*f = Float(v)
		}
		return nil
	}
	var v float64
	if err := json.Unmarshal(b, &v); err != nil {
		return err
	}
	*f = Float(v)
	return nil
}

// MarshalJSON writes finite values as numbers and the others as protobuf
// JSON strings, which MLflow's request parser accepts for double fields.
func (f Float) MarshalJSON() ([]byte, error) {
	v := float64(f)
	switch {
	case math.IsNaN(v):
		return []byte(`"NaN"`), nil
	case math.IsInf(v, 1):
		return []byte(`"Infinity"`), nil
	case math.IsInf(v, -1):
		return []byte(`"-Infinity"`), nil
	}
	return json.Marshal(v)
}

// flexInt decodes an integer sent either as a JSON number or as a string
// (protobuf JSON quotes int64 and MLflow quotes model version numbers).
type flexInt int64

func (n *flexInt) UnmarshalJSON(b []byte) error {
	b = bytes.TrimSpace(b)
	if bytes.Equal(b, []byte("null")) {
		return nil
	}
	if len(b) > 0 && b[0] == '"' {
		var s string
		if err := json.Unmarshal(b, &s); err != nil {
			return err
		}
		if s == "" {
			*n = 0
			return nil
		}
		b = []byte(s)
	}
	v, err := strconv.ParseInt(string(b), 10, 64)
	if err != nil {
		return fmt.Errorf("mlflow: %q is not an integer", b)
	}
	*n = flexInt(v)
	return nil
}

// Stage names of the deprecated stage workflow (MLflow >= 2.9 warns about
// stages; modelsync uses aliases and offers stages as a legacy mode).
const (
	StageNone       = "None"
	StageStaging    = "Staging"
	StageProduction = "Production"
	StageArchived   = "Archived"
)

// Model version registration statuses.
const (
	StatusPendingRegistration = "PENDING_REGISTRATION"
	StatusFailedRegistration  = "FAILED_REGISTRATION"
	StatusReady               = "READY"
)

// Alias is one alias of a registered model.
type Alias struct {
	Alias   string
	Version int
}

// RegisteredModel is a registry entry. Aliases is filled by get and search.
type RegisteredModel struct {
	Name                 string
	CreationTimestamp    int64 // ms since the epoch
	LastUpdatedTimestamp int64
	Description          string
	// LatestVersions holds the latest version per stage (deprecated stages).
	LatestVersions []ModelVersion
	Tags           map[string]string
	Aliases        []Alias
}

// AliasMap returns the aliases as alias -> version.
func (m *RegisteredModel) AliasMap() map[string]int {
	out := make(map[string]int, len(m.Aliases))
	for _, a := range m.Aliases {
		out[a.Alias] = a.Version
	}
	return out
}

// ModelVersion is one version of a registered model. Aliases is filled by
// get, get-by-alias and create, but never by search (MLflow skips it there).
type ModelVersion struct {
	Name                 string
	Version              int
	CreationTimestamp    int64
	LastUpdatedTimestamp int64
	CurrentStage         string
	Description          string
	Source               string
	RunID                string
	Status               string
	StatusMessage        string
	Tags                 map[string]string
	RunLink              string
	Aliases              []string
}

// Metric is one logged metric value.
type Metric struct {
	Key       string `json:"key"`
	Value     Float  `json:"value"`
	Timestamp int64  `json:"timestamp"`
	Step      int64  `json:"step"`
}

// RunInfo is the metadata part of a run.
type RunInfo struct {
	RunID          string
	RunName        string
	ExperimentID   string
	UserID         string
	Status         string
	StartTime      int64
	EndTime        int64
	ArtifactURI    string
	LifecycleStage string
}

// Run is a tracking run with its latest metrics, params and tags, and the
// datasets it logged as inputs.
type Run struct {
	Info    RunInfo
	Metrics []Metric
	Params  map[string]string
	Tags    map[string]string
	// Inputs are the datasets logged with mlflow.log_input (MLflow 2.4+),
	// in the server's order.
	Inputs []DatasetInput
}

// DatasetInput is one dataset a run used (runs/get inputs.dataset_inputs).
// The dataset's schema and profile are not kept: they can be large and
// say nothing about where the data came from.
type DatasetInput struct {
	Name   string
	Digest string
	// SourceType is e.g. "local", "s3", "http", "code", "delta_table".
	SourceType string
	// Source is the source's own JSON description, e.g. {"uri": "s3://..."}.
	Source string
	// Context is the mlflow.data.context input tag: "training", "eval"...
	Context string
	// Tags are the input's tags, mlflow.data.context included.
	Tags map[string]string
}

// TagDatasetContext is the input tag MLflow's log_input(context=...) writes.
const TagDatasetContext = "mlflow.data.context"

// MetricMap returns the latest value per metric key.
func (r *Run) MetricMap() map[string]float64 {
	out := make(map[string]float64, len(r.Metrics))
	for _, m := range r.Metrics {
		out[m.Key] = float64(m.Value)
	}
	return out
}

// Experiment is a tracking experiment.
type Experiment struct {
	ExperimentID     string
	Name             string
	ArtifactLocation string
	LifecycleStage   string
	Tags             map[string]string
}

// Run statuses accepted by UpdateRun.
const (
	RunRunning   = "RUNNING"
	RunScheduled = "SCHEDULED"
	RunFinished  = "FINISHED"
	RunFailed    = "FAILED"
	RunKilled    = "KILLED"
)

// ---- wire forms ----

type wireTag struct {
	Key   string `json:"key"`
	Value string `json:"value"`
}

func tagsToMap(ts []wireTag) map[string]string {
	if len(ts) == 0 {
		return nil
	}
	m := make(map[string]string, len(ts))
	for _, t := range ts {
		m[t.Key] = t.Value
	}
	return m
}

func mapToTags(m map[string]string) []wireTag {
	if len(m) == 0 {
		return nil
	}
	out := make([]wireTag, 0, len(m))
	for _, k := range sortedKeys(m) {
		out = append(out, wireTag{Key: k, Value: m[k]})
	}
	return out
}

type wireAlias struct {
	Alias   string  `json:"alias"`
	Version flexInt `json:"version"`
}

type wireRegisteredModel struct {
	Name                 string             `json:"name"`
	CreationTimestamp    flexInt            `json:"creation_timestamp"`
	LastUpdatedTimestamp flexInt            `json:"last_updated_timestamp"`
	Description          string             `json:"description"`
	LatestVersions       []wireModelVersion `json:"latest_versions"`
	Tags                 []wireTag          `json:"tags"`
	Aliases              []wireAlias        `json:"aliases"`
}

func (w *wireRegisteredModel) toModel() RegisteredModel {
	m := RegisteredModel{
		Name:                 w.Name,
		CreationTimestamp:    int64(w.CreationTimestamp),
		LastUpdatedTimestamp: int64(w.LastUpdatedTimestamp),
		Description:          w.Description,
		Tags:                 tagsToMap(w.Tags),
	}
	for i := range w.LatestVersions {
		m.LatestVersions = append(m.LatestVersions, w.LatestVersions[i].toModel())
	}
	for _, a := range w.Aliases {
		m.Aliases = append(m.Aliases, Alias{Alias: a.Alias, Version: int(a.Version)})
	}
	return m
}

type wireModelVersion struct {
	Name                 string    `json:"name"`
	Version              flexInt   `json:"version"`
	CreationTimestamp    flexInt   `json:"creation_timestamp"`
	LastUpdatedTimestamp flexInt   `json:"last_updated_timestamp"`
	CurrentStage         string    `json:"current_stage"`
	Description          string    `json:"description"`
	Source               string    `json:"source"`
	RunID                string    `json:"run_id"`
	Status               string    `json:"status"`
	StatusMessage        string    `json:"status_message"`
	Tags                 []wireTag `json:"tags"`
	RunLink              string    `json:"run_link"`
	Aliases              []string  `json:"aliases"`
}

func (w *wireModelVersion) toModel() ModelVersion {
	return ModelVersion{
		Name:                 w.Name,
		Version:              int(w.Version),
		CreationTimestamp:    int64(w.CreationTimestamp),
		LastUpdatedTimestamp: int64(w.LastUpdatedTimestamp),
		CurrentStage:         w.CurrentStage,
		Description:          w.Description,
		Source:               w.Source,
		RunID:                w.RunID,
		Status:               w.Status,
		StatusMessage:        w.StatusMessage,
		Tags:                 tagsToMap(w.Tags),
		RunLink:              w.RunLink,
		Aliases:              w.Aliases,
	}
}

type wireMetric struct {
	Key       string  `json:"key"`
	Value     Float   `json:"value"`
	Timestamp flexInt `json:"timestamp"`
	Step      flexInt `json:"step"`
}

type wireRunInfo struct {
	RunID          string  `json:"run_id"`
	RunName        string  `json:"run_name"`
	ExperimentID   string  `json:"experiment_id"`
	UserID         string  `json:"user_id"`
	Status         string  `json:"status"`
	StartTime      flexInt `json:"start_time"`
	EndTime        flexInt `json:"end_time"`
	ArtifactURI    string  `json:"artifact_uri"`
	LifecycleStage string  `json:"lifecycle_stage"`
}

func (w *wireRunInfo) toModel() RunInfo {
	return RunInfo{
		RunID: w.RunID, RunName: w.RunName, ExperimentID: w.ExperimentID, UserID: w.UserID,
		Status: w.Status, StartTime: int64(w.StartTime), EndTime: int64(w.EndTime),
		ArtifactURI: w.ArtifactURI, LifecycleStage: w.LifecycleStage,
	}
}

type wireRun struct {
	Info wireRunInfo `json:"info"`
	Data struct {
		Metrics []wireMetric `json:"metrics"`
		Params  []wireTag    `json:"params"`
		Tags    []wireTag    `json:"tags"`
	} `json:"data"`
	Inputs struct {
		DatasetInputs []wireDatasetInput `json:"dataset_inputs"`
	} `json:"inputs"`
}

type wireDatasetInput struct {
	Tags    []wireTag `json:"tags"`
	Dataset struct {
		Name       string `json:"name"`
		Digest     string `json:"digest"`
		SourceType string `json:"source_type"`
		Source     string `json:"source"`
	} `json:"dataset"`
}

func (w *wireRun) toModel() Run {
	r := Run{Info: w.Info.toModel(), Params: tagsToMap(w.Data.Params), Tags: tagsToMap(w.Data.Tags)}
	for _, m := range w.Data.Metrics {
		r.Metrics = append(r.Metrics, Metric{Key: m.Key, Value: m.Value, Timestamp: int64(m.Timestamp), Step: int64(m.Step)})
	}
	for _, in := range w.Inputs.DatasetInputs {
		tags := tagsToMap(in.Tags)
		r.Inputs = append(r.Inputs, DatasetInput{
			Name: in.Dataset.Name, Digest: in.Dataset.Digest, SourceType: in.Dataset.SourceType,
			Source: in.Dataset.Source, Context: tags[TagDatasetContext], Tags: tags,
		})
	}
	return r
}

type wireExperiment struct {
	ExperimentID     string    `json:"experiment_id"`
	Name             string    `json:"name"`
	ArtifactLocation string    `json:"artifact_location"`
	LifecycleStage   string    `json:"lifecycle_stage"`
	Tags             []wireTag `json:"tags"`
}

func (w *wireExperiment) toModel() Experiment {
	return Experiment{
		ExperimentID: w.ExperimentID, Name: w.Name, ArtifactLocation: w.ArtifactLocation,
		LifecycleStage: w.LifecycleStage, Tags: tagsToMap(w.Tags),
	}
}
