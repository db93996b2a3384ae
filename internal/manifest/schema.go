package manifest

import (
	"encoding/json"
	"reflect"

	"github.com/invopop/jsonschema"
)

// Schema files are generated from the Go types, checked in for editors
// (yaml-language-server), and kept current by TestSchemaFilesAreCurrent.
//
//go:generate go run ./internal/genschema
const (
	RepositorySchemaFile = "schema/repository.schema.json"
	ModelSchemaFile      = "schema/model.schema.json"
)

// JSONSchema returns the JSON Schema of modelsync.yaml (repository) or
// model.yaml (model), indented and newline-terminated.
func JSONSchema(kind string) ([]byte, error) {
	r := &jsonschema.Reflector{
		FieldNameTag:               "yaml",
		RequiredFromJSONSchemaTags: false,
		AllowAdditionalProperties:  false,
		DoNotReference:             false,
	}
	var s *jsonschema.Schema
	switch kind {
	case KindRepository:
		s = r.ReflectFromType(reflect.TypeFor[RepoConfig]())
		s.ID = "https://modelsync.dev/schemas/v1alpha1/repository.schema.json"
		s.Title = "modelsync.yaml"
	case KindModel:
		s = r.ReflectFromType(reflect.TypeFor[Model]())
		s.ID = "https://modelsync.dev/schemas/v1alpha1/model.schema.json"
		s.Title = "models/<name>/model.yaml"
	default:
		return nil, &FieldError{File: kind, Message: "unknown schema kind"}
	}
	b, err := json.MarshalIndent(s, "", "  ")
	if err != nil {
		return nil, err
	}
	return append(b, '\n'), nil
}
