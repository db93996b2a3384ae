package gitsource

import (
	"bufio"
	"bytes"
	"compress/zlib"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"sort"
	"strconv"
	"strings"

	"github.com/go-git/go-billy/v5"
	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/storer"
)

// Size limits. A models repository is untrusted input (a fork's pull
// request is fetched into the cache): a file of zeros compresses a
// thousandfold, so nothing is read before its size is known from the object
// header, and nothing larger than a limit is read at all.
const (
	// DefaultMaxBlobSize is the largest file TreeFS reads (Options.MaxBlobSize).
	// It matches the most a KServe render copies of one model folder.
	DefaultMaxBlobSize int64 = 32 << 20
	// maxMetaSize bounds commits, annotated tags and directories: a commit
	// message or a directory listing this large is an attack, not a models
	// repository (a directory of 4 MiB lists about 100,000 entries).
	maxMetaSize int64 = 4 << 20
	// maxLinkTarget bounds a symbolic link's target, as PATH_MAX does.
	maxLinkTarget int64 = 4096
)

// ErrTooLarge is matched (errors.Is) by the errors of reads refused because
// the object, or what it is stored as, exceeds a size limit.
var ErrTooLarge error = fileRefusal("too large")

// fileRefusal is the type of the errors with which a TreeFS declines one
// file by design (too large, a link leaving the repository): a problem of
// that file, not a failure of the repository. Manifest loading tells the
// two apart through RefusedFile, without importing this package.
type fileRefusal string

func (e fileRefusal) Error() string { return string(e) }

// RefusedFile marks the error as a problem of the file asked for.
func (fileRefusal) RefusedFile() bool { return true }

// objectInfo is what an object's header says, read without inflating the
// content.
type objectInfo struct {
	typ  plumbing.ObjectType // after following deltas to their base; AnyObject when unknown
	size int64               // the object's size
	// cost is the most go-git holds in memory at once to produce the
	// content: the size, or for a delta the largest of its size, its delta
	// data and every object down its chain of bases.
	cost int64
	// at is where the object is in a pack; a zero pack when it is not.
	// Readers of the pack start there without searching the index again.
	at packOffset
}

// objectHeaders reads object headers straight from a repository's pack
// indexes, packs and loose object files. go-git has no such call: asking
// it for a packed delta's size inflates the whole delta, and asking it for
// a loose object reads the whole object, so a crafted 400 MB object cost
// 400 MB before any limit could be checked. Here a header costs a binary
// search of the pack index on disk, a few bytes of the pack and, for a
// delta, the first bytes of the delta inflated (where its sizes are).
//
// It is not safe for concurrent use; its owner's storage lock guards it.
type objectHeaders struct {
	fs    billy.Filesystem // the repository's .git (or bare) directory
	store storer.EncodedObjectStorer
	packs []*packIndex // nil until first used; reset when packs change
	memo  map[packOffset]objectInfo
	// found remembers where the last objects looked up are in the packs:
	// a TreeFS asks for a file's header to stat it and again to read it,
	// and each search of an index on disk is a dozen reads of it.
	found map[plumbing.Hash]packOffset
	zr    io.ReadCloser // reused zlib reader
}

type packOffset struct {
	pack *packIndex
	off  int64
}

// maxHeaderMemo bounds the memo of delta chains; the memo spares walking
// the shared bases of a chain again for each object built on them.
const maxHeaderMemo = 8192

func newObjectHeaders(fsys billy.Filesystem, store storer.EncodedObjectStorer) *objectHeaders {
	return &objectHeaders{fs: fsys, store: store}
}

// reset forgets the packs, after packs were added.
func (o *objectHeaders) reset() {
	o.closePacks()
	o.packs, o.memo, o.found = nil, nil, nil
}

func (o *objectHeaders) close() error {
	o.closePacks()
	o.packs, o.memo, o.found = nil, nil, nil
	return nil
}

func (o *objectHeaders) closePacks() {
	for _, p := range o.packs {
		p.close()
	}
}

