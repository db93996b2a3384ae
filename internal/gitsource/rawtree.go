package gitsource

import (
	"bytes"
	"fmt"

	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/filemode"
	"github.com/go-git/go-git/v5/plumbing/object"
)

// rawEntry is one entry of a directory object's body; name and the entry's
// bytes point into the body.
type rawEntry struct {
	mode filemode.FileMode // canonical, as go-git decodes it
	name []byte
	hash []byte
	raw  []byte // the whole entry as stored
}

// dir reports whether Git sorts the entry as a directory.
func (e *rawEntry) dir() bool { return e.mode == filemode.Dir }

// nextRawEntry parses the entry at the start of b and returns it and the
// length it takes. It accepts and refuses what go-git's Tree.Decode does,
// so a directory compares here as it would decoded: the mode in octal
// digits made canonical, a non-empty name, a full hash.
func nextRawEntry(b []byte) (rawEntry, int, error) {
	sp := bytes.IndexByte(b, ' ')
	if sp < 0 {
		return rawEntry{}, 0, fmt.Errorf("%w: missing mode terminator", object.ErrMalformedTree)
	}
	mode, ok := parseOctalMode(b[:sp])
	if !ok {
		return rawEntry{}, 0, fmt.Errorf("%w: malformed mode", object.ErrMalformedTree)
	}
	nul := bytes.IndexByte(b[sp+1:], 0)
	if nul < 0 {
		return rawEntry{}, 0, fmt.Errorf("%w: missing filename terminator", object.ErrMalformedTree)
	}
	if nul == 0 {
		return rawEntry{}, 0, fmt.Errorf("%w: empty filename", object.ErrMalformedTree)
	}
	nameEnd := sp + 1 + nul
	end := nameEnd + 1 + len(plumbing.ZeroHash)
	if end > len(b) {
		return rawEntry{}, 0, fmt.Errorf("%w: truncated object id", object.ErrMalformedTree)
	}
	return rawEntry{
		mode: canonicalMode(mode),
		name: b[sp+1 : nameEnd],
		hash: b[nameEnd+1 : end],
		raw:  b[:end],
	}, end, nil
}

// parseOctalMode is strconv.ParseUint(s, 8, 32), as filemode.New parses a
// mode, without making a string of it.
func parseOctalMode(s []byte) (filemode.FileMode, bool) {
	if len(s) == 0 {
		return 0, false
	}
	var n uint64
	for _, c := range s {
		if c < '0' || c > '7' {
			return 0, false
		}
		n = n*8 + uint64(c-'0')
		if n > 1<<32-1 {
			return 0, false
		}
	}
	return filemode.FileMode(n), true
}

// canonicalMode maps a mode as go-git's tree decoder (and Git's
// canon_mode) does: legacy modes such as 100664 or 040755 read as the
// mode Git means.
func canonicalMode(m filemode.FileMode) filemode.FileMode {
	switch m & 0o170000 {
	case 0o040000:
		return filemode.Dir
	case 0o100000:
		if m&0o111 != 0 {
			return filemode.Executable
		}
		return filemode.Regular
	case 0o120000:
		return filemode.Symlink
	default:
		return filemode.Submodule
	}
}

// compareRaw orders two entries by the name Git sorts them by (a
// directory's followed by "/"), as compareKey does for decoded entries.
func compareRaw(a, b *rawEntry) int {
	n := min(len(a.name), len(b.name))
	if c := bytes.Compare(a.name[:n], b.name[:n]); c != 0 {
		return c
	}
	// One name is a prefix of the other: compare what follows, a
	// directory's implied "/" included. Two positions at most.
	for i := n; ; i++ {
		ca, okA := sortByte(a, i)
		cb, okB := sortByte(b, i)
		switch {
		case !okA && !okB:
			return 0
		case !okA:
			return -1
		case !okB:
			return 1
		case ca != cb:
			return int(ca) - int(cb)
		}
	}
}

// sortByte is byte i of the name e sorts by, false past its end.
func sortByte(e *rawEntry, i int) (byte, bool) {
	switch {
	case i < len(e.name):
		return e.name[i], true
	case i == len(e.name) && e.dir():
		return '/', true
	}
	return 0, false
}

// changedRawEntries calls changed with the name of each entry that differs
// between directory bodies a and b, merged in Git's order: an entry on one
// side only, or with another hash or mode. It allocates nothing: an entry
// both sides store byte for byte alike is passed over after one
// comparison, and names point into the bodies. A name may come twice (a
// file on one side, a directory on the other).
func changedRawEntries(a, b []byte, changed func(name []byte)) error {
	var ea, eb rawEntry
	var na, nb int
	var err error
	for len(a) > 0 || len(b) > 0 {
		if na == 0 && nb == 0 {
			// The common case in a walk: a run of entries both sides
			// store alike, passed over checking only what decoding
			// would refuse.
			n := sameEntries(a, b)
			a, b = a[n:], b[n:]
			if len(a) == 0 && len(b) == 0 {
				break
			}
		}
		if na == 0 && len(a) > 0 {
			if ea, na, err = nextRawEntry(a); err != nil {
				return err
			}
		}
		if nb == 0 && len(b) > 0 {
			// The common case in a walk: b's next entry is a's.
			if na > 0 && len(b) >= na && bytes.Equal(b[:na], ea.raw) {
				a, b, na = a[na:], b[na:], 0
				continue
			}
			if eb, nb, err = nextRawEntry(b); err != nil {
				return err
			}
		}
		c := 1 // an exhausted side sorts last
		switch {
		case na == 0:
		case nb == 0:
			c = -1
		default:
			c = compareRaw(&ea, &eb)
		}
		switch {
		case c < 0:
			changed(ea.name)
			a, na = a[na:], 0
		case c > 0:
			changed(eb.name)
			b, nb = b[nb:], 0
		default:
			if !bytes.Equal(ea.hash, eb.hash) || ea.mode != eb.mode {
				changed(ea.name)
			}
			a, b, na, nb = a[na:], b[nb:], 0, 0
		}
	}
	return nil
}

// sameEntries returns the length of the entries at the start of a that b
// starts with byte for byte, as far as each is well formed (nextRawEntry
// reports what is not).
func sameEntries(a, b []byte) int {
	done := 0
	for {
		rest := a[done:]
		// The mode: octal digits below 1<<32, then a space.
		sp := 0
		var mode uint64
		for sp < len(rest) && rest[sp] != ' ' {
			c := rest[sp]
			if c < '0' || c > '7' || sp >= 11 {
				return done
			}
			mode = mode*8 + uint64(c-'0')
			sp++
		}
		if sp == 0 || sp == len(rest) || mode > 1<<32-1 {
			return done
		}
		nul := bytes.IndexByte(rest[sp+1:], 0)
		end := sp + 1 + nul + 1 + len(plumbing.ZeroHash)
		if nul <= 0 || end > len(rest) || end > len(b)-done || string(rest[:end]) != string(b[done:done+end]) {
			return done
		}
		done += end
	}
}
