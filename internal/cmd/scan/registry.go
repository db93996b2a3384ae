package scan

import (
	"context"
	"fmt"
	"os"
	"strconv"

	"github.com/spf13/cobra"

	"github.com/modelsync/modelsync/internal/cmdutil"
	"github.com/modelsync/modelsync/internal/manifest"
	"github.com/modelsync/modelsync/internal/scan"
	"github.com/modelsync/modelsync/internal/scanrecord"
	"github.com/modelsync/modelsync/internal/wiring"
	"github.com/modelsync/modelsync/reconciler"
)

// RegistryOptions are the inputs of the registry form (scan MODEL VERSION,
// scan --all).
type RegistryOptions struct {
	Factory *wiring.Factory
	Repo    cmdutil.RepoFlags
	// Env limits --all to one environment.
	Env string
	// Advisories is a directory of OSV records (overrides modelsync.yaml's
	// security.advisories.path).
	Advisories string
}

// registryArgs reports whether args name a registered version: MODEL and a
// positive VERSION, where MODEL is no local path.
func registryArgs(args []string) bool {
	if len(args) != 2 {
		return false
	}
	if n, err := strconv.Atoi(args[1]); err != nil || n <= 0 {
		return false
	}
	_, err := os.Lstat(args[0])
	return os.IsNotExist(err)
}

func addRegistryFlags(cmd *cobra.Command, f *wiring.Factory, opts *Options, ro *RegistryOptions) {
	cmdutil.AddRepoFlags(cmd, &ro.Repo)
	cmdutil.AddTargetFlags(cmd, &f.Flags)
	cmd.Flags().BoolVar(&opts.All, "all", false, "scan every version an environment of the models repository (--repo) references")
	cmd.Flags().StringVar(&ro.Env, "env", "", "with --all: only this environment")
	cmd.Flags().StringVar(&ro.Advisories, "advisories", "", "directory of OSV advisories (JSON/YAML) for the dependency check (default: security.advisories.path of modelsync.yaml)")
}

// RunRegistry scans registered versions, reusing their scan tags when the
// artifacts are unchanged, writes the result tags, and prints as the PATH
// form does. Versions come from MODEL VERSION, or with --all from the
// desired state of --repo.
func RunRegistry(ctx context.Context, opts *Options, ro *RegistryOptions) error {
	rep, err := scanRegistry(ctx, opts, ro)
	if err != nil {
		return &cmdutil.ExitError{Code: ExitUnknown, Err: err}
	}
	if err := Print(opts.IO.Out, opts.Output, rep); err != nil {
		return &cmdutil.ExitError{Code: ExitUnknown, Err: err}
	}
	return ExitFor(rep.Verdict)
}

func scanRegistry(ctx context.Context, opts *Options, ro *RegistryOptions) (JSONReport, error) {
	out := JSONReport{Verdict: scan.Safe, Scanner: scan.ScannerVersion, Targets: []Target{}}
	var subjects []scanrecord.Subject
	var sec *manifest.Security
	if opts.All || ro.Repo.URL != "" {
		d, _, err := ro.Factory.Desired(ctx, ro.Repo)
		if err != nil {
			return out, err
		}
		if d.Config != nil {
			sec = &d.Config.Security
		}
		for _, m := range d.Models {
			if !opts.All && m.Name != opts.Model {
				continue
			}
			subjects = append(subjects, versionsOf(m, ro.Env, opts)...)
		}
	}
	if !opts.All {
		// The manifest, when --repo names one, gives the registered name
		// and spec.dependencies.
		v, _ := strconv.Atoi(opts.Version)
		s := scanrecord.Subject{Model: opts.Model, Registered: opts.Model, Version: v}
		for _, x := range subjects {
			s.Registered, s.SpecDependencies = x.Registered, x.SpecDependencies
			break
		}
		subjects = []scanrecord.Subject{s}
	}
	ver, err := ro.Factory.Verifier(ctx, wiring.VerifierOptions{Security: sec, AdvisoriesPath: ro.Advisories})
	if err != nil {
		return out, err
	}
	ver.Options = scan.Options{AllowGlobals: opts.AllowGlobals}
	for _, s := range subjects {
		o, err := ver.Ensure(ctx, s)
		if err != nil {
			return out, err
		}
		tg := TargetOf(s, o)
		name := tg.Path
		out.Targets = append(out.Targets, tg)
		out.Verdict = out.Verdict.Worst(o.Record.Result)
		if o.Reused {
			fmt.Fprintf(opts.IO.ErrOut, "%s: unchanged since the scan of %s (%s), result from its tags\n", name, o.Record.ScannedAt.Format("2006-01-02 15:04"), o.Record.Scanner)
			switch fl := o.Record.Files; {
			case fl == nil:
				fmt.Fprintf(opts.IO.ErrOut, "%s: the tags keep no per-file findings (recorded by an older modelsync); counts: %d dangerous, %d unknown\n", name, o.Record.Findings.Dangerous, o.Record.Findings.Unknown)
			case fl.OmittedFiles > 0:
				fmt.Fprintf(opts.IO.ErrOut, "%s: %d file(s) without findings are not listed (left out of the tags to fit)\n", name, fl.OmittedFiles)
			}
		}
		if d := o.Record.Dependencies; d != nil {
			for _, v := range d.Vulnerabilities {
				note := ""
				if v.Allowed {
					note = " (allowed until " + v.AllowExpires.Format("2006-01-02") + ")"
				}
				fmt.Fprintf(opts.IO.ErrOut, "%s: %s==%s: %s (%s)%s\n", name, v.Package, v.Version, v.ID, v.Severity, note)
			}
			for _, u := range d.Unpinned {
				fmt.Fprintf(opts.IO.ErrOut, "%s: unpinned requirement %s\n", name, u)
			}
			for _, id := range d.ExpiredAllows {
				fmt.Fprintf(opts.IO.ErrOut, "%s: allow-list entry %s has expired\n", name, id)
			}
		}
	}
	return out, nil
}

// TargetOf is one version's part of the report: the scan's own report when
// one ran, else the per-file list kept in the version's tags, so a reused
// result prints the same files and findings as the scan that made it.
func TargetOf(s scanrecord.Subject, o scanrecord.Outcome) Target {
	r := scan.Report{Digest: o.Record.Digest, Scanner: o.Record.Scanner, Verdict: o.Record.Result, Files: []scan.FileReport{}}
	switch {
	case o.Report != nil:
		r = *o.Report
	case o.Record.Files != nil:
		r.Files = o.Record.Files.Reports()
	}
	return Target{Path: fmt.Sprintf("%s/%d", s.Model, s.Version), Report: r}
}

// versionsOf lists the versions (stable and canary) a model's
// environments reference, each once.
func versionsOf(m reconciler.DesiredModel, env string, opts *Options) []scanrecord.Subject {
	var deps []string
	if m.Manifest != nil {
		deps = m.Manifest.Spec.Dependencies
	}
	seen := map[int]bool{}
	var out []scanrecord.Subject
	add := func(v int) {
		if v > 0 && !seen[v] {
			seen[v] = true
			out = append(out, scanrecord.Subject{Model: m.Name, Registered: m.RegisteredModel, Version: v, SpecDependencies: deps})
		}
	}
	for _, e := range m.Environments {
		if env != "" && e.Environment != env {
			continue
		}
		add(e.Version)
		if e.Canary != nil {
			add(e.Canary.Version)
		}
	}
	return out
}