// info returns the header of object h.
func (o *objectHeaders) info(h plumbing.Hash) (objectInfo, error) {
	for attempt := 0; attempt < 2 && o.fs != nil; attempt++ {
		if o.packs == nil {
			if err := o.loadPacks(); err != nil {
				return objectInfo{}, err
			}
		}
		if at, ok := o.found[h]; ok {
			info, err := o.packedInfo(at.pack, at.off)
			info.at = at
			return info, err
		}
		for _, p := range o.packs {
			off, ok, err := p.find(h)
			if err != nil {
				return objectInfo{}, err
			}
			if ok {
				if o.found == nil || len(o.found) >= maxHeaderMemo {
					o.found = make(map[plumbing.Hash]packOffset)
				}
				o.found[h] = packOffset{p, off}
				info, err := o.packedInfo(p, off)
				info.at = packOffset{p, off}
				return info, err
			}
		}
		info, err := o.looseInfo(h)
		if err == nil || !errors.Is(err, plumbing.ErrObjectNotFound) {
			return info, err
		}
		// A pack may have appeared since the list was read (git gc in a
		// work tree); look once more.
		o.reset()
	}
	// Alternates and other storage: go-git knows the size, if not the
	// type. Only a work tree's own repository can have alternates.
	size, err := o.store.EncodedObjectSize(h)
	if err != nil {
		return objectInfo{}, err
	}
	return objectInfo{typ: plumbing.AnyObject, size: size, cost: size}, nil
}

// has reports whether h is stored: first in the pack indexes this
// reader holds in memory, then by asking store, which looks for a loose
// object file before the packs. A fetch checks every ref it knows this
// way, one per release tag, and the file lookups were most of its CPU.
func (o *objectHeaders) has(store storer.EncodedObjectStorer, h plumbing.Hash) bool {
	if o.fs != nil {
		if o.packs == nil && o.loadPacks() != nil {
			o.reset()
		}
		for _, p := range o.packs {
			if _, ok, err := p.find(h); err == nil && ok {
				return true
			}
		}
	}
	return store.HasEncodedObject(h) == nil
}

// check returns the header of h, refusing an object of another type than
// want (as go-git does, with ErrObjectNotFound) or one whose cost exceeds
// limit.
func (o *objectHeaders) check(h plumbing.Hash, want plumbing.ObjectType, limit int64) (objectInfo, error) {
	info, err := o.info(h)
	if err != nil {
		return info, err
	}
	if want != plumbing.AnyObject && info.typ != plumbing.AnyObject && info.typ != want {
		return info, fmt.Errorf("%w: %s is a %s, not a %s", plumbing.ErrObjectNotFound, h, info.typ, want)
	}
	if err := info.within(limit); err != nil {
		return info, fmt.Errorf("%s %s: %w", info.typ, h, err)
	}
	return info, nil
}

// within says why reading the object would exceed limit, or nil.
func (i objectInfo) within(limit int64) error {
	switch {
	case i.size > limit:
		return fmt.Errorf("%w: %d bytes; the limit is %d", ErrTooLarge, i.size, limit)
	case i.cost > limit:
		return fmt.Errorf("%w: %d bytes, but stored as a delta that takes %d bytes to read; the limit is %d", ErrTooLarge, i.size, i.cost, limit)
	}
	return nil
}

func (o *objectHeaders) loadPacks() error {
	entries, err := o.fs.ReadDir(path.Join("objects", "pack"))
	if err != nil && !os.IsNotExist(err) {
		return fmt.Errorf("list packs: %w", err)
	}
	var names []string
	for _, e := range entries {
		if name, ok := strings.CutSuffix(e.Name(), ".idx"); ok && strings.HasPrefix(name, "pack-") {
			names = append(names, name)
		}
	}
	sort.Strings(names)
	packs := make([]*packIndex, 0, len(names))
	for i, name := range names {
		p, err := openPackIndex(o.fs, path.Join("objects", "pack", name), i < maxOpenPacks/2)
		if err != nil {
			for _, q := range packs {
				q.close()
			}
			return err
		}
		packs = append(packs, p)
	}
	o.packs = packs
	return nil
}

