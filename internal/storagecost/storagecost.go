// Package storagecost prices what model artifacts store: monthly cost per
// model, version and storage class, the saving against keeping everything
// in STANDARD, and the one-time charges a plan's class changes cause. It
// reads nothing; the s3 target reports the usage (reconciler.StorageReporter).
package storagecost

import (
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"math"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/modelsync/modelsync/internal/storageclass"
	"github.com/modelsync/modelsync/internal/textio"
	"github.com/modelsync/modelsync/reconciler"
)

// BillingGB is the GB of S3 prices: binary, 2^30 bytes.
const BillingGB = 1 << 30

// daysPerMonth prorates monthly prices for early-deletion charges. AWS bills
// GB-hours over the calendar month; 30 days is within 3% of every month.
const daysPerMonth = 30

// ClassPrice is the list price of one storage class.
type ClassPrice struct {
	// StorageGBMonth is the price of one GB (2^30 bytes) for a month.
	StorageGBMonth float64 `json:"storageGBMonth"`
	// MinimumDays is the minimum billed duration: deleting, overwriting or
	// transitioning earlier bills the remaining days.
	MinimumDays int `json:"minimumDays,omitempty"`
	// MinimumObjectBytes bills smaller objects as this size.
	MinimumObjectBytes int64 `json:"minimumObjectBytes,omitempty"`
	// OverheadBytes is added per object at this class's rate, and
	// StandardOverheadBytes per object at the STANDARD rate (GLACIER and
	// DEEP_ARCHIVE index data).
	OverheadBytes         int64 `json:"overheadBytes,omitempty"`
	StandardOverheadBytes int64 `json:"standardOverheadBytes,omitempty"`
	// CopyPer1000 is the PUT/COPY request price, paid at the class copied to.
	CopyPer1000 float64 `json:"copyPer1000,omitempty"`
	// RetrievalGB is paid per GB read out of the class (for GLACIER and
	// DEEP_ARCHIVE, the Standard restore tier).
	RetrievalGB float64 `json:"retrievalGB,omitempty"`
}

// PriceTable is a dated, replaceable set of prices.
type PriceTable struct {
	// AsOf is the date the prices were taken, YYYY-MM-DD.
	AsOf     string                `json:"asOf"`
	Region   string                `json:"region"`
	Currency string                `json:"currency"`
	Source   string                `json:"source,omitempty"`
	Classes  map[string]ClassPrice `json:"classes"`
}

// DefaultPriceTable is the public us-east-1 list price table as modelsync
// recorded it. Replace it (LoadPriceTable) when prices change or for
// another region.
func DefaultPriceTable() PriceTable {
	const kb = 1024
	return PriceTable{
		AsOf:     "2026-11-26",
		Region:   "us-east-1",
		Currency: "USD",
		Source: "long-standing S3 list prices for us-east-1 (first 50 TB tier), cross-checked against 2026 third-party summaries, " +
			"not against the AWS Price List API; GLACIER is Flexible Retrieval at its post-2021 price",
		Classes: map[string]ClassPrice{
			storageclass.Standard:           {StorageGBMonth: 0.023, CopyPer1000: 0.005},
			"STANDARD_IA":                   {StorageGBMonth: 0.0125, MinimumDays: 30, MinimumObjectBytes: 128 * kb, CopyPer1000: 0.01, RetrievalGB: 0.01},
			storageclass.IntelligentTiering: {StorageGBMonth: 0.023, CopyPer1000: 0.005},
			storageclass.GlacierIR:          {StorageGBMonth: 0.004, MinimumDays: 90, MinimumObjectBytes: 128 * kb, CopyPer1000: 0.02, RetrievalGB: 0.03},
			storageclass.Glacier:            {StorageGBMonth: 0.0036, MinimumDays: 90, OverheadBytes: 32 * kb, StandardOverheadBytes: 8 * kb, CopyPer1000: 0.03, RetrievalGB: 0.01},
			storageclass.DeepArchive:        {StorageGBMonth: 0.00099, MinimumDays: 180, OverheadBytes: 32 * kb, StandardOverheadBytes: 8 * kb, CopyPer1000: 0.05, RetrievalGB: 0.02},
		},
	}
}

