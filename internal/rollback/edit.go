package rollback

import (
	"bytes"
	"fmt"
	"strconv"
	"unicode/utf8"

	"github.com/modelsync/modelsync/internal/manifest"
)

// VersionField is the path of an environment's version in a model manifest,
// as the manifest decoder records it in Positions.
func VersionField(env string) string { return "spec.environments." + env + ".version" }

// NotEditableError means the version scalar is written in a form a minimal
// textual edit cannot safely replace (an alias, a tag, a quoted or
// non-decimal number). The user has to make the change by hand.
type NotEditableError struct {
	File, Field string
	Line        int
	Found       string
}

func (e *NotEditableError) Error() string {
	return fmt.Sprintf("%s:%d: %s is written as %q, which rollback does not rewrite in place; write a plain number there by hand",
		e.File, e.Line, e.Field, e.Found)
}

// SetVersion returns data with the scalar of spec.environments.<env>.version
// replaced by version and every other byte unchanged, so comments, quoting,
// indentation and key order survive. pos must be the positions the manifest
// decoder recorded for data. Only a plain decimal integer is replaced;
// anything else yields *NotEditableError rather than a guess.
func SetVersion(file string, data []byte, pos manifest.Positions, env string, version int) ([]byte, error) {
	if version < 1 {
		return nil, fmt.Errorf("%s: version %d for environment %s: versions start at 1", file, version, env)
	}
	field := VersionField(env)
	p, ok := pos.Get(field)
	if !ok || p.Line < 1 || p.Column < 1 {
		return nil, fmt.Errorf("%s: %s is not set; the model does not run in environment %s", file, field, env)
	}
	start, err := offset(data, p)
	if err != nil {
		return nil, fmt.Errorf("%s: %s: %w", file, field, err)
	}
	end := start
	for end < len(data) && data[end] >= '0' && data[end] <= '9' {
		end++
	}
	// The token must end where YAML ends a plain scalar in block or flow
	// context; "3abc" or "3.0" is not the integer the decoder saw.
	terminated := end == len(data) || bytes.IndexByte([]byte(" \t\r\n,}]#"), data[end]) >= 0
	if end == start || !terminated || (end-start > 1 && data[start] == '0') {
		lineEnd := bytes.IndexByte(data[start:], '\n')
		if lineEnd < 0 {
			lineEnd = len(data) - start
		}
		return nil, &NotEditableError{File: file, Field: field, Line: p.Line, Found: string(bytes.TrimSpace(data[start : start+lineEnd]))}
	}
	out := make([]byte, 0, len(data)+4)
	out = append(out, data[:start]...)
	out = strconv.AppendInt(out, int64(version), 10)
	out = append(out, data[end:]...)
	return out, nil
}

// offset converts a 1-based line and column, counted in characters as the
// YAML parser counts them, into a byte offset into data.
func offset(data []byte, p manifest.Pos) (int, error) {
	i := 0
	for line := 1; line < p.Line; line++ {
		nl := bytes.IndexByte(data[i:], '\n')
		if nl < 0 {
			return 0, fmt.Errorf("line %d is past the end of the file", p.Line)
		}
		i += nl + 1
	}
	for col := 1; col < p.Column; col++ {
		if i >= len(data) || data[i] == '\n' {
			return 0, fmt.Errorf("column %d is past the end of line %d", p.Column, p.Line)
		}
		_, size := utf8.DecodeRune(data[i:])
		i += size
	}
	return i, nil
}
