// Package migrate turns other time daemons' configurations into gnomon.toml.
//
// Chrony reads a chrony.conf the way chronyd does (comment lines, directives
// in any case, include, confdir and sourcedir), and writes the equivalent
// gnomon.toml, with one Warning for every directive or option that cannot be
// carried over exactly, saying why. Its output always passes config.Parse:
// anything the migrator cannot express is left out (and warned about), never
// written half-right.
package migrate

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"unicode/utf8"
)

// Limits on what is read. A chrony.conf is a few kilobytes; these only stop
// a wrong file (a disk image, a log) from being read whole.
const (
	// MaxFileSize is the largest file read (1 MiB).
	MaxFileSize = 1 << 20
	// MaxTotalSize bounds all files read, includes counted each time.
	MaxTotalSize = 4 << 20
	// MaxIncludeDepth is how deeply include and confdir may nest (chronyd's own limit is 10).
	MaxIncludeDepth = 10
	// maxLine is chronyd's longest line; longer ones it refuses.
	maxLine = 2048
)

// Error is a problem that stops the migration: a file that cannot be read,
// is not text, is too large, or includes itself.
type Error struct {
	File string // the file the problem is in (or that included it)
	Line int    // 0 when the problem is the file as a whole
	Msg  string
	Err  error // underlying error, if any
}

func (e *Error) Error() string {
	if e.Line > 0 {
		return fmt.Sprintf("%s:%d: %s", e.File, e.Line, e.Msg)
	}
	if e.File != "" {
		return e.File + ": " + e.Msg
	}
	return e.Msg
}

func (e *Error) Unwrap() error { return e.Err }

// Warning is a directive (or an option of one) that could not be carried
// over exactly. Its String is "file:line: directive: why".
type Warning struct {
	File      string
	Line      int
	Directive string // the directive's name, like "maxupdateskew", or "server iburst"
	Msg       string
}

func (w Warning) String() string {
	loc := w.File
	if w.Line > 0 {
		loc = fmt.Sprintf("%s:%d", w.File, w.Line)
	}
	if w.Directive == "" {
		return loc + ": " + w.Msg
	}
	return loc + ": " + w.Directive + ": " + w.Msg
}

// Options says where files come from.
type Options struct {
	// FS is the file system the configuration is read from, rooted at "/":
	// the absolute path /etc/chrony/chrony.conf is "etc/chrony/chrony.conf"
	// in it. Nil means the machine's own (os.DirFS("/")), with relative
	// paths taken from the working directory.
	FS fs.FS
}

// line is one directive, split into words.
type line struct {
	file  string // absolute path, as shown in messages
	num   int
	words []string // words[0] is the directive, lower-cased
	text  string   // the whole line, normalized (single spaces)
	seq   int      // position among all directives read
	// sources: the line came from a sourcedir file, where only sources are allowed.
	sources bool
}

func (l *line) name() string { return l.words[0] }
func (l *line) args() []string {
	return l.words[1:]
}

// frame is a file being read, for cycle detection.
type frame struct {
	name string
	fi   fs.FileInfo
}

type reader struct {
	fsys     fs.FS
	real     bool // fsys is the machine's own: symlinks are resolved for cycle checks
	stack    []frame
	total    int64
	files    []string
	lines    []line
	warnings []Warning
}

func (r *reader) warn(file string, num int, directive, format string, args ...any) {
	r.warnings = append(r.warnings, Warning{File: file, Line: num, Directive: directive, Msg: fmt.Sprintf(format, args...)})
}

// fsPath turns an absolute path into fsys's form.
func fsPath(p string) string {
	p = path.Clean("/" + p)
	if p == "/" {
		return "."
	}
	return p[1:]
}

// absolute makes p absolute: relative paths are taken as chronyd would take
// them, from its working directory, which is "/".
func absolute(p string) string {
	if path.IsAbs(p) {
		return path.Clean(p)
	}
	return path.Clean("/" + p)
}

