package scan

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"math/bits"
	"strconv"
	"strings"
)

// The pickle reader is a symbolic version of pickle's own virtual machine:
// it keeps a stack, a mark stack and a memo of small approximate values, so
// that STACK_GLOBAL's module and name are known however they were built
// (pushed strings, memo GETs, DUPs), and it records every global that
// loading would import. It never calls anything.
//
// Memory is bounded by design: strings keep at most maxStr bytes,
// containers keep at most maxItems children and a bounded weight, and the
// live weight of the stack and of the memo is capped. Hitting a cap does not
// hide a global: a STACK_GLOBAL whose arguments were dropped is reported as
// dangerous (a real pickler never produces one).

const (
	maxStr    = 256
	maxItems  = 16
	maxNodeW  = 64
	maxStackW = 1 << 18
	maxMemoW  = 1 << 16
	maxMarks  = 1 << 14
	// maxDenseMemo bounds the dense memo (40 bytes an entry, 2.5 MiB);
	// maxSparseMemo the keys kept for other indices.
	maxDenseMemo  = 1 << 16
	maxSparseMemo = 1 << 16
	maxFindings   = 64
	pickleMaxLen  = 1 << 62
)

type kind uint8

const (
	kOpaque kind = iota
	kNone
	kBool
	kInt
	kFloat
	kStr
	kBytes
	kTuple
	kList
	kDict
	kSet
	kGlobal
	kObj
	kMark // only on the stack during MARK ... (never stored)
)

type val struct {
	k     kind
	trunc bool
	s     string // text of kStr/kBytes (truncated), "module.name" of kGlobal/kObj
	i     int64
	c     *comp
}

type comp struct {
	items []val // children (tuple, list, set, dict values), or an object's args
	// inline holds the items of the small tuples most pickles are made of,
	// saving an allocation per container.
	inline [3]val
	keys   []val // dict keys, parallel to items
	state  *val  // an object's BUILD state
	w      int
}

func (v val) weight() int {
	w := 1 + len(v.s)/32
	if v.c != nil {
		w += v.c.w
	}
	return w
}

func (c *comp) add(k, v val, withKey bool) {
	w := v.weight()
	if withKey {
		w += k.weight()
	}
	if len(c.items) >= maxItems {
		return
	}
	if c.w+w > maxNodeW {
		// Keep the position with an opaque placeholder so that indexed
		// reads (a dtype's elsize at state[5]) stay right.
		v, k, w = val{}, val{}, 1
		if withKey {
			w = 2
		}
	}
	c.items = append(c.items, v)
	if withKey {
		c.keys = append(c.keys, k)
	}
	c.w += w
}

func (c *comp) get(key string) (val, bool) {
	for i, k := range c.keys {
		if k.k == kStr && k.s == key {
			return c.items[i], true
		}
	}
	return val{}, false
}

// pickleError is a malformed or truncated pickle, at an offset.
type pickleError struct {
	Off int64
	Msg string
}

func (e *pickleError) Error() string { return fmt.Sprintf("pickle: offset %d: %s", e.Off, e.Msg) }

// errLimits is returned when a pickle exceeds the reader's memory bounds.
var errLimits = errors.New("pickle exceeds the scanner's stack or nesting bounds")

type pickleVM struct {
	s      *stream
	cls    *classifier
	path   string
	stack  []val
	stackW int
	marks  []int
	// The memo: a dense slice for the indices picklers write (0, 1, 2...)
	// and a map for the rest. memoN is Python's len(memo), MEMOIZE's index.
	memoS  []val
	memo   map[int64]val
	memoN  int64
	memoW  int
	seen   map[string]bool
	report func(Finding)
	// afterBuild is called when BUILD gives an object its state (joblib
	// writes array bytes into the stream right after its wrapper's BUILD).
	afterBuild func(obj val) error
	proto      int
}

func newPickleVM(s *stream, cls *classifier, path string, report func(Finding)) *pickleVM {
	return &pickleVM{s: s, cls: cls, path: path, memo: map[int64]val{}, seen: map[string]bool{}, report: report}
}

func (vm *pickleVM) fail(off int64, format string, a ...any) error {
	return &pickleError{Off: off, Msg: fmt.Sprintf(format, a...)}
}

