// Command genschema writes the output JSON Schema files from the Go types.
package main

import (
	"fmt"
	"os"
	"path/filepath"

	"github.com/modelsync/modelsync/internal/outputschema"
)

func main() {
	for _, file := range outputschema.Files() {
		b, err := outputschema.Schema(file)
		if err == nil {
			err = os.WriteFile(filepath.Join(outputschema.Dir, file), b, 0o644)
		}
		if err != nil {
			fmt.Fprintln(os.Stderr, "genschema:", err)
			os.Exit(1)
		}
	}
}