// readFile reads one file (the top-level one, or one that from, at fromLine,
// includes) and every file it includes, appending their directives.
func (r *reader) readFile(name string, from string, fromLine int, sources bool) error {
	fail := func(msg string, err error) error {
		if from == "" {
			return &Error{File: name, Msg: msg, Err: err}
		}
		return &Error{File: from, Line: fromLine, Msg: name + ": " + msg, Err: err}
	}
	if len(r.stack) >= MaxIncludeDepth {
		return fail(fmt.Sprintf("includes nest more than %d deep: %s", MaxIncludeDepth, r.chain(name)), nil)
	}
	p := fsPath(name)
	fi, err := fs.Stat(r.fsys, p)
	if err != nil {
		return fail(describe(err), err)
	}
	if !fi.Mode().IsRegular() {
		return fail("not a regular file", nil)
	}
	for _, f := range r.stack {
		if f.name == name || r.real && os.SameFile(f.fi, fi) {
			return fail("include cycle: "+r.chain(name), nil)
		}
	}
	if fi.Size() > MaxFileSize {
		return fail(fmt.Sprintf("too large for a chrony.conf (%d bytes; the limit is %d)", fi.Size(), MaxFileSize), nil)
	}
	f, err := r.fsys.Open(p)
	if err != nil {
		return fail(describe(err), err)
	}
	data, err := io.ReadAll(io.LimitReader(f, MaxFileSize+1))
	f.Close()
	if err != nil {
		return fail(describe(err), err)
	}
	if len(data) > MaxFileSize {
		return fail(fmt.Sprintf("too large for a chrony.conf (more than %d bytes)", MaxFileSize), nil)
	}
	if r.total += int64(len(data)); r.total > MaxTotalSize {
		return fail(fmt.Sprintf("the configuration and its includes exceed %d bytes", MaxTotalSize), nil)
	}
	if i := bytes.IndexByte(data, 0); i >= 0 {
		return fail(fmt.Sprintf("a binary file, not a chrony.conf (NUL byte at offset %d)", i), nil)
	}
	r.files = append(r.files, name)
	r.stack = append(r.stack, frame{name, fi})
	defer func() { r.stack = r.stack[:len(r.stack)-1] }()
	return r.parse(name, data, sources)
}

func (r *reader) chain(next string) string {
	var b strings.Builder
	for _, f := range r.stack {
		b.WriteString(f.name)
		b.WriteString(" → ")
	}
	b.WriteString(next)
	return b.String()
}

func describe(err error) string {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Err.Error()
	}
	return err.Error()
}

// parse splits data into directives the way chronyd does: lines whose first
// non-blank character is one of "!;#%" are comments; words are separated by
// white space; directive names are not case-sensitive.
func (r *reader) parse(name string, data []byte, sources bool) error {
	num := 0
	for len(data) > 0 {
		num++
		var raw []byte
		if i := bytes.IndexByte(data, '\n'); i >= 0 {
			raw, data = data[:i], data[i+1:]
		} else {
			raw, data = data, nil
		}
		text := strings.Join(strings.Fields(string(raw)), " ")
		if text == "" || strings.ContainsRune("!;#%", rune(text[0])) {
			continue
		}
		if len(raw) > maxLine {
			r.warn(name, num, "", "line longer than %d characters: chronyd refuses it; skipped", maxLine)
			continue
		}
		if !utf8.ValidString(text) {
			r.warn(name, num, "", "not valid UTF-8: skipped")
			continue
		}
		words := strings.Fields(text)
		words[0] = strings.ToLower(words[0])
		l := line{file: name, num: num, words: words, text: text, sources: sources}
		if sources && !slices.Contains([]string{"server", "pool", "peer"}, words[0]) {
			r.warn(name, num, words[0], "only server, pool and peer are allowed in a sourcedir file (chronyd ignores it); skipped")
			continue
		}
		switch words[0] {
		case "include":
			if err := r.include(&l); err != nil {
				return err
			}
		case "confdir":
			if err := r.dirs(&l, ".conf", false); err != nil {
				return err
			}
		case "sourcedir":
			if err := r.dirs(&l, ".sources", true); err != nil {
				return err
			}
		default:
			l.seq = len(r.lines)
			r.lines = append(r.lines, l)
		}
	}
	return nil
}

