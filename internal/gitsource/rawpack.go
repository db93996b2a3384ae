package gitsource

import (
	"bufio"
	"compress/zlib"
	"encoding/binary"
	"errors"
	"fmt"
	"io"

	"github.com/go-git/go-billy/v5"
	"github.com/go-git/go-git/v5/plumbing"
)

// minPackedTree is the size from which rawTree resolves a directory object
// itself (packedTree). Smaller ones, a root directory of a few entries,
// come from go-git's object cache, where they stay whole and where the
// Source's directory reads find them too: inflating each from the pack
// again cost more than go-git's hashing of a few hundred bytes.
const minPackedTree = 16 << 10

// rawTree returns the body of directory object h, refusing one whose
// reading would exceed maxMetaSize as treeAt does. The body is valid until
// s.raw.release. Callers hold s.mu.
func (s *Source) rawTree(h plumbing.Hash) ([]byte, error) {
	if b, ok := s.raw.byHash(h); ok {
		s.raw.holdFront(h)
		return b, nil
	}
	info, err := s.objs.check(h, plumbing.TreeObject, maxMetaSize)
	if err != nil {
		return nil, fmt.Errorf("read tree %s: %w", h, err)
	}
	if info.size < minPackedTree {
		return s.storedTree(h)
	}
	p, off, ok, err := s.objs.findPacked(h)
	if err != nil {
		return nil, fmt.Errorf("read tree %s: %w", h, err)
	}
	if !ok {
		return s.storedTree(h)
	}
	b, err := s.packedTree(packOffset{p, off})
	if err != nil {
		return nil, fmt.Errorf("read tree %s: %w", h, err)
	}
	s.raw.holdFront(h)
	return b, nil
}

// storedTree reads directory h through go-git: a small one, kept whole in
// go-git's object cache, a loose object, or one in an alternate's storage.
// Its body is not kept in s.raw: go-git keeps a small one, and a Source
// stores what it fetches in packs.
func (s *Source) storedTree(h plumbing.Hash) ([]byte, error) {
	obj, err := s.repo.Storer.EncodedObject(plumbing.TreeObject, h)
	if err != nil {
		return nil, fmt.Errorf("read tree %s: %w", h, err)
	}
	if obj.Size() > maxMetaSize {
		return nil, fmt.Errorf("read tree %s: %d bytes: %w", h, obj.Size(), ErrTooLarge)
	}
	body := make([]byte, obj.Size())
	r, err := obj.Reader()
	if err != nil {
		return nil, fmt.Errorf("read tree %s: %w", h, err)
	}
	_, err = io.ReadFull(r, body)
	if cerr := r.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return nil, fmt.Errorf("read tree %s: %w", h, err)
	}
	return body, nil
}

// packedTree returns the directory object stored at a pack offset,
// resolving its deltas here rather than through go-git. go-git puts every
// object it resolves in its object cache, and the cache names it by its
// hash, computed anew over the whole content (go-git does not pass on the
// hash it looked up), after copying it through a growing buffer: with a
// models/ directory of 10,000 models, once decoding was gone, reading
// through go-git was 1.23 s of the walk's 1.84 s of samples, 0.49 s of it
// hashing and 0.59 s copying. The pack's contents were hashed when it was
// indexed (indexPack), and rawTree found this offset by hash in that
// index. Callers checked the object's type and that no step of its chain
// exceeds maxMetaSize (objectHeaders.check).
func (s *Source) packedTree(at packOffset) ([]byte, error) {
	// Down the chain to a body in s.raw or stored whole, then back up,
	// applying each delta to the body below it.
	var chain []packHeader
	var chainAt []packOffset
	var body []byte
	for {
		if b, ok := s.raw.byOffset(at); ok {
			body = b
			break
		}
		if len(chain) > maxDeltaDepth {
			return nil, fmt.Errorf("%s: delta chain deeper than %d", at.pack.name, maxDeltaDepth)
		}
		hdr, err := at.pack.header(at.off)
		if err != nil {
			return nil, err
		}
		if hdr.typ == packTree {
			if hdr.length > maxMetaSize {
				return nil, fmt.Errorf("%s: %d bytes at offset %d: %w", at.pack.name, hdr.length, at.off, ErrTooLarge)
			}
			body = s.raw.buffer(hdr.length)
			if err := s.raw.unpack.inflate(at.pack, hdr.dataAt, body); err != nil {
				return nil, fmt.Errorf("%s: tree at offset %d: %w", at.pack.name, at.off, err)
			}
			s.raw.put(plumbing.ZeroHash, at, body)
			break
		}
		chain, chainAt = append(chain, hdr), append(chainAt, at)
		if at, err = s.deltaBase(at, hdr, packTree); err != nil {
			return nil, err
		}
	}
	for i := len(chain) - 1; i >= 0; i-- {
		hdr, at := chain[i], chainAt[i]
		if hdr.length > maxMetaSize {
			return nil, fmt.Errorf("%s: delta of %d bytes at offset %d: %w", at.pack.name, hdr.length, at.off, ErrTooLarge)
		}
		if int64(cap(s.raw.delta)) < hdr.length {
			s.raw.delta = make([]byte, hdr.length)
		}
		delta := s.raw.delta[:hdr.length]
		if err := s.raw.unpack.inflate(at.pack, hdr.dataAt, delta); err != nil {
			return nil, fmt.Errorf("%s: delta at offset %d: %w", at.pack.name, at.off, err)
		}
		next, err := s.patch(body, delta)
		if err != nil {
			return nil, fmt.Errorf("%s: delta at offset %d: %w", at.pack.name, at.off, err)
		}
		s.raw.put(plumbing.ZeroHash, at, next)
		body = next
	}
	return body, nil
}

