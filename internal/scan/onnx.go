package scan

import (
	"errors"
	"fmt"
	"path"
	"strings"
)

// ONNX is protobuf; the walk reads the wire format directly (no generated
// code) and descends only into the messages that can hold a TensorProto,
// skipping everything else, raw tensor data included, without buffering.
type pbMsg uint8

const (
	pbModel pbMsg = iota
	pbGraph
	pbNode
	pbAttribute
	pbTensor
	pbSparse
	pbFunction
	pbEntry
	pbSkip
)

// pbChildren maps (message, field number) to the message type of a
// length-delimited field, following onnx.proto.
var pbChildren = map[pbMsg]map[uint64]pbMsg{
	pbModel:     {7: pbGraph, 25: pbFunction},
	pbGraph:     {1: pbNode, 5: pbTensor, 15: pbSparse},
	pbNode:      {5: pbAttribute},
	pbAttribute: {5: pbTensor, 6: pbGraph, 10: pbTensor, 11: pbGraph, 22: pbSparse, 23: pbSparse},
	pbSparse:    {1: pbTensor, 2: pbTensor},
	pbFunction:  {7: pbNode},
	pbTensor:    {13: pbEntry},
}

const maxPBDepth = 64

var errPB = errors.New("malformed protobuf")

func (fs *fileScan) scanONNX(s *stream, name string) error {
	_, err := fs.pbWalk(s, pbModel, -1, 0)
	if err != nil {
		if errors.Is(err, errPB) || errors.Is(err, errStopFile) {
			fs.add(Finding{Offset: s.off, Verdict: Unknown, Rule: "onnx.malformed", Message: "not a readable ONNX model: " + err.Error()})
			return errStopFile
		}
		return err
	}
	return nil
}

func (s *stream) varint() (uint64, error) {
	var x uint64
	for shift := uint(0); shift < 64; shift += 7 {
		b, err := s.ReadByte()
		if err != nil {
			return 0, errPB
		}
		x |= uint64(b&0x7f) << shift
		if b < 0x80 {
			return x, nil
		}
	}
	return 0, errPB
}

// pbWalk reads one message up to end (-1: end of stream). For an
// external-data entry it returns the key and value it held.
func (fs *fileScan) pbWalk(s *stream, msg pbMsg, end int64, depth int) ([2]string, error) {
	var kv [2]string
	var location string
	locOff := int64(0)
	if depth > maxPBDepth {
		return kv, fmt.Errorf("%w: nested deeper than %d", errPB, maxPBDepth)
	}
	for end < 0 || s.off < end {
		if err := fs.ctx.Err(); err != nil {
			return kv, err
		}
		if end < 0 && len(s.peek(1)) == 0 {
			break
		}
		fieldOff := s.off
		key, err := s.varint()
		if err != nil {
			return kv, err
		}
		num, wt := key>>3, key&7
		switch wt {
		case 0:
			if _, err := s.varint(); err != nil {
				return kv, err
			}
		case 1:
			if err := s.skip(8); err != nil {
				return kv, errPB
			}
		case 5:
			if err := s.skip(4); err != nil {
				return kv, errPB
			}
		case 2:
			n, err := s.varint()
			if err != nil {
				return kv, err
			}
			if n > 1<<62 || (end >= 0 && s.off+int64(n) > end) {
				return kv, fmt.Errorf("%w: field %d overruns its message", errPB, num)
			}
			sub := s.off + int64(n)
			if child, ok := pbChildren[msg][num]; ok {
				ckv, err := fs.pbWalk(s, child, sub, depth+1)
				if err != nil {
					return kv, err
				}
				if child == pbEntry && ckv[0] == "location" {
					location, locOff = ckv[1], fieldOff
				}
			} else if msg == pbEntry && (num == 1 || num == 2) {
				v, _, err := s.prefix(int64(n), 4096)
				if err != nil {
					return kv, errPB
				}
				kv[num-1] = v
			} else if err := s.skip(int64(n)); err != nil {
				return kv, errPB
			}
			if s.off != sub {
				return kv, fmt.Errorf("%w: field %d length mismatch", errPB, num)
			}
		default:
			return kv, fmt.Errorf("%w: wire type %d at offset %d", errPB, wt, fieldOff)
		}
	}
	if end >= 0 && s.off != end {
		return kv, fmt.Errorf("%w: message overruns its length", errPB)
	}
	if msg == pbTensor && location != "" {
		fs.externalData(location, locOff)
	}
	return kv, nil
}

// externalData flags an external-data location that resolves outside the
// model's directory: onnx.load would read (and a converter might write)
// any file the serving process can reach.
func (fs *fileScan) externalData(loc string, off int64) {
	n := strings.ReplaceAll(loc, `\`, "/")
	clean := path.Clean(n)
	if strings.HasPrefix(n, "/") || (len(n) >= 2 && n[1] == ':') || clean == ".." || strings.HasPrefix(clean, "../") || strings.ContainsRune(n, 0) {
		fs.add(Finding{Offset: off, Verdict: Dangerous, Rule: "onnx.external_data_escape",
			Message: fmt.Sprintf("tensor data location %q leaves the model directory", loc)})
	}
}
