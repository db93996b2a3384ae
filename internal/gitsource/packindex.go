package gitsource

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/format/idxfile"
	"github.com/go-git/go-git/v5/plumbing/format/packfile"
)

// maxDeltaDepth bounds delta chains, as go-git's parser does, so a crafted
// pack cannot make resolution unbounded. git itself writes chains of at
// most 50 (pack.depth).
const maxDeltaDepth = 4095

// packObject is what indexing learns about one object of a pack.
type packObject struct {
	offset   int64
	length   int64 // inflated length of what is stored: content, or delta data
	crc      uint32
	hash     plumbing.Hash
	resolved bool
	// For deltas: the base, by offset (OFS_DELTA) or by hash (REF_DELTA).
	ofsBase int64
	refBase plumbing.Hash
	delta   bool
}

// indexMemory is how many bytes of object content indexing keeps in memory
// at once; contents beyond it (a large file, or a deep chain of deltas) are
// spooled to temporary files next to the pack. It bounds a fetch's memory
// whatever the pack holds: a 400 MB blob and its deltas cost disk, not RAM.
const indexMemory = 16 << 20

// indexPack builds the index of a pack, as git index-pack does: the hash,
// offset and CRC of every object, deltas resolved.
//
// go-git's own indexer (packfile.Parser, behind UpdateObjectStorage) keeps
// every delta base it resolved in a 96 MiB cache until the pack is done. In
// a clone of a 1,000-model repository whose models/ directory changed in a
// thousand commits, those bases were the largest part of the controller's
// peak memory (21 MiB live, about 60 MiB of heap at the peak). Here each
// chain is resolved depth first from its base, and only the contents along
// the chain being resolved are held, in memory up to indexMemory and in
// temporary files in tmpDir beyond; every object is read from the file
// again when needed, and deltas are applied as streams, so the memory does
// not depend on the pack's size nor on any object's.
//
// It returns a nil index for a pack without objects. Thin packs (deltas
// against objects outside the pack) are refused: Sync never asks for one.
func indexPack(pack io.ReadSeeker, tmpDir string) (*idxfile.MemoryIndex, plumbing.Hash, error) {
	return indexPackWithin(pack, tmpDir, indexMemory)
}