// patch applies delta (Git's format: the base's size, the result's, then
// copy and insert instructions) to base, into a buffer from s.raw.
func (s *Source) patch(base, delta []byte) ([]byte, error) {
	return patchDelta(base, delta, maxMetaSize, s.raw.buffer)
}

// patchDelta applies delta to base into a buffer of the result's size from
// alloc, refusing a result larger than limit before allocating it.
func patchDelta(base, delta []byte, limit int64, alloc func(int64) []byte) ([]byte, error) {
	src, n := binary.Uvarint(delta)
	if n <= 0 {
		return nil, errors.New("malformed delta header")
	}
	delta = delta[n:]
	dst, n := binary.Uvarint(delta)
	if n <= 0 {
		return nil, errors.New("malformed delta header")
	}
	delta = delta[n:]
	if src != uint64(len(base)) {
		return nil, fmt.Errorf("delta expects a base of %d bytes, the base has %d", src, len(base))
	}
	if dst > uint64(limit) {
		return nil, fmt.Errorf("delta result of %d bytes: %w", dst, ErrTooLarge)
	}
	out := alloc(int64(dst))
	w := 0
	for len(delta) > 0 {
		cmd := delta[0]
		delta = delta[1:]
		switch {
		case cmd&0x80 != 0: // copy from the base
			var off, size uint64
			for i := range 7 {
				if cmd&(1<<i) == 0 {
					continue
				}
				if len(delta) == 0 {
					return nil, errors.New("delta ends inside a copy instruction")
				}
				if i < 4 {
					off |= uint64(delta[0]) << (8 * i)
				} else {
					size |= uint64(delta[0]) << (8 * (i - 4))
				}
				delta = delta[1:]
			}
			if size == 0 {
				size = 0x10000
			}
			if off+size > uint64(len(base)) || uint64(w)+size > dst {
				return nil, fmt.Errorf("delta copies %d bytes at %d, outside the base or past the result", size, off)
			}
			w += copy(out[w:], base[off:off+size])
		case cmd != 0: // insert the next cmd bytes
			size := int(cmd)
			if size > len(delta) || uint64(w+size) > dst {
				return nil, errors.New("delta inserts past its end or the result's")
			}
			w += copy(out[w:], delta[:size])
			delta = delta[size:]
		default:
			return nil, errors.New("delta has a reserved instruction 0")
		}
	}
	if uint64(w) != dst {
		return nil, fmt.Errorf("delta makes %d of %d bytes", w, dst)
	}
	return out, nil
}

// inflater reads zlib streams of a pack with one reader and one buffer
// reused: a walk inflates two objects per commit.
type inflater struct {
	zr io.ReadCloser
	br *bufio.Reader
}

// inflate fills dst with the zlib stream at dataAt in pack p, which must
// hold at least len(dst) bytes.
func (z *inflater) inflate(p *packIndex, dataAt int64, dst []byte) error {
	return p.withPack(func(f billy.File) error {
		sr := io.NewSectionReader(f, dataAt, 1<<62)
		if z.br == nil {
			z.br = bufio.NewReaderSize(sr, 32<<10)
		} else {
			z.br.Reset(sr)
		}
		var err error
		if z.zr == nil {
			z.zr, err = zlib.NewReader(z.br)
		} else {
			err = z.zr.(zlib.Resetter).Reset(z.br, nil)
		}
		if err != nil {
			return err
		}
		if _, err := io.ReadFull(z.zr, dst); err != nil {
			return fmt.Errorf("inflate %d bytes: %w", len(dst), err)
		}
		return nil
	})
}