// include reads every file matching the pattern, in sorted order.
func (r *reader) include(l *line) error {
	if len(l.args()) != 1 {
		r.warn(l.file, l.num, "include", "want one file name or pattern; skipped")
		return nil
	}
	pattern := l.args()[0]
	if !path.IsAbs(pattern) {
		r.warn(l.file, l.num, "include", "%q is a relative path; read from / (chronyd's working directory)", pattern)
	}
	pattern = absolute(pattern)
	matches, err := fs.Glob(r.fsys, fsPath(pattern))
	if err != nil {
		r.warn(l.file, l.num, "include", "bad pattern %q: %v; skipped", pattern, err)
		return nil
	}
	if len(matches) == 0 {
		r.warn(l.file, l.num, "include", "%s matches no file (chronyd would refuse to start); skipped", pattern)
		return nil
	}
	slices.Sort(matches)
	for _, m := range matches {
		if err := r.readFile("/"+m, l.file, l.num, false); err != nil {
			return err
		}
	}
	return nil
}

// dirs reads confdir (suffix .conf) or sourcedir (.sources) directories:
// the files of all of them in the order of their names, a name found in two
// directories taken from the first.
func (r *reader) dirs(l *line, suffix string, sources bool) error {
	dirs := l.args()
	if len(dirs) == 0 || len(dirs) > 10 {
		r.warn(l.file, l.num, l.name(), "want 1 to 10 directories; skipped")
		return nil
	}
	byName := map[string]string{}
	for _, d := range dirs {
		d = absolute(d)
		ents, err := fs.ReadDir(r.fsys, fsPath(d))
		if err != nil {
			if !errors.Is(err, fs.ErrNotExist) {
				r.warn(l.file, l.num, l.name(), "%s: %s; skipped", d, describe(err))
			}
			continue // a missing directory is normal (/run/chrony-dhcp)
		}
		for _, e := range ents {
			n := e.Name()
			if !strings.HasSuffix(n, suffix) || len(n) == len(suffix) || e.IsDir() {
				continue
			}
			if _, seen := byName[n]; !seen {
				byName[n] = path.Join(d, n)
			}
		}
	}
	names := make([]string, 0, len(byName))
	for n := range byName {
		names = append(names, n)
	}
	slices.Sort(names)
	for _, n := range names {
		if err := r.readFile(byName[n], l.file, l.num, sources); err != nil {
			return err
		}
	}
	kind := "files"
	if sources {
		kind = "sources files"
	}
	why := "gnomond reads one file: " + kind + " added to " + strings.Join(dirs, ", ") + " later are not read"
	dhcp := false
	for _, d := range dirs {
		dhcp = dhcp || strings.HasPrefix(absolute(d), "/run/") || strings.HasPrefix(absolute(d), "/var/run/")
	}
	if sources && dhcp {
		why += "; for servers from DHCP, let the network manager hand them to gnomond over timesync1 (SetRuntimeNTPServers), as it does for systemd-timesyncd"
	}
	if len(names) == 0 {
		r.warn(l.file, l.num, l.name(), "no %s there now; %s", kind, why)
	} else {
		r.warn(l.file, l.num, l.name(), "the %d %s there now are migrated; %s", len(names), kind, why)
	}
	return nil
}

// read reads the configuration at name (an absolute path in opts.FS).
func read(name string, opts Options) (*reader, error) {
	r := &reader{fsys: opts.FS}
	if r.fsys == nil {
		r.fsys, r.real = os.DirFS("/"), true
		if !filepath.IsAbs(name) {
			abs, err := filepath.Abs(name)
			if err != nil {
				return nil, &Error{File: name, Msg: err.Error(), Err: err}
			}
			name = abs
		}
	}
	name = absolute(filepath.ToSlash(name))
	if err := r.readFile(name, "", 0, false); err != nil {
		return nil, err
	}
	return r, nil
}
