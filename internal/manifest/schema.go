package manifest

import (
	"encoding/json"
	"reflect"

	"github.com/invopop/jsonschema"
	"github.com/modelsync/modelsync/internal/storageclass"
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

// JSONSchemaExtend gives each canary step the bounds weight has: 1 to 99,
// since 100% of traffic on the candidate is a promotion.
func (Canary) JSONSchemaExtend(s *jsonschema.Schema) {
	if steps, ok := s.Properties.Get("steps"); ok && steps.Items != nil {
		steps.Items.Minimum, steps.Items.Maximum = "1", "99"
	}
}

// JSONSchemaExtend offers the S3 storage classes for the class fields. A
// store's own classes (extraStorageClasses in modelsync.yaml, which the
// model file's schema cannot see) pass as capitalised names, so the
// schema flags lowercase slips while the loader, which knows the
// repository's list, refuses the rest with a suggestion.
func (Lifecycle) JSONSchemaExtend(s *jsonschema.Schema) {
	known := make([]any, 0, len(storageclass.Known()))
	for _, c := range storageclass.Known() {
		known = append(known, c)
	}
	for _, name := range []string{"activeClass", "archivedClass", "deepArchiveClass"} {
		p, ok := s.Properties.Get(name)
		if !ok {
			continue
		}
		p.AnyOf = []*jsonschema.Schema{
			{Enum: known, Description: "an S3 storage class"},
			{Pattern: storageClassName.String(), Description: "a class listed in extraStorageClasses of modelsync.yaml"},
		}
	}
}

// JSONSchemaExtend writes the form of an extra kind the loader accepts.
func (ServingPolicy) JSONSchemaExtend(s *jsonschema.Schema) {
	if kinds, ok := s.Properties.Get("extraKinds"); ok && kinds.Items != nil {
		kinds.Items.Pattern = extraKind.String()
	}
}

// JSONSchemaExtend lists the store's own storage classes' form.
func (RepoConfig) JSONSchemaExtend(s *jsonschema.Schema) {
	if classes, ok := s.Properties.Get("extraStorageClasses"); ok && classes.Items != nil {
		classes.Items.Pattern = storageClassName.String()
	}
}