func (vm *pickleVM) push(v val) error {
	if len(vm.stack) >= 1<<20 {
		return errLimits
	}
	vm.stack = append(vm.stack, v)
	vm.stackW += v.weight()
	if vm.stackW > maxStackW {
		return errLimits
	}
	return nil
}

func (vm *pickleVM) pop(off int64) (val, error) {
	n := len(vm.stack)
	if n == 0 || (len(vm.marks) > 0 && vm.marks[len(vm.marks)-1] == n) {
		return val{}, vm.fail(off, "stack underflow")
	}
	v := vm.stack[n-1]
	vm.stack = vm.stack[:n-1]
	vm.stackW -= v.weight()
	return v, nil
}

func (vm *pickleVM) top(off int64) (*val, error) {
	n := len(vm.stack)
	if n == 0 || (len(vm.marks) > 0 && vm.marks[len(vm.marks)-1] == n) {
		return nil, vm.fail(off, "stack underflow")
	}
	return &vm.stack[n-1], nil
}

// popMark pops everything above the last MARK.
func (vm *pickleVM) popMark(off int64) ([]val, error) {
	if len(vm.marks) == 0 {
		return nil, vm.fail(off, "no MARK on the stack")
	}
	m := vm.marks[len(vm.marks)-1]
	vm.marks = vm.marks[:len(vm.marks)-1]
	items := vm.stack[m:]
	for _, v := range items {
		vm.stackW -= v.weight()
	}
	vm.stack = vm.stack[:m]
	return items, nil
}

func (vm *pickleVM) memoize(off, idx int64) error {
	v, err := vm.top(off)
	if err != nil {
		return err
	}
	stored := *v
	w := v.weight()
	if v.c != nil {
		// Containers may grow after being memoized: count them at the most
		// they can hold so that the bound stays true.
		w = maxNodeW + 1
	}
	over := vm.memoW+w > maxMemoW
	if over {
		stored = val{} // over the bound: the key exists, its value is opaque
	} else {
		vm.memoW += w
	}
	switch {
	case idx >= 0 && idx < int64(len(vm.memoS)):
		vm.memoS[idx] = stored
	case idx == int64(len(vm.memoS)) && idx < maxDenseMemo:
		if _, ok := vm.memo[idx]; ok {
			delete(vm.memo, idx)
		} else {
			vm.memoN++
		}
		vm.memoS = append(vm.memoS, stored)
	default:
		_, known := vm.memo[idx]
		switch {
		case known:
			vm.memo[idx] = stored
		case idx == vm.memoN && over:
			// MEMOIZE's index is always a new key: count it, and GET of
			// an unknown key is opaque anyway.
			vm.memoN++
		case len(vm.memo) >= maxSparseMemo || (over && idx != vm.memoN):
			// A PUT whose key could not be remembered would make len(memo),
			// and so later MEMOIZE indices, unknowable.
			return errLimits
		default:
			vm.memoN++
			vm.memo[idx] = stored
		}
	}
	return nil
}

func composite(k kind, items []val) val {
	c := &comp{}
	if len(items) <= len(c.inline) {
		c.items = c.inline[:0]
	} else {
		c.items = make([]val, 0, min(len(items), maxItems))
	}
	for _, it := range items {
		c.add(val{}, it, false)
	}
	return val{k: k, c: c}
}

// global records an imported global and classifies it.
func (vm *pickleVM) global(off int64, opcode, module, name string, trunc bool) val {
	module = normalizeModule(module)
	g := module + "." + name
	v := val{k: kGlobal, s: g}
	if trunc {
		vm.emit(Finding{Offset: off, Opcode: opcode, Global: g, Verdict: Unknown, Rule: "pickle.oversized_name",
			Message: "a global's module or name is longer than any real one; it was truncated and cannot be judged"})
		return v
	}
	verdict, rule, why := vm.cls.classify(module, name)
	if verdict == Safe {
		return v
	}
	vm.emit(Finding{Offset: off, Opcode: opcode, Global: g, Verdict: verdict, Rule: rule, Message: why})
	return v
}

func (vm *pickleVM) emit(f Finding) {
	key := f.Rule + "\x00" + f.Global
	if vm.seen[key] {
		return
	}
	vm.seen[key] = true
	f.Path = vm.path
	vm.report(f)
}

