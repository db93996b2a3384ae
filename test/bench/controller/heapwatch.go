package main

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"runtime"
	"runtime/metrics"
	"runtime/pprof"
	"strings"
	"sync"
	"time"
)

// heapWatch samples the Go heap while the child runs, so the report can say
// how much of the peak RSS was live heap, how much was heap the GC had not
// yet reclaimed, and (with -memprofile) what held it at the peak. Samples
// come from runtime/metrics, which does not stop the world.
type heapWatch struct {
	stop chan struct{}
	done chan struct{}

	mu        sync.Mutex
	peakHeap  uint64 // largest heap in use (live + not yet swept) seen
	peakTotal uint64 // largest memory mapped by the runtime seen
	peakProf  []byte // heap profile taken when peakHeap was last raised by 5%
}

const (
	metricHeapObjects = "/memory/classes/heap/objects:bytes"
	metricTotal       = "/memory/classes/total:bytes"
	sampleEvery       = 5 * time.Millisecond
)

func startHeapWatch(memProfile string) *heapWatch {
	w := &heapWatch{stop: make(chan struct{}), done: make(chan struct{})}
	go w.loop(memProfile != "")
	return w
}

func (w *heapWatch) loop(profile bool) {
	defer close(w.done)
	samples := []metrics.Sample{{Name: metricHeapObjects}, {Name: metricTotal}}
	var lastProf uint64
	t := time.NewTicker(sampleEvery)
	defer t.Stop()
	for {
		metrics.Read(samples)
		heap, total := samples[0].Value.Uint64(), samples[1].Value.Uint64()
		w.mu.Lock()
		w.peakHeap = max(w.peakHeap, heap)
		w.peakTotal = max(w.peakTotal, total)
		w.mu.Unlock()
		// The heap profile describes the live set at the last GC, so a
		// profile per 5% of growth is enough to see the peak's holders.
		if profile && heap > lastProf+lastProf/20 {
			var buf bytes.Buffer
			if err := pprof.Lookup("heap").WriteTo(&buf, 0); err == nil {
				lastProf = heap
				w.mu.Lock()
				w.peakProf = buf.Bytes()
				w.mu.Unlock()
			}
		}
		select {
		case <-w.stop:
			return
		case <-t.C:
		}
	}
}

// report stops sampling and prints the heap figures; with memProfile it
// writes memProfile.peak and memProfile.end.
func (w *heapWatch) report(out io.Writer, memProfile string) error {
	close(w.stop)
	<-w.done
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	mb := func(b uint64) float64 { return float64(b) / (1 << 20) }
	fmt.Fprintf(out, "  Go heap: peak in use %.1f MiB, peak mapped by the runtime %.1f MiB, %d GCs; at the end: in use %.1f MiB, "+
		"heap sys %.1f MiB, released %.1f MiB, GC goal %.1f MiB\n",
		mb(w.peakHeap), mb(w.peakTotal), ms.NumGC, mb(ms.HeapInuse), mb(ms.HeapSys), mb(ms.HeapReleased), mb(ms.NextGC))
	// What the next pass starts from: the heap that survives a collection,
	// and the roots the GC goal also counts.
	runtime.GC()
	live := []metrics.Sample{{Name: "/gc/heap/live:bytes"}, {Name: "/gc/scan/globals:bytes"}, {Name: "/gc/scan/stack:bytes"}}
	metrics.Read(live)
	fmt.Fprintf(out, "  live after a GC: heap %.1f MiB, globals %.1f MiB, stacks %.1f MiB\n",
		mb(live[0].Value.Uint64()), mb(live[1].Value.Uint64()), mb(live[2].Value.Uint64()))
	if memProfile == "" {
		return nil
	}
	if err := os.WriteFile(memProfile+".peak", w.peakProf, 0o644); err != nil {
		return err
	}
	f, err := os.Create(memProfile + ".end")
	if err != nil {
		return err
	}
	if err := pprof.Lookup("heap").WriteTo(f, 0); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// procMemory is a process's peak and current resident set, from
// /proc/<pid>/status.
//
// The peak is VmHWM, the high-water mark of the process's own address
// space. getrusage's ru_maxrss is not used: Linux carries the parent's
// high-water mark into a child across fork/vfork and exec (exec_mmap
// records the old address space's peak in the signal struct that
// ru_maxrss reads), so a child of this bench reported the bench parent's
// peak instead of its own.
//
// VmHWM counts the executable's pages too, and how many of those are
// mapped depends on the page cache (the kernel maps cached neighbours of a
// faulting page, so a freshly built binary is mapped almost whole). The
// anonymous part, what the process allocated, has no high-water mark in
// /proc; PeakAnon is the largest of samples taken every few milliseconds.
type procMemory struct {
	HWM, Anon, File uint64 // KiB
	PeakAnon        uint64 // KiB, sampled
}

func (m procMemory) String() string {
	mib := func(k uint64) float64 { return float64(k) / 1024 }
	return fmt.Sprintf("%.1f MiB (VmHWM), anonymous at most %.1f MiB; at the end %.1f MiB anonymous + %.1f MiB mapped from files, mostly the executable",
		mib(m.HWM), mib(m.PeakAnon), mib(m.Anon), mib(m.File))
}

// anonWatch samples a process's RssAnon until stopped.
type anonWatch struct {
	stop chan struct{}
	done chan struct{}
	once sync.Once
	peak uint64 // KiB; written by the loop, read after done
}

// halt stops sampling; it may be called more than once.
func (w *anonWatch) halt() {
	w.once.Do(func() { close(w.stop) })
	<-w.done
}

func watchAnon(pid string) *anonWatch {
	w := &anonWatch{stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(w.done)
		t := time.NewTicker(sampleEvery)
		defer t.Stop()
		for {
			if m, err := readProcStatus(pid); err == nil {
				w.peak = max(w.peak, m.Anon)
			}
			select {
			case <-w.stop:
				return
			case <-t.C:
			}
		}
	}()
	return w
}

// memory stops sampling and returns the process's memory figures.
func (w *anonWatch) memory(pid string) (procMemory, error) {
	w.halt()
	m, err := readProcStatus(pid)
	m.PeakAnon = max(w.peak, m.Anon)
	return m, err
}

func readProcStatus(pid string) (procMemory, error) {
	b, err := os.ReadFile("/proc/" + pid + "/status")
	if err != nil {
		return procMemory{}, fmt.Errorf("peak RSS needs Linux /proc: %w", err)
	}
	var m procMemory
	for _, line := range strings.Split(string(b), "\n") {
		name, rest, ok := strings.Cut(line, ":")
		if !ok {
			continue
		}
		var dst *uint64
		switch name {
		case "VmHWM":
			dst = &m.HWM
		case "RssAnon":
			dst = &m.Anon
		case "RssFile":
			dst = &m.File
		default:
			continue
		}
		if _, err := fmt.Sscanf(strings.TrimSpace(rest), "%d kB", dst); err != nil {
			return procMemory{}, fmt.Errorf("/proc/%s/status %s: %w", pid, name, err)
		}
	}
	if m.HWM == 0 {
		return procMemory{}, fmt.Errorf("/proc/%s/status has no VmHWM", pid)
	}
	return m, nil
}

// liveHeap collects garbage and returns the heap that survived, in MiB.
func liveHeap() float64 {
	runtime.GC()
	s := []metrics.Sample{{Name: "/gc/heap/live:bytes"}}
	metrics.Read(s)
	return float64(s[0].Value.Uint64()) / (1 << 20)
}