// LoadPriceTable reads a price table in the JSON form PriceTable marshals to.
func LoadPriceTable(r io.Reader) (PriceTable, error) {
	var p PriceTable
	dec := json.NewDecoder(r)
	dec.DisallowUnknownFields()
	if err := dec.Decode(&p); err != nil {
		return PriceTable{}, fmt.Errorf("price table: %w", err)
	}
	if _, err := time.Parse(time.DateOnly, p.AsOf); err != nil {
		return PriceTable{}, fmt.Errorf("price table: asOf %q: want YYYY-MM-DD", p.AsOf)
	}
	if _, ok := p.Classes[storageclass.Standard]; !ok {
		return PriceTable{}, fmt.Errorf("price table: no %s price, which the all-STANDARD comparison needs", storageclass.Standard)
	}
	norm := map[string]ClassPrice{}
	for c, cp := range p.Classes {
		if cp.StorageGBMonth < 0 || cp.MinimumDays < 0 || cp.MinimumObjectBytes < 0 {
			return PriceTable{}, fmt.Errorf("price table: class %s: negative value", c)
		}
		norm[storageclass.Normalize(c)] = cp
	}
	p.Classes = norm
	return p, nil
}

// Report is the storage cost of some models under a price table.
type Report struct {
	AsOf     string    `json:"pricesAsOf"`
	Region   string    `json:"region"`
	Currency string    `json:"currency"`
	At       time.Time `json:"at"`
	Rows     []Row     `json:"rows"`
	// Models and Total sum the rows; objects shared by versions count once.
	Models  []Total         `json:"models"`
	Total   Total           `json:"total"`
	Changes []PlannedChange `json:"changes"`
	// EarlyDeletion sums the minimum-duration charges the changes cause.
	EarlyDeletion float64 `json:"earlyDeletion"`
	// OneTime sums requests, retrieval and early-deletion charges.
	OneTime float64 `json:"oneTime"`
	// Unpriced lists classes the table has no price for; they count as 0.
	Unpriced []string `json:"unpriced"`
}

// Row is one model's versions in one class.
type Row struct {
	Model    string `json:"model"`
	Versions []int  `json:"versions"`
	Class    string `json:"class"`
	Objects  int    `json:"objects"`
	Bytes    int64  `json:"bytes"`
	// Monthly includes minimum object sizes and per-object overheads.
	Monthly     float64 `json:"monthly"`
	AllStandard float64 `json:"allStandard"`
}

// Total sums a model (or everything).
type Total struct {
	Model       string  `json:"model,omitempty"`
	Objects     int     `json:"objects"`
	Bytes       int64   `json:"bytes"`
	Monthly     float64 `json:"monthly"`
	AllStandard float64 `json:"allStandard"`
	// Saving is AllStandard - Monthly.
	Saving float64 `json:"saving"`
	// Planned is Monthly once the plan has been applied.
	Planned float64 `json:"planned"`
}

// PlannedChange is a set of objects a plan moves or deletes, with what the
// move costs once.
type PlannedChange struct {
	Model    string `json:"model"`
	Versions []int  `json:"versions"`
	From     string `json:"from"`
	To       string `json:"to"`
	Objects  int    `json:"objects"`
	Bytes    int64  `json:"bytes"`
	// EarlyDeletion is billed for leaving From before its minimum duration.
	EarlyDeletion float64 `json:"earlyDeletion"`
	// Requests and Retrieval are the copy requests (one per object) and
	// the retrieval fee of reading From.
	Requests  float64 `json:"requests"`
	Retrieval float64 `json:"retrieval"`
}

func gb(n int64) float64 { return float64(n) / BillingGB }

// monthly is the month's storage price of one object of n bytes.
func (p PriceTable) monthly(class string, n int64) (float64, bool) {
	cp, ok := p.Classes[class]
	if !ok {
		return 0, false
	}
	billable := max(n, cp.MinimumObjectBytes) + cp.OverheadBytes
	return gb(billable)*cp.StorageGBMonth + gb(cp.StandardOverheadBytes)*p.Classes[storageclass.Standard].StorageGBMonth, true
}

