// Command scan compares modelsync's artifact scanner with picklescan and
// modelscan, the scanners people run today, on the same files.
//
//   - Detections: the corpus of internal/scan/scantest (real models written
//     by scikit-learn, joblib, NumPy, XGBoost, safetensors, ONNX, and
//     malicious files), one run per file per tool. A tool "flags" a file
//     when it reports it dangerous (ours), exits 1 (picklescan: dangerous
//     globals found; modelscan: issues found). The table marks misses of
//     malicious files and flags on benign ones.
//   - Throughput and peak RSS: a generated ≥ 2 GiB safetensors file and a
//     ≥ 500 MB pickle (a state dict of NumPy arrays, written by Python) and an
//     opcode-dense pickle (millions of small records), each
//     tool run as its own process after the file is in the page cache;
//     peak RSS is the process's maxrss.
//
// Everything is generated into a temporary directory and removed at the
// end. It needs `test/deps/deps.sh scanpy`.
//
//	go run ./test/bench/scan [-safetensors-gib 2] [-pickle-mib 512] [-dense-millions 4] [-rounds 5] [-skip-large|-only-large]
//
// On a shared machine one run measures mostly the other load: -rounds runs
// the tools in turn that many times on each large file and prints the
// median and the best wall time, the median CPU time and the largest RSS.
package main

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/modelsync/modelsync/internal/scan"
	"github.com/modelsync/modelsync/internal/scan/scantest"
)

// toolTimeout bounds one tool on one file.
const toolTimeout = 5 * time.Minute

// selfFlag makes the benchmark binary scan one path in a child process,
// so that its time and peak RSS are measured like the Python tools'.
const selfFlag = "-scan-one"

func main() {
	if len(os.Args) == 3 && os.Args[1] == selfFlag {
		rep, err := scan.Scan(context.Background(), scan.DirSource(os.Args[2]), scan.Options{})
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(2)
		}
		json.NewEncoder(os.Stdout).Encode(rep)
		if rep.Verdict == scan.Dangerous {
			os.Exit(1)
		}
		return
	}
	stGiB := flag.Float64("safetensors-gib", 2, "size of the generated safetensors file, GiB")
	pkMiB := flag.Int("pickle-mib", 512, "size of the generated pickle, MiB")
	denseM := flag.Int("dense-millions", 4, "rows of the opcode-dense pickle, millions (0: none)")
	rounds := flag.Int("rounds", 1, "runs of each tool on each large file, in turn")
	skipLarge := flag.Bool("skip-large", false, "only the detection table")
	onlyLarge := flag.Bool("only-large", false, "only the throughput table")
	flag.Parse()
	if err := run(*stGiB, *pkMiB, *denseM, max(*rounds, 1), *skipLarge, *onlyLarge); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

type tool struct {
	name string
	argv func(path string) []string
	// flagged maps an exit code to "reported dangerous"; ok=false is an error.
	flagged func(code int) (bool, bool)
}

type result struct {
	code   int
	wall   time.Duration
	maxRSS int64 // bytes
	cpu    time.Duration
	out    string
}

