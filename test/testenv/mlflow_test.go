package testenv

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
)

// mlflowCall sends one registry REST call and decodes the JSON reply.
func mlflowCall(ctx context.Context, t *testing.T, m *MLflow, auth bool, method, path string, body map[string]any) (int, map[string]any) {
	t.Helper()
	u := m.URL + "/api/2.0/mlflow/" + path
	var rd io.Reader
	if method == http.MethodGet {
		q := url.Values{}
		for k, v := range body {
			q.Set(k, fmt.Sprint(v))
		}
		u += "?" + q.Encode()
	} else {
		b, err := json.Marshal(body)
		if err != nil {
			t.Fatal(err)
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, u, rd)
	if err != nil {
		t.Fatal(err)
	}
	if rd != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if auth && m.Username != "" {
		req.SetBasicAuth(m.Username, m.Password)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	out := map[string]any{}
	if err := json.Unmarshal(raw, &out); err != nil {
		out["raw"] = string(raw)
	}
	return resp.StatusCode, out
}

func exerciseRegistry(t *testing.T, m *MLflow) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	name := UniqueName("churn")
	if code, out := mlflowCall(ctx, t, m, true, http.MethodPost, "registered-models/create", map[string]any{"name": name}); code != 200 {
		t.Fatalf("create model: %d %v", code, out)
	}
	code, out := mlflowCall(ctx, t, m, true, http.MethodPost, "model-versions/create", map[string]any{
		// 3.17 refuses mlflow-artifacts: sources unless a logged model
		// (model_id) contains them; a plain S3 URI is accepted by both majors.
		"name": name, "source": "s3://models/" + name + "/1",
	})
	if code != 200 {
		t.Fatalf("create version: %d %v", code, out)
	}
	mv, _ := out["model_version"].(map[string]any)
	if mv["version"] != "1" {
		t.Fatalf("created version = %v, want \"1\"", mv["version"])
	}
	if code, out := mlflowCall(ctx, t, m, true, http.MethodPost, "registered-models/alias", map[string]any{
		"name": name, "alias": "prod", "version": "1",
	}); code != 200 {
		t.Fatalf("set alias: %d %v", code, out)
	}
	code, out = mlflowCall(ctx, t, m, true, http.MethodGet, "registered-models/alias", map[string]any{"name": name, "alias": "prod"})
	if code != 200 {
		t.Fatalf("get by alias: %d %v", code, out)
	}
	if mv, _ := out["model_version"].(map[string]any); mv["version"] != "1" {
		t.Fatalf("alias prod -> %v, want version 1", out)
	}
	code, out = mlflowCall(ctx, t, m, true, http.MethodGet, "registered-models/alias", map[string]any{"name": name, "alias": "staging"})
	if code != http.StatusBadRequest || out["error_code"] != "INVALID_PARAMETER_VALUE" {
		t.Fatalf("missing alias: %d %v, want 400 INVALID_PARAMETER_VALUE", code, out)
	}
	code, out = mlflowCall(ctx, t, m, true, http.MethodGet, "registered-models/get", map[string]any{"name": UniqueName("absent")})
	if code != http.StatusNotFound || out["error_code"] != "RESOURCE_DOES_NOT_EXIST" {
		t.Fatalf("missing model: %d %v, want 404 RESOURCE_DOES_NOT_EXIST", code, out)
	}
}

func TestMLflow3Registry(t *testing.T) {
	m := NewMLflow(t, MLflowOptions{Major: 3})
	t.Logf("mlflow 3 ready in %s", m.ReadyIn)
	exerciseRegistry(t, m)
}

func TestMLflow2Registry(t *testing.T) {
	m := NewMLflow(t, MLflowOptions{Major: 2})
	t.Logf("mlflow 2 ready in %s", m.ReadyIn)
	exerciseRegistry(t, m)
}

// TestMLflowFloorRegistry runs the oldest supported release, whose
// dependencies deps.sh caps.
func TestMLflowFloorRegistry(t *testing.T) {
	m := NewMLflow(t, MLflowOptions{Major: 2, Floor: true})
	t.Logf("mlflow 2 floor ready in %s", m.ReadyIn)
	code, out := mlflowGetText(t, m.URL+"/version")
	if code != http.StatusOK || out != "2.9.2" {
		t.Fatalf("GET /version = %d %q, want 200 2.9.2", code, out)
	}
	exerciseRegistry(t, m)
}

func mlflowGetText(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 1<<10))
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, strings.TrimSpace(string(b))
}

func TestMLflowBasicAuthWithS3Artifacts(t *testing.T) {
	for _, major := range []int{3, 2} {
		t.Run(fmt.Sprintf("mlflow%d", major), func(t *testing.T) {
			store := NewMinIO(t)
			bucket := UniqueName("artifacts")
			m := NewMLflow(t, MLflowOptions{Major: major, BasicAuth: true, S3: store, Bucket: bucket})
			t.Logf("mlflow %d (basic auth, S3 artifacts) ready in %s", major, m.ReadyIn)
			if m.Username == "" || m.Password == "" {
				t.Fatal("basic-auth server exposes no admin credentials")
			}
			exerciseRegistry(t, m)

			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			code, out := mlflowCall(ctx, t, m, false, http.MethodGet, "registered-models/search", nil)
			if code != http.StatusUnauthorized {
				t.Fatalf("anonymous search: %d %v, want 401", code, out)
			}

			// An artifact uploaded through the server's proxy lands in the bucket.
			req, err := http.NewRequestWithContext(ctx, http.MethodPut,
				m.URL+"/api/2.0/mlflow-artifacts/artifacts/models/churn/MLmodel", strings.NewReader("flavors: {}\n"))
			if err != nil {
				t.Fatal(err)
			}
			req.SetBasicAuth(m.Username, m.Password)
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != 200 {
				t.Fatalf("artifact upload: %s %s", resp.Status, b)
			}
			obj, err := store.Client(ctx).GetObject(ctx, &s3.GetObjectInput{
				Bucket: aws.String(bucket), Key: aws.String("mlflow-artifacts/models/churn/MLmodel"),
			})
			if err != nil {
				t.Fatalf("artifact not in S3 at %s: %v", m.ArtifactsDestination, err)
			}
			got, _ := io.ReadAll(obj.Body)
			obj.Body.Close()
			if string(got) != "flavors: {}\n" {
				t.Fatalf("artifact content = %q", got)
			}
		})
	}
}
