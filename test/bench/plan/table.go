package main

import (
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
)

// row is one line of the table: a cell per size and, when the row has a
// number to compare, that number per size for the growth column.
type row struct {
	name   string
	cells  []string
	values []float64
}

func printTable(w io.Writer, cfg benchConfig, runs []sizeRun, load string) {
	fmt.Fprintf(w, "observe + plan of each target against its server holding the converged state, one child process per target and size; load average after: %s\n", load)
	if len(cfg.kserveEnvs) > 0 {
		fmt.Fprintf(w, "KServe serves only %s\n", strings.Join(cfg.kserveEnvs, ","))
	}
	var rows []row
	add := func(name string, cell func(sizeRun) (string, float64, bool)) {
		r := row{name: name}
		any := false
		for _, s := range runs {
			c, v, ok := cell(s)
			if !ok {
				c, v = "—", 0
			} else {
				any = true
			}
			r.cells, r.values = append(r.cells, c), append(r.values, v)
		}
		if any {
			rows = append(rows, r)
		}
	}
	for _, server := range []string{"MLflow (SQL)", "kube-apiserver", "MinIO"} {
		add("seed "+server+" (wall)", func(s sizeRun) (string, float64, bool) {
			for _, t := range s.seeds {
				if t.server == server {
					return fmt.Sprintf("%s: %v", t.what, round(t.wall)), float64(t.wall), true
				}
			}
			return "", 0, false
		})
	}
	for _, t := range targetOrder {
		get := func(s sizeRun) (childResult, bool) { r, ok := s.results[t]; return r, ok }
		if t != "mlflow" {
			add(t+": locator fill, wall / CPU (MLflow reads)", func(s sizeRun) (string, float64, bool) {
				r, ok := get(s)
				return fmt.Sprintf("%v / %v (%d)", round(r.LocateWall), round(r.LocateCPU), r.LocateReads), float64(r.LocateCPU), ok
			})
		}
		add(t+": observe, wall / CPU", func(s sizeRun) (string, float64, bool) {
			r, ok := get(s)
			return fmt.Sprintf("%v / %v", round(r.ObserveWall), round(r.ObserveCPU)), float64(r.ObserveCPU), ok
		})
		add(t+": plan CPU (target) / BuildPlan CPU", func(s sizeRun) (string, float64, bool) {
			r, ok := get(s)
			return fmt.Sprintf("%v / %v", round(r.PlanCPU), round(r.BuildCPU)), float64(r.PlanCPU), ok
		})
		add(t+": requests, first pass", func(s sizeRun) (string, float64, bool) {
			r, ok := get(s)
			return requests(r.Requests), float64(total(r.Requests)), ok
		})
		add(t+": resync (second pass), wall / CPU, requests", func(s sizeRun) (string, float64, bool) {
			r, ok := get(s)
			return fmt.Sprintf("%v / %v, %s", round(r.ResyncWall), round(r.ResyncCPU), requests(r.ResyncRequests)), float64(r.ResyncCPU), ok
		})
		add(t+": heap kept per object", func(s sizeRun) (string, float64, bool) {
			r, ok := get(s)
			return fmt.Sprintf("%.1f KB × %d", r.HeapPerObject/1000, r.Objects), r.HeapPerObject, ok
		})
		add(t+": peak RSS (after the desired state alone)", func(s sizeRun) (string, float64, bool) {
			r, ok := get(s)
			return fmt.Sprintf("%.0f MB (%.0f MB)", r.PeakRSSMB, r.DesiredRSSMB), r.PeakRSSMB, ok
		})
	}
	fmt.Fprintf(w, "| |")
	for _, s := range runs {
		fmt.Fprintf(w, " %s models |", thousands(s.models))
	}
	fmt.Fprintf(w, " growth per step |\n|---|")
	for range runs {
		fmt.Fprintf(w, "---|")
	}
	fmt.Fprintf(w, "---|\n")
	sizes := make([]int, len(runs))
	for i, s := range runs {
		sizes[i] = s.models
	}
	for _, r := range rows {
		fmt.Fprintf(w, "| %s | %s | %s |\n", r.name, strings.Join(r.cells, " | "), growth(sizes, r.values))
	}
}

// growth says how much each value grew against the one before, per step
// in size: "9.8× for 10×, 5.1× for 5×". A step from or to nothing is "—".
func growth(sizes []int, values []float64) string {
	var out []string
	for i := 1; i < len(sizes) && i < len(values); i++ {
		step := fmt.Sprintf("%.0f×", float64(sizes[i])/float64(sizes[i-1]))
		if values[i-1] <= 0 || values[i] <= 0 {
			out = append(out, "— for "+step)
			continue
		}
		out = append(out, fmt.Sprintf("%.1f× for %s", values[i]/values[i-1], step))
	}
	return strings.Join(out, ", ")
}

func requests(m map[string]int64) string {
	if total(m) == 0 {
		return "0"
	}
	var parts []string
	for _, k := range slices.Sorted(maps.Keys(m)) {
		parts = append(parts, fmt.Sprintf("%s %s", k, thousands(int(m[k]))))
	}
	return strings.Join(parts, ", ")
}

func total(m map[string]int64) int64 {
	var n int64
	for _, v := range m {
		n += v
	}
	return n
}

// thousands writes n with comma separators, as the README does.
func thousands(n int) string {
	s := fmt.Sprint(n)
	if n < 0 {
		return "-" + thousands(-n)
	}
	for i := len(s) - 3; i > 0; i -= 3 {
		s = s[:i] + "," + s[i:]
	}
	return s
}
