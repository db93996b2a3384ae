package mlflowclient_test

// Wire-format unit tests: a loopback server replays reply bytes recorded from
// real MLflow 3.x and 2.x servers (testdata/README.md), so decoding of the
// quirks is pinned without starting MLflow. Behaviour against live servers is
// covered by integration_test.go.

import (
	"bufio"
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
	"math"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/modelsync/modelsync/internal/mlflowclient"
)

var majors = []string{"mlflow3", "mlflow2"}

// replay answers every request with one recorded reply: a .json file is a
// 200 application/json body, a .http file a whole HTTP response.
type replay struct {
	srv  *httptest.Server
	mu   sync.Mutex
	file string
	raw  []byte // used when file is empty
	reqs []recorded
}

type recorded struct {
	Method, Path, RawQuery, ContentType, Auth string
	Body                                      []byte
}

func newReplay(t *testing.T) *replay {
	t.Helper()
	r := &replay{}
	r.srv = httptest.NewServer(http.HandlerFunc(r.serve))
	t.Cleanup(r.srv.Close)
	return r
}

func (r *replay) use(file string) { r.mu.Lock(); r.file, r.raw = file, nil; r.mu.Unlock() }

func (r *replay) useRaw(resp string) { r.mu.Lock(); r.file, r.raw = "", []byte(resp); r.mu.Unlock() }

func (r *replay) requests() []recorded {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]recorded(nil), r.reqs...)
}

