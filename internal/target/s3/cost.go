package s3

import (
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

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
			ClassStandard:           {StorageGBMonth: 0.023, CopyPer1000: 0.005},
			"STANDARD_IA":           {StorageGBMonth: 0.0125, MinimumDays: 30, MinimumObjectBytes: 128 * kb, CopyPer1000: 0.01, RetrievalGB: 0.01},
			ClassIntelligentTiering: {StorageGBMonth: 0.023, CopyPer1000: 0.005},
			ClassGlacierIR:          {StorageGBMonth: 0.004, MinimumDays: 90, MinimumObjectBytes: 128 * kb, CopyPer1000: 0.02, RetrievalGB: 0.03},
			ClassGlacier:            {StorageGBMonth: 0.0036, MinimumDays: 90, OverheadBytes: 32 * kb, StandardOverheadBytes: 8 * kb, CopyPer1000: 0.03, RetrievalGB: 0.01},
			ClassDeepArchive:        {StorageGBMonth: 0.00099, MinimumDays: 180, OverheadBytes: 32 * kb, StandardOverheadBytes: 8 * kb, CopyPer1000: 0.05, RetrievalGB: 0.02},
		},
	}
}

// LoadPriceTable reads a price table in the JSON form PriceTable marshals to.
func LoadPriceTable(r io.Reader) (PriceTable, error) {
	var p PriceTable
	dec := json.NewDecoder(r)
	dec.DisallowUnknownFields()
	if err := dec.Decode(&p); err != nil {
		return PriceTable{}, fmt.Errorf("storage: price table: %w", err)
	}
	if _, err := time.Parse(time.DateOnly, p.AsOf); err != nil {
		return PriceTable{}, fmt.Errorf("storage: price table: asOf %q: want YYYY-MM-DD", p.AsOf)
	}
	if _, ok := p.Classes[ClassStandard]; !ok {
		return PriceTable{}, fmt.Errorf("storage: price table: no %s price, which the all-STANDARD comparison needs", ClassStandard)
	}
	norm := map[string]ClassPrice{}
	for c, cp := range p.Classes {
		if cp.StorageGBMonth < 0 || cp.MinimumDays < 0 || cp.MinimumObjectBytes < 0 {
			return PriceTable{}, fmt.Errorf("storage: price table: class %s: negative value", c)
		}
		norm[NormalizeClass(c)] = cp
	}
	p.Classes = norm
	return p, nil
}

// PlannedDelete marks an object the plan deletes.
const PlannedDelete = "(deleted)"

// ModelUsage is what one model stores, object by object.
type ModelUsage struct {
	Model   string        `json:"model"`
	Objects []ObjectUsage `json:"objects"`
}

// ObjectUsage is one stored object.
type ObjectUsage struct {
	Versions []int  `json:"versions"`
	Bucket   string `json:"bucket"`
	Key      string `json:"key"`
	Class    string `json:"class"`
	Bytes    int64  `json:"bytes"`
	// Since is when the object entered its class. modelsync changes classes
	// by copying, which resets LastModified, so that is what is used.
	Since time.Time `json:"since,omitzero"`
	// Planned is the class a plan moves the object to, PlannedDelete, or ""
	// for no change.
	Planned string `json:"planned,omitempty"`
}

// UsageOf collects the observed objects and what the plan's actions do to
// them. Restores count towards the class the object is restored for.
func UsageOf(obs *Observation, actions []reconciler.Action) []ModelUsage {
	planned := map[string]string{}
	for _, a := range actions {
		if a.Target != TargetName {
			continue
		}
		p, err := DecodePayload(a)
		if err != nil {
			continue
		}
		for _, o := range p.Objects {
			to := NormalizeClass(p.To)
			if a.Kind == KindDelete {
				to = PlannedDelete
			}
			planned[a.Model+"\x00"+p.Bucket+"/"+o.Key] = to
		}
	}
	var out []ModelUsage
	for _, ms := range obs.Models {
		mu := ModelUsage{Model: ms.Model}
		for _, p := range ms.Prefixes {
			vs := owners(&ms, p.Location)
			for _, o := range p.Objects {
				mu.Objects = append(mu.Objects, ObjectUsage{
					Versions: vs, Bucket: p.Bucket, Key: o.Key, Class: NormalizeClass(o.Class), Bytes: o.Size,
					Since: o.LastModified, Planned: planned[ms.Model+"\x00"+p.Bucket+"/"+o.Key],
				})
			}
		}
		out = append(out, mu)
	}
	return out
}