// Pack object types (git's pack format).
const (
	packCommit   = 1
	packTree     = 2
	packBlob     = 3
	packTag      = 4
	packOFSDelta = 6
	packREFDelta = 7
)

var packTypes = map[byte]plumbing.ObjectType{
	packCommit: plumbing.CommitObject, packTree: plumbing.TreeObject,
	packBlob: plumbing.BlobObject, packTag: plumbing.TagObject,
}

// chainNode is one object met while walking a delta chain.
type chainNode struct {
	at       packOffset
	length   int64 // inflated length stored at this offset (delta data for a delta)
	src, dst int64 // delta sizes: its base's and its result's
}

// packedInfo walks the delta chain of the object at off in p down to its
// base, reading headers only.
func (o *objectHeaders) packedInfo(p *packIndex, off int64) (objectInfo, error) {
	var chain []chainNode
	var tail objectInfo
	for {
		at := packOffset{p, off}
		if known, ok := o.memo[at]; ok {
			tail = known
			break
		}
		if len(chain) > maxDeltaDepth {
			return objectInfo{}, fmt.Errorf("%s: delta chain deeper than %d at offset %d", p.name, maxDeltaDepth, off)
		}
		hdr, err := p.header(off)
		if err != nil {
			return objectInfo{}, err
		}
		if typ, ok := packTypes[hdr.typ]; ok {
			tail = objectInfo{typ: typ, size: hdr.length, cost: hdr.length}
			o.remember(at, tail)
			break
		}
		n := chainNode{at: at, length: hdr.length}
		if n.src, n.dst, err = o.deltaSizes(p, hdr.dataAt); err != nil {
			return objectInfo{}, fmt.Errorf("%s: delta at offset %d: %w", p.name, off, err)
		}
		chain = append(chain, n)
		switch hdr.typ {
		case packOFSDelta:
			off = hdr.baseOffset
		case packREFDelta:
			q, qoff, ok, err := o.findPacked(hdr.baseHash)
			if err != nil {
				return objectInfo{}, err
			}
			if !ok {
				return objectInfo{}, fmt.Errorf("%s: delta at offset %d: base %s is not in a pack", p.name, off, hdr.baseHash)
			}
			p, off = q, qoff
		}
	}
	// Back up the chain: each delta's result has its own size, and costs
	// what its base costs, its delta data and both sizes.
	info := tail
	for i := len(chain) - 1; i >= 0; i-- {
		n := chain[i]
		if n.src != info.size {
			return objectInfo{}, fmt.Errorf("%s: delta at offset %d: base is %d bytes, the delta says %d", n.at.pack.name, n.at.off, info.size, n.src)
		}
		info = objectInfo{typ: info.typ, size: n.dst, cost: max(info.cost, n.length, n.src, n.dst)}
		o.remember(n.at, info)
	}
	return info, nil
}

func (o *objectHeaders) remember(at packOffset, info objectInfo) {
	if o.memo == nil || len(o.memo) >= maxHeaderMemo {
		o.memo = make(map[packOffset]objectInfo)
	}
	o.memo[at] = info
}

func (o *objectHeaders) findPacked(h plumbing.Hash) (*packIndex, int64, bool, error) {
	for _, p := range o.packs {
		off, ok, err := p.find(h)
		if err != nil || ok {
			return p, off, ok, err
		}
	}
	return nil, 0, false, nil
}

// deltaSizes inflates the first bytes of the delta data at dataAt: its two
// sizes, the base's and the result's.
func (o *objectHeaders) deltaSizes(p *packIndex, dataAt int64) (src, dst int64, err error) {
	err = p.withPack(func(f billy.File) error {
		sr := io.NewSectionReader(f, dataAt, 1<<62)
		if o.zr == nil {
			o.zr, err = zlib.NewReader(sr)
		} else {
			err = o.zr.(zlib.Resetter).Reset(sr, nil)
		}
		if err != nil {
			return err
		}
		// Two varints are at most 20 bytes; the reader inflates at most a
		// window's worth to hand them over.
		br := bufio.NewReaderSize(io.LimitReader(o.zr, 32), 32)
		s, err := binary.ReadUvarint(br)
		if err != nil {
			return err
		}
		d, err := binary.ReadUvarint(br)
		if err != nil {
			return err
		}
		if s > 1<<62 || d > 1<<62 {
			return errors.New("delta sizes out of range")
		}
		src, dst = int64(s), int64(d)
		return nil
	})
	return src, dst, err
}