// indexPackWithin is indexPack keeping at most memory bytes of content in
// memory.
func indexPackWithin(pack io.ReadSeeker, tmpDir string, memory int64) (*idxfile.MemoryIndex, plumbing.Hash, error) {
	s := packfile.NewScanner(pack)
	_, count, err := s.Header()
	if err != nil {
		return nil, plumbing.ZeroHash, fmt.Errorf("read pack header: %w", err)
	}
	objs := make([]packObject, count)
	byOffset := make(map[int64]int, count)
	ofsChildren := map[int][]int{}
	refChildren := map[plumbing.Hash][]int{}
	for i := range objs {
		oh, err := s.NextObjectHeader()
		if err != nil {
			return nil, plumbing.ZeroHash, fmt.Errorf("read object %d of %d: %w", i+1, count, err)
		}
		o := &objs[i]
		o.offset, o.length = oh.Offset, oh.Length
		byOffset[oh.Offset] = i
		var w io.Writer = io.Discard
		var hasher plumbing.Hasher
		switch oh.Type {
		case plumbing.OFSDeltaObject:
			base, ok := byOffset[oh.OffsetReference]
			if !ok {
				return nil, plumbing.ZeroHash, fmt.Errorf("object at offset %d: delta base at offset %d is not an object of the pack", oh.Offset, oh.OffsetReference)
			}
			o.delta, o.ofsBase = true, oh.OffsetReference
			ofsChildren[base] = append(ofsChildren[base], i)
		case plumbing.REFDeltaObject:
			o.delta, o.refBase = true, oh.Reference
			refChildren[oh.Reference] = append(refChildren[oh.Reference], i)
		default:
			hasher = plumbing.NewHasher(oh.Type, oh.Length)
			w = hasher
		}
		// The CRC covers the object as stored, so deltas are inflated too.
		_, crc, err := s.NextObject(w)
		if err != nil {
			return nil, plumbing.ZeroHash, fmt.Errorf("read object at offset %d: %w", oh.Offset, err)
		}
		o.crc = crc
		if !o.delta {
			o.hash, o.resolved = hasher.Sum(), true
		}
	}
	checksum, err := s.Checksum()
	if err != nil {
		return nil, plumbing.ZeroHash, fmt.Errorf("read pack trailer: %w", err)
	}
	if count == 0 {
		return nil, checksum, nil
	}

	// children lists the deltas against object i; REF_DELTA children are
	// found by hash once i's hash is known, and handed out once.
	children := func(i int) []int {
		kids := ofsChildren[i]
		if ref, ok := refChildren[objs[i].hash]; ok {
			kids = append(kids[:len(kids):len(kids)], ref...)
			delete(refChildren, objs[i].hash)
		}
		return kids
	}
	sp := &spooler{dir: tmpDir, budget: memory}
	defer sp.releaseAll()
	// read holds the stored, inflated bytes of object i: a base's content
	// or a delta's instructions.
	read := func(i int) (*content, error) {
		if _, err := s.SeekObjectHeader(objs[i].offset); err != nil {
			return nil, fmt.Errorf("seek to object at offset %d: %w", objs[i].offset, err)
		}
		c, err := sp.fill(objs[i].length, func(w io.Writer) error {
			_, _, err := s.NextObject(w)
			return err
		})
		if err != nil {
			return nil, fmt.Errorf("read object at offset %d: %w", objs[i].offset, err)
		}
		return c, nil
	}
	type frame struct {
		content *content
		kids    []int
		next    int
	}
	for i := range objs {
		if objs[i].delta {
			continue
		}
		kids := children(i)
		if len(kids) == 0 {
			continue
		}
		typ, err := objectType(s, objs[i].offset)
		if err != nil {
			return nil, plumbing.ZeroHash, err
		}
		base, err := read(i)
		if err != nil {
			return nil, plumbing.ZeroHash, err
		}
		stack := []frame{{content: base, kids: kids}}
		for len(stack) > 0 {
			top := &stack[len(stack)-1]
			if top.next == len(top.kids) {
				sp.release(top.content)
				stack = stack[:len(stack)-1]
				continue
			}
			k := top.kids[top.next]
			top.next++
			delta, err := read(k)
			if err != nil {
				return nil, plumbing.ZeroHash, err
			}
			// Deltas by reference are found by the hash, known only once
			// the delta is applied: keep the result while any are pending.
			keep := len(ofsChildren[k]) > 0 || len(refChildren) > 0
			target, hash, err := applyDelta(sp, typ, top.content, delta, keep)
			sp.release(delta)
			if err != nil {
				return nil, plumbing.ZeroHash, fmt.Errorf("apply delta at offset %d: %w", objs[k].offset, err)
			}
			objs[k].hash, objs[k].resolved = hash, true
			grand := children(k)
			if len(grand) == 0 {
				sp.release(target)
			} else {
				if len(stack) >= maxDeltaDepth {
					sp.release(target)
					return nil, plumbing.ZeroHash, fmt.Errorf("delta chain deeper than %d at offset %d", maxDeltaDepth, objs[k].offset)
				}
				stack = append(stack, frame{content: target, kids: grand})
			}
		}
	}

	w := new(idxfile.Writer)
	if err := w.OnHeader(count); err != nil {
		return nil, plumbing.ZeroHash, err
	}
	for _, o := range objs {
		if !o.resolved {
			return nil, plumbing.ZeroHash, fmt.Errorf("object at offset %d: delta base %s is not in the pack", o.offset, o.refBase)
		}
		w.Add(o.hash, uint64(o.offset), o.crc)
	}
	if err := w.OnFooter(checksum); err != nil {
		return nil, plumbing.ZeroHash, err
	}
	idx, err := w.Index()
	return idx, checksum, err
}

