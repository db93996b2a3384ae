// Package version implements `modelsync version`.
package version

import (
	"fmt"
	"runtime"
	"runtime/debug"

	"github.com/spf13/cobra"

	"github.com/modelsync/modelsync/internal/wiring"
)

// NewCmdVersion prints the build's version, Go version and VCS revision.
func NewCmdVersion(f *wiring.Factory) *cobra.Command {
	return &cobra.Command{
		Use:     "version",
		Short:   "Print the modelsync version",
		Example: "  modelsync version",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			rev := "unknown"
			if info, ok := debug.ReadBuildInfo(); ok {
				for _, s := range info.Settings {
					if s.Key == "vcs.revision" {
						rev = s.Value
					}
				}
			}
			_, err := fmt.Fprintf(f.IO.Out, "modelsync %s (%s, %s, commit %s)\n", f.Version, runtime.Version(), runtime.GOOS+"/"+runtime.GOARCH, rev)
			return err
		},
	}
}
