// Package memlimit chooses the Go runtime's soft memory limit for a
// long-running process: the operator's flag, else GOMEMLIMIT as the
// runtime already applied it, else a share of the container's cgroup
// memory limit.
//
// Without a soft limit the collector lets the heap grow to twice what is
// live (GOGC=100) whatever the container allows, so a controller whose live
// heap is 60 % of its limit is killed by the kernel at its next peak
// although half of that peak was garbage. With the limit the collector runs
// more often as the heap nears it instead.
package memlimit

import (
	"bufio"
	"errors"
	"fmt"
	"io/fs"
	"math"
	"path"
	"runtime/debug"
	"strconv"
	"strings"

	"github.com/modelsync/modelsync/internal/textio"
)

// DefaultShare is the part of the cgroup's limit given to the Go heap: the
// rest is for what the runtime does not count against its limit's target
// in time (stacks growing between collections, memory not yet returned to
// the kernel, cgo) and for the page cache of the clone, which the cgroup
// charges too.
const DefaultShare = 0.9

// EnvGoMemLimit is the runtime's own setting; when present the runtime has
// applied it at start and it wins over the cgroup.
const EnvGoMemLimit = "GOMEMLIMIT"

// unlimitedV1 is where cgroup v1 reports "no limit": the largest multiple
// of the page size below 2^63. Anything this large is no limit.
const unlimitedV1 = int64(1) << 62

// Decision is the soft limit chosen and why.
type Decision struct {
	// Limit in bytes; 0 is no limit.
	Limit int64
	// Source says where Limit came from, for the start-up log.
	Source string
	// Keep is set when there is nothing to change: the runtime applied
	// GOMEMLIMIT itself, or there is no limit to set. Apply leaves the
	// runtime alone.
	Keep bool
}

// Flag is the --memory-limit flag: Set when the operator gave it, Bytes
// its value (0 = no limit).
type Flag struct {
	Set   bool
	Bytes int64
}

// Decide chooses the limit: the flag when set, else GOMEMLIMIT when set in
// the environment (getenv), else share of the cgroup memory limit found in
// fsys (the root file system: /proc/self/cgroup and /sys/fs/cgroup), else
// none. A cgroup that cannot be read is no limit, not an error: the
// process runs outside containers too.
func Decide(flag Flag, getenv func(string) string, fsys fs.FS, share float64) Decision {
	switch {
	case flag.Set && flag.Bytes == 0:
		return Decision{Source: "--memory-limit 0 (none)"}
	case flag.Set:
		return Decision{Limit: flag.Bytes, Source: "--memory-limit"}
	}
	if v := getenv(EnvGoMemLimit); v != "" {
		return Decision{Source: EnvGoMemLimit + "=" + v, Keep: true}
	}
	limit, file, err := CgroupLimit(fsys)
	if err != nil || limit == 0 {
		// Nothing to set: the runtime's default is no limit.
		return Decision{Source: "no cgroup memory limit", Keep: true}
	}
	return Decision{Limit: int64(float64(limit) * share),
		Source: fmt.Sprintf("%.0f%% of the cgroup limit %s (%s)", share*100, textio.FormatBytes(limit), file)}
}

// Apply sets the runtime's soft memory limit as d says and returns the
// limit now in force (math.MaxInt64 for none).
func (d Decision) Apply() int64 {
	switch {
	case d.Keep:
		return debug.SetMemoryLimit(-1)
	case d.Limit == 0:
		debug.SetMemoryLimit(math.MaxInt64)
		return math.MaxInt64
	}
	debug.SetMemoryLimit(d.Limit)
	return d.Limit
}