// looseInfo reads the header of a loose object: its first bytes inflated,
// "<type> <size>\x00".
func (o *objectHeaders) looseInfo(h plumbing.Hash) (objectInfo, error) {
	hex := h.String()
	f, err := o.fs.Open(path.Join("objects", hex[:2], hex[2:]))
	if err != nil {
		if os.IsNotExist(err) {
			return objectInfo{}, plumbing.ErrObjectNotFound
		}
		return objectInfo{}, err
	}
	defer f.Close()
	zr, err := zlib.NewReader(bufio.NewReaderSize(f, 512))
	if err != nil {
		return objectInfo{}, fmt.Errorf("loose object %s: %w", h, err)
	}
	defer zr.Close()
	// "commit " and 20 digits of size fit in 32 bytes.
	head := make([]byte, 32)
	n, err := io.ReadFull(zr, head)
	if err != nil && !errors.Is(err, io.ErrUnexpectedEOF) && !errors.Is(err, io.EOF) {
		return objectInfo{}, fmt.Errorf("loose object %s: %w", h, err)
	}
	head = head[:n]
	end := bytes.IndexByte(head, 0)
	typName, sizeText, ok := strings.Cut(string(head[:max(end, 0)]), " ")
	if end < 0 || !ok {
		return objectInfo{}, fmt.Errorf("loose object %s: malformed header", h)
	}
	typ, err := plumbing.ParseObjectType(typName)
	if err != nil {
		return objectInfo{}, fmt.Errorf("loose object %s: %w", h, err)
	}
	size, err := strconv.ParseInt(sizeText, 10, 64)
	if err != nil || size < 0 {
		return objectInfo{}, fmt.Errorf("loose object %s: malformed size %q", h, sizeText)
	}
	return objectInfo{typ: typ, size: size, cost: size}, nil
}

// packIndex looks objects up in one pack's version-2 index on disk, with
// only its fan-out table in memory (1 KiB), and reads object headers from
// the pack.
type packIndex struct {
	name      string // objects/pack/pack-<checksum>, without extension
	fs        billy.Filesystem
	idx, pack billy.File // open while kept; nil: opened for each use
	fanout    [256]uint32
}

const (
	idxHeaderLen = 8
	idxFanoutLen = 256 * 4
)

