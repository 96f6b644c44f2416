package config

import (
	"bytes"
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
// keyLines only ever sees documents the TOML parser accepted, but it must not
// panic or loop on anything: every step moves forward.

// keyLines maps each key path in data to the 1-based line it is on. An
// element of an array of tables maps to the line of its [[header]] (or of
// its inline table), an element of an array value to the line it starts on.
func keyLines(data []byte) map[string]int {
	s := &lineScanner{
		src:    data,
		lines:  make(map[string]int),
		arrays: make(map[string]int),
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
	return s.lines
}

type lineScanner struct {
	src      []byte
	pos      int
	newlines []int          // offsets of '\n', ascending
	lines    map[string]int // key path → line
	arrays   map[string]int // array-of-tables path → elements seen so far
	table    string         // path of the table that key/value pairs go into
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
	for {
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
			s.keyValue(s.table)
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
	for _, part := range parts {
		p = joinKey(p, part)
		if n := s.arrays[p]; n > 0 {
			p = indexKey(p, n-1)
		} else {
			s.setIfAbsent(p, line)
		}
	}
	return p
}

func (s *lineScanner) arrayHeader(parts []string, line int) {
	if len(parts) == 0 {
		return
	}
	p := joinKey(s.resolve(parts[:len(parts)-1], line), parts[len(parts)-1])
	n := s.arrays[p]
	s.arrays[p] = n + 1
	s.setIfAbsent(p, line)
	s.table = indexKey(p, n)
	s.lines[s.table] = line
}

func (s *lineScanner) tableHeader(parts []string, line int) {
	if len(parts) == 0 {
		return
	}
	s.table = s.resolve(parts, line)
	s.lines[s.table] = line
}

// keyValue reads `key = value` at the current position, inside table base.
func (s *lineScanner) keyValue(base string) {
	line := s.lineAt(s.pos)
	parts := s.keyParts()
	if len(parts) == 0 {
		return
	}
	s.skipSpaces()
	if s.eof() || s.src[s.pos] != '=' {
		return
	}
	s.pos++
	p := base
	for _, part := range parts {
		p = joinKey(p, part)
		s.setIfAbsent(p, line)
	}
	s.lines[p] = line
	s.skipSpaces()
	s.value(p)
}

func (s *lineScanner) value(path string) {
	if s.eof() {
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
		s.pos++
		for i := 0; ; {
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
			elem := indexKey(path, i)
			s.lines[elem] = s.lineAt(s.pos)
			before := s.pos
			s.value(elem)
			if s.pos == before {
				s.pos++
			}
			i++
		}
	case c == '{':
		s.pos++
		for {
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
			s.keyValue(path)
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
		if s.eof() || s.src[s.pos] != '.' {
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
