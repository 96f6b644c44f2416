package config

import (
	"bytes"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"
)

// BurntSushi/toml v1.6.0 records the position of every key while parsing,
// but keeps it private: MetaData.Keys gives the keys in file order without
// positions, and positions only come out inside a toml.ParseError. So once
// the library has accepted a document, keyLines walks the document's
// table and key structure itself and notes the line of every key path, in
// the same path spelling the decoder uses ("source[1].poll-interval-limits.min").
//
// The scanner also runs before the TOML library, as the guard of every
// parse (gnomond, check-config, gnomonctl validate, reload): it must not
// panic or loop on anything, every step moves forward, and its work is
// bounded. A key path is as long as the keys above it, so a document nested
// N deep holds N paths of up to N parts: 400 000 nested arrays in an 800 KB
// file once took 24 GB here, and the TOML library itself copies its key
// context at every level of nested inline tables. So nesting (dotted key
// parts, table header parts, arrays and inline tables together) stops at
// MaxNesting levels, and the key paths recorded at maxPathBytes bytes.

// MaxNesting is the deepest a key may sit in a configuration: table header
// parts, dotted key parts, arrays and inline tables counted together. The
// deepest key gnomon reads (server[0].allowlist.filter[0]) is 4 levels.
const MaxNesting = 32

// maxPathBytes bounds the bytes of key paths the scanner builds (about 30
// times the largest file allowed); a document that needs more is refused.
const maxPathBytes = 32 << 20

// scanLimitError is where and why the scanner gave up.
type scanLimitError struct {
	line int
	msg  string
}

// keyLines maps each key path in data to the 1-based line it is on. An
// element of an array of tables maps to the line of its [[header]] (or of
// its inline table), an element of an array value to the line it starts on.
// A document past the scanner's limits gives the lines found until then.
func keyLines(data []byte) map[string]int {
	lines, _ := scanKeys(data)
	return lines
}

// scanKeys is keyLines that also says whether the document went past
// MaxNesting or maxPathBytes (then the map is incomplete).
func scanKeys(data []byte) (map[string]int, *scanLimitError) {
	s := &lineScanner{
		src:    data,
		lines:  make(map[string]int),
		arrays: make(map[string]int),
		budget: maxPathBytes,
	}
	for i, b := range data {
		if b == '\n' {
			s.newlines = append(s.newlines, i)
		}
	}
	if bytes.HasPrefix(data, []byte("\xef\xbb\xbf")) {
		s.pos = 3
	}
	s.run()
	return s.lines, s.fail
}

type lineScanner struct {
	src      []byte
	pos      int
	newlines []int          // offsets of '\n', ascending
	lines    map[string]int // key path → line
	arrays   map[string]int // array-of-tables path → elements seen so far
	table    string         // path of the table that key/value pairs go into
	tdepth   int            // nesting of table
	budget   int            // path bytes still allowed
	fail     *scanLimitError
}

// stop ends the scan: the document is past a limit at byte offset pos.
func (s *lineScanner) stop(pos int, format string, args ...any) {
	if s.fail == nil {
		s.fail = &scanLimitError{line: s.lineAt(pos), msg: fmt.Sprintf(format, args...)}
	}
	s.pos = len(s.src)
}

// deep reports (and stops the scan) when depth is past MaxNesting.
func (s *lineScanner) deep(depth, pos int) bool {
	if depth > MaxNesting {
		s.stop(pos, "nested more than %d levels deep (tables, dotted keys, arrays and inline tables together)", MaxNesting)
		return true
	}
	return false
}

// charge takes n bytes of key paths from the budget; false (and the scan
// stopped) when it is spent.
func (s *lineScanner) charge(n int) bool {
	s.budget -= n
	if s.budget < 0 {
		s.stop(s.pos, "too complex: its key paths would take more than %d MiB (very long keys, or very many of them)", maxPathBytes>>20)
		return false
	}
	return true
}

