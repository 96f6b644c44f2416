//go:build linux

package sd

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// JournalSocket is where journald takes native protocol datagrams.
const JournalSocket = "/run/systemd/journal/socket"

// journalSocket is the socket NewLogHandler uses; tests point it elsewhere.
var journalSocket = JournalSocket

// journalSendTimeout bounds one send to journald; past it the record goes
// to the text fallback instead of stalling the daemon.
const journalSendTimeout = time.Second

// NewLogHandler returns gnomond's log handler, writing records at or
// above level. format is
//
//   - "json": slog's JSON on w;
//   - "text": slog's text on w;
//   - "journal": journald's native protocol, with every attribute as its
//     own field, falling back to text on w if the journal socket is absent;
//   - anything else ("" or "auto"): "journal" when w is the stream systemd
//     connected to the journal (JOURNAL_STREAM names w's device and inode,
//     see systemd.exec(5)), "text" otherwise.
//
// A record that cannot be sent to journald is written as text to w.
func NewLogHandler(w io.Writer, level slog.Leveler, format string) slog.Handler {
	opts := &slog.HandlerOptions{Level: level}
	text := slog.NewTextHandler(w, opts)
	switch format {
	case "json":
		return slog.NewJSONHandler(w, opts)
	case "text":
		return text
	case "journal":
	default:
		if !isJournalStream(w, os.Getenv("JOURNAL_STREAM")) {
			return text
		}
	}
	h, err := newJournalHandler(journalSocket, level, text)
	if err != nil {
		return text
	}
	return h
}

// NewJournalHandler returns a handler that writes records at or above
// level to the journald socket at socketPath (JournalSocket normally) in
// the native protocol. It fails if nothing is listening there.
func NewJournalHandler(socketPath string, level slog.Leveler) (slog.Handler, error) {
	return newJournalHandler(socketPath, level, nil)
}

// isJournalStream reports whether w is the file JOURNAL_STREAM
// ("<device>:<inode>") names.
func isJournalStream(w io.Writer, env string) bool {
	f, ok := w.(*os.File)
	if !ok || env == "" {
		return false
	}
	devS, inoS, ok := strings.Cut(env, ":")
	if !ok {
		return false
	}
	dev, err1 := strconv.ParseUint(devS, 10, 64)
	ino, err2 := strconv.ParseUint(inoS, 10, 64)
	if err1 != nil || err2 != nil {
		return false
	}
	fi, err := f.Stat()
	if err != nil {
		return false
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	return ok && uint64(st.Dev) == dev && uint64(st.Ino) == ino
}

// journalConn is the socket to journald, shared by a handler and the
// handlers derived from it.
type journalConn struct {
	mu   sync.Mutex
	path string
	conn *net.UnixConn
}

func (j *journalConn) dial() error {
	c, err := net.DialUnix("unixgram", nil, &net.UnixAddr{Name: j.path, Net: "unixgram"})
	if err != nil {
		return err
	}
	j.conn = c
	return nil
}

// send writes one entry, through a sealed memfd when it is too large for
// a datagram; it reconnects once if journald went away and came back.
func (j *journalConn) send(entry []byte) error {
	j.mu.Lock()
	defer j.mu.Unlock()
	var err error
	for try := 0; try < 2; try++ {
		if j.conn == nil {
			if err = j.dial(); err != nil {
				continue
			}
		}
		j.conn.SetWriteDeadline(time.Now().Add(journalSendTimeout))
		_, err = j.conn.Write(entry)
		if errors.Is(err, unix.EMSGSIZE) || errors.Is(err, unix.ENOBUFS) {
			err = j.sendMemfd(entry)
		}
		if err == nil {
			return nil
		}
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			return err // journald is alive but slow: do not queue behind it
		}
		j.conn.Close()
		j.conn = nil
	}
	return err
}

// sendMemfd passes entry as a sealed memfd, the way journald takes
// entries too large for a datagram.
func (j *journalConn) sendMemfd(entry []byte) error {
	fd, err := unix.MemfdCreate("gnomon-journal", unix.MFD_CLOEXEC|unix.MFD_ALLOW_SEALING)
	if err != nil {
		return fmt.Errorf("memfd: %w", err)
	}
	defer unix.Close(fd)
	for b := entry; len(b) > 0; {
		n, err := unix.Write(fd, b)
		if err != nil {
			return fmt.Errorf("memfd: %w", err)
		}
		b = b[n:]
	}
	seals := unix.F_SEAL_SHRINK | unix.F_SEAL_GROW | unix.F_SEAL_WRITE | unix.F_SEAL_SEAL
	if _, err := unix.FcntlInt(uintptr(fd), unix.F_ADD_SEALS, seals); err != nil {
		return fmt.Errorf("memfd seal: %w", err)
	}
	// WriteMsgUnix refuses connected datagram sockets: send by hand,
	// through the poller so the write deadline holds.
	rc, err := j.conn.SyscallConn()
	if err != nil {
		return err
	}
	rights := unix.UnixRights(fd)
	var serr error
	werr := rc.Write(func(s uintptr) bool {
		serr = unix.Sendmsg(int(s), nil, rights, nil, unix.MSG_DONTWAIT)
		return serr != unix.EAGAIN
	})
	if werr != nil {
		return werr
	}
	return serr
}

// journalHandler is a slog.Handler speaking journald's native protocol.
type journalHandler struct {
	level    slog.Leveler
	conn     *journalConn
	ident    string
	pre      []byte // fields from WithAttrs, encoded
	prefix   string // field name prefix from WithGroup, e.g. "SOURCE_"
	fallback slog.Handler
}

