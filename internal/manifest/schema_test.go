package manifest

import (
	"bytes"
	"encoding/json"
	"os"
	"strings"
	"testing"

	"github.com/santhosh-tekuri/jsonschema/v6"
	"go.yaml.in/yaml/v3"
)

// The checked-in schema files must match the Go types; regenerate with
// `go generate ./internal/manifest` (or `make schema`).
func TestSchemaFilesAreCurrent(t *testing.T) {
	for kind, file := range map[string]string{KindRepository: RepositorySchemaFile, KindModel: ModelSchemaFile} {
		want, err := JSONSchema(kind)
		if err != nil {
			t.Fatal(err)
		}
		got, err := os.ReadFile(file)
		if err != nil {
			t.Fatalf("%v (run `make schema`)", err)
		}
		if !bytes.Equal(got, want) {
			t.Errorf("%s is stale: run `make schema`", file)
		}
	}
}

// The schema must accept the example repository, so editors do not flag
// valid files, and reject what the parser rejects for unknown fields.
func TestSchemaAcceptsExample(t *testing.T) {
	compile := func(file string) *jsonschema.Schema {
		c := jsonschema.NewCompiler()
		doc, err := jsonschema.UnmarshalJSON(mustOpen(t, file))
		if err != nil {
			t.Fatal(err)
		}
		if err := c.AddResource(file, doc); err != nil {
			t.Fatal(err)
		}
		s, err := c.Compile(file)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	asJSON := func(path string) any {
		b, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		var v any
		if err := yaml.Unmarshal(b, &v); err != nil {
			t.Fatal(err)
		}
		j, _ := json.Marshal(v)
		out, err := jsonschema.UnmarshalJSON(bytes.NewReader(j))
		if err != nil {
			t.Fatal(err)
		}
		return out
	}
	repoSchema, modelSchema := compile(RepositorySchemaFile), compile(ModelSchemaFile)
	if err := repoSchema.Validate(asJSON("../../manifests-example/modelsync.yaml")); err != nil {
		t.Errorf("repository schema rejects the example: %v", err)
	}
	for _, m := range []string{"customer-churn-predictor", "llama2-7b-alpaca", "fraud-detector-xgb", "sentiment-bert-legacy"} {
		if err := modelSchema.Validate(asJSON("../../manifests-example/models/" + m + "/model.yaml")); err != nil {
			t.Errorf("model schema rejects %s: %v", m, err)
		}
	}
	for _, body := range []string{
		// A canary step of 100 is refused like weight: 100.
		`{"apiVersion":"modelsync.dev/v1alpha1","kind":"Model","metadata":{"name":"x"},"spec":{"owners":["a"],"serving":{"path":"s","modelFormat":"f"},"environments":{"prod":{"version":1,"canary":{"version":2,"steps":[10,100]}}}}}`,
		// A storage class that is no S3 class nor a capitalised store class.
		`{"apiVersion":"modelsync.dev/v1alpha1","kind":"Model","metadata":{"name":"x"},"spec":{"owners":["a"],"serving":{"path":"s","modelFormat":"f"},"lifecycle":{"archivedClass":"glacier ir"}}}`,
	} {
		doc, _ := jsonschema.UnmarshalJSON(strings.NewReader(body))
		if err := modelSchema.Validate(doc); err == nil {
			t.Errorf("model schema accepts %s", body)
		}
	}
	bad := strings.NewReader(`{"apiVersion":"modelsync.dev/v1alpha1","kind":"Model","metadata":{"name":"x"},"spec":{"owners":["a"],"serving":{"path":"s","modelFormat":"f"},"ownr":1}}`)
	doc, _ := jsonschema.UnmarshalJSON(bad)
	if err := modelSchema.Validate(doc); err == nil {
		t.Error("model schema accepts an unknown field")
	}
}

func mustOpen(t *testing.T, file string) *os.File {
	f, err := os.Open(file)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return f
}
