// Command genschema writes the manifest JSON Schema files from the Go types.
package main

import (
	"fmt"
	"os"

	"github.com/modelsync/modelsync/internal/manifest"
)

func main() {
	for kind, file := range map[string]string{
		manifest.KindRepository: manifest.RepositorySchemaFile,
		manifest.KindModel:      manifest.ModelSchemaFile,
	} {
		b, err := manifest.JSONSchema(kind)
		if err == nil {
			err = os.WriteFile(file, b, 0o644)
		}
		if err != nil {
			fmt.Fprintln(os.Stderr, "genschema:", err)
			os.Exit(1)
		}
	}
}