// CostReport is the storage cost of some models under a price table.
type CostReport struct {
	AsOf     string    `json:"pricesAsOf"`
	Region   string    `json:"region"`
	Currency string    `json:"currency"`
	At       time.Time `json:"at"`
	Rows     []CostRow `json:"rows"`
	// Models and Total sum the rows; objects shared by versions count once.
	Models  []CostTotal     `json:"models"`
	Total   CostTotal       `json:"total"`
	Changes []PlannedChange `json:"changes"`
	// EarlyDeletion sums the minimum-duration charges the changes cause.
	EarlyDeletion float64 `json:"earlyDeletion"`
	// OneTime sums requests, retrieval and early-deletion charges.
	OneTime float64 `json:"oneTime"`
	// Unpriced lists classes the table has no price for; they count as 0.
	Unpriced []string `json:"unpriced,omitempty"`
}

// CostRow is one model's versions in one class.
type CostRow struct {
	Model    string `json:"model"`
	Versions []int  `json:"versions"`
	Class    string `json:"class"`
	Objects  int    `json:"objects"`
	Bytes    int64  `json:"bytes"`
	// Monthly includes minimum object sizes and per-object overheads.
	Monthly     float64 `json:"monthly"`
	AllStandard float64 `json:"allStandard"`
}

// CostTotal sums a model (or everything).
type CostTotal struct {
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
	return gb(billable)*cp.StorageGBMonth + gb(cp.StandardOverheadBytes)*p.Classes[ClassStandard].StorageGBMonth, true
}

// Report prices the models' objects at time at (which dates the
// minimum-duration checks).
func (p PriceTable) Report(at time.Time, models ...ModelUsage) CostReport {
	r := CostReport{AsOf: p.AsOf, Region: p.Region, Currency: p.Currency, At: at.UTC()}
	std := p.Classes[ClassStandard].StorageGBMonth
	unpriced := map[string]bool{}
	price := func(class string, n int64) float64 {
		c, ok := p.monthly(class, n)
		if !ok {
			unpriced[class] = true
		}
		return c
	}
	for _, m := range models {
		total := CostTotal{Model: m.Model}
		rows := map[string]*CostRow{}
		changes := map[string]*PlannedChange{}
		for _, o := range m.Objects {
			class := NormalizeClass(o.Class)
			vl := versionsLabel(o.Versions)
			row := rows[vl+"\x00"+class]
			if row == nil {
				row = &CostRow{Model: m.Model, Versions: o.Versions, Class: class}
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
			planned := NormalizeClass(o.Planned)
			if o.Planned == "" || planned == class {
				total.Planned += monthly
				continue
			}
			if o.Planned != PlannedDelete {
				total.Planned += price(planned, o.Bytes)
			} else {
				planned = PlannedDelete
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
			if planned != PlannedDelete {
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
			if ch.To == PlannedDelete {
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
func (p PriceTable) earlyDeletion(class string, o ObjectUsage, at time.Time) float64 {
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

// WriteJSON writes the report as indented JSON.
func (r CostReport) WriteJSON(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(r)
}

// WriteText writes the report as aligned tables.
func (r CostReport) WriteText(w io.Writer) error {
	ew := &textio.ErrWriter{W: w}
	fmt.Fprintf(ew, "Storage cost at %s, %s list prices as of %s, %s per month (GB = 2^30 bytes)\n\n",
		r.At.Format(time.DateOnly), r.Region, r.AsOf, r.Currency)
	tw := tabwriter.NewWriter(ew, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "MODEL\tVERSIONS\tCLASS\tOBJECTS\tSIZE\tMONTHLY\tALL-STANDARD\t")
	for _, row := range r.Rows {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%s\t%s\t%s\t\n", row.Model, versionsLabel(row.Versions), row.Class,
			row.Objects, FormatBytes(row.Bytes), money(row.Monthly), money(row.AllStandard))
	}
	for _, m := range r.Models {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%s\t%s\t%s\t\n", m.Model, "", "(model)", m.Objects, FormatBytes(m.Bytes), money(m.Monthly), money(m.AllStandard))
	}
	fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%s\t%s\t%s\t\n", "TOTAL", "", "", r.Total.Objects, FormatBytes(r.Total.Bytes), money(r.Total.Monthly), money(r.Total.AllStandard))
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
				c.Objects, FormatBytes(c.Bytes), money(c.EarlyDeletion), money(c.Requests), money(c.Retrieval))
		}
		if err := tw.Flush(); err != nil {
			return err
		}
	}
	return ew.Err
}

func money(v float64) string { return fmt.Sprintf("$%.4f", v) }
