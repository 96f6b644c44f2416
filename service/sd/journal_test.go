//go:build linux

package sd

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// parseNative decodes journald's native protocol into field -> values.
func parseNative(t *testing.T, b []byte) map[string][]string {
	t.Helper()
	out := map[string][]string{}
	for len(b) > 0 {
		nl := bytes.IndexByte(b, '\n')
		if nl < 0 {
			t.Fatalf("unterminated field %q", b)
		}
		line := b[:nl]
		b = b[nl+1:]
		if name, value, ok := bytes.Cut(line, []byte("=")); ok {
			out[string(name)] = append(out[string(name)], string(value))
			continue
		}
		if len(b) < 8 {
			t.Fatalf("binary field %q without length", line)
		}
		n := binary.LittleEndian.Uint64(b)
		b = b[8:]
		if uint64(len(b)) < n+1 || b[n] != '\n' {
			t.Fatalf("binary field %q: bad length %d", line, n)
		}
		out[string(line)] = append(out[string(line)], string(b[:n]))
		b = b[n+1:]
	}
	return out
}

// journalSink is a unixgram socket standing in for journald.
type journalSink struct {
	path     string
	conn     *net.UnixConn
	viaMemfd bool // the last entry came as a memfd
}

func newSink(t *testing.T) *journalSink {
	t.Helper()
	path := filepath.Join(t.TempDir(), "socket")
	c, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: path, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return &journalSink{path: path, conn: c}
}

// next returns the next entry, reading it from a passed memfd if it came
// as one.
func (s *journalSink) next(t *testing.T) map[string][]string {
	t.Helper()
	buf := make([]byte, 1<<20)
	oob := make([]byte, unix.CmsgSpace(4))
	s.conn.SetReadDeadline(time.Now().Add(10 * time.Second)) // a hang guard only
	n, oobn, _, _, err := s.conn.ReadMsgUnix(buf, oob)
	if err != nil {
		t.Fatal(err)
	}
	s.viaMemfd = oobn != 0
	if oobn == 0 {
		return parseNative(t, buf[:n])
	}
	if n != 0 {
		t.Fatalf("memfd datagram carries %d bytes too", n)
	}
	msgs, err := unix.ParseSocketControlMessage(oob[:oobn])
	if err != nil || len(msgs) != 1 {
		t.Fatalf("control message: %v", err)
	}
	fds, err := unix.ParseUnixRights(&msgs[0])
	if err != nil || len(fds) != 1 {
		t.Fatalf("rights: %v", err)
	}
	f := os.NewFile(uintptr(fds[0]), "memfd")
	defer f.Close()
	seals, err := unix.FcntlInt(f.Fd(), unix.F_GET_SEALS, 0)
	if err != nil || seals&(unix.F_SEAL_WRITE|unix.F_SEAL_SHRINK|unix.F_SEAL_GROW) == 0 {
		t.Errorf("memfd seals %#x, %v", seals, err)
	}
	data, err := os.ReadFile(fmt.Sprintf("/proc/self/fd/%d", fds[0]))
	if err != nil {
		t.Fatal(err)
	}
	return parseNative(t, data)
}

func one(t *testing.T, e map[string][]string, field string) string {
	t.Helper()
	v := e[field]
	if len(v) != 1 {
		t.Fatalf("field %s: %q (entry %v)", field, v, e)
	}
	return v[0]
}