func (vm *pickleVM) strArg(v val) (string, bool) {
	switch v.k {
	case kStr, kBytes:
		return v.s, !v.trunc
	}
	return "", false
}

func (vm *pickleVM) u(n int) (uint64, error) {
	b := vm.s.buf[:n]
	if err := vm.s.full(b); err != nil {
		return 0, err
	}
	var x uint64
	for i := n - 1; i >= 0; i-- {
		x = x<<8 | uint64(b[i])
	}
	return x, nil
}

// sizedStr reads a width-byte little-endian length and then the string or
// bytes it counts: the form every BIN* string opcode shares.
func (vm *pickleVM) sizedStr(width int, k kind, off int64) error {
	n, err := vm.u(width)
	if err != nil {
		return err
	}
	return vm.str(k, n, off)
}

func (vm *pickleVM) str(k kind, n uint64, off int64) error {
	if n > pickleMaxLen {
		return vm.fail(off, "length %d out of range", n)
	}
	s, trunc, err := vm.s.prefix(int64(n), maxStr)
	if err != nil {
		return err
	}
	return vm.push(val{k: k, s: s, trunc: trunc})
}

// run executes opcodes until STOP. It returns nil at STOP.
func (vm *pickleVM) run() error {
	for {
		off := vm.s.off
		op, err := vm.s.ReadByte()
		if err != nil {
			return vm.fail(off, "truncated before STOP")
		}
		if err := vm.step(op, off); err != nil {
			if errors.Is(err, errStop) {
				return nil
			}
			var pe *pickleError
			if errors.As(err, &pe) || errors.Is(err, errLimits) {
				return err
			}
			return vm.fail(off, "opcode %#x: %v", op, err)
		}
	}
}

var errStop = errors.New("STOP")