// Report prices the models' objects at time at (which dates the
// minimum-duration checks).
func (p PriceTable) Report(at time.Time, models ...reconciler.ArtifactUsage) Report {
	r := Report{AsOf: p.AsOf, Region: p.Region, Currency: p.Currency, At: at.UTC()}
	std := p.Classes[storageclass.Standard].StorageGBMonth
	unpriced := map[string]bool{}
	price := func(class string, n int64) float64 {
		c, ok := p.monthly(class, n)
		if !ok {
			unpriced[class] = true
		}
		return c
	}
	for _, m := range models {
		total := Total{Model: m.Model}
		rows := map[string]*Row{}
		changes := map[string]*PlannedChange{}
		for _, o := range m.Objects {
			class := storageclass.Normalize(o.Class)
			vl := versionsLabel(o.Versions)
			row := rows[vl+"\x00"+class]
			if row == nil {
				row = &Row{Model: m.Model, Versions: o.Versions, Class: class}
				rows[vl+"\x00"+class] = row
			}
			monthly := price(class, o.Bytes)
			row.Objects++
			row.Bytes += o.Bytes
			row.Monthly += monthly
			row.AllStandard += gb(o.Bytes) * std
			total.Objects++
			total.Bytes += o.Bytes
			total.Monthly += monthly
			total.AllStandard += gb(o.Bytes) * std
			planned := storageclass.Normalize(o.Planned)
			if o.Planned == "" || planned == class {
				total.Planned += monthly
				continue
			}
			if o.Planned != reconciler.PlannedDelete {
				total.Planned += price(planned, o.Bytes)
			} else {
				planned = reconciler.PlannedDelete
			}
			key := vl + "\x00" + class + "\x00" + planned
			ch := changes[key]
			if ch == nil {
				ch = &PlannedChange{Model: m.Model, Versions: o.Versions, From: class, To: planned}
				changes[key] = ch
			}
			ch.Objects++
			ch.Bytes += o.Bytes
			ch.EarlyDeletion += p.earlyDeletion(class, o, at)
			if planned != reconciler.PlannedDelete {
				ch.Requests += p.Classes[planned].CopyPer1000 / 1000
			}
			ch.Retrieval += gb(o.Bytes) * p.Classes[class].RetrievalGB
		}
		total.Saving = total.AllStandard - total.Monthly
		for _, k := range slices.Sorted(maps.Keys(rows)) {
			r.Rows = append(r.Rows, *rows[k])
		}
		for _, k := range slices.Sorted(maps.Keys(changes)) {
			ch := changes[k]
			if ch.To == reconciler.PlannedDelete {
				ch.Retrieval = 0 // deleting reads nothing
			}
			r.Changes = append(r.Changes, *ch)
			r.EarlyDeletion += ch.EarlyDeletion
			r.OneTime += ch.EarlyDeletion + ch.Requests + ch.Retrieval
		}
		r.Models = append(r.Models, total)
		r.Total.Objects += total.Objects
		r.Total.Bytes += total.Bytes
		r.Total.Monthly += total.Monthly
		r.Total.AllStandard += total.AllStandard
		r.Total.Planned += total.Planned
	}
	r.Total.Saving = r.Total.AllStandard - r.Total.Monthly
	r.Unpriced = slices.Sorted(maps.Keys(unpriced))
	return r
}

// earlyDeletion is the charge for an object leaving its class before the
// class's minimum duration: the remaining days at the class's price.
func (p PriceTable) earlyDeletion(class string, o reconciler.StoredObject, at time.Time) float64 {
	cp, ok := p.Classes[class]
	if !ok || cp.MinimumDays == 0 || o.Since.IsZero() {
		return 0
	}
	age := at.Sub(o.Since).Hours() / 24
	remaining := float64(cp.MinimumDays) - age
	if remaining <= 0 {
		return 0
	}
	m, _ := p.monthly(class, o.Bytes)
	return m * remaining / daysPerMonth
}

// WriteJSON writes the report as indented JSON (schema cost.schema.json):
// money rounded to cents, as a bill is, and lists [] when empty.
func (r Report) WriteJSON(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(r.forJSON())
}

// Cents rounds an amount of money to cents.
func Cents(x float64) float64 { return math.Round(x*100) / 100 }

