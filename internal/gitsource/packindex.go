package gitsource

import (
	"bytes"
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
	crc      uint32
	hash     plumbing.Hash
	resolved bool
	// For deltas: the base, by offset (OFS_DELTA) or by hash (REF_DELTA).
	ofsBase int64
	refBase plumbing.Hash
	delta   bool
}

// indexPack builds the index of a pack, as git index-pack does: the hash,
// offset and CRC of every object, deltas resolved.
//
// go-git's own indexer (packfile.Parser, behind UpdateObjectStorage) keeps
// every delta base it resolved in a 96 MiB cache until the pack is done. In
// a clone of a 1,000-model repository whose models/ directory changed in a
// thousand commits, those bases were the largest part of the controller's
// peak memory (21 MiB live, about 60 MiB of heap at the peak). Here each
// chain is resolved depth first from its base, and only the contents along
// the chain being resolved are held; every object is read from the file
// again when needed, so the memory does not depend on the pack's size.
//
// It returns a nil index for a pack without objects. Thin packs (deltas
// against objects outside the pack) are refused: Sync never asks for one.
func indexPack(pack io.ReadSeeker) (*idxfile.MemoryIndex, plumbing.Hash, error) {
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
		o.offset = oh.Offset
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
	read := func(i int) ([]byte, error) {
		if _, err := s.SeekObjectHeader(objs[i].offset); err != nil {
			return nil, fmt.Errorf("seek to object at offset %d: %w", objs[i].offset, err)
		}
		var b bytes.Buffer
		if _, _, err := s.NextObject(&b); err != nil {
			return nil, fmt.Errorf("read object at offset %d: %w", objs[i].offset, err)
		}
		return b.Bytes(), nil
	}
	type frame struct {
		content []byte
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
		content, err := read(i)
		if err != nil {
			return nil, plumbing.ZeroHash, err
		}
		stack := []frame{{content: content, kids: kids}}
		for len(stack) > 0 {
			top := &stack[len(stack)-1]
			if top.next == len(top.kids) {
				stack = stack[:len(stack)-1]
				continue
			}
			k := top.kids[top.next]
			top.next++
			delta, err := read(k)
			if err != nil {
				return nil, plumbing.ZeroHash, err
			}
			target, err := patch(top.content, delta)
			if err != nil {
				return nil, plumbing.ZeroHash, fmt.Errorf("apply delta at offset %d: %w", objs[k].offset, err)
			}
			objs[k].hash, objs[k].resolved = plumbing.ComputeHash(typ, target), true
			if grand := children(k); len(grand) > 0 {
				if len(stack) >= maxDeltaDepth {
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

// patch applies delta to base. packfile.PatchDelta refuses an empty base,
// which a delta may still name.
func patch(base, delta []byte) ([]byte, error) {
	if len(base) > 0 {
		return packfile.PatchDelta(base, delta)
	}
	var src, dst plumbing.MemoryObject
	if err := packfile.ApplyDelta(&dst, &src, delta); err != nil {
		return nil, err
	}
	r, err := dst.Reader()
	if err != nil {
		return nil, err
	}
	defer r.Close()
	return io.ReadAll(r)
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
	idx, checksum, err := indexPack(pack)
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