// join is joinKey charged to the budget ("" when it is spent).
func (s *lineScanner) join(parent, key string) string {
	if !s.charge(len(parent) + len(key) + 3) {
		return ""
	}
	return joinKey(parent, key)
}

// index is indexKey charged to the budget.
func (s *lineScanner) index(parent string, i int) string {
	if !s.charge(len(parent) + 12) {
		return ""
	}
	return indexKey(parent, i)
}

// lineAt is the 1-based line of byte offset pos.
func (s *lineScanner) lineAt(pos int) int {
	n, _ := slices.BinarySearch(s.newlines, pos)
	return n + 1
}

func (s *lineScanner) eof() bool { return s.pos >= len(s.src) }

func (s *lineScanner) at(prefix string) bool {
	return bytes.HasPrefix(s.src[s.pos:], []byte(prefix))
}

func (s *lineScanner) setIfAbsent(path string, line int) {
	if _, ok := s.lines[path]; !ok {
		s.lines[path] = line
	}
}

func (s *lineScanner) run() {
	for s.fail == nil {
		s.skipBlank()
		if s.eof() {
			return
		}
		start := s.pos
		switch {
		case s.at("[["):
			line := s.lineAt(s.pos)
			s.pos += 2
			parts := s.keyParts()
			s.arrayHeader(parts, line)
		case s.src[s.pos] == '[':
			line := s.lineAt(s.pos)
			s.pos++
			parts := s.keyParts()
			s.tableHeader(parts, line)
		default:
			s.keyValue(s.table, s.tdepth)
		}
		s.skipLineRest()
		if s.pos == start {
			s.pos++
		}
	}
}

// resolve turns header key parts into a path, entering the latest element
// of every array of tables on the way: with [[a]] seen twice, [a.b] is
// "a[1].b".
func (s *lineScanner) resolve(parts []string, line int) string {
	p := ""
	s.tdepth = 0
	for _, part := range parts {
		s.tdepth++
		p = s.join(p, part)
		if n := s.arrays[p]; n > 0 {
			s.tdepth++
			p = s.index(p, n-1)
		} else {
			s.setIfAbsent(p, line)
		}
	}
	return p
}

func (s *lineScanner) arrayHeader(parts []string, line int) {
	if len(parts) == 0 || s.deep(2*len(parts), s.pos) {
		return
	}
	p := s.join(s.resolve(parts[:len(parts)-1], line), parts[len(parts)-1])
	n := s.arrays[p]
	s.arrays[p] = n + 1
	s.setIfAbsent(p, line)
	s.table = s.index(p, n)
	s.tdepth += 2
	if s.deep(s.tdepth, s.pos) || s.fail != nil {
		return
	}
	s.lines[s.table] = line
}

func (s *lineScanner) tableHeader(parts []string, line int) {
	if len(parts) == 0 || s.deep(2*len(parts), s.pos) {
		return
	}
	s.table = s.resolve(parts, line)
	if s.deep(s.tdepth, s.pos) || s.fail != nil {
		return
	}
	s.lines[s.table] = line
}

// keyValue reads `key = value` at the current position, inside table base
// (depth levels deep).
func (s *lineScanner) keyValue(base string, depth int) {
	line := s.lineAt(s.pos)
	start := s.pos
	parts := s.keyParts()
	if len(parts) == 0 || s.deep(depth+len(parts), start) {
		return
	}
	s.skipSpaces()
	if s.eof() || s.src[s.pos] != '=' {
		return
	}
	s.pos++
	p := base
	for _, part := range parts {
		p = s.join(p, part)
		if s.fail != nil {
			return
		}
		s.setIfAbsent(p, line)
	}
	s.lines[p] = line
	s.skipSpaces()
	s.value(p, depth+len(parts))
}