// objectType reads the type of the non-delta object at offset.
func objectType(s *packfile.Scanner, offset int64) (plumbing.ObjectType, error) {
	oh, err := s.SeekObjectHeader(offset)
	if err != nil {
		return plumbing.InvalidObject, fmt.Errorf("read object header at offset %d: %w", offset, err)
	}
	return oh.Type, nil
}

// content is an object's bytes while a pack is indexed: in memory when the
// spooler's budget allows, else in a temporary file.
type content struct {
	mem  []byte
	file *os.File
	size int64
}

func (c *content) ReadAt(p []byte, off int64) (int, error) {
	if c.file != nil {
		return c.file.ReadAt(p, off)
	}
	if off >= int64(len(c.mem)) {
		return 0, io.EOF
	}
	n := copy(p, c.mem[off:])
	if n < len(p) {
		return n, io.EOF
	}
	return n, nil
}

// spooler hands out contents, in memory while their total stays within
// budget and in files in dir beyond.
type spooler struct {
	dir    string
	budget int64
	inMem  int64
	files  map[*content]bool // spooled contents not yet released
}

// fill makes a content of size bytes written by write; writing more or
// fewer bytes than size is an error.
func (sp *spooler) fill(size int64, write func(io.Writer) error) (*content, error) {
	c := &content{size: size}
	if size <= sp.budget-sp.inMem {
		buf := bytes.NewBuffer(make([]byte, 0, size))
		if err := write(buf); err != nil {
			return nil, err
		}
		if int64(buf.Len()) != size {
			return nil, fmt.Errorf("object is %d bytes, its header says %d", buf.Len(), size)
		}
		c.mem = buf.Bytes()
		sp.inMem += size
		return c, nil
	}
	f, err := os.CreateTemp(sp.dir, "index-spool-")
	if err != nil {
		return nil, err
	}
	c.file = f
	if sp.files == nil {
		sp.files = map[*content]bool{}
	}
	sp.files[c] = true
	bw := bufio.NewWriterSize(f, 64<<10)
	cw := &countingWriter{w: bw}
	if err := write(cw); err != nil {
		sp.release(c)
		return nil, err
	}
	if err := bw.Flush(); err != nil {
		sp.release(c)
		return nil, err
	}
	if cw.n != size {
		sp.release(c)
		return nil, fmt.Errorf("object is %d bytes, its header says %d", cw.n, size)
	}
	return c, nil
}

func (sp *spooler) release(c *content) {
	if c == nil {
		return
	}
	if c.file != nil {
		c.file.Close()
		os.Remove(c.file.Name())
		delete(sp.files, c)
		c.file = nil
		return
	}
	if c.mem != nil {
		sp.inMem -= c.size
		c.mem = nil
	}
}

func (sp *spooler) releaseAll() {
	for c := range sp.files {
		sp.release(c)
	}
}

type countingWriter struct {
	w io.Writer
	n int64
}

func (c *countingWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}

