// Package sysfiles reads and writes the system files behind
// org.freedesktop.timedate1: /etc/localtime, /etc/adjtime, the zone
// database and /dev/rtc, under a root directory so tests can use a
// temporary tree. gnomond (package dbus) uses it directly when it runs as
// root, and gnomon-timedate-helper uses the same code for gnomond when it
// does not: one set of rules and one way of writing.
package sysfiles

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"syscall"

	"gnomon.dev/gnomon/service/atomicfile"
)

// Paths are the files timedate1 reads and writes. Every one lives under
// Root so tests can use a temporary tree.
type Paths struct {
	// Root is prepended to every path below ("" or "/" for the real system).
	Root string
}

func (p Paths) join(rel string) string {
	r := p.Root
	if r == "" {
		r = "/"
	}
	return filepath.Join(r, rel)
}

// Localtime is /etc/localtime.
func (p Paths) Localtime() string { return p.join("etc/localtime") }

// Adjtime is /etc/adjtime.
func (p Paths) Adjtime() string { return p.join("etc/adjtime") }

// Zoneinfo is /usr/share/zoneinfo.
func (p Paths) Zoneinfo() string { return p.join("usr/share/zoneinfo") }

// RTC is /dev/rtc.
func (p Paths) RTC() string { return p.join("dev/rtc") }

// ValidTimezoneName checks a zone name's syntax as systemd's
// timezone_is_valid does: not empty, not starting with '/', only ASCII
// letters, digits and "-_+/", no "//", no trailing '/', shorter than
// PATH_MAX. It does not look at the file.
func ValidTimezoneName(name string) bool {
	if name == "" || name[0] == '/' || len(name) >= 4096 {
		return false
	}
	slash := false
	for i := 0; i < len(name); i++ {
		c := name[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9', c == '-', c == '_', c == '+':
			slash = false
		case c == '/':
			if slash {
				return false
			}
			slash = true
		default:
			return false
		}
	}
	return !slash
}

// ValidTimezone reports whether name is a valid, installed zone: "UTC"
// always is; any other name must pass ValidTimezoneName and name a regular
// file under the zoneinfo directory that starts with "TZif".
func (p Paths) ValidTimezone(name string) bool {
	if name == "UTC" {
		return true
	}
	if !ValidTimezoneName(name) {
		return false
	}
	f, err := os.Open(filepath.Join(p.Zoneinfo(), name))
	if err != nil {
		return false
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil || !st.Mode().IsRegular() {
		return false
	}
	var magic [4]byte
	if _, err := io.ReadFull(f, magic[:]); err != nil {
		return false
	}
	return string(magic[:]) == "TZif"
}

// ReadTimezone reads the zone /etc/localtime names: "UTC" when the file
// does not exist, "" when it is not a symlink into the zoneinfo directory
// or names an invalid zone (systemd-timedated's rules).
func (p Paths) ReadTimezone() string {
	target, err := os.Readlink(p.Localtime())
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return "UTC"
		}
		return ""
	}
	var name string
	for _, prefix := range []string{"/usr/share/zoneinfo/", "../usr/share/zoneinfo/"} {
		if rest, ok := strings.CutPrefix(target, prefix); ok {
			name = rest
			break
		}
	}
	if name == "" || !p.ValidTimezone(name) {
		return ""
	}
	return name
}

// WriteTimezone points /etc/localtime at zone, atomically: a symlink with
// a temporary name in the same directory renamed over the old one. The
// target is relative (../usr/share/zoneinfo/ZONE). For "UTC" without an
// installed UTC file, /etc/localtime is removed instead.
//
// A zone that ValidTimezone refuses is refused here too (the error wraps
// ErrInvalidTimezone and EINVAL), so no caller can point the link out of
// the zone database.
func (p Paths) WriteTimezone(zone string) error {
	if zone != "" && !p.ValidTimezone(zone) {
		return ErrInvalidTimezone
	}
	lt := p.Localtime()
	if zone == "" || zone == "UTC" {
		zone = "UTC"
		if _, err := os.Stat(filepath.Join(p.Zoneinfo(), "UTC")); errors.Is(err, fs.ErrNotExist) {
			return atomicfile.Remove(lt)
		}
	}
	target := "../usr/share/zoneinfo/" + zone
	return AtomicSymlink(target, lt)
}

// ErrInvalidTimezone is WriteTimezone's refusal of a bad or not installed
// zone; it matches syscall.EINVAL with errors.Is.
var ErrInvalidTimezone error = invalidTimezoneError{}

type invalidTimezoneError struct{}

func (invalidTimezoneError) Error() string { return "invalid or not installed time zone" }
func (invalidTimezoneError) Is(target error) bool {
	return target == syscall.EINVAL
}