func openPackIndex(fsys billy.Filesystem, name string, keepOpen bool) (*packIndex, error) {
	p := &packIndex{name: name, fs: fsys}
	err := p.withIdx(func(f billy.File) error {
		var head [idxHeaderLen + idxFanoutLen]byte
		if _, err := f.ReadAt(head[:], 0); err != nil {
			return err
		}
		if !bytes.Equal(head[:4], []byte{0xff, 't', 'O', 'c'}) || binary.BigEndian.Uint32(head[4:8]) != 2 {
			return errors.New("not a version 2 pack index")
		}
		for i := range p.fanout {
			p.fanout[i] = binary.BigEndian.Uint32(head[idxHeaderLen+4*i:])
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("read pack index %s.idx: %w", name, err)
	}
	if keepOpen {
		if p.idx, err = fsys.Open(name + ".idx"); err == nil {
			p.pack, err = fsys.Open(name + ".pack")
		}
		if err != nil {
			p.close()
			return nil, fmt.Errorf("open pack %s: %w", name, err)
		}
	}
	return p, nil
}

func (p *packIndex) close() {
	for _, f := range []billy.File{p.idx, p.pack} {
		if f != nil {
			_ = f.Close()
		}
	}
	p.idx, p.pack = nil, nil
}

func (p *packIndex) withIdx(fn func(billy.File) error) error {
	return withFile(p.fs, p.idx, p.name+".idx", fn)
}

func (p *packIndex) withPack(fn func(billy.File) error) error {
	return withFile(p.fs, p.pack, p.name+".pack", fn)
}

func withFile(fsys billy.Filesystem, open billy.File, name string, fn func(billy.File) error) error {
	if open != nil {
		return fn(open)
	}
	f, err := fsys.Open(name)
	if err != nil {
		return err
	}
	defer f.Close()
	return fn(f)
}

// find returns the pack offset of h, by binary search of the sorted names
// between the fan-out bounds of h's first byte.
func (p *packIndex) find(h plumbing.Hash) (off int64, ok bool, err error) {
	count := int64(p.fanout[255])
	lo := int64(0)
	if h[0] > 0 {
		lo = int64(p.fanout[h[0]-1])
	}
	hi := int64(p.fanout[h[0]])
	err = p.withIdx(func(f billy.File) error {
		var name [20]byte
		namesAt := int64(idxHeaderLen + idxFanoutLen)
		for lo < hi {
			mid := lo + (hi-lo)/2
			if _, err := f.ReadAt(name[:], namesAt+mid*20); err != nil {
				return err
			}
			switch c := bytes.Compare(name[:], h[:]); {
			case c == 0:
				var o [8]byte
				offsetsAt := namesAt + count*20 + count*4
				if _, err := f.ReadAt(o[:4], offsetsAt+mid*4); err != nil {
					return err
				}
				v := binary.BigEndian.Uint32(o[:4])
				if v&0x80000000 == 0 {
					off, ok = int64(v), true
					return nil
				}
				// A pack over 2 GiB: the offset is in the 64-bit table.
				if _, err := f.ReadAt(o[:], offsetsAt+count*4+int64(v&0x7fffffff)*8); err != nil {
					return err
				}
				off, ok = int64(binary.BigEndian.Uint64(o[:])), true
				return nil
			case c < 0:
				lo = mid + 1
			default:
				hi = mid
			}
		}
		return nil
	})
	if err != nil {
		return 0, false, fmt.Errorf("search pack index %s.idx: %w", p.name, err)
	}
	return off, ok, nil
}

// packHeader is an object's entry header in a pack.
type packHeader struct {
	typ        byte
	length     int64 // inflated length of what follows
	baseOffset int64 // OFS_DELTA
	baseHash   plumbing.Hash
	dataAt     int64 // where the zlib stream starts
}

func (p *packIndex) header(off int64) (packHeader, error) {
	var buf [32]byte
	var n int
	err := p.withPack(func(f billy.File) error {
		var err error
		n, err = f.ReadAt(buf[:], off)
		if n > 0 && errors.Is(err, io.EOF) {
			err = nil
		}
		return err
	})
	if err != nil {
		return packHeader{}, fmt.Errorf("read %s.pack at offset %d: %w", p.name, off, err)
	}
	b := buf[:n]
	bad := func() (packHeader, error) {
		return packHeader{}, fmt.Errorf("%s.pack: malformed object header at offset %d", p.name, off)
	}
	if len(b) == 0 {
		return bad()
	}
	h := packHeader{typ: (b[0] >> 4) & 7, length: int64(b[0] & 15)}
	i, shift := 1, 4
	for c := b[0]; c&0x80 != 0; i++ {
		if i >= len(b) || shift > 56 {
			return bad()
		}
		c = b[i]
		h.length |= int64(c&0x7f) << shift
		shift += 7
	}
	switch h.typ {
	case packOFSDelta:
		// Git's offset encoding: each continuation adds one before shifting.
		if i >= len(b) {
			return bad()
		}
		c := b[i]
		rel := int64(c & 0x7f)
		for i++; c&0x80 != 0; i++ {
			if i >= len(b) || rel > 1<<55 {
				return bad()
			}
			c = b[i]
			rel = (rel+1)<<7 | int64(c&0x7f)
		}
		if rel <= 0 || rel > off {
			return bad()
		}
		h.baseOffset = off - rel
	case packREFDelta:
		if i+20 > len(b) {
			return bad()
		}
		copy(h.baseHash[:], b[i:i+20])
		i += 20
	case packCommit, packTree, packBlob, packTag:
	default:
		return bad()
	}
	h.dataAt = off + int64(i)
	return h, nil
}