func (r *replay) serve(w http.ResponseWriter, req *http.Request) {
	body, _ := io.ReadAll(req.Body)
	r.mu.Lock()
	r.reqs = append(r.reqs, recorded{req.Method, req.URL.Path, req.URL.RawQuery, req.Header.Get("Content-Type"), req.Header.Get("Authorization"), body})
	file, raw := r.file, r.raw
	r.mu.Unlock()
	if file != "" && strings.HasSuffix(file, ".json") {
		data, err := os.ReadFile(file)
		if err != nil {
			http.Error(w, err.Error(), 599)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(data)
		return
	}
	if file != "" {
		var err error
		if raw, err = os.ReadFile(file); err != nil {
			http.Error(w, err.Error(), 599)
			return
		}
	}
	resp, err := http.ReadResponse(bufio.NewReader(bytes.NewReader(raw)), req)
	if err != nil {
		http.Error(w, "bad canned reply: "+err.Error(), 599)
		return
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	for k, vs := range resp.Header {
		if strings.EqualFold(k, "Content-Length") || strings.EqualFold(k, "Connection") {
			continue
		}
		for _, v := range vs {
			w.Header().Add(k, v)
		}
	}
	w.WriteHeader(resp.StatusCode)
	_, _ = w.Write(data)
}

func newClient(t *testing.T, cfg mlflowclient.Config) *mlflowclient.Client {
	t.Helper()
	cfg.MaxRetries = -1 // canned replies never change; retries are tested live
	c, err := mlflowclient.New(cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return c
}

func td(major, name string) string { return filepath.Join("testdata", major, name) }

func TestDecodeRunMetricsNaNAndClampedInfinity(t *testing.T) {
	for _, major := range majors {
		t.Run(major, func(t *testing.T) {
			rp := newReplay(t)
			rp.use(td(major, "runs_get.json"))
			c := newClient(t, mlflowclient.Config{TrackingURI: rp.srv.URL})
			run, err := c.GetRun(context.Background(), "r1")
			if err != nil {
				t.Fatalf("GetRun: %v", err)
			}
			m := run.MetricMap()
			if !math.IsNaN(m["nan"]) {
				t.Errorf("nan metric = %v, want NaN", m["nan"])
			}
			// SQL stores clamp infinities to the largest finite double.
			if m["inf"] != math.MaxFloat64 || m["ninf"] != -math.MaxFloat64 {
				t.Errorf("clamped infinities = %v, %v", m["inf"], m["ninf"])
			}
			if m["auc"] != 0.93 {
				t.Errorf("auc = %v, want 0.93", m["auc"])
			}
			for _, mt := range run.Metrics {
				if mt.Key == "auc" && (mt.Step != 3 || mt.Timestamp != 1764140000001) {
					t.Errorf("auc step/timestamp = %d/%d", mt.Step, mt.Timestamp)
				}
			}
			if run.Params["lr"] != "0.01" || run.Tags["team"] != "risk" || run.Tags["mlflow.runName"] != "rec-run" {
				t.Errorf("params %v tags %v", run.Params, run.Tags)
			}
			if run.Info.RunID == "" || run.Info.ExperimentID != "1" || run.Info.Status != mlflowclient.RunRunning ||
				run.Info.StartTime != 1764140000000 || !strings.HasPrefix(run.Info.ArtifactURI, "mlflow-artifacts:/1/") {
				t.Errorf("info = %+v", run.Info)
			}
		})
	}
}

func TestDecodeInfinityStrings(t *testing.T) {
	rp := newReplay(t)
	rp.use(td("mlflow2", "runs_get_filestore.json"))
	c := newClient(t, mlflowclient.Config{TrackingURI: rp.srv.URL})
	run, err := c.GetRun(context.Background(), "r1")
	if err != nil {
		t.Fatalf("GetRun: %v", err)
	}
	m := run.MetricMap()
	if !math.IsInf(m["inf"], 1) || !math.IsInf(m["ninf"], -1) || !math.IsNaN(m["nan"]) {
		t.Errorf("metrics = %v, want +Inf, -Inf, NaN", m)
	}
}

func TestFloatJSON(t *testing.T) {
	in := []mlflowclient.Float{mlflowclient.Float(math.NaN()), mlflowclient.Float(math.Inf(1)), mlflowclient.Float(math.Inf(-1)), 1.5}
	b, err := json.Marshal(in)
	if err != nil {
		t.Fatal(err)
	}
	if string(b) != `["NaN","Infinity","-Infinity",1.5]` {
		t.Errorf("marshal = %s", b)
	}
	var out []mlflowclient.Float
	if err := json.Unmarshal([]byte(`["NaN","Infinity","-Infinity",1.5,"2.25"]`), &out); err != nil {
		t.Fatal(err)
	}
	if !math.IsNaN(float64(out[0])) || !math.IsInf(float64(out[1]), 1) || !math.IsInf(float64(out[2]), -1) || out[3] != 1.5 || out[4] != 2.25 {
		t.Errorf("unmarshal = %v", out)
	}
	if err := json.Unmarshal([]byte(`["nan"]`), &out); err == nil {
		t.Error(`"nan" (wrong case) decoded without error`)
	}
}

func TestDecodeVersionsAndAliases(t *testing.T) {
	ctx := context.Background()
	for _, major := range majors {
		t.Run(major, func(t *testing.T) {
			rp := newReplay(t)
			c := newClient(t, mlflowclient.Config{TrackingURI: rp.srv.URL})

			rp.use(td(major, "model_versions_get.json"))
			mv, err := c.GetModelVersion(ctx, "rec-model", 1)
			if err != nil {
				t.Fatalf("GetModelVersion: %v", err)
			}
			if mv.Version != 1 || mv.Name != "rec-model" || mv.Status != mlflowclient.StatusReady || mv.CurrentStage != mlflowclient.StageNone ||
				len(mv.Aliases) != 1 || mv.Aliases[0] != "prod" || mv.RunID == "" || mv.CreationTimestamp == 0 {
				t.Errorf("version = %+v", mv)
			}

			rp.use(td(major, "registered_models_get.json"))
			m, err := c.GetRegisteredModel(ctx, "rec-model")
			if err != nil {
				t.Fatalf("GetRegisteredModel: %v", err)
			}
			if got := m.AliasMap(); len(got) != 1 || got["prod"] != 1 {
				t.Errorf("aliases = %v", got)
			}
			if m.Tags["owner"] != "risk" || len(m.LatestVersions) != 1 || m.LatestVersions[0].Version != 1 {
				t.Errorf("model = %+v", m)
			}
			aliases, err := c.ReadAliases(ctx, "rec-model")
			if err != nil || aliases["prod"] != 1 {
				t.Errorf("ReadAliases = %v, %v", aliases, err)
			}

			// Search leaves aliases out even though the version has one.
			rp.use(td(major, "model_versions_search.json"))
			vs, err := c.SearchModelVersions(ctx, mlflowclient.SearchOptions{Filter: "name='rec-model'"})
			if err != nil {
				t.Fatalf("SearchModelVersions: %v", err)
			}
			if len(vs) != 1 || vs[0].Version != 1 || len(vs[0].Aliases) != 0 {
				t.Errorf("search = %+v", vs)
			}
		})
	}
}

func TestEmptyReplies(t *testing.T) {
	ctx := context.Background()
	for _, major := range majors {
		t.Run(major, func(t *testing.T) {
			rp := newReplay(t)
			c := newClient(t, mlflowclient.Config{TrackingURI: rp.srv.URL})
			rp.use(td(major, "alias_delete.http")) // recorded: 200 with body {}
			if err := c.DeleteAlias(ctx, "rec-model", "prod"); err != nil {
				t.Errorf("DeleteAlias on recorded {}: %v", err)
			}
		})
	}
	// The protocol allows a bare 200 for an empty message; it means {}.
	rp := newReplay(t)
	c := newClient(t, mlflowclient.Config{TrackingURI: rp.srv.URL})
	rp.useRaw("HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 0\r\n\r\n")
	if err := c.SetAlias(ctx, "m", "prod", 2); err != nil {
		t.Errorf("SetAlias on empty body: %v", err)
	}
	if err := c.SetModelVersionTag(ctx, "m", 2, "k", "v"); err != nil {
		t.Errorf("SetModelVersionTag on empty body: %v", err)
	}
	// A 200 that is not JSON at all (a proxy's page) is not success.
	rp.useRaw("HTTP/1.1 200 OK\r\nContent-Type: text/html\r\n\r\n<html>login</html>")
	_, err := c.GetRegisteredModel(ctx, "m")
	var ae *mlflowclient.APIError
	if !errors.As(err, &ae) || ae.Code != mlflowclient.CodeMalformedResponse || mlflowclient.IsRetryable(err) {
		t.Errorf("HTML 200: err = %v", err)
	}
}

func TestErrorReplies(t *testing.T) {
	ctx := context.Background()
	for _, major := range majors {
		t.Run(major, func(t *testing.T) {
			rp := newReplay(t)
			c := newClient(t, mlflowclient.Config{TrackingURI: rp.srv.URL})
			var ae *mlflowclient.APIError

			rp.use(td(major, "basic_auth_401.http"))
			_, err := c.GetRegisteredModel(ctx, "x")
			if !errors.As(err, &ae) || ae.StatusCode != 401 || ae.Code != mlflowclient.CodeUnauthenticated || !mlflowclient.IsUnauthenticated(err) ||
				!strings.HasPrefix(ae.Message, "You are not authenticated.") || len(ae.Message) > 204 {
				t.Errorf("401: %#v", err)
			}
			if mlflowclient.IsRetryable(err) || mlflowclient.IsNotFound(err) {
				t.Errorf("401 classified retryable/not-found")
			}

			rp.use(td(major, "basic_auth_403.http"))
			err = c.SetRegisteredModelTag(ctx, "m403", "k", "v")
			if !errors.As(err, &ae) || ae.StatusCode != 403 || ae.Code != mlflowclient.CodePermissionDenied || ae.Message != "Permission denied" ||
				ae.Method != http.MethodPost || ae.Endpoint != "registered-models/set-tag" || !mlflowclient.IsPermissionDenied(err) {
				t.Errorf("403: %#v", err)
			}

			rp.use(td(major, "unknown_endpoint.http"))
			_, err = c.GetRegisteredModel(ctx, "x")
			if !errors.As(err, &ae) || ae.StatusCode != 404 || ae.Code != mlflowclient.CodeEndpointNotFound || ae.Message != "non-JSON HTML reply" {
				t.Errorf("HTML 404: %#v", err)
			}
			if mlflowclient.IsNotFound(err) || !mlflowclient.IsEndpointNotFound(err) {
				t.Errorf("HTML 404 must be endpoint-not-found, not resource-not-found")
			}

			rp.use(td(major, "registered_models_get_missing.http"))
			_, err = c.GetRegisteredModel(ctx, "missing-model")
			if !mlflowclient.IsNotFound(err) || !errors.As(err, &ae) || ae.Message != "Registered Model with name=missing-model not found" {
				t.Errorf("missing model: %v", err)
			}
			if !strings.Contains(err.Error(), `"missing-model"`) {
				t.Errorf("error does not name the model: %v", err)
			}

			// alias_get_unset.json is the body of a 400; serve it as one.
			body, _ := os.ReadFile(td(major, "alias_get_unset.json"))
			rp.useRaw("HTTP/1.1 400 BAD REQUEST\r\nContent-Type: application/json\r\n\r\n" + string(body))
			_, err = c.GetModelVersionByAlias(ctx, "rec-model", "nope")
			if !mlflowclient.IsInvalidParameter(err) || mlflowclient.IsNotFound(err) || !errors.As(err, &ae) || ae.Code != mlflowclient.CodeInvalidParameterValue {
				t.Errorf("unset alias: %v", err)
			}
		})
	}
}

func TestRetryAfterIsExposed(t *testing.T) {
	rp := newReplay(t)
	c := newClient(t, mlflowclient.Config{TrackingURI: rp.srv.URL})
	rp.useRaw("HTTP/1.1 429 Too Many Requests\r\nRetry-After: 7\r\nContent-Type: text/plain\r\n\r\nslow down\n")
	_, err := c.GetRegisteredModel(context.Background(), "m")
	var ae *mlflowclient.APIError
	if !errors.As(err, &ae) || ae.RetryAfter.Seconds() != 7 || ae.Code != mlflowclient.CodeRequestLimitExceeded || ae.Message != "slow down" || !mlflowclient.IsRetryable(err) {
		t.Errorf("429: %#v", err)
	}
}

func TestErrorsNeverCarrySecrets(t *testing.T) {
	ctx := context.Background()
	rp := newReplay(t)
	rp.use(td("mlflow3", "basic_auth_401.http"))
	hostURL := rp.srv.URL + "/mlflow"
	withUser := strings.Replace(hostURL, "http://", "http://alice:hunter2-pw@", 1)
	for name, cfg := range map[string]mlflowclient.Config{
		"userinfo": {TrackingURI: withUser},
		"basic":    {TrackingURI: hostURL, Username: "alice", Password: "hunter2-pw"},
		"token":    {TrackingURI: hostURL, Token: "tok-hunter2-pw"},
	} {
		t.Run(name, func(t *testing.T) {
			c := newClient(t, cfg)
			_, err := c.GetRegisteredModel(ctx, "m")
			if err == nil {
				t.Fatal("no error")
			}
			msg := err.Error()
			if !strings.Contains(msg, hostURL) {
				t.Errorf("error %q does not name %s", msg, hostURL)
			}
			for _, secret := range []string{"hunter2", base64.StdEncoding.EncodeToString([]byte("alice:hunter2-pw")), "alice:"} {
				if strings.Contains(msg, secret) {
					t.Errorf("error %q leaks %q", msg, secret)
				}
			}
			if s := c.String(); strings.Contains(s, "hunter2") {
				t.Errorf("Client.String leaks: %s", s)
			}
			// The server saw the right credentials and the prefix was kept.
			last := rp.requests()[len(rp.requests())-1]
			if last.Path != "/mlflow/api/2.0/mlflow/registered-models/get" {
				t.Errorf("path = %s", last.Path)
			}
			want := "Basic " + base64.StdEncoding.EncodeToString([]byte("alice:hunter2-pw"))
			if name == "token" {
				want = "Bearer tok-hunter2-pw"
			}
			if last.Auth != want {
				t.Errorf("Authorization = %q, want %q", last.Auth, want)
			}
		})
	}
	// A server echoing the password back (a misconfigured proxy) is scrubbed.
	rp.useRaw("HTTP/1.1 502 Bad Gateway\r\nContent-Type: text/plain\r\n\r\nupstream rejected hunter2-pw\n")
	c := newClient(t, mlflowclient.Config{TrackingURI: hostURL, Username: "alice", Password: "hunter2-pw"})
	_, err := c.GetRegisteredModel(ctx, "m")
	if err == nil || strings.Contains(err.Error(), "hunter2") {
		t.Errorf("echoed secret not scrubbed: %v", err)
	}
}

func TestRequestShapes(t *testing.T) {
	ctx := context.Background()
	rp := newReplay(t)
	rp.useRaw("HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n\r\n{}")
	c := newClient(t, mlflowclient.Config{TrackingURI: rp.srv.URL + "/", Username: "u", Password: "p", Token: "ignored-when-basic"})

	if err := c.SetAlias(ctx, "m", "prod", 3); err != nil {
		t.Fatal(err)
	}
	if err := c.DeleteAlias(ctx, "m", "prod"); err != nil {
		t.Fatal(err)
	}
	if _, err := c.SearchModelVersions(ctx, mlflowclient.SearchOptions{Filter: "name = 'm'", OrderBy: []string{"version_number DESC", "creation_timestamp ASC"}, PageSize: 5}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.CreateRegisteredModel(ctx, mlflowclient.CreateRegisteredModelRequest{Name: "m"}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.TransitionModelVersionStage(ctx, "m", 2, "production", true); err != nil {
		t.Fatal(err)
	}
	reqs := rp.requests()
	if len(reqs) != 5 {
		t.Fatalf("%d requests, want 5", len(reqs))
	}
	for _, r := range reqs {
		if r.Auth != "Basic "+base64.StdEncoding.EncodeToString([]byte("u:p")) {
			t.Errorf("%s %s: Authorization %q (Basic must win over token)", r.Method, r.Path, r.Auth)
		}
	}
	body := func(r recorded) map[string]any {
		var m map[string]any
		if err := json.Unmarshal(r.Body, &m); err != nil {
			t.Fatalf("%s %s body %q: %v", r.Method, r.Path, r.Body, err)
		}
		return m
	}
	set := reqs[0]
	if set.Method != "POST" || set.Path != "/api/2.0/mlflow/registered-models/alias" || set.ContentType != "application/json" || set.RawQuery != "" {
		t.Errorf("set alias request %+v", set)
	}
	if b := body(set); b["version"] != "3" || b["name"] != "m" || b["alias"] != "prod" {
		t.Errorf("set alias body %v (version must be the string \"3\")", b)
	}
	del := reqs[1]
	if del.Method != "DELETE" || del.ContentType != "application/json" || del.RawQuery != "alias=prod&name=m" {
		t.Errorf("delete alias request %+v", del)
	}
	if b := body(del); b["name"] != "m" || b["alias"] != "prod" {
		t.Errorf("delete alias body %v", b)
	}
	search := reqs[2]
	if search.Method != "GET" || len(search.Body) != 0 ||
		search.RawQuery != "filter=name+%3D+%27m%27&max_results=5&order_by=version_number+DESC&order_by=creation_timestamp+ASC" {
		t.Errorf("search request %+v", search)
	}
	if b := body(reqs[3]); len(b) != 1 || b["name"] != "m" {
		t.Errorf("create model body %v: unset fields must be omitted", b)
	}
	if b := body(reqs[4]); b["stage"] != "Production" || b["archive_existing_versions"] != true || b["version"] != "2" {
		t.Errorf("transition body %v", b)
	}
}

func TestTransitionValidatesBeforeSending(t *testing.T) {
	rp := newReplay(t)
	rp.useRaw("HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n\r\n{}")
	c := newClient(t, mlflowclient.Config{TrackingURI: rp.srv.URL})
	for _, stage := range []string{"Archived", "None", "Bogus"} {
		_, err := c.TransitionModelVersionStage(context.Background(), "m", 1, stage, stage != "Bogus")
		if !errors.Is(err, mlflowclient.ErrInvalidArgument) || !mlflowclient.IsInvalidParameter(err) {
			t.Errorf("stage %s: err = %v, want ErrInvalidArgument", stage, err)
		}
	}
	if n := len(rp.requests()); n != 0 {
		t.Errorf("%d requests sent for invalid transitions", n)
	}
	if s := c.Stats(); s.Reads+s.Writes != 0 {
		t.Errorf("stats count unsent requests: %+v", s)
	}
}

func TestConfigFromEnv(t *testing.T) {
	env := func(m map[string]string) func(string) string { return func(k string) string { return m[k] } }
	cfg := mlflowclient.ConfigFromEnv(env(map[string]string{
		"MLFLOW_TRACKING_URI":             "https://mlflow.example:8443/x",
		"MLFLOW_TRACKING_USERNAME":        "svc",
		"MLFLOW_TRACKING_PASSWORD":        "pw-123",
		"MLFLOW_TRACKING_TOKEN":           "tok-456",
		"MLFLOW_TRACKING_INSECURE_TLS":    "true",
		"MLFLOW_HTTP_REQUEST_MAX_RETRIES": "3",
		"MLFLOW_HTTP_REQUEST_TIMEOUT":     "2.5",
	}))
	if cfg.TrackingURI != "https://mlflow.example:8443/x" || cfg.Username != "svc" || cfg.Password != "pw-123" || cfg.Token != "tok-456" ||
		!cfg.InsecureTLS || cfg.MaxRetries != 3 || cfg.Timeout.Milliseconds() != 2500 {
		t.Errorf("cfg = %#v", cfg)
	}
	for _, s := range []string{cfg.String(), cfg.GoString()} {
		if strings.Contains(s, "pw-123") || strings.Contains(s, "tok-456") {
			t.Errorf("Config string leaks a secret: %s", s)
		}
	}
	if _, err := mlflowclient.New(cfg); err != nil {
		t.Errorf("New: %v", err)
	}
	if cfg := mlflowclient.ConfigFromEnv(env(map[string]string{"MLFLOW_HTTP_REQUEST_MAX_RETRIES": "0", "MLFLOW_TRACKING_URI": "http://h"})); cfg.MaxRetries >= 0 {
		t.Errorf("MAX_RETRIES=0 must disable retries, got %d", cfg.MaxRetries)
	}
	bad := mlflowclient.ConfigFromEnv(env(map[string]string{"MLFLOW_TRACKING_URI": "http://h", "MLFLOW_TRACKING_INSECURE_TLS": "maybe"}))
	if _, err := mlflowclient.New(bad); !errors.Is(err, mlflowclient.ErrInvalidArgument) || !strings.Contains(err.Error(), "MLFLOW_TRACKING_INSECURE_TLS") {
		t.Errorf("bad env: err = %v", err)
	}
	for _, uri := range []string{"", "databricks", "sqlite:///mlflow.db", "http://"} {
		if _, err := mlflowclient.New(mlflowclient.Config{TrackingURI: uri}); !errors.Is(err, mlflowclient.ErrInvalidArgument) {
			t.Errorf("URI %q: err = %v", uri, err)
		}
	}
	if _, err := mlflowclient.New(mlflowclient.Config{TrackingURI: "http://u:secretpw@h:1", HTTPClient: http.DefaultClient, InsecureTLS: true}); err == nil ||
		strings.Contains(err.Error(), "secretpw") {
		t.Errorf("InsecureTLS with HTTPClient: err = %v", err)
	}
}