func (vm *pickleVM) step(op byte, off int64) error {
	switch op {
	case '.': // STOP
		return errStop
	case '(': // MARK
		if len(vm.marks) >= maxMarks {
			return errLimits
		}
		vm.marks = append(vm.marks, len(vm.stack))
	case '0': // POP
		if n := len(vm.marks); n > 0 && vm.marks[n-1] == len(vm.stack) {
			vm.marks = vm.marks[:n-1] // POP of a bare MARK
			return nil
		}
		_, err := vm.pop(off)
		return err
	case '1': // POP_MARK
		_, err := vm.popMark(off)
		return err
	case '2': // DUP
		v, err := vm.top(off)
		if err != nil {
			return err
		}
		return vm.push(*v)
	case 'N':
		return vm.push(val{k: kNone})
	case 0x88, 0x89: // NEWTRUE, NEWFALSE
		return vm.push(val{k: kBool, i: int64(0x89 - int(op))})
	case 'I', 'L', 'F': // INT, LONG, FLOAT (text)
		line, _, err := vm.s.line(64)
		if err != nil {
			return err
		}
		v := val{k: kInt}
		switch {
		case op == 'F':
			v.k = kFloat
		case line == "01" || line == "00":
			v = val{k: kBool, i: int64(line[1] - '0')}
		default:
			v.i, _ = strconv.ParseInt(strings.TrimSuffix(line, "L"), 10, 64)
		}
		return vm.push(v)
	case 'J':
		x, err := vm.u(4)
		if err != nil {
			return err
		}
		return vm.push(val{k: kInt, i: int64(int32(uint32(x)))})
	case 'K':
		x, err := vm.u(1)
		if err != nil {
			return err
		}
		return vm.push(val{k: kInt, i: int64(x)})
	case 'M':
		x, err := vm.u(2)
		if err != nil {
			return err
		}
		return vm.push(val{k: kInt, i: int64(x)})
	case 0x8a, 0x8b: // LONG1, LONG4
		width := 1
		if op == 0x8b {
			width = 4
		}
		n, err := vm.u(width)
		if err != nil {
			return err
		}
		if n > pickleMaxLen {
			return vm.fail(off, "length out of range")
		}
		s, _, err := vm.s.prefix(int64(n), 9)
		if err != nil {
			return err
		}
		v := val{k: kInt}
		if n > 0 && n <= 8 {
			b := make([]byte, 8)
			copy(b, s)
			if s[len(s)-1]&0x80 != 0 {
				for i := len(s); i < 8; i++ {
					b[i] = 0xff
				}
			}
			v.i = int64(binary.LittleEndian.Uint64(b))
		}
		return vm.push(v)
	case 'G': // BINFLOAT
		if err := vm.s.skip(8); err != nil {
			return err
		}
		return vm.push(val{k: kFloat})
	case 'S': // STRING: a quoted repr
		line, trunc, err := vm.s.line(maxStr + 2)
		if err != nil {
			return err
		}
		return vm.push(val{k: kStr, s: unquotePy(line), trunc: trunc})
	case 'V': // UNICODE: raw-unicode-escape
		line, trunc, err := vm.s.line(maxStr)
		if err != nil {
			return err
		}
		return vm.push(val{k: kStr, s: unescapeRaw(line), trunc: trunc})
	case 'T', 'X': // BINSTRING, BINUNICODE
		return vm.sizedStr(4, kStr, off)
	case 'U', 0x8c: // SHORT_BINSTRING, SHORT_BINUNICODE
		return vm.sizedStr(1, kStr, off)
	case 0x8d: // BINUNICODE8
		return vm.sizedStr(8, kStr, off)
	case 'B': // BINBYTES
		return vm.sizedStr(4, kBytes, off)
	case 'C': // SHORT_BINBYTES
		return vm.sizedStr(1, kBytes, off)
	case 0x8e, 0x96: // BINBYTES8, BYTEARRAY8
		return vm.sizedStr(8, kBytes, off)
	case 0x80: // PROTO
		x, err := vm.u(1)
		if err != nil {
			return err
		}
		if x > 5 {
			return vm.fail(off, "unsupported pickle protocol %d", x)
		}
		vm.proto = int(x)
	case 0x95: // FRAME: a length hint only
		_, err := vm.u(8)
		return err
	case ')':
		return vm.push(val{k: kTuple, c: &comp{}})
	case ']':
		return vm.push(val{k: kList, c: &comp{}})
	case '}':
		return vm.push(val{k: kDict, c: &comp{}})
	case 0x8f:
		return vm.push(val{k: kSet, c: &comp{}})
	case 't', 'l', 0x91: // TUPLE, LIST, FROZENSET
		items, err := vm.popMark(off)
		if err != nil {
			return err
		}
		k := kTuple
		switch op {
		case 'l':
			k = kList
		case 0x91:
			k = kSet
		}
		return vm.push(composite(k, items))
	case 0x85, 0x86, 0x87: // TUPLE1..3
		n := int(op-0x85) + 1
		items := make([]val, n)
		for i := n - 1; i >= 0; i-- {
			v, err := vm.pop(off)
			if err != nil {
				return err
			}
			items[i] = v
		}
		return vm.push(composite(kTuple, items))
	case 'd': // DICT
		items, err := vm.popMark(off)
		if err != nil {
			return err
		}
		d := val{k: kDict, c: &comp{}}
		for i := 0; i+1 < len(items); i += 2 {
			d.c.add(items[i], items[i+1], true)
		}
		return vm.push(d)
	case 'a': // APPEND
		v, err := vm.pop(off)
		if err != nil {
			return err
		}
		return vm.addTo(off, []val{v}, false)
	case 'e', 0x90: // APPENDS, ADDITEMS
		items, err := vm.popMark(off)
		if err != nil {
			return err
		}
		return vm.addTo(off, items, false)
	case 's': // SETITEM
		v, err := vm.pop(off)
		if err != nil {
			return err
		}
		k, err := vm.pop(off)
		if err != nil {
			return err
		}
		return vm.addTo(off, []val{k, v}, true)
	case 'u': // SETITEMS
		items, err := vm.popMark(off)
		if err != nil {
			return err
		}
		return vm.addTo(off, items, true)
	case 'p': // PUT
		line, _, err := vm.s.line(32)
		if err != nil {
			return err
		}
		idx, err := strconv.ParseInt(line, 10, 64)
		if err != nil {
			return vm.fail(off, "PUT: bad index")
		}
		return vm.memoize(off, idx)
	case 'q':
		x, err := vm.u(1)
		if err != nil {
			return err
		}
		return vm.memoize(off, int64(x))
	case 'r':
		x, err := vm.u(4)
		if err != nil {
			return err
		}
		return vm.memoize(off, int64(x))
	case 0x94: // MEMOIZE
		return vm.memoize(off, vm.memoN)
	case 'g': // GET
		line, _, err := vm.s.line(32)
		if err != nil {
			return err
		}
		idx, err := strconv.ParseInt(line, 10, 64)
		if err != nil {
			return vm.fail(off, "GET: bad index")
		}
		return vm.get(idx)
	case 'h':
		x, err := vm.u(1)
		if err != nil {
			return err
		}
		return vm.get(int64(x))
	case 'j':
		x, err := vm.u(4)
		if err != nil {
			return err
		}
		return vm.get(int64(x))
	case 'c': // GLOBAL module\nname\n
		mod, t1, err := vm.s.line(maxStr)
		if err != nil {
			return err
		}
		name, t2, err := vm.s.line(maxStr)
		if err != nil {
			return err
		}
		return vm.push(vm.global(off, "GLOBAL", mod, name, t1 || t2))
	case 0x93: // STACK_GLOBAL
		nameV, err := vm.pop(off)
		if err != nil {
			return err
		}
		modV, err := vm.pop(off)
		if err != nil {
			return err
		}
		mod, ok1 := vm.strArg(modV)
		name, ok2 := vm.strArg(nameV)
		if !ok1 || !ok2 {
			vm.emit(Finding{Offset: off, Opcode: "STACK_GLOBAL", Global: mod + "." + name, Verdict: Dangerous, Rule: "pickle.unresolved_global",
				Message: "STACK_GLOBAL's module or name is not a string the scanner could follow (built at run time or dropped at a memory bound); a pickler never writes this, an attacker hiding an import does"})
			return vm.push(val{k: kGlobal})
		}
		return vm.push(vm.global(off, "STACK_GLOBAL", mod, name, false))
	case 'i': // INST module\nname\n: import and call with the marked args
		mod, t1, err := vm.s.line(maxStr)
		if err != nil {
			return err
		}
		name, t2, err := vm.s.line(maxStr)
		if err != nil {
			return err
		}
		g := vm.global(off, "INST", mod, name, t1 || t2)
		items, err := vm.popMark(off)
		if err != nil {
			return err
		}
		return vm.push(vm.object(g, composite(kTuple, items)))
	case 'o': // OBJ: the first marked item is the class
		items, err := vm.popMark(off)
		if err != nil {
			return err
		}
		if len(items) == 0 {
			return vm.fail(off, "OBJ without a class")
		}
		return vm.push(vm.object(items[0], composite(kTuple, items[1:])))
	case 'R', 0x81: // REDUCE, NEWOBJ
		args, err := vm.pop(off)
		if err != nil {
			return err
		}
		fn, err := vm.pop(off)
		if err != nil {
			return err
		}
		return vm.push(vm.object(fn, args))
	case 0x92: // NEWOBJ_EX
		if _, err := vm.pop(off); err != nil {
			return err
		}
		args, err := vm.pop(off)
		if err != nil {
			return err
		}
		cls, err := vm.pop(off)
		if err != nil {
			return err
		}
		return vm.push(vm.object(cls, args))
	case 'b': // BUILD
		state, err := vm.pop(off)
		if err != nil {
			return err
		}
		obj, err := vm.top(off)
		if err != nil {
			return err
		}
		if obj.k == kObj && obj.c.state == nil {
			obj.c.state = &state
			obj.c.w += state.weight()
			vm.stackW += state.weight()
			if vm.stackW > maxStackW {
				return errLimits
			}
		}
		if vm.afterBuild != nil {
			return vm.afterBuild(*obj)
		}
	case 'P': // PERSID
		if _, _, err := vm.s.line(maxStr); err != nil {
			return err
		}
		return vm.push(val{})
	case 'Q': // BINPERSID
		if _, err := vm.pop(off); err != nil {
			return err
		}
		return vm.push(val{})
	case 0x82, 0x83, 0x84: // EXT1, EXT2, EXT4
		if _, err := vm.u([...]int{1, 2, 4}[op-0x82]); err != nil {
			return err
		}
		vm.emit(Finding{Offset: off, Opcode: "EXT", Verdict: Unknown, Rule: "pickle.extension_code",
			Message: "an extension-registry code names a global that only the loading process's copyreg table knows"})
		return vm.push(val{k: kGlobal})
	case 0x97: // NEXT_BUFFER
		return vm.push(val{})
	case 0x98: // READONLY_BUFFER
		_, err := vm.top(off)
		return err
	default:
		return vm.fail(off, "unknown opcode %#x", op)
	}
	return nil
}