func TestJournalHandlerFields(t *testing.T) {
	sink := newSink(t)
	h, err := NewJournalHandler(sink.path, slog.LevelDebug)
	if err != nil {
		t.Fatal(err)
	}
	log := slog.New(h)
	_, _, line, _ := runtime.Caller(0)
	log.Info("clock stepped", "source", "192.0.2.1", "offset", 1500*time.Millisecond, slog.Group("req", "id", 7))
	e := sink.next(t)
	for field, want := range map[string]string{
		"MESSAGE":           "clock stepped",
		"PRIORITY":          "6",
		"SOURCE":            "192.0.2.1",
		"OFFSET":            "1.5s",
		"REQ_ID":            "7",
		"CODE_LINE":         strconv.Itoa(line + 1),
		"SYSLOG_IDENTIFIER": filepath.Base(os.Args[0]),
	} {
		if got := one(t, e, field); got != want {
			t.Errorf("%s=%q, want %q", field, got, want)
		}
	}
	if f := one(t, e, "CODE_FILE"); !strings.HasSuffix(f, "/journal_test.go") {
		t.Errorf("CODE_FILE=%q", f)
	}
	if f := one(t, e, "CODE_FUNC"); !strings.HasSuffix(f, ".TestJournalHandlerFields") {
		t.Errorf("CODE_FUNC=%q", f)
	}
}

func TestJournalHandlerValues(t *testing.T) {
	sink := newSink(t)
	h, err := NewJournalHandler(sink.path, slog.LevelDebug)
	if err != nil {
		t.Fatal(err)
	}
	ts := time.Date(2026, 11, 25, 12, 0, 0, 5, time.UTC)
	tests := []struct {
		attr  slog.Attr
		field string
		want  string
	}{
		{slog.String("peer.addr", "[::1]:123"), "PEER_ADDR", "[::1]:123"},
		{slog.String("_trusted", "x"), "TRUSTED", "x"},
		{slog.String("1st", "x"), "ATTR_1ST", "x"},
		{slog.String("message", "x"), "ATTR_MESSAGE", "x"},
		{slog.String("priority", "x"), "ATTR_PRIORITY", "x"},
		{slog.String("Ünïcode", "x"), "N__CODE", "x"},
		{slog.String(strings.Repeat("k", 100), "x"), strings.Repeat("K", 64), "x"},
		{slog.String("multi", "line one\nline two"), "MULTI", "line one\nline two"},
		{slog.String("empty", ""), "EMPTY", ""},
		{slog.Int("n", -3), "N", "-3"},
		{slog.Float64("ppm", 12.5), "PPM", "12.5"},
		{slog.Bool("ok", true), "OK", "true"},
		{slog.Time("at", ts), "AT", "2026-11-25T12:00:00.000000005Z"},
		{slog.Any("err", errors.New("bad packet")), "ERR", "bad packet"},
		{slog.Any("v", []int{1, 2}), "V", "[1 2]"},
		{slog.Group("g", slog.Group("h", slog.Int("x", 1))), "G_H_X", "1"},
		{slog.Group("", slog.Int("inl", 2)), "INL", "2"},
	}
	for _, tc := range tests {
		slog.New(h).Info("m", tc.attr)
		e := sink.next(t)
		if got := one(t, e, tc.field); got != tc.want {
			t.Errorf("%v: %s=%q, want %q", tc.attr, tc.field, got, tc.want)
		}
		if one(t, e, "MESSAGE") != "m" || one(t, e, "PRIORITY") != "6" {
			t.Errorf("%v clobbered the handler's own fields: %v", tc.attr, e)
		}
	}
}

func TestJournalFieldNameRules(t *testing.T) {
	for _, key := range []string{"a", "_", "__x", "9", "message", "ÿ", "a b", strings.Repeat("x", 200), "code_line", "A.B-c"} {
		name := fieldName(key)
		if name == "" || len(name) > 64 || name[0] == '_' || (name[0] >= '0' && name[0] <= '9') || reservedFields[name] {
			t.Errorf("fieldName(%q) = %q", key, name)
		}
		for _, c := range name {
			if !(c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_') {
				t.Errorf("fieldName(%q) = %q", key, name)
			}
		}
	}
}