func runTool(t tool, p string) result {
	argv := t.argv(p)
	// A tool that takes longer than toolTimeout is stopped and reported as
	// such (picklescan spends many minutes on opcode-dense pickles).
	ctx, cancel := context.WithTimeout(context.Background(), toolTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	start := time.Now()
	err := cmd.Run()
	r := result{wall: time.Since(start), out: out.String()}
	if cmd.ProcessState != nil {
		r.code = cmd.ProcessState.ExitCode()
		if ru, ok := cmd.ProcessState.SysUsage().(*syscall.Rusage); ok {
			r.maxRSS = ru.Maxrss << 10
			r.cpu = time.Duration(syscall.TimevalToNsec(ru.Utime) + syscall.TimevalToNsec(ru.Stime))
		}
	} else if err != nil {
		r.code = -1
		r.out = err.Error()
	}
	return r
}

func run(stGiB float64, pkMiB, denseM, rounds int, skipLarge, onlyLarge bool) error {
	self, err := os.Executable()
	if err != nil {
		return err
	}
	py, err := scantest.Python()
	if err != nil {
		return err
	}
	bin := filepath.Dir(py)
	tools := []tool{
		{"modelsync", func(p string) []string { return []string{self, selfFlag, p} }, func(c int) (bool, bool) { return c == 1, c == 0 || c == 1 }},
		{"picklescan", func(p string) []string { return []string{filepath.Join(bin, "picklescan"), "-p", p} }, func(c int) (bool, bool) { return c == 1, c == 0 || c == 1 }},
		{"modelscan", func(p string) []string { return []string{filepath.Join(bin, "modelscan"), "-p", p} }, func(c int) (bool, bool) { return c == 1, c == 0 || c == 1 || c == 3 }},
	}
	dir, err := os.MkdirTemp("", "scan-bench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	if !onlyLarge {
		corpus := filepath.Join(dir, "corpus")
		if err := os.Mkdir(corpus, 0o755); err != nil {
			return err
		}
		fmt.Println("building the corpus with", py)
		if err := scantest.Build(context.Background(), corpus); err != nil {
			return err
		}
		detections(tools, corpus)
	}
	if skipLarge {
		return nil
	}
	large := []string{filepath.Join(dir, "large.safetensors"), filepath.Join(dir, "large.pkl")}
	fmt.Printf("\ngenerating a %.1f GiB safetensors file and a %d MiB pickle\n", stGiB, pkMiB)
	if err := writeSafetensors(large[0], int64(stGiB*(1<<30))); err != nil {
		return err
	}
	if err := writePickle(py, large[1], pkMiB); err != nil {
		return err
	}
	if denseM > 0 {
		large = append(large, filepath.Join(dir, "dense.pkl"))
		if err := writeDensePickle(py, large[2], denseM); err != nil {
			return err
		}
	}
	// sha256sum is a reference: every byte is hashed anyway (coreutils'
	// build may lack the SHA extensions Go's uses).
	ref := tool{"sha256sum (reference)", func(p string) []string { return []string{"sha256sum", p} }, nil}
	return throughput(append(tools, ref), large, rounds)
}

func detections(tools []tool, corpus string) {
	tw := tabwriter.NewWriter(os.Stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "\nfile\texpected\t"+names(tools, "\t"))
	tp := make([]int, len(tools))
	fp := make([]int, len(tools))
	errs := make([]int, len(tools))
	malicious, benign := 0, 0
	var notes []string
	for _, c := range scantest.Cases {
		if c.Malicious() {
			malicious++
		} else {
			benign++
		}
		row := []string{c.Path, c.Verdict}
		for i, t := range tools {
			r := runTool(t, filepath.Join(corpus, c.Path))
			flagged, ok := t.flagged(r.code)
			cell := "-"
			switch {
			case !ok:
				cell = fmt.Sprintf("error(%d)", r.code)
				errs[i]++
				if c.Malicious() {
					cell += " MISS"
				}
			case flagged && c.Malicious():
				cell = "flagged"
				tp[i]++
			case flagged:
				cell = "flagged FALSE+"
				fp[i]++
			case c.Malicious():
				cell = "MISS"
			}
			if t.name == "modelsync" && r.code == 0 && c.Verdict == "unknown" {
				cell = "-"
			}
			if t.name == "modelsync" {
				var rep scan.Report
				if json.Unmarshal([]byte(r.out), &rep) == nil && rep.Verdict == scan.Unknown {
					cell = "unknown"
				}
			}
			if t.name != "modelsync" && (strings.Contains(cell, "MISS") || strings.Contains(cell, "FALSE")) {
				notes = append(notes, fmt.Sprintf("%s on %s: %s", t.name, c.Path, cell))
			}
			row = append(row, cell)
		}
		fmt.Fprintln(tw, strings.Join(row, "\t"))
	}
	row := []string{"TOTAL", fmt.Sprintf("%d malicious, %d other", malicious, benign)}
	for i := range tools {
		row = append(row, fmt.Sprintf("%d/%d found, %d false+, %d errors", tp[i], malicious, fp[i], errs[i]))
	}
	fmt.Fprintln(tw, strings.Join(row, "\t"))
	tw.Flush()
	if len(notes) > 0 {
		fmt.Println("\nwhere the other tools miss or over-report:")
		for _, n := range notes {
			fmt.Println("  " + n)
		}
	}
}

func names(tools []tool, sep string) string {
	var n []string
	for _, t := range tools {
		n = append(n, t.name)
	}
	return strings.Join(n, sep)
}

func throughput(tools []tool, files []string, rounds int) error {
	tw := tabwriter.NewWriter(os.Stdout, 0, 4, 2, ' ', 0)
	// Wall time on a shared machine mostly measures the other load; CPU
	// time (user + system) is what each tool costs, so both are printed,
	// with the load average the runs saw.
	fmt.Fprintf(tw, "\nfile\tsize\ttool\texit\twall (median of %d)\tMiB/s\tbest wall\tMiB/s\tCPU (median)\tMiB/s CPU\tpeak RSS\tload\n", rounds)
	for _, f := range files {
		info, err := os.Stat(f)
		if err != nil {
			return err
		}
		// Put the file in the page cache so every tool reads it from memory.
		if fh, err := os.Open(f); err == nil {
			io.Copy(io.Discard, fh)
			fh.Close()
		}
		// The tools take turns, so that a change in the load falls on all.
		runs := make([][]result, len(tools))
		loads := make([][]float64, len(tools))
		for r := 0; r < rounds; r++ {
			for i, t := range tools {
				loads[i] = append(loads[i], loadAverage())
				runs[i] = append(runs[i], runTool(t, f))
			}
		}
		mib := float64(info.Size()) / (1 << 20)
		for i, t := range tools {
			var walls, cpus []time.Duration
			var rss int64
			for _, r := range runs[i] {
				walls, cpus, rss = append(walls, r.wall), append(cpus, r.cpu), max(rss, r.maxRSS)
			}
			slices.Sort(walls)
			slices.Sort(cpus)
			slices.Sort(loads[i])
			wall, best, cpu := walls[len(walls)/2], walls[0], cpus[len(cpus)/2]
			fmt.Fprintf(tw, "%s\t%.2f GiB\t%s\t%d\t%.2fs\t%.0f\t%.2fs\t%.0f\t%.2fs\t%.0f\t%.1f MiB\t%.1f\n", filepath.Base(f), mib/1024, t.name, runs[i][0].code,
				wall.Seconds(), mib/wall.Seconds(), best.Seconds(), mib/best.Seconds(), cpu.Seconds(), mib/cpu.Seconds(), float64(rss)/(1<<20), loads[i][len(loads[i])/2])
			tw.Flush()
		}
	}
	return tw.Flush()
}

// loadAverage is the one-minute load average (0 where /proc is missing).
func loadAverage() float64 {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return 0
	}
	var l float64
	fmt.Sscan(string(b), &l)
	return l
}