func (vm *pickleVM) get(idx int64) error {
	if idx >= 0 && idx < int64(len(vm.memoS)) {
		return vm.push(vm.memoS[idx])
	}
	v, ok := vm.memo[idx]
	if !ok {
		v = val{} // never PUT: a loader fails here; opaque
	}
	return vm.push(v)
}

func (vm *pickleVM) addTo(off int64, items []val, keyed bool) error {
	t, err := vm.top(off)
	if err != nil {
		return err
	}
	if t.c == nil {
		return nil // an opaque or object target: its contents do not matter
	}
	before := t.c.w
	for i := 0; i < len(items); i++ {
		if keyed {
			if i+1 >= len(items) {
				break
			}
			t.c.add(items[i], items[i+1], true)
			i++
		} else {
			t.c.add(val{}, items[i], false)
		}
	}
	vm.stackW += t.c.w - before
	if vm.stackW > maxStackW {
		return errLimits
	}
	return nil
}

func (vm *pickleVM) object(fn, args val) val {
	c := &comp{}
	if args.c != nil {
		for _, a := range args.c.items {
			c.add(val{}, a, false)
		}
	}
	s := ""
	if fn.k == kGlobal {
		s = fn.s
	}
	return val{k: kObj, s: s, c: c}
}

// normalizeModule applies the renames pickle's fix_imports applies to
// protocol 0-2 pickles written by Python 2, so that __builtin__.eval is
// judged as builtins.eval.
func normalizeModule(m string) string {
	switch m {
	case "__builtin__", "exceptions":
		return "builtins"
	case "copy_reg":
		return "copyreg"
	case "cPickle":
		return "pickle"
	}
	return m
}

