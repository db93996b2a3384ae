package manifest

import (
	"bytes"
	"fmt"
	"text/template"
)

// QueryData is what an analysis query template may use.
type QueryData struct {
	// Namespace and Name are the InferenceService's.
	Namespace, Name string
	// Revision is the arm's KServe (Knative) revision name.
	Revision string
	// LE is a latency metric's histogram bucket boundary.
	LE string
}

// SampleQueryData renders templates at validate time.
var SampleQueryData = QueryData{Namespace: "prod", Name: "model", Revision: "model-predictor-00001", LE: "500"}

// RenderQuery executes an analysis query template. An unknown field
// ({{.Version}}) fails with a message naming the fields there are. The
// template gets data only, no functions of ours, so a models repository
// cannot make the controller do more than fill in names.
func RenderQuery(text string, d QueryData) (string, error) {
	t, err := template.New("query").Option("missingkey=error").Parse(text)
	if err != nil {
		return "", fmt.Errorf("template %q does not parse: %w", text, err)
	}
	var b bytes.Buffer
	if err := t.Execute(&b, d); err != nil {
		return "", fmt.Errorf("template %q cannot be rendered (it may use {{.Namespace}}, {{.Name}}, {{.Revision}} and, for latency, {{.LE}}): %w", text, err)
	}
	if len(bytes.TrimSpace(b.Bytes())) == 0 {
		return "", fmt.Errorf("template %q renders to an empty query", text)
	}
	return b.String(), nil
}
