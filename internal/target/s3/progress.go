package s3

import (
	"context"
	"fmt"
	"github.com/modelsync/modelsync/internal/textio"
	"io"
	"log/slog"
	"strings"
	"sync"
	"time"
)

// ProgressEvent reports how far one object's copy has come. A single
// CopyObject reports only its start and end; a multipart copy reports after
// every part.
type ProgressEvent struct {
	Model    string `json:"model"`
	Versions []int  `json:"versions"`
	Bucket   string `json:"bucket"`
	Key      string `json:"key"`
	From     string `json:"from"`
	To       string `json:"to"`
	// Multipart is set for UploadPartCopy copies.
	Multipart  bool  `json:"multipart"`
	BytesDone  int64 `json:"bytesDone"`
	BytesTotal int64 `json:"bytesTotal"`
	PartsDone  int   `json:"partsDone,omitempty"`
	PartsTotal int   `json:"partsTotal,omitempty"`
	// Elapsed is the time since the copy started.
	Elapsed time.Duration `json:"elapsed"`
	// Rate is the average in bytes per second so far; 0 before any bytes.
	Rate float64 `json:"rate"`
	// ETA is the expected remaining time at Rate; 0 when unknown or done.
	ETA  time.Duration `json:"eta"`
	Done bool          `json:"done"`
}

// Fraction is BytesDone/BytesTotal, 1 for an empty object.
func (e ProgressEvent) Fraction() float64 {
	if e.BytesTotal <= 0 {
		return 1
	}
	return float64(e.BytesDone) / float64(e.BytesTotal)
}

// progressTracker turns byte counts into events with rate and ETA. Parts
// finish on several goroutines; the tracker serialises their reports, so
// Config.Progress is never called concurrently for one copy and BytesDone
// never goes backwards.
type progressTracker struct {
	emit  func(ProgressEvent)
	now   func() time.Time
	start time.Time
	base  ProgressEvent

	mu    sync.Mutex
	done  int64
	parts int
}

func (t *Target) newTracker(base ProgressEvent) *progressTracker {
	return &progressTracker{emit: t.cfg.Progress, now: t.cfg.Now, start: t.cfg.Now(), base: base}
}

// add records n more bytes (and one more part when part is set).
func (p *progressTracker) add(n int64, part bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.done += n
	if part {
		p.parts++
	}
	p.reportLocked(false)
}

// finish reports the copy as complete.
func (p *progressTracker) finish() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.done = p.base.BytesTotal
	if p.base.Multipart {
		p.parts = p.base.PartsTotal
	}
	p.reportLocked(true)
}

func (p *progressTracker) reportLocked(finished bool) {
	if p.emit == nil {
		return
	}
	ev := p.base
	ev.BytesDone, ev.PartsDone, ev.Done = p.done, p.parts, finished
	ev.Elapsed = p.now().Sub(p.start)
	if ev.Elapsed > 0 && p.done > 0 {
		ev.Rate = float64(p.done) / ev.Elapsed.Seconds()
		if !finished && ev.Rate > 0 {
			ev.ETA = time.Duration(float64(ev.BytesTotal-p.done) / ev.Rate * float64(time.Second))
		}
	}
	p.emit(ev)
}

// FanOut sends each event to every function.
func FanOut(fns ...func(ProgressEvent)) func(ProgressEvent) {
	return func(ev ProgressEvent) {
		for _, f := range fns {
			if f != nil {
				f(ev)
			}
		}
	}
}

// ProgressBar draws one line per copy on a terminal, redrawn in place with
// a carriage return and ended with a newline when the copy is done.
type ProgressBar struct {
	mu    sync.Mutex
	w     io.Writer
	width int
	open  string // bucket/key of the line being redrawn
}

// NewProgressBar draws on w (usually os.Stderr) with a bar of 30 cells.
func NewProgressBar(w io.Writer) *ProgressBar { return &ProgressBar{w: w, width: 30} }

// Update draws an event; pass it as Config.Progress.
func (b *ProgressBar) Update(ev ProgressEvent) {
	b.mu.Lock()
	defer b.mu.Unlock()
	id := ev.Bucket + "/" + ev.Key
	if b.open != "" && b.open != id {
		// Another copy's line was left open (its Done never came): keep it.
		fmt.Fprintln(b.w)
	}
	filled := min(int(ev.Fraction()*float64(b.width)), b.width)
	bar := strings.Repeat("=", filled)
	if filled < b.width {
		bar += ">" + strings.Repeat(" ", b.width-filled-1)
	}
	line := fmt.Sprintf("\r[%s] %3.0f%% %s/%s", bar, ev.Fraction()*100, textio.FormatBytes(ev.BytesDone), textio.FormatBytes(ev.BytesTotal))
	if ev.Rate > 0 {
		line += " " + textio.FormatBytes(int64(ev.Rate)) + "/s"
	}
	if ev.ETA > 0 {
		line += " ETA " + ev.ETA.Round(time.Second).String()
	}
	line += fmt.Sprintf(" %s→%s s3://%s", ev.From, ev.To, id)
	fmt.Fprint(b.w, line+"\x1b[K")
	if ev.Done {
		fmt.Fprintln(b.w)
		b.open = ""
	} else {
		b.open = id
	}
}

// ProgressLog writes progress as slog lines: one line when a copy ends, and
// for multipart copies also when one starts and at most once per interval
// in between. A prefix of many small files thus logs one line per file.
type ProgressLog struct {
	mu     sync.Mutex
	logger *slog.Logger
	every  time.Duration
	now    func() time.Time
	last   map[string]time.Time
}

// NewProgressLog logs through l at most once per every for each copy; now
// is the clock (time.Now when nil).
func NewProgressLog(l *slog.Logger, every time.Duration, now func() time.Time) *ProgressLog {
	if now == nil {
		now = time.Now
	}
	return &ProgressLog{logger: l, every: every, now: now, last: map[string]time.Time{}}
}

// Update logs an event if due; pass it as Config.Progress.
func (p *ProgressLog) Update(ev ProgressEvent) {
	id := ev.Bucket + "/" + ev.Key
	p.mu.Lock()
	t := p.now()
	last, seen := p.last[id]
	due := ev.Done || (ev.Multipart && (!seen || t.Sub(last) >= p.every))
	if ev.Done {
		delete(p.last, id)
	} else if due {
		p.last[id] = t
	}
	p.mu.Unlock()
	if !due {
		return
	}
	msg := "copying"
	if ev.Done {
		msg = "copied"
	}
	attrs := []slog.Attr{
		slog.String("model", ev.Model),
		slog.String("versions", versionsLabel(ev.Versions)),
		slog.String("object", "s3://"+id),
		slog.String("from", ev.From),
		slog.String("to", ev.To),
		slog.Int64("bytes_done", ev.BytesDone),
		slog.Int64("bytes_total", ev.BytesTotal),
		slog.Float64("percent", float64(int(ev.Fraction()*1000))/10),
		slog.Float64("rate_bytes_per_second", float64(int64(ev.Rate))),
	}
	if ev.Multipart {
		attrs = append(attrs, slog.Int("parts_done", ev.PartsDone), slog.Int("parts_total", ev.PartsTotal))
	}
	if ev.ETA > 0 {
		attrs = append(attrs, slog.Duration("eta", ev.ETA.Round(time.Second)))
	}
	p.logger.LogAttrs(context.Background(), slog.LevelInfo, msg, attrs...)
}