// unquotePy decodes the repr that protocol 0's STRING opcode carries.
func unquotePy(s string) string {
	if len(s) >= 2 && (s[0] == '\'' || s[0] == '"') && s[len(s)-1] == s[0] {
		s = s[1 : len(s)-1]
	}
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c != '\\' || i+1 >= len(s) {
			b.WriteByte(c)
			continue
		}
		i++
		switch s[i] {
		case 'n':
			b.WriteByte('\n')
		case 't':
			b.WriteByte('\t')
		case 'r':
			b.WriteByte('\r')
		case 'x':
			if i+2 < len(s) {
				if x, err := strconv.ParseUint(s[i+1:i+3], 16, 8); err == nil {
					b.WriteByte(byte(x))
					i += 2
					continue
				}
			}
			b.WriteString(`\x`)
		default:
			if s[i] >= '0' && s[i] <= '7' {
				j := i
				for j < len(s) && j < i+3 && s[j] >= '0' && s[j] <= '7' {
					j++
				}
				x, _ := strconv.ParseUint(s[i:j], 8, 16)
				b.WriteByte(byte(x))
				i = j - 1
				continue
			}
			b.WriteByte(s[i])
		}
	}
	return b.String()
}

// unescapeRaw decodes raw-unicode-escape (\uXXXX, \UXXXXXXXX), used by
// protocol 0's UNICODE opcode.
func unescapeRaw(s string) string {
	if !strings.Contains(s, `\u`) && !strings.Contains(s, `\U`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+1 < len(s) && (s[i+1] == 'u' || s[i+1] == 'U') {
			n := 4
			if s[i+1] == 'U' {
				n = 8
			}
			if i+2+n <= len(s) {
				if x, err := strconv.ParseUint(s[i+2:i+2+n], 16, 32); err == nil && x <= math.MaxInt32 {
					b.WriteRune(rune(x))
					i += 1 + n
					continue
				}
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

func mul64(a, b uint64) (uint64, uint64) { return bits.Mul64(a, b) }