// value skips the value of the key at path, depth levels deep, noting the
// lines of what is inside arrays and inline tables.
func (s *lineScanner) value(path string, depth int) {
	if s.eof() || s.fail != nil {
		return
	}
	switch c := s.src[s.pos]; {
	case s.at(`"""`):
		s.multiLineString('"')
	case s.at(`'''`):
		s.multiLineString('\'')
	case c == '"':
		s.basicString()
	case c == '\'':
		s.literalString()
	case c == '[':
		if s.deep(depth+1, s.pos) {
			return
		}
		s.pos++
		for i := 0; s.fail == nil; {
			s.skipBlank()
			if s.eof() {
				return
			}
			switch s.src[s.pos] {
			case ']':
				s.pos++
				return
			case ',':
				s.pos++
				continue
			}
			elem := s.index(path, i)
			if s.fail != nil {
				return
			}
			s.lines[elem] = s.lineAt(s.pos)
			before := s.pos
			s.value(elem, depth+1)
			if s.pos == before {
				s.pos++
			}
			i++
		}
	case c == '{':
		if s.deep(depth+1, s.pos) {
			return
		}
		s.pos++
		for s.fail == nil {
			s.skipBlank()
			if s.eof() {
				return
			}
			switch s.src[s.pos] {
			case '}':
				s.pos++
				return
			case ',':
				s.pos++
				continue
			}
			before := s.pos
			s.keyValue(path, depth+1)
			if s.pos == before {
				s.pos++
			}
		}
	default: // number, boolean, date-time: up to a delimiter
		for !s.eof() && !strings.ContainsRune(",]}#\r\n", rune(s.src[s.pos])) {
			s.pos++
		}
	}
}

// keyParts reads a dotted key (bare, "basic" or 'literal' parts).
func (s *lineScanner) keyParts() []string {
	var parts []string
	for {
		s.skipSpaces()
		if s.eof() {
			return parts
		}
		switch s.src[s.pos] {
		case '"':
			start := s.pos + 1
			s.basicString()
			end := max(start, s.pos-1)
			parts = append(parts, unescapeBasic(string(s.src[start:end])))
		case '\'':
			start := s.pos + 1
			s.literalString()
			end := max(start, s.pos-1)
			parts = append(parts, string(s.src[start:end]))
		default:
			start := s.pos
			for !s.eof() && isBareKeyByte(s.src[s.pos]) {
				s.pos++
			}
			if s.pos == start {
				return parts
			}
			parts = append(parts, string(s.src[start:s.pos]))
		}
		s.skipSpaces()
		if s.eof() || s.src[s.pos] != '.' || len(parts) > MaxNesting {
			// Past MaxNesting parts the key is refused anyway (deep).
			return parts
		}
		s.pos++
	}
}

// basicString skips "..." starting at the opening quote.
func (s *lineScanner) basicString() {
	s.pos++
	for !s.eof() {
		switch s.src[s.pos] {
		case '\\':
			s.pos += 2
		case '"':
			s.pos++
			return
		case '\n':
			return
		default:
			s.pos++
		}
	}
	s.pos = min(s.pos, len(s.src))
}

// literalString skips '...' starting at the opening quote.
func (s *lineScanner) literalString() {
	s.pos++
	for !s.eof() {
		switch s.src[s.pos] {
		case '\'':
			s.pos++
			return
		case '\n':
			return
		default:
			s.pos++
		}
	}
}

// multiLineString skips a multi-line string, basic or literal (q is its
// quote character), starting at the opening quotes. Up to two more quote
// characters right after the closing three belong to the string.
func (s *lineScanner) multiLineString(q byte) {
	s.pos += 3
	closing := strings.Repeat(string(q), 3)
	for !s.eof() {
		if q == '"' && s.src[s.pos] == '\\' {
			s.pos += 2
			continue
		}
		if s.at(closing) {
			s.pos += 3
			for extra := 0; extra < 2 && !s.eof() && s.src[s.pos] == q; extra++ {
				s.pos++
			}
			return
		}
		s.pos++
	}
	s.pos = min(s.pos, len(s.src))
}

func (s *lineScanner) skipSpaces() {
	for !s.eof() && (s.src[s.pos] == ' ' || s.src[s.pos] == '\t') {
		s.pos++
	}
}

