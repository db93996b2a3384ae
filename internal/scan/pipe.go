package scan

import (
	"context"
	"hash"
	"io"
	"sync"
	"sync/atomic"
)

// The hash and the parser read the same bytes, so a file costs the sum of
// both when one goroutine does both. readPipe splits them: a producer
// goroutine reads the file into a small ring of large blocks and hands every
// block to a hashing goroutine and to the parser, which release it when
// done; the wall time of a large file is then that of the slower of the two
// (SHA-256 of every byte, nearly always), not their sum. Memory stays bounded
// by the ring (pipeBlocks × pipeBlockSize), whatever the file's size.
const (
	pipeBlockSize = 1 << 20
	pipeBlocks    = 8
)

type pipeBlock struct {
	b    []byte
	n    int
	refs atomic.Int32
}

type readPipe struct {
	ctx    context.Context
	cancel context.CancelFunc
	free   chan *pipeBlock
	parse  chan *pipeBlock
	hashq  chan *pipeBlock
	wg     sync.WaitGroup

	// Set by the producer before it closes parse; read after.
	err  error
	done int64

	// The parser's current block.
	cur *pipeBlock
	pos int
}

// startPipe reads r to its end (unless stopped), feeding h and the parser.
// size is the file's expected size (negative when unknown): a small file
// gets small blocks, so that scanning many small files costs little memory.
func startPipe(ctx context.Context, r io.Reader, size int64, h hash.Hash, onRead func(done int64)) *readPipe {
	bs := pipeBlockSize
	if size >= 0 && size < pipeBlockSize {
		// One more byte than the file: the first read also finds its end.
		bs = max(int(size)+1, 4<<10)
	}
	ctx, cancel := context.WithCancel(ctx)
	p := &readPipe{ctx: ctx, cancel: cancel, free: make(chan *pipeBlock, pipeBlocks),
		parse: make(chan *pipeBlock, pipeBlocks), hashq: make(chan *pipeBlock, pipeBlocks)}
	for i := 0; i < pipeBlocks; i++ {
		p.free <- &pipeBlock{b: make([]byte, bs)}
	}
	p.wg.Add(2)
	go func() {
		defer p.wg.Done()
		for blk := range p.hashq {
			h.Write(blk.b[:blk.n])
			p.release(blk)
		}
	}()
	go func() {
		defer p.wg.Done()
		defer close(p.parse)
		defer close(p.hashq)
		for {
			var blk *pipeBlock
			select {
			case blk = <-p.free:
			case <-ctx.Done():
				p.err = ctx.Err()
				return
			}
			// Fill the block: a network body returns small reads, and a
			// block per read would make the ring's bound a few kilobytes.
			n, err := io.ReadFull(r, blk.b)
			if err == io.ErrUnexpectedEOF {
				err = io.EOF
			}
			if n > 0 {
				p.done += int64(n)
				if onRead != nil {
					onRead(p.done)
				}
				blk.n = n
				blk.refs.Store(2)
				p.hashq <- blk // never blocks: at most pipeBlocks blocks are out
				p.parse <- blk
			} else {
				p.free <- blk
			}
			if err != nil {
				p.err = err
				return
			}
		}
	}()
	return p
}

func (p *readPipe) release(blk *pipeBlock) {
	if blk.refs.Add(-1) == 0 {
		p.free <- blk // never blocks: the ring holds every block
	}
}

// next makes p.cur a block with unread bytes; false at the end, with the
// producer's error (io.EOF at the end of the file).
func (p *readPipe) next() (bool, error) {
	for p.cur == nil || p.pos == p.cur.n {
		if p.cur != nil {
			p.release(p.cur)
			p.cur = nil
		}
		blk, ok := <-p.parse
		if !ok {
			return false, p.err
		}
		p.cur, p.pos = blk, 0
	}
	return true, nil
}

func (p *readPipe) Read(b []byte) (int, error) {
	if ok, err := p.next(); !ok {
		return 0, err
	}
	n := copy(b, p.cur.b[p.pos:p.cur.n])
	p.pos += n
	return n, nil
}

// skip drops n bytes without copying them (they are hashed all the same);
// it returns how many it dropped.
func (p *readPipe) skip(n int64) (int64, error) {
	var d int64
	for d < n {
		if ok, err := p.next(); !ok {
			return d, err
		}
		step := min(int64(p.cur.n-p.pos), n-d)
		p.pos += int(step)
		d += step
	}
	return d, nil
}

// finish waits for the producer and the hash; it returns the bytes read and
// the producer's error (nil at a clean end of file). The parser must have
// read to the end, or called stop.
func (p *readPipe) finish() (int64, error) {
	p.wg.Wait()
	p.cancel()
	if p.err == io.EOF {
		return p.done, nil
	}
	return p.done, p.err
}

// stop ends the producer early (an error in the parser); blocks in flight
// are dropped. The producer never blocks on a send (the channels hold the
// whole ring), and closing the file ends a read it is waiting in (a
// stalled network body), so stop returns promptly.
func (p *readPipe) stop(c io.Closer) {
	p.cancel()
	_ = c.Close()
	p.wg.Wait()
}