// CgroupLimit returns the memory limit of this process's cgroup in bytes
// (0 when it has none) and the file it was read from. fsys is the root file
// system. The process's own cgroup comes from /proc/self/cgroup; with a
// cgroup namespace (the default for containers on cgroup v2) that is "/"
// and the container's limit is at the top of /sys/fs/cgroup. Without one,
// a limit set on any enclosing cgroup applies too, so the smallest on the
// way up is the limit. cgroup v2 is read when mounted, else v1's memory
// controller.
func CgroupLimit(fsys fs.FS) (int64, string, error) {
	v2, v1 := ownCgroups(fsys)
	for _, h := range []struct{ root, own, file string }{
		{"sys/fs/cgroup", v2, "memory.max"},
		{"sys/fs/cgroup/memory", v1, "memory.limit_in_bytes"},
	} {
		limit, file, found, err := smallestLimit(fsys, h.root, h.own, h.file)
		if found || err != nil {
			return limit, file, err
		}
	}
	return 0, "", errors.New("no cgroup memory limit file under /sys/fs/cgroup")
}

// smallestLimit reads file in the cgroup dir own of the hierarchy mounted
// at root and in each of its parents; found is false when none exists.
func smallestLimit(fsys fs.FS, root, own, file string) (limit int64, at string, found bool, err error) {
	dir := path.Clean("/" + own)
	for {
		name := path.Join(root, dir, file)
		if b, rerr := fs.ReadFile(fsys, name); rerr == nil {
			found = true
			n, perr := parseLimit(string(b))
			if perr != nil {
				return 0, "/" + name, true, fmt.Errorf("/%s: %w", name, perr)
			}
			if n > 0 && (limit == 0 || n < limit) {
				limit, at = n, "/"+name
			}
		}
		if dir == "/" {
			break
		}
		dir = path.Dir(dir)
	}
	if found && at == "" {
		at = "/" + path.Join(root, file)
	}
	return limit, at, found, nil
}

// parseLimit reads memory.max ("max" or bytes) or memory.limit_in_bytes
// (bytes, a huge number when unlimited).
func parseLimit(s string) (int64, error) {
	s = strings.TrimSpace(s)
	if s == "max" {
		return 0, nil
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("memory limit %q: want bytes or \"max\"", s)
	}
	if n <= 0 || n >= unlimitedV1 {
		return 0, nil
	}
	return n, nil
}

// ownCgroups reads /proc/self/cgroup: the unified (v2) hierarchy's path
// ("0::/path") and the v1 memory controller's ("N:...memory...:/path"),
// "" for each not found.
func ownCgroups(fsys fs.FS) (v2, v1 string) {
	f, err := fsys.Open("proc/self/cgroup")
	if err != nil {
		return "", ""
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		id, rest, ok := strings.Cut(sc.Text(), ":")
		if !ok {
			continue
		}
		controllers, p, ok := strings.Cut(rest, ":")
		if !ok {
			continue
		}
		switch {
		case id == "0" && controllers == "":
			v2 = p
		case v1 == "" && hasController(controllers, "memory"):
			v1 = p
		}
	}
	return v2, v1
}

func hasController(list, name string) bool {
	for c := range strings.SplitSeq(list, ",") {
		if c == name {
			return true
		}
	}
	return false
}

// ParseSize reads a --memory-limit value: bytes, or an integer with a
// binary suffix as GOMEMLIMIT (KiB, MiB, GiB, TiB) or Kubernetes (Ki, Mi,
// Gi, Ti) writes it. "0" is no limit.
func ParseSize(s string) (int64, error) {
	num := strings.TrimRight(s, "KMGTiB")
	unit := s[len(num):]
	shift := map[string]uint{"": 0, "B": 0, "Ki": 10, "KiB": 10, "Mi": 20, "MiB": 20, "Gi": 30, "GiB": 30, "Ti": 40, "TiB": 40}
	sh, ok := shift[unit]
	n, err := strconv.ParseInt(num, 10, 64)
	if !ok || err != nil || n < 0 {
		return 0, fmt.Errorf("memory size %q: want bytes or an integer with KiB, MiB, GiB or TiB (or Ki, Mi, Gi, Ti)", s)
	}
	if n > math.MaxInt64>>sh {
		return 0, fmt.Errorf("memory size %q: too large", s)
	}
	return n << sh, nil
}
