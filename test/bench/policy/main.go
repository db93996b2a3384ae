// Command policybench measures the policy gate against conftest on the
// same input and rules. It stands in for `modelsync check`, which does not
// exist yet: load the bundle, evaluate once, print the verdict.
//
//	policybench gen  -models 1000 -changed 50 -o input.json
//	policybench eval [-bundle DIR] input.json          # cold: one process, one evaluation
//	policybench warm [-bundle DIR] [-n 200] input.json # compile once, evaluate n times
//
// eval and warm print "denies=N warnings=M" so run.sh can check that
// conftest reached the same verdict; warm also prints "ns_per_eval=N".
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"time"

	"github.com/modelsync/modelsync/policy"
	"github.com/modelsync/modelsync/policy/policytest"
)

func main() {
	if err := run(os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "policybench:", err)
		os.Exit(2)
	}
}

func run(args []string) error {
	if len(args) == 0 {
		return errors.New("usage: policybench gen|eval|warm [flags]")
	}
	fs := flag.NewFlagSet(args[0], flag.ContinueOnError)
	models := fs.Int("models", 1000, "gen: models in the repository")
	changed := fs.Int("changed", 50, "gen: models the pull request changes")
	out := fs.String("o", "input.json", "gen: output file")
	bundleDir := fs.String("bundle", "", "eval, warm: bundle directory (default: the embedded bundle)")
	n := fs.Int("n", 200, "warm: evaluations")
	if err := fs.Parse(args[1:]); err != nil {
		return err
	}
	switch args[0] {
	case "gen":
		raw, err := json.Marshal(policytest.Generate(policytest.Spec{Models: *models, Changed: *changed}))
		if err != nil {
			return err
		}
		return os.WriteFile(*out, raw, 0o644)
	case "eval", "warm":
		if fs.NArg() != 1 {
			return errors.New("want one input file")
		}
		src := policy.DefaultSource()
		if *bundleDir != "" {
			src = policy.DirSource(*bundleDir)
		}
		ctx := context.Background()
		e, err := policy.Load(ctx, src)
		if err != nil {
			return err
		}
		raw, err := os.ReadFile(fs.Arg(0))
		if err != nil {
			return err
		}
		var in policy.Input
		if err := json.Unmarshal(raw, &in); err != nil {
			return fmt.Errorf("%s: %w", fs.Arg(0), err)
		}
		res, err := e.Evaluate(ctx, &in)
		if err != nil {
			return err
		}
		if args[0] == "warm" {
			start := time.Now()
			for range *n {
				if res, err = e.Evaluate(ctx, &in); err != nil {
					return err
				}
			}
			fmt.Printf("ns_per_eval=%d\n", time.Since(start).Nanoseconds()/int64(*n))
		}
		fmt.Printf("denies=%d warnings=%d\n", len(res.Denies), len(res.Warnings))
		return nil
	}
	return fmt.Errorf("unknown command %q", args[0])
}