func newJournalHandler(path string, level slog.Leveler, fallback slog.Handler) (*journalHandler, error) {
	if level == nil {
		level = slog.LevelInfo
	}
	j := &journalConn{path: path}
	if err := j.dial(); err != nil {
		return nil, fmt.Errorf("sd: journal: %w", err)
	}
	return &journalHandler{
		level:    level,
		conn:     j,
		ident:    filepath.Base(os.Args[0]),
		fallback: fallback,
	}, nil
}

func (h *journalHandler) Enabled(_ context.Context, l slog.Level) bool {
	return l >= h.level.Level()
}

func (h *journalHandler) Handle(ctx context.Context, r slog.Record) error {
	b := make([]byte, 0, 512)
	b = appendField(b, "MESSAGE", r.Message)
	b = appendField(b, "PRIORITY", strconv.Itoa(priority(r.Level)))
	if r.PC != 0 {
		f, _ := runtime.CallersFrames([]uintptr{r.PC}).Next()
		if f.File != "" {
			b = appendField(b, "CODE_FILE", f.File)
			b = appendField(b, "CODE_LINE", strconv.Itoa(f.Line))
		}
		if f.Function != "" {
			b = appendField(b, "CODE_FUNC", f.Function)
		}
	}
	b = appendField(b, "SYSLOG_IDENTIFIER", h.ident)
	b = append(b, h.pre...)
	r.Attrs(func(a slog.Attr) bool {
		b = appendAttr(b, h.prefix, a)
		return true
	})
	err := h.conn.send(b)
	if err != nil && h.fallback != nil {
		return h.fallback.Handle(ctx, r)
	}
	if err != nil {
		return fmt.Errorf("sd: journal: %w", err)
	}
	return nil
}

func (h *journalHandler) WithAttrs(as []slog.Attr) slog.Handler {
	if len(as) == 0 {
		return h
	}
	h2 := *h
	h2.pre = append([]byte(nil), h.pre...)
	for _, a := range as {
		h2.pre = appendAttr(h2.pre, h.prefix, a)
	}
	if h.fallback != nil {
		h2.fallback = h.fallback.WithAttrs(as)
	}
	return &h2
}

func (h *journalHandler) WithGroup(name string) slog.Handler {
	if name == "" {
		return h
	}
	h2 := *h
	h2.prefix = h.prefix + name + "_"
	if h.fallback != nil {
		h2.fallback = h.fallback.WithGroup(name)
	}
	return &h2
}

// priority maps a slog level to a syslog priority: error 3, warning 4,
// levels between warning and info notice 5, info 6, debug 7.
func priority(l slog.Level) int {
	switch {
	case l >= slog.LevelError:
		return 3
	case l >= slog.LevelWarn:
		return 4
	case l > slog.LevelInfo:
		return 5
	case l >= slog.LevelInfo:
		return 6
	default:
		return 7
	}
}

// appendAttr encodes a (a group's members each under prefix+group_).
func appendAttr(b []byte, prefix string, a slog.Attr) []byte {
	a.Value = a.Value.Resolve()
	if a.Equal(slog.Attr{}) {
		return b
	}
	if a.Value.Kind() == slog.KindGroup {
		p := prefix
		if a.Key != "" {
			p += a.Key + "_"
		}
		for _, ga := range a.Value.Group() {
			b = appendAttr(b, p, ga)
		}
		return b
	}
	if a.Key == "" {
		return b
	}
	return appendField(b, fieldName(prefix+a.Key), valueString(a.Value))
}

func valueString(v slog.Value) string {
	switch v.Kind() {
	case slog.KindTime:
		return v.Time().Format(time.RFC3339Nano)
	case slog.KindAny:
		if err, ok := v.Any().(error); ok {
			return err.Error()
		}
	}
	return v.String()
}

// reservedFields are the fields the handler writes itself; an attribute
// of the same name is written as ATTR_<name> instead.
var reservedFields = map[string]bool{
	"MESSAGE": true, "PRIORITY": true, "CODE_FILE": true, "CODE_LINE": true,
	"CODE_FUNC": true, "SYSLOG_IDENTIFIER": true,
}

// fieldName turns an attribute key into a journal field name: upper-case
// letters, digits and underscores, not starting with an underscore
// (journald keeps those for its own trusted fields) or a digit, at most
// 64 characters.
func fieldName(key string) string {
	b := make([]byte, 0, len(key))
	for i := 0; i < len(key); i++ {
		c := key[i]
		switch {
		case c >= 'a' && c <= 'z':
			c -= 'a' - 'A'
		case c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
		default:
			c = '_'
		}
		b = append(b, c)
	}
	name := strings.TrimLeft(string(b), "_")
	if name == "" || (name[0] >= '0' && name[0] <= '9') || reservedFields[name] {
		name = "ATTR_" + name
	}
	if len(name) > 64 {
		name = name[:64]
	}
	return name
}

// appendField encodes one field: NAME=value\n, or, for a value with a
// newline, NAME\n, its length as 64-bit little endian, the value and \n.
func appendField(b []byte, name, value string) []byte {
	if !strings.ContainsRune(value, '\n') {
		b = append(b, name...)
		b = append(b, '=')
		b = append(b, value...)
		return append(b, '\n')
	}
	b = append(b, name...)
	b = append(b, '\n')
	b = binary.LittleEndian.AppendUint64(b, uint64(len(value)))
	b = append(b, value...)
	return append(b, '\n')
}