// skipBlank skips white space, newlines and comments.
func (s *lineScanner) skipBlank() {
	for !s.eof() {
		switch s.src[s.pos] {
		case ' ', '\t', '\r', '\n':
			s.pos++
		case '#':
			s.skipComment()
		default:
			return
		}
	}
}

func (s *lineScanner) skipComment() {
	for !s.eof() && s.src[s.pos] != '\n' {
		s.pos++
	}
}

// skipLineRest skips what may follow a header or key/value on its line:
// the closing brackets of a header, spaces and a comment.
func (s *lineScanner) skipLineRest() {
	for !s.eof() {
		switch s.src[s.pos] {
		case ' ', '\t', '\r', ']':
			s.pos++
		case '#':
			s.skipComment()
			return
		default:
			return
		}
	}
}

func isBareKeyByte(b byte) bool {
	return b >= 'A' && b <= 'Z' || b >= 'a' && b <= 'z' || b >= '0' && b <= '9' || b == '_' || b == '-'
}

// unescapeBasic decodes the escapes of a TOML basic string (TOML 1.1 adds
// \e and \xHH). Anything it does not understand is kept as written: the
// document was accepted by the TOML parser, so that does not happen.
func unescapeBasic(raw string) string {
	if !strings.Contains(raw, `\`) {
		return raw
	}
	var b strings.Builder
	for i := 0; i < len(raw); i++ {
		c := raw[i]
		if c != '\\' || i+1 >= len(raw) {
			b.WriteByte(c)
			continue
		}
		i++
		switch raw[i] {
		case 'b':
			b.WriteByte('\b')
		case 't':
			b.WriteByte('\t')
		case 'n':
			b.WriteByte('\n')
		case 'f':
			b.WriteByte('\f')
		case 'r':
			b.WriteByte('\r')
		case 'e':
			b.WriteByte(0x1b)
		case '"':
			b.WriteByte('"')
		case '\\':
			b.WriteByte('\\')
		case 'x', 'u', 'U':
			n := map[byte]int{'x': 2, 'u': 4, 'U': 8}[raw[i]]
			if i+n < len(raw) {
				if v, err := strconv.ParseUint(raw[i+1:i+1+n], 16, 32); err == nil && utf8.ValidRune(rune(v)) {
					b.WriteRune(rune(v))
					i += n
					continue
				}
			}
			b.WriteByte('\\')
			b.WriteByte(raw[i])
		default:
			b.WriteByte('\\')
			b.WriteByte(raw[i])
		}
	}
	return b.String()
}

// Key paths: parts joined by ".", quoted when not bare, array indices as
// "[i]". The decoder and keyLines both build paths with these.

func joinKey(parent, key string) string {
	if parent == "" {
		return quoteKey(key)
	}
	return parent + "." + quoteKey(key)
}

func indexKey(parent string, i int) string {
	return parent + "[" + strconv.Itoa(i) + "]"
}

func quoteKey(k string) string {
	if k == "" {
		return `""`
	}
	for i := 0; i < len(k); i++ {
		if !isBareKeyByte(k[i]) {
			return strconv.Quote(k)
		}
	}
	return k
}

// parentKey strips the last part of a path: "a.b[2]" → "a.b" → "a" → "".
func parentKey(path string) string {
	last, quoted := -1, false
	for i := 0; i < len(path); i++ {
		switch c := path[i]; {
		case quoted && c == '\\':
			i++
		case c == '"':
			quoted = !quoted
		case !quoted && (c == '.' || c == '['):
			last = i
		}
	}
	if last < 0 {
		return ""
	}
	return path[:last]
}

// lineOf is the line of path, or of its nearest ancestor in the file (a
// missing key is reported on its table's line); 0 if none is.
func lineOf(lines map[string]int, path string) int {
	for path != "" {
		if l, ok := lines[path]; ok {
			return l
		}
		path = parentKey(path)
	}
	return 0
}
