package dashboard

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"time"

	"github.com/modelsync/modelsync/internal/lineage"
	"github.com/modelsync/modelsync/internal/prverdict"
	"github.com/modelsync/modelsync/internal/redact"
	"github.com/modelsync/modelsync/internal/storagecost"
	"github.com/modelsync/modelsync/internal/textio"
	"github.com/modelsync/modelsync/reconciler"
)

// Bounds of the model page's reads from MLflow and artifact storage.
const (
	// lookupTimeout bounds one read.
	lookupTimeout = 10 * time.Second
	// lineageTTL keeps a version's lineage: a version's run does not
	// change, its tags and aliases rarely do.
	lineageTTL = 5 * time.Minute
	// storageTTL keeps a model's storage report: classes move on the
	// lifecycle's schedule, days apart.
	storageTTL = 5 * time.Minute
	// failedTTL keeps a failed read, so an outage costs one request per
	// key per failedTTL instead of one per page view.
	failedTTL = 30 * time.Second
	// lookupParallel bounds reads in flight.
	lookupParallel = 4
	// maxLineages and maxStorage bound what is kept.
	maxLineages = 512
	maxStorage  = 256
	// defaultPageWait is how long a page waits for reads it started.
	defaultPageWait = 1500 * time.Millisecond
)

// LineageFunc reads one version's lineage (lineage.Read with the
// controller's MLflow client).
type LineageFunc func(ctx context.Context, model string, version int) (*lineage.Lineage, error)

// StorageFunc reports what one model stores, object by object, with the
// classes its plan moves objects to (reconciler.StorageReporter).
type StorageFunc func(ctx context.Context, model string) (reconciler.ArtifactUsage, error)

// Verdicts is the PR gate's record of its last verdicts per model.
type Verdicts interface {
	ForModel(model string) []prverdict.Verdict
	Seq() uint64
}

type versionKey struct {
	Model   string
	Version int
}

// lineageView is one version's lineage as the page shows it.
type lineageView struct {
	Version int
	// ShownIn names the environment above where this version's lineage is
	// shown already.
	ShownIn string
	// Loading: the read is still running.
	Loading bool
	// Unavailable says why there is no lineage.
	Unavailable string
	L           *lineage.Lineage
	Metrics     []kv
	Params      []kv
	Datasets    []kv
}

type kv struct{ K, V string }

func sortedKV[V any](m map[string]V, format func(V) string) []kv {
	out := make([]kv, 0, len(m))
	for _, k := range slices.Sorted(maps.Keys(m)) {
		out = append(out, kv{k, format(m[k])})
	}
	return out
}

// storageView is the model's stored artifacts priced as `modelsync cost`
// prices them.
type storageView struct {
	// Off: no storage target reports on this server.
	Off         bool
	Loading     bool
	Unavailable string
	Rows        []storageRow
	Total       storagecost.Total
	Changes     []storagecost.PlannedChange
	Currency    string
	Prices      string // "us-east-1 list prices as of 2026-11-26"
	Unpriced    []string
}

type storageRow struct {
	storagecost.Row
	Size string
}

// versionStorage is the storage of one version, for an environment's facts.
type versionStorage struct {
	Classes []string
	Monthly float64
	Shared  bool // an object is shared with other versions
}

func (s storageView) forVersion(v int) (versionStorage, bool) {
	var out versionStorage
	found := false
	for _, r := range s.Rows {
		if !slices.Contains(r.Versions, v) {
			continue
		}
		found = true
		if !slices.Contains(out.Classes, r.Class) {
			out.Classes = append(out.Classes, r.Class)
		}
		out.Monthly += r.Monthly
		out.Shared = out.Shared || len(r.Versions) > 1
	}
	return out, found
}

// verdictView is one pull request verdict.
type verdictView struct {
	prverdict.Verdict
	URL   string
	Short string
}

// unavailable words a failed read for the page.
func unavailable(err error) string {
	return "unavailable: " + err.Error()
}

// lineageOf returns the page's view of one version's lineage.
func (d *Dashboard) lineageOf(ctx context.Context, model string, version int) *lineageView {
	lv := &lineageView{Version: version}
	if d.lineages == nil {
		lv.Unavailable = "unavailable: no MLflow tracking server is configured on this server"
		return lv
	}
	st := d.lineages.get(ctx, versionKey{model, version})
	switch {
	case !st.Ready:
		lv.Loading = true
	case st.Err != nil:
		lv.Unavailable = unavailable(st.Err)
	default:
		// A page may be open to anyone (--dashboard-anonymous-read): a
		// source or artifact address logged with credentials or a
		// presigned query is shown without them.
		l := *st.Val
		l.Source, l.ArtifactURI = redact.URL(l.Source), redact.URL(l.ArtifactURI)
		lv.L = &l
		lv.Metrics = sortedKV(st.Val.Metrics, func(f float64) string { return strconv.FormatFloat(f, 'g', 6, 64) })
		lv.Params = sortedKV(st.Val.Params, func(s string) string { return s })
		lv.Datasets = sortedKV(st.Val.Datasets, func(s string) string { return s })
	}
	return lv
}

// storageOf prices the model's stored artifacts.
func (d *Dashboard) storageOf(ctx context.Context, model string) storageView {
	if d.storage == nil {
		return storageView{Off: true}
	}
	st := d.storage.get(ctx, model)
	switch {
	case !st.Ready:
		return storageView{Loading: true}
	case st.Err != nil:
		return storageView{Unavailable: unavailable(st.Err)}
	}
	p := d.prices
	rep := p.Report(d.opts.Now(), st.Val)
	sv := storageView{Currency: rep.Currency, Prices: fmt.Sprintf("%s list prices as of %s", rep.Region, rep.AsOf), Changes: rep.Changes, Unpriced: rep.Unpriced}
	for _, r := range rep.Rows {
		sv.Rows = append(sv.Rows, storageRow{Row: r, Size: textio.FormatBytes(r.Bytes)})
	}
	if len(rep.Models) > 0 {
		sv.Total = rep.Models[0]
	}
	return sv
}

func (d *Dashboard) verdictsOf(model string) []verdictView {
	if d.opts.Verdicts == nil {
		return nil
	}
	var out []verdictView
	for _, v := range d.opts.Verdicts.ForModel(model) {
		out = append(out, verdictView{Verdict: v, URL: pullURL(d.opts.RepoURL, v.PR), Short: shortSHA(v.HeadSHA)})
	}
	return out
}

func shortSHA(s string) string {
	if len(s) > 7 {
		return s[:7]
	}
	return s
}

// pullURL links a pull request on GitHub; other hosts get no link.
func pullURL(repoURL string, number int) string {
	host, path, ok := webRepo(repoURL)
	if !ok || host != "github.com" {
		return ""
	}
	return "https://github.com/" + path + "/pull/" + strconv.Itoa(number)
}

// money prints an amount as `modelsync cost` does, to a hundredth of a
// cent; an amount too small for that says so instead of "$0.0000".
func money(v float64) string {
	if v > 0 && v < 0.00005 {
		return "< $0.0001"
	}
	return fmt.Sprintf("$%.4f", v)
}
