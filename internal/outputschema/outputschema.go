// Package outputschema publishes a JSON Schema for every command's -o json
// output, generated from the Go types the commands encode, beside the
// manifest schemas in internal/manifest/schema. Programs can validate what
// they read; the tests validate what the commands write, so a shape change
// shows up as a schema change in review.
package outputschema

import (
	"encoding/json"
	"fmt"
	"path"
	"reflect"
	"slices"
	"strings"

	"github.com/modelsync/modelsync/internal/canary"

	"github.com/invopop/jsonschema"

	"github.com/modelsync/modelsync/internal/cmd/check"
	"github.com/modelsync/modelsync/internal/cmd/cost"
	scancmd "github.com/modelsync/modelsync/internal/cmd/scan"
	"github.com/modelsync/modelsync/internal/controller"
	"github.com/modelsync/modelsync/internal/storagecost"
	"github.com/modelsync/modelsync/reconciler"
)

// Dir is where the schema files are checked in, relative to this package:
// the directory that publishes the manifest schemas.
//
//go:generate go run ./internal/genschema
const Dir = "../manifest/schema"

// output is one command output and the Go type it encodes.
type output struct {
	file    string
	command string
	typ     reflect.Type
}

var outputs = []output{
	{"desired.schema.json", "modelsync desired -o json", reflect.TypeFor[reconciler.DesiredState]()},
	{"plan.schema.json", "modelsync plan -o json", reflect.TypeFor[reconciler.PlanJSON]()},
	{"check.schema.json", "modelsync check -o json", reflect.TypeFor[check.JSONReport]()},
	{"status.schema.json", "modelsync status -o json", reflect.TypeFor[controller.Status]()},
	{"analysis.schema.json", "modelsync analysis -o json", reflect.TypeFor[canary.Status]()},
	{"cost.schema.json", "modelsync cost -o json", reflect.TypeFor[storagecost.Report]()},
	{"cost-estimate.schema.json", "modelsync cost --estimate N×SIZE -o json", reflect.TypeFor[cost.EstimateJSON]()},
	{"scan.schema.json", "modelsync scan PATH -o json", reflect.TypeFor[scancmd.JSONReport]()},
}

// Files lists the schema file names, in a stable order.
func Files() []string {
	var out []string
	for _, o := range outputs {
		out = append(out, o.file)
	}
	return out
}

// Schema returns the schema in file, indented and newline-terminated.
func Schema(file string) ([]byte, error) {
	i := slices.IndexFunc(outputs, func(o output) bool { return o.file == file })
	if i < 0 {
		return nil, fmt.Errorf("output schema %s: unknown file", file)
	}
	o := outputs[i]
	r := &jsonschema.Reflector{
		// Every field without omitempty is required, and nothing else is
		// allowed, so the tests catch a key that is renamed or dropped.
		AllowAdditionalProperties: false,
		// Types from other packages are named with their package, so two
		// types called Status (the controller's, a sync window's) never
		// share one definition.
		Namer: func(t reflect.Type) string {
			if t.PkgPath() == "" || t.PkgPath() == o.typ.PkgPath() {
				return t.Name()
			}
			pkg := path.Base(t.PkgPath())
			return strings.ToUpper(pkg[:1]) + pkg[1:] + t.Name()
		},
		Mapper: func(t reflect.Type) *jsonschema.Schema {
			// A plan action's payload is the target's own JSON.
			if t == reflect.TypeFor[json.RawMessage]() {
				return &jsonschema.Schema{}
			}
			return nil
		},
	}
	s := r.ReflectFromType(o.typ)
	s.ID = jsonschema.ID("https://modelsync.dev/schemas/v1alpha1/" + o.file)
	s.Title = o.command
	b, err := json.MarshalIndent(s, "", "  ")
	if err != nil {
		return nil, fmt.Errorf("output schema %s: %w", file, err)
	}
	return append(b, '\n'), nil
}
