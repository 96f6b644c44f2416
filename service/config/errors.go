package config

import (
	"cmp"
	"slices"
	"strconv"
	"strings"
)

// Error is one problem found in a configuration: where it is and what is
// wrong. Its Error() string is "file:line: key: msg", for example
//
//	/etc/gnomon/gnomon.toml:14: source[1].mode: unknown mode "sever" (want server, pool, nts, ptp or csptp)
//
// Parts that are not known are left out: Line is 0 when the key is not in the
// file (a setting from Default or one set by code), Column is only known for
// TOML syntax errors, and Key is empty for syntax errors and file-level
// problems.
type Error struct {
	File   string // file name given to Parse or Load; "" when unknown
	Line   int    // 1-based line, 0 when unknown
	Column int    // 1-based column, 0 when unknown
	Key    string // key path like "source[2].poll-interval-limits.min"; array indices are 0-based
	Msg    string
	Err    error // underlying error (I/O, syntax), if any; see Unwrap
}

func (e *Error) Error() string {
	return location(e.File, e.Line, e.Column) + keyPrefix(e.Key) + e.Msg
}

// Unwrap returns the underlying error, so errors.Is(err, fs.ErrNotExist)
// works on what Load returns.
func (e *Error) Unwrap() error { return e.Err }

// Errors is every problem found in a configuration, in file order. Parse and
// Load return it (never an empty one) instead of stopping at the first.
type Errors []*Error

func (es Errors) Error() string {
	var b strings.Builder
	for i, e := range es {
		if i > 0 {
			b.WriteByte('\n')
		}
		b.WriteString(e.Error())
	}
	return b.String()
}

// Unwrap lets errors.As and errors.Is look at each *Error.
func (es Errors) Unwrap() []error {
	out := make([]error, len(es))
	for i, e := range es {
		out[i] = e
	}
	return out
}

// Warning is a risky but legal setting reported by Check. Its String() is
// "file:line: key: msg", like Error.
type Warning struct {
	File string
	Line int
	Key  string
	Msg  string
}

func (w Warning) String() string {
	return location(w.File, w.Line, 0) + keyPrefix(w.Key) + w.Msg
}

func location(file string, line, col int) string {
	var b strings.Builder
	switch {
	case file != "" && line > 0:
		b.WriteString(file)
		b.WriteByte(':')
		b.WriteString(strconv.Itoa(line))
	case file != "":
		b.WriteString(file)
	case line > 0:
		b.WriteString("line ")
		b.WriteString(strconv.Itoa(line))
	default:
		return ""
	}
	if line > 0 && col > 0 {
		b.WriteByte(':')
		b.WriteString(strconv.Itoa(col))
	}
	b.WriteString(": ")
	return b.String()
}

func keyPrefix(key string) string {
	if key == "" {
		return ""
	}
	return key + ": "
}

// sortErrors orders errors by line, keeping the order in which they were
// found for errors on the same line. Errors without a line come first: they
// are about the file as a whole.
func sortErrors(es Errors) {
	slices.SortStableFunc(es, func(a, b *Error) int { return cmp.Compare(a.Line, b.Line) })
}