func TestJournalHandlerLevels(t *testing.T) {
	sink := newSink(t)
	h, err := NewJournalHandler(sink.path, slog.LevelDebug-8)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		level slog.Level
		prio  string
	}{
		{slog.LevelDebug - 4, "7"},
		{slog.LevelDebug, "7"},
		{slog.LevelInfo, "6"},
		{slog.LevelInfo + 2, "5"},
		{slog.LevelWarn, "4"},
		{slog.LevelError, "3"},
		{slog.LevelError + 4, "3"},
	} {
		slog.New(h).Log(t.Context(), tc.level, "m")
		if got := one(t, sink.next(t), "PRIORITY"); got != tc.prio {
			t.Errorf("level %v: PRIORITY=%s, want %s", tc.level, got, tc.prio)
		}
	}
}

func TestJournalHandlerEnabled(t *testing.T) {
	sink := newSink(t)
	h, err := NewJournalHandler(sink.path, slog.LevelWarn)
	if err != nil {
		t.Fatal(err)
	}
	log := slog.New(h)
	log.Info("dropped")
	log.Debug("dropped")
	log.Warn("kept")
	if got := one(t, sink.next(t), "MESSAGE"); got != "kept" {
		t.Errorf("first entry %q", got)
	}
}

func TestJournalHandlerWithAttrsAndGroup(t *testing.T) {
	sink := newSink(t)
	h, err := NewJournalHandler(sink.path, slog.LevelInfo)
	if err != nil {
		t.Fatal(err)
	}
	base := slog.New(h).With("source", "ntp1")
	grouped := base.WithGroup("sample").With("delay", "3ms")
	grouped.Info("m", "offset", "1ms")
	e := sink.next(t)
	for field, want := range map[string]string{"SOURCE": "ntp1", "SAMPLE_DELAY": "3ms", "SAMPLE_OFFSET": "1ms"} {
		if got := one(t, e, field); got != want {
			t.Errorf("%s=%q, want %q", field, got, want)
		}
	}
	base.Info("m2") // the derived handlers did not change their parent
	e = sink.next(t)
	if _, ok := e["SAMPLE_DELAY"]; ok || one(t, e, "SOURCE") != "ntp1" {
		t.Errorf("parent entry %v", e)
	}
}

func TestJournalHandlerLargeEntryViaMemfd(t *testing.T) {
	sink := newSink(t)
	h, err := NewJournalHandler(sink.path, slog.LevelInfo)
	if err != nil {
		t.Fatal(err)
	}
	big := strings.Repeat("0123456789abcdef", 1<<16) // 1 MiB: beyond a datagram
	r := slog.NewRecord(time.Now(), slog.LevelInfo, "big", 0)
	r.AddAttrs(slog.String("dump", big+"\nend"))
	if err := h.Handle(t.Context(), r); err != nil {
		t.Fatal(err)
	}
	e := sink.next(t)
	if !sink.viaMemfd {
		t.Error("a 1 MiB entry came as a datagram")
	}
	if got := one(t, e, "DUMP"); got != big+"\nend" {
		t.Errorf("DUMP has %d bytes, want %d", len(got), len(big)+4)
	}
}

