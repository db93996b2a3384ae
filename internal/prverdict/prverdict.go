// Package prverdict keeps the last policy verdicts the PR gate posted, per
// model the pull request touches, so the dashboard's model page can say
// which pull requests were judged and why they were denied. The record is
// bounded in memory and, with a file, survives a restart: the file is
// appended to and compacted when it grows well beyond what is kept.
package prverdict

import (
	"bufio"
	"cmp"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"time"
)

// Defaults of Options.
const (
	DefaultPerModel  = 10
	DefaultMaxModels = 10000
)

// Verdict is the gate's judgement of one pull request head.
type Verdict struct {
	PR      int    `json:"pr"`
	HeadSHA string `json:"headSha"`
	// State is the modelsync/policy status posted: success, failure or
	// error.
	State string `json:"state"`
	// Description is the status' description.
	Description string `json:"description,omitempty"`
	// Models are the models the pull request changes or a rule names.
	Models []string `json:"models"`
	// Denies are the rules that denied, with their messages.
	Denies []Denial  `json:"denies,omitempty"`
	Time   time.Time `json:"time"`
}

// Denial is one denied rule.
type Denial struct {
	Rule        string `json:"rule"`
	Message     string `json:"message"`
	Model       string `json:"model,omitempty"`
	Environment string `json:"environment,omitempty"`
}

// Options configure a Log.
type Options struct {
	// PerModel is how many verdicts are kept per model (default 10).
	PerModel int
	// MaxModels bounds the models kept (default 10000): the model whose
	// newest verdict is oldest goes first.
	MaxModels int
	// File, when set, makes the record durable (JSON lines).
	File string
}

// Log is the bounded record. It is safe for concurrent use.
type Log struct {
	opts Options

	mu       sync.Mutex
	byModel  map[string][]Verdict // newest first
	seq      uint64
	appended int // lines in the file since it was last written whole
}

// Open returns a log, reading File when it exists. A damaged line is
// skipped: the record is a convenience, never a reason not to start.
func Open(opts Options) (*Log, error) {
	if opts.PerModel <= 0 {
		opts.PerModel = DefaultPerModel
	}
	if opts.MaxModels <= 0 {
		opts.MaxModels = DefaultMaxModels
	}
	l := &Log{opts: opts, byModel: map[string][]Verdict{}}
	if opts.File == "" {
		return l, nil
	}
	f, err := os.Open(opts.File)
	if errors.Is(err, fs.ErrNotExist) {
		return l, nil
	}
	if err != nil {
		return nil, fmt.Errorf("pull request verdicts: %w", err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		var v Verdict
		if json.Unmarshal(sc.Bytes(), &v) == nil && v.PR > 0 {
			l.add(v)
			l.appended++
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("pull request verdicts %s: %w", opts.File, err)
	}
	return l, nil
}

// add keeps v under each of its models; a verdict for the same pull
// request head replaces the earlier one (a base push re-judges every open
// pull request). Called with mu held or before the log is shared.
func (l *Log) add(v Verdict) {
	for _, m := range v.Models {
		list := slices.DeleteFunc(l.byModel[m], func(o Verdict) bool { return o.PR == v.PR && o.HeadSHA == v.HeadSHA })
		list = append([]Verdict{v}, list...)
		slices.SortStableFunc(list, func(a, b Verdict) int { return b.Time.Compare(a.Time) })
		if len(list) > l.opts.PerModel {
			list = list[:l.opts.PerModel]
		}
		l.byModel[m] = list
	}
	for len(l.byModel) > l.opts.MaxModels {
		oldest, at := "", time.Time{}
		for m, list := range l.byModel {
			if oldest == "" || list[0].Time.Before(at) || list[0].Time.Equal(at) && m < oldest {
				oldest, at = m, list[0].Time
			}
		}
		delete(l.byModel, oldest)
	}
	l.seq++
}

// Record keeps a verdict and, with a file, writes it down. The verdict is
// kept in memory even when the write fails; the error says so.
func (l *Log) Record(v Verdict) error {
	if len(v.Models) == 0 {
		return nil
	}
	v.Models = slices.Clone(v.Models)
	v.Denies = slices.Clone(v.Denies)
	l.mu.Lock()
	defer l.mu.Unlock()
	l.add(v)
	if l.opts.File == "" {
		return nil
	}
	if l.appended > 4*l.kept()+100 {
		return l.rewrite()
	}
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	f, err := os.OpenFile(l.opts.File, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o600)
	if err != nil {
		return fmt.Errorf("pull request verdicts: %w", err)
	}
	_, werr := f.Write(append(b, '\n'))
	cerr := f.Close()
	if err := errors.Join(werr, cerr); err != nil {
		return fmt.Errorf("pull request verdicts %s: %w", l.opts.File, err)
	}
	l.appended++
	return nil
}

// kept counts the verdicts held (one per pull request head).
func (l *Log) kept() int {
	return len(l.unique())
}

func (l *Log) unique() []Verdict {
	seen := map[string]bool{}
	var out []Verdict
	for _, list := range l.byModel {
		for _, v := range list {
			k := fmt.Sprintf("%d\x00%s", v.PR, v.HeadSHA)
			if !seen[k] {
				seen[k] = true
				out = append(out, v)
			}
		}
	}
	slices.SortFunc(out, func(a, b Verdict) int { return cmp.Or(a.Time.Compare(b.Time), cmp.Compare(a.PR, b.PR)) })
	return out
}

// rewrite writes what is kept, oldest first, to a new file that replaces
// the old one whole. Called with mu held.
func (l *Log) rewrite() error {
	tmp, err := os.CreateTemp(filepath.Dir(l.opts.File), ".prverdicts-*")
	if err != nil {
		return fmt.Errorf("pull request verdicts: %w", err)
	}
	w := bufio.NewWriter(tmp)
	enc := json.NewEncoder(w)
	vs := l.unique()
	for _, v := range vs {
		if err = enc.Encode(v); err != nil {
			break
		}
	}
	if err == nil {
		err = w.Flush()
	}
	if err == nil {
		err = tmp.Sync()
	}
	err = errors.Join(err, tmp.Close())
	if err == nil {
		err = os.Rename(tmp.Name(), l.opts.File)
	}
	if err != nil {
		_ = os.Remove(tmp.Name())
		return fmt.Errorf("pull request verdicts %s: %w", l.opts.File, err)
	}
	l.appended = len(vs)
	return nil
}

// ForModel returns the model's verdicts, newest first.
func (l *Log) ForModel(model string) []Verdict {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Clone(l.byModel[model])
}

// Seq changes whenever a verdict is recorded (pages refresh on it).
func (l *Log) Seq() uint64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.seq
}