// AtomicSymlink makes path a symlink to target in one rename
// (atomicfile.Symlink).
func AtomicSymlink(target, path string) error { return atomicfile.Symlink(target, path) }

// AtomicWrite replaces path with data (mode mode) in one rename
// (atomicfile.WriteFile).
func AtomicWrite(path string, data []byte, mode os.FileMode) error {
	return atomicfile.WriteFile(path, data, mode)
}

// ListTimezones lists the zones of tzdata.zi (Zone and Link names), or of
// zone1970.tab when there is no tzdata.zi, plus "UTC", sorted, without
// duplicates and without names that have no valid TZif file (systemd ≥ 257).
func (p Paths) ListTimezones() ([]string, error) {
	names, err := p.rawTimezones()
	if err != nil {
		return nil, err
	}
	names = append(names, "UTC")
	sort.Strings(names)
	out := names[:0]
	for i, n := range names {
		if i > 0 && names[i-1] == n {
			continue
		}
		if !p.ValidTimezone(n) {
			continue
		}
		out = append(out, n)
	}
	return out, nil
}

func (p Paths) rawTimezones() ([]string, error) {
	data, err := os.ReadFile(filepath.Join(p.Zoneinfo(), "tzdata.zi"))
	if err == nil {
		return ParseTzdataZi(data), nil
	}
	if !errors.Is(err, fs.ErrNotExist) {
		return nil, err
	}
	data, err = os.ReadFile(filepath.Join(p.Zoneinfo(), "zone1970.tab"))
	if err == nil {
		return ParseZoneTab(data), nil
	}
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	return nil, err
}

// ParseTzdataZi returns the zone names of a tzdata.zi: field 1 of Zone
// lines (first word starting with Z or z) and field 2 of Link lines (L/l).
func ParseTzdataZi(data []byte) []string {
	var out []string
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) == 0 {
			continue
		}
		switch f[0][0] {
		case 'Z', 'z':
			if len(f) > 1 {
				out = append(out, f[1])
			}
		case 'L', 'l':
			if len(f) > 2 {
				out = append(out, f[2])
			}
		}
	}
	return out
}

// ParseZoneTab returns the third column of the non-comment lines of a
// zone1970.tab (or zone.tab).
func ParseZoneTab(data []byte) []string {
	var out []string
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(strings.TrimLeft(line, " \t"), "#") {
			continue
		}
		f := strings.Fields(line)
		if len(f) >= 3 {
			out = append(out, f[2])
		}
	}
	return out
}

// nullAdjtimeUTC is the content that means "all defaults, UTC": timedated
// deletes /etc/adjtime rather than writing it.
const (
	nullAdjtimeUTC   = "0.0 0 0\n0\nUTC\n"
	nullAdjtimeLocal = "0.0 0 0\n0\nLOCAL\n"
)

// AdjtimeLocal reports whether an /etc/adjtime content says the RTC keeps
// local time: its third line is exactly "LOCAL".
func AdjtimeLocal(data []byte) bool {
	lines := strings.SplitN(string(data), "\n", 4)
	if len(lines) < 3 {
		return false
	}
	return strings.TrimSuffix(lines[2], "\r") == "LOCAL"
}

// RewriteAdjtime computes the new /etc/adjtime for local (true: LOCAL,
// false: UTC) from the old content (exists false when there was no file),
// by systemd-timedated's rules: the first two lines are kept byte for byte,
// missing ones filled in, the third line replaced, a fourth and further
// lines kept. remove is true when the file should be deleted instead, and
// write false when nothing is to be written at all.
func RewriteAdjtime(old []byte, exists, local bool) (content []byte, write, remove bool) {
	word := "UTC"
	if local {
		word = "LOCAL"
	}
	if !exists {
		if !local {
			return nil, false, false
		}
		return []byte(nullAdjtimeLocal), true, false
	}
	s := string(old)
	var head, fill string
	suffix := "\n"
	i := strings.IndexByte(s, '\n')
	switch {
	case i < 0: // one line, no newline
		head, fill = s, "\n0\n"
	case i == len(s)-1: // one line with its newline
		head, fill = s, "0\n"
	default:
		j := strings.IndexByte(s[i+1:], '\n')
		if j < 0 { // two lines, the second without newline
			head, fill = s, "\n"
		} else {
			head = s[:i+1+j+1]
			third := s[i+1+j+1:]
			if k := strings.IndexByte(third, '\n'); k >= 0 {
				suffix = third[k:]
			}
		}
	}
	out := head + fill + word + suffix
	if out == nullAdjtimeUTC {
		return nil, false, true
	}
	return []byte(out), true, false
}