func TestNewLogHandlerChoice(t *testing.T) {
	sink := newSink(t)
	saved := journalSocket
	t.Cleanup(func() { journalSocket = saved })

	f, err := os.Create(filepath.Join(t.TempDir(), "stderr"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		t.Fatal(err)
	}
	st := fi.Sys().(*syscall.Stat_t)
	match := fmt.Sprintf("%d:%d", st.Dev, st.Ino)
	other := fmt.Sprintf("%d:%d", st.Dev, st.Ino+1)

	tests := []struct {
		name, format, stream string
		socket               string
		toFile               bool // *os.File as w, else a buffer
		want                 string
	}{
		{"json", "json", match, sink.path, true, "json"},
		{"text", "text", match, sink.path, true, "text"},
		{"auto on the journal stream", "", match, sink.path, true, "journal"},
		{"auto elsewhere", "", other, sink.path, true, "text"},
		{"auto without JOURNAL_STREAM", "", "", sink.path, true, "text"},
		{"auto with garbage JOURNAL_STREAM", "", "x:y", sink.path, true, "text"},
		{"auto on a buffer", "auto", match, sink.path, false, "text"},
		{"journal forced", "journal", "", sink.path, false, "journal"},
		{"journal socket absent", "journal", "", sink.path + ".absent", false, "text"},
		{"auto, journal socket absent", "", match, sink.path + ".absent", true, "text"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Setenv("JOURNAL_STREAM", tc.stream)
			journalSocket = tc.socket
			if err := f.Truncate(0); err != nil {
				t.Fatal(err)
			}
			f.Seek(0, 0)
			var buf bytes.Buffer
			var h slog.Handler
			if tc.toFile {
				h = NewLogHandler(f, slog.LevelInfo, tc.format)
			} else {
				h = NewLogHandler(&buf, slog.LevelInfo, tc.format)
			}
			slog.New(h).Info("hello", "k", "v")
			written, _ := os.ReadFile(f.Name())
			written = append(written, buf.Bytes()...)
			got := ""
			switch {
			case bytes.HasPrefix(written, []byte("{")) && bytes.Contains(written, []byte(`"msg":"hello"`)):
				got = "json"
			case bytes.Contains(written, []byte("msg=hello k=v")):
				got = "text"
			case len(written) == 0:
				got = "journal"
				if e := sink.next(t); one(t, e, "MESSAGE") != "hello" || one(t, e, "K") != "v" {
					t.Errorf("journal entry %v", e)
				}
			}
			if got != tc.want {
				t.Errorf("went to %q (%q), want %s", got, written, tc.want)
			}
		})
	}
}

// TestJournalFallsBackToText checks that a record journald does not take
// (here: it went away) is written as text, with the handler's attributes.
func TestJournalFallsBackToText(t *testing.T) {
	sink := newSink(t)
	saved := journalSocket
	t.Cleanup(func() { journalSocket = saved })
	journalSocket = sink.path
	var buf bytes.Buffer
	log := slog.New(NewLogHandler(&buf, slog.LevelInfo, "journal")).With("source", "a").WithGroup("g")
	log.Info("first", "k", 1)
	if e := sink.next(t); one(t, e, "MESSAGE") != "first" || one(t, e, "G_K") != "1" {
		t.Errorf("entry %v", e)
	}
	sink.conn.Close()
	os.Remove(sink.path)
	log.Info("second", "k", 2)
	if got := buf.String(); !strings.Contains(got, "msg=second source=a g.k=2") {
		t.Errorf("fallback wrote %q", got)
	}
}

// FuzzJournalField checks that any attribute, whatever its key and value
// (values often carry what a peer sent), encodes to exactly one
// well-formed field that decodes to the same value.
func FuzzJournalField(f *testing.F) {
	f.Add("source", "192.0.2.1:123")
	f.Add("peer.addr", "line one\nline two")
	f.Add("_x", "\x00\xff")
	f.Add("message", "MESSAGE=forged\nPRIORITY=0")
	f.Add("", "v")
	f.Add("Ünïcode", "\n")
	f.Fuzz(func(t *testing.T, key, value string) {
		b := appendAttr(nil, "", slog.String(key, value))
		if key == "" {
			if len(b) != 0 {
				t.Fatalf("empty key encoded as %q", b)
			}
			return
		}
		e := parseNative(t, b)
		if len(e) != 1 {
			t.Fatalf("%q=%q encoded as %d fields: %q", key, value, len(e), b)
		}
		for name, vs := range e {
			if name != fieldName(key) || len(vs) != 1 || vs[0] != value {
				t.Fatalf("%q=%q decoded as %s=%q", key, value, name, vs)
			}
			if name == "" || len(name) > 64 || name[0] == '_' || (name[0] >= '0' && name[0] <= '9') || reservedFields[name] {
				t.Fatalf("bad field name %q for key %q", name, key)
			}
			for i := 0; i < len(name); i++ {
				if c := name[i]; !(c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_') {
					t.Fatalf("bad field name %q for key %q", name, key)
				}
			}
		}
	})
}