// applyDelta applies delta (git's delta format: base size, result size,
// then copy and insert instructions) to base as a stream, and returns the
// result's hash as an object of type typ, and the result itself when keep
// is set (for the deltas built on it).
func applyDelta(sp *spooler, typ plumbing.ObjectType, base, delta *content, keep bool) (*content, plumbing.Hash, error) {
	in := bufio.NewReader(io.NewSectionReader(delta, 0, delta.size))
	srcSize, err := binary.ReadUvarint(in)
	if err != nil {
		return nil, plumbing.ZeroHash, fmt.Errorf("delta header: %w", err)
	}
	dstSize, err := binary.ReadUvarint(in)
	if err != nil {
		return nil, plumbing.ZeroHash, fmt.Errorf("delta header: %w", err)
	}
	if srcSize != uint64(base.size) {
		return nil, plumbing.ZeroHash, fmt.Errorf("delta expects a base of %d bytes, the base has %d", srcSize, base.size)
	}
	if dstSize > 1<<62 {
		return nil, plumbing.ZeroHash, errors.New("delta result size out of range")
	}
	hasher := plumbing.NewHasher(typ, int64(dstSize))
	patch := func(w io.Writer) error {
		out := io.MultiWriter(hasher, w)
		var written uint64
		for written < dstSize {
			cmd, err := in.ReadByte()
			if err != nil {
				return fmt.Errorf("delta ends after %d of %d bytes: %w", written, dstSize, err)
			}
			switch {
			case cmd&0x80 != 0: // copy from the base
				var off, n uint64
				for i := range 4 {
					if cmd&(1<<i) != 0 {
						b, err := in.ReadByte()
						if err != nil {
							return err
						}
						off |= uint64(b) << (8 * i)
					}
				}
				for i := range 3 {
					if cmd&(0x10<<i) != 0 {
						b, err := in.ReadByte()
						if err != nil {
							return err
						}
						n |= uint64(b) << (8 * i)
					}
				}
				if n == 0 {
					n = 0x10000
				}
				if off+n > srcSize || written+n > dstSize {
					return fmt.Errorf("delta copies %d bytes at %d, outside the base or past the result", n, off)
				}
				if _, err := io.Copy(out, io.NewSectionReader(base, int64(off), int64(n))); err != nil {
					return err
				}
				written += n
			case cmd != 0: // insert the next cmd bytes
				n := uint64(cmd)
				if written+n > dstSize {
					return errors.New("delta inserts past the result")
				}
				if _, err := io.CopyN(out, in, int64(n)); err != nil {
					return fmt.Errorf("delta insert: %w", err)
				}
				written += n
			default:
				return errors.New("delta has a reserved instruction 0")
			}
		}
		return nil
	}
	var target *content
	if keep {
		if target, err = sp.fill(int64(dstSize), patch); err != nil {
			return nil, plumbing.ZeroHash, err
		}
	} else if err := patch(io.Discard); err != nil {
		return nil, plumbing.ZeroHash, err
	}
	return target, hasher.Sum(), nil
}

// installPack indexes the pack file at path and moves it into the cache
// with its index, as objects/pack/pack-<checksum>.{pack,idx}. The index is
// written last: git and go-git look at packs through their indexes, so a
// crash in between leaves an unused pack file, not a broken repository.
// Callers hold mu and call Reindex on the storage afterwards.
func installPack(dir string, pack *os.File) (installed bool, err error) {
	if _, err := pack.Seek(0, io.SeekStart); err != nil {
		return false, err
	}
	idx, checksum, err := indexPack(pack, dir)
	if err != nil || idx == nil {
		return false, err
	}
	packDir := filepath.Join(dir, "objects", "pack")
	if err := os.MkdirAll(packDir, 0o755); err != nil {
		return false, err
	}
	base := filepath.Join(packDir, "pack-"+checksum.String())
	if _, err := os.Stat(base + ".idx"); err == nil {
		return false, nil // the same pack was fetched before
	} else if !errors.Is(err, os.ErrNotExist) {
		return false, err
	}
	if err := os.Rename(pack.Name(), base+".pack"); err != nil {
		return false, err
	}
	tmp, err := os.CreateTemp(packDir, "tmp_idx_")
	if err != nil {
		return false, err
	}
	defer os.Remove(tmp.Name()) // no-op after the rename
	if _, err := idxfile.NewEncoder(tmp).Encode(idx); err != nil {
		tmp.Close()
		return false, err
	}
	if err := tmp.Close(); err != nil {
		return false, err
	}
	// git writes pack files read-only.
	for _, p := range []string{tmp.Name(), base + ".pack"} {
		if err := os.Chmod(p, 0o444); err != nil {
			return false, err
		}
	}
	return true, os.Rename(tmp.Name(), base+".idx")
}