// writeSafetensors writes a valid safetensors file of about size bytes:
// 256 F32 tensors sharing the data section, with non-zero data so that no
// tool or filesystem gets a sparse shortcut.
func writeSafetensors(path string, size int64) error {
	const tensors = 256
	per := size / tensors / 4 * 4
	header := map[string]any{"__metadata__": map[string]string{"format": "pt"}}
	for i := 0; i < tensors; i++ {
		header[fmt.Sprintf("layer.%03d.weight", i)] = map[string]any{"dtype": "F32", "shape": []int64{per / 4}, "data_offsets": []int64{int64(i) * per, int64(i+1) * per}}
	}
	h, _ := json.Marshal(header)
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	defer f.Close()
	if err := binary.Write(f, binary.LittleEndian, uint64(len(h))); err != nil {
		return err
	}
	if _, err := f.Write(h); err != nil {
		return err
	}
	block := make([]byte, 4<<20)
	for i := range block {
		block[i] = byte(i*7 + 3)
	}
	for left := per * tensors; left > 0; {
		n := min(left, int64(len(block)))
		if _, err := f.Write(block[:n]); err != nil {
			return err
		}
		left -= n
	}
	return f.Close()
}

// writePickle has Python pickle a state dict of NumPy arrays (what a
// scikit-learn or PyTorch checkpoint mostly is), with a few thousand small
// objects around them.
func writePickle(py, path string, mib int) error {
	script := `
import pickle, sys, numpy as np
from collections import OrderedDict
path, mib = sys.argv[1], int(sys.argv[2])
arrays = 16
n = mib * 2**20 // arrays // 8
rng = np.random.default_rng(0)
state = OrderedDict()
for i in range(arrays):
    state["layer%d.weight" % i] = rng.random(n)
    state["layer%d.meta" % i] = {"shape": [n], "names": ["w%d" % j for j in range(500)], "scale": 1.5}
with open(path, "wb") as f:
    pickle.dump(state, f, protocol=4)
`
	cmd := exec.Command(py, "-c", script, path, fmt.Sprint(mib))
	cmd.Stderr = os.Stderr
	return cmd.Run()
}

// writeDensePickle has Python pickle a list of small records (what a
// vocabulary, a feature map or a tree ensemble of Python objects is): the
// opcode-dense case, where a scanner's cost is per opcode, not per byte.
func writeDensePickle(py, path string, millions int) error {
	script := `
import pickle, sys
path, n = sys.argv[1], int(sys.argv[2]) * 1000000
rows = [(i, i * 0.5, "token%d" % i) for i in range(n)]
with open(path, "wb") as f:
    pickle.dump(rows, f, protocol=4)
`
	cmd := exec.Command(py, "-c", script, path, fmt.Sprint(millions))
	cmd.Stderr = os.Stderr
	return cmd.Run()
}
