// Package cost implements `modelsync cost`: what model artifacts cost per
// model, version and storage class, what the lifecycle saves against
// keeping everything in STANDARD, and what planned transitions cost once.
package cost

import (
	"cmp"
	"context"
	"fmt"
	"io"
	"maps"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/modelsync/modelsync/internal/cmdutil"
	"github.com/modelsync/modelsync/internal/storagecost"
	"github.com/modelsync/modelsync/internal/textio"
	"github.com/modelsync/modelsync/internal/wiring"
	"github.com/modelsync/modelsync/reconciler"
)

// Options are the inputs of cost.
type Options struct {
	Factory  *wiring.Factory
	Repo     cmdutil.RepoFlags
	Prices   string
	Estimate string
	Output   string
	Now      func() time.Time
}

// NewCmdCost builds the command; runF replaces the work in tests of flags.
func NewCmdCost(f *wiring.Factory, runF func(context.Context, *Options) error) *cobra.Command {
	opts := &Options{Factory: f, Now: time.Now}
	cmd := &cobra.Command{
		Use:   "cost",
		Short: "Report the monthly storage cost of model artifacts and what the lifecycle saves",
		Long: `Cost lists every referenced artifact object by model, version and storage
class with its monthly price, the saving against keeping everything in
STANDARD, and the one-time charges (copies, retrieval, early deletion) the
current plan's transitions would cause.

--estimate NxSIZE prices N versions of SIZE in each class without reading
anything, e.g. --estimate 100x7GiB.`,
		Example: `  MLFLOW_TRACKING_URI=http://127.0.0.1:5000 modelsync cost --repo ./models --s3-endpoint http://127.0.0.1:9000 --s3-path-style
  modelsync cost --estimate 100x7GiB
  modelsync cost --estimate 100x7GB --prices prices-eu-west-1.json -o json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := cmdutil.CheckFormat(opts.Output, cmdutil.FormatText, cmdutil.FormatJSON); err != nil {
				return err
			}
			if runF != nil {
				return runF(cmd.Context(), opts)
			}
			return Run(cmd.Context(), opts)
		},
	}
	cmdutil.AddRepoFlags(cmd, &opts.Repo)
	cmdutil.AddTargetFlags(cmd, &f.Flags)
	cmd.Flags().StringVar(&opts.Prices, "prices", "", "JSON price table to use instead of the built-in us-east-1 list prices")
	cmd.Flags().StringVar(&opts.Estimate, "estimate", "", "price N versions of SIZE in every class, e.g. 100x7GiB (reads nothing)")
	cmd.Flags().StringVarP(&opts.Output, "output", "o", cmdutil.FormatText, "output format: text or json")
	return cmd
}

// Run prints the report.
func Run(ctx context.Context, opts *Options) error {
	prices := storagecost.DefaultPriceTable()
	if opts.Prices != "" {
		f, err := os.Open(opts.Prices)
		if err != nil {
			return err
		}
		prices, err = storagecost.LoadPriceTable(f)
		f.Close()
		if err != nil {
			return fmt.Errorf("%s: %w", opts.Prices, err)
		}
	}
	if opts.Estimate != "" {
		n, size, err := ParseEstimate(opts.Estimate)
		if err != nil {
			return err
		}
		rows := Estimate(prices, n, size, opts.Now())
		if opts.Output == cmdutil.FormatJSON {
			return cmdutil.WriteJSON(opts.Factory.IO.Out, NewEstimateJSON(prices, n, size, rows))
		}
		return writeEstimate(opts.Factory.IO.Out, prices, n, size, rows)
	}
	usage, err := observe(ctx, opts)
	if err != nil {
		return err
	}
	rep := prices.Report(opts.Now(), usage...)
	if opts.Output == cmdutil.FormatJSON {
		return rep.WriteJSON(opts.Factory.IO.Out)
	}
	return rep.WriteText(opts.Factory.IO.Out)
}

// observe reports what the models store through the artifact storage
// target (reconciler.StorageReporter), with the current plan's changes.
func observe(ctx context.Context, opts *Options) ([]reconciler.ArtifactUsage, error) {
	f := opts.Factory
	d, _, err := f.Desired(ctx, opts.Repo)
	if err != nil {
		return nil, err
	}
	f.Flags.S3, f.Flags.Only = true, []string{s3Target}
	targets, err := f.Targets(ctx)
	if err != nil {
		return nil, err
	}
	defer wiring.CloseTargets(targets)
	for _, t := range targets {
		r, ok := reconciler.As[reconciler.StorageReporter](t)
		if !ok {
			continue
		}
		usage, errs, err := r.StorageUsage(ctx, d)
		if err != nil {
			return nil, fmt.Errorf("observing artifact storage at %s: %w", d.Revision, err)
		}
		for _, e := range errs {
			fmt.Fprintf(f.IO.ErrOut, "warning: %v\n", e)
		}
		return usage, nil
	}
	return nil, fmt.Errorf("no configured target reports artifact storage (target %s)", s3Target)
}

// s3Target is the name of the artifact storage target, the one cost reads.
const s3Target = "s3"

var estimateRE = regexp.MustCompile(`^(\d+)x(\d+(?:\.\d+)?)(B|KB|MB|GB|TB|KiB|MiB|GiB|TiB)$`)

// ParseEstimate reads "100x7GiB" (binary units) or "100x7GB" (decimal).
func ParseEstimate(s string) (int, int64, error) {
	m := estimateRE.FindStringSubmatch(strings.ReplaceAll(s, " ", ""))
	if m == nil {
		return 0, 0, fmt.Errorf("--estimate: expected VERSIONSxSIZE such as 100x7GiB or 100x7GB, got %q", s)
	}
	n, _ := strconv.Atoi(m[1])
	f, _ := strconv.ParseFloat(m[2], 64)
	unit := map[string]float64{"B": 1, "KB": 1e3, "MB": 1e6, "GB": 1e9, "TB": 1e12, "KiB": 1 << 10, "MiB": 1 << 20, "GiB": 1 << 30, "TiB": 1 << 40}[m[3]]
	if n <= 0 || f <= 0 {
		return 0, 0, fmt.Errorf("--estimate: versions and size must be positive, got %q", s)
	}
	return n, int64(f * unit), nil
}

// EstimateJSON is `cost --estimate -o json` (schema
// cost-estimate.schema.json), money rounded to cents.
type EstimateJSON struct {
	PricesAsOf string        `json:"pricesAsOf"`
	Region     string        `json:"region"`
	Currency   string        `json:"currency"`
	Versions   int           `json:"versions"`
	Bytes      int64         `json:"bytesPerVersion"`
	Rows       []EstimateRow `json:"rows"`
}

// NewEstimateJSON builds the JSON form of an estimate.
func NewEstimateJSON(prices storagecost.PriceTable, n int, size int64, rows []EstimateRow) EstimateJSON {
	out := EstimateJSON{PricesAsOf: prices.AsOf, Region: prices.Region, Currency: prices.Currency, Versions: n, Bytes: size, Rows: make([]EstimateRow, 0, len(rows))}
	for _, r := range rows {
		r.Monthly, r.AllStandard, r.Saving = storagecost.Cents(r.Monthly), storagecost.Cents(r.AllStandard), storagecost.Cents(r.Saving)
		out.Rows = append(out.Rows, r)
	}
	return out
}

// EstimateRow is the monthly cost of the estimated versions in one class.
type EstimateRow struct {
	Class       string  `json:"class"`
	Monthly     float64 `json:"monthly"`
	AllStandard float64 `json:"allStandard"`
	Saving      float64 `json:"saving"`
}

// Estimate prices n one-object versions of size bytes in every class of the
// table, hottest class first, with the same arithmetic as the live report.
func Estimate(prices storagecost.PriceTable, n int, size int64, at time.Time) []EstimateRow {
	classes := slices.Collect(maps.Keys(prices.Classes))
	slices.SortFunc(classes, func(a, b string) int {
		return cmp.Or(cmp.Compare(prices.Classes[b].StorageGBMonth, prices.Classes[a].StorageGBMonth), cmp.Compare(a, b))
	})
	var rows []EstimateRow
	for _, class := range classes {
		u := reconciler.ArtifactUsage{Model: "estimate"}
		for v := 1; v <= n; v++ {
			u.Objects = append(u.Objects, reconciler.StoredObject{Versions: []int{v}, Bucket: "estimate", Key: fmt.Sprintf("v%d/model", v), Class: class, Bytes: size})
		}
		t := prices.Report(at, u).Total
		rows = append(rows, EstimateRow{Class: class, Monthly: t.Monthly, AllStandard: t.AllStandard, Saving: t.Saving})
	}
	return rows
}

func writeEstimate(w io.Writer, prices storagecost.PriceTable, n int, size int64, rows []EstimateRow) error {
	fmt.Fprintf(w, "%d versions x %s, %s list prices as of %s, %s per month\n\n", n, textio.FormatBytes(size), prices.Region, prices.AsOf, prices.Currency)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "CLASS\tMONTHLY\tSAVING VS STANDARD\t")
	for _, r := range rows {
		pct := 0.0
		if r.AllStandard > 0 {
			pct = 100 * r.Saving / r.AllStandard
		}
		fmt.Fprintf(tw, "%s\t$%.2f\t$%.2f (%.0f%%)\t\n", r.Class, r.Monthly, r.Saving, pct)
	}
	return tw.Flush()
}