// forJSON is a copy with money in cents and no nil lists; the sums were
// made at full precision, so a total may differ by a cent from the sum of
// its rounded parts, as on a bill.
func (r Report) forJSON() Report {
	out := r
	out.Rows = make([]Row, 0, len(r.Rows))
	for _, row := range r.Rows {
		row.Versions = nonNil(row.Versions)
		row.Monthly, row.AllStandard = Cents(row.Monthly), Cents(row.AllStandard)
		out.Rows = append(out.Rows, row)
	}
	total := func(t Total) Total {
		t.Monthly, t.AllStandard, t.Saving, t.Planned = Cents(t.Monthly), Cents(t.AllStandard), Cents(t.Saving), Cents(t.Planned)
		return t
	}
	out.Models = make([]Total, 0, len(r.Models))
	for _, m := range r.Models {
		out.Models = append(out.Models, total(m))
	}
	out.Total = total(r.Total)
	out.Changes = make([]PlannedChange, 0, len(r.Changes))
	for _, c := range r.Changes {
		c.Versions = nonNil(c.Versions)
		c.EarlyDeletion, c.Requests, c.Retrieval = Cents(c.EarlyDeletion), Cents(c.Requests), Cents(c.Retrieval)
		out.Changes = append(out.Changes, c)
	}
	out.EarlyDeletion, out.OneTime = Cents(r.EarlyDeletion), Cents(r.OneTime)
	out.Unpriced = nonNil(r.Unpriced)
	return out
}

func nonNil[T any](s []T) []T {
	if s == nil {
		return []T{}
	}
	return s
}

// WriteText writes the report as aligned tables.
func (r Report) WriteText(w io.Writer) error {
	ew := &textio.ErrWriter{W: w}
	fmt.Fprintf(ew, "Storage cost at %s, %s list prices as of %s, %s per month (GB = 2^30 bytes)\n\n",
		r.At.Format(time.DateOnly), r.Region, r.AsOf, r.Currency)
	tw := tabwriter.NewWriter(ew, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "MODEL\tVERSIONS\tCLASS\tOBJECTS\tSIZE\tMONTHLY\tALL-STANDARD\t")
	for _, row := range r.Rows {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%s\t%s\t%s\t\n", row.Model, versionsLabel(row.Versions), row.Class,
			row.Objects, textio.FormatBytes(row.Bytes), money(row.Monthly), money(row.AllStandard))
	}
	for _, m := range r.Models {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%s\t%s\t%s\t\n", m.Model, "", "(model)", m.Objects, textio.FormatBytes(m.Bytes), money(m.Monthly), money(m.AllStandard))
	}
	fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%s\t%s\t%s\t\n", "TOTAL", "", "", r.Total.Objects, textio.FormatBytes(r.Total.Bytes), money(r.Total.Monthly), money(r.Total.AllStandard))
	if err := tw.Flush(); err != nil {
		return err
	}
	pct := 0.0
	if r.Total.AllStandard > 0 {
		pct = 100 * r.Total.Saving / r.Total.AllStandard
	}
	fmt.Fprintf(ew, "\nSaving against all-STANDARD: %s per month (%.1f%%). After the plan: %s per month.\n",
		money(r.Total.Saving), pct, money(r.Total.Planned))
	if len(r.Unpriced) > 0 {
		fmt.Fprintf(ew, "No price for %s: counted as 0.\n", strings.Join(r.Unpriced, ", "))
	}
	if len(r.Changes) > 0 {
		fmt.Fprintf(ew, "\nPlanned changes, one-time costs (early deletion: %s; all one-time: %s):\n", money(r.EarlyDeletion), money(r.OneTime))
		tw = tabwriter.NewWriter(ew, 0, 0, 2, ' ', tabwriter.AlignRight)
		fmt.Fprintln(tw, "MODEL\tVERSIONS\tFROM\tTO\tOBJECTS\tSIZE\tEARLY-DELETION\tREQUESTS\tRETRIEVAL\t")
		for _, c := range r.Changes {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d\t%s\t%s\t%s\t%s\t\n", c.Model, versionsLabel(c.Versions), c.From, c.To,
				c.Objects, textio.FormatBytes(c.Bytes), money(c.EarlyDeletion), money(c.Requests), money(c.Retrieval))
		}
		if err := tw.Flush(); err != nil {
			return err
		}
	}
	return ew.Err
}

func money(v float64) string { return fmt.Sprintf("$%.4f", v) }

// versionsLabel renders versions as the s3 target's messages do: "v1,v2".
func versionsLabel(vs []int) string {
	parts := make([]string, len(vs))
	for i, v := range vs {
		parts[i] = fmt.Sprintf("v%d", v)
	}
	return strings.Join(parts, ",")
}
