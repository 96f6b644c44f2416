// Package tdhelper is the protocol between gnomond and
// gnomon-timedate-helper, the small root helper that writes /etc/localtime,
// /etc/adjtime and the RTC, and reads the RTC, for gnomond running as the
// gnomon user: the request and reply codecs, the client gnomond uses and
// the server the helper runs.
//
// One request per connection over a Unix stream socket, one line each way:
//
//	timezone <zone>                 point /etc/localtime at <zone>
//	local-rtc 0|1                   /etc/adjtime: RTC in UTC (0) or local time (1)
//	rtc-set <unix-nanos> utc|local  set the RTC to that instant, in UTC or local time
//	rtc-read                        read the RTC
//
// answered "ok" or "error: <message>", where the message starts with an
// errno's name ("EACCES: ...") when there is one; rtc-read's success is
// "ok <unix-micros>", the RTC's broken-down time read as if it were UTC.
// Lines end in "\n", fields are separated by one space, and nothing else is
// accepted: no carriage return, no leading zeros, no signs, no trailing
// spaces.
package tdhelper

import (
	"bytes"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"gnomon.dev/gnomon/service/sysfiles"
)

// MaxLine is the longest request or reply line, "\n" included.
const MaxLine = 4200

// Op is what a request asks for.
type Op int

// The requests.
const (
	OpTimezone Op = iota + 1
	OpLocalRTC
	OpSetRTC
	OpReadRTC
)

// Request is one decoded request (OpReadRTC has no fields).
type Request struct {
	Op Op
	// Zone is OpTimezone's zone name (syntax checked; its existence is
	// the server's to check).
	Zone string
	// Local is OpLocalRTC's new mode, and whether OpSetRTC writes local
	// time.
	Local bool
	// Time is OpSetRTC's instant.
	Time time.Time
}

// ErrBadRequest is every parse failure; it matches syscall.EINVAL.
var ErrBadRequest = errors.New("bad request")

func badRequest(format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{ErrBadRequest}, args...)...)
}

// ParseRequest decodes one request line, "\n" included.
func ParseRequest(line []byte) (Request, error) {
	if len(line) > MaxLine {
		return Request{}, badRequest("longer than %d bytes", MaxLine)
	}
	s, ok := strings.CutSuffix(string(line), "\n")
	if !ok {
		return Request{}, badRequest("not one line ending in a newline")
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x21 && c != ' ' || c > 0x7e {
			return Request{}, badRequest("byte 0x%02x at %d", c, i)
		}
	}
	f := strings.Split(s, " ")
	switch f[0] {
	case "timezone":
		if len(f) != 2 {
			return Request{}, badRequest("timezone takes one zone name")
		}
		if f[1] != "UTC" && !sysfiles.ValidTimezoneName(f[1]) {
			return Request{}, badRequest("invalid time zone name")
		}
		return Request{Op: OpTimezone, Zone: f[1]}, nil
	case "local-rtc":
		if len(f) != 2 || (f[1] != "0" && f[1] != "1") {
			return Request{}, badRequest("local-rtc takes 0 or 1")
		}
		return Request{Op: OpLocalRTC, Local: f[1] == "1"}, nil
	case "rtc-set":
		if len(f) != 3 || (f[2] != "utc" && f[2] != "local") {
			return Request{}, badRequest("rtc-set takes unix nanoseconds and utc or local")
		}
		ns, ok := parseCount(f[1])
		if !ok {
			return Request{}, badRequest("bad nanoseconds")
		}
		return Request{Op: OpSetRTC, Time: time.Unix(0, ns), Local: f[2] == "local"}, nil
	case "rtc-read":
		if len(f) != 1 {
			return Request{}, badRequest("rtc-read takes nothing")
		}
		return Request{Op: OpReadRTC}, nil
	}
	return Request{}, badRequest("unknown request")
}

// parseCount accepts a canonical non-negative decimal int64: digits only,
// no leading zero except "0" itself.
func parseCount(s string) (int64, bool) {
	if s == "" || len(s) > 19 || (len(s) > 1 && s[0] == '0') {
		return 0, false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return 0, false
		}
	}
	n, err := strconv.ParseInt(s, 10, 64)
	return n, err == nil
}

// Encode is the request's line; it fails for requests ParseRequest would
// refuse.
func (r Request) Encode() ([]byte, error) {
	var s string
	switch r.Op {
	case OpTimezone:
		s = "timezone " + r.Zone
	case OpLocalRTC:
		s = "local-rtc " + map[bool]string{false: "0", true: "1"}[r.Local]
	case OpSetRTC:
		ns := r.Time.UnixNano()
		if r.Time.Before(time.Unix(0, 0)) || !time.Unix(0, ns).Equal(r.Time) {
			return nil, badRequest("time outside 1970–2262")
		}
		s = "rtc-set " + strconv.FormatInt(ns, 10) + " " + map[bool]string{false: "utc", true: "local"}[r.Local]
	case OpReadRTC:
		s = "rtc-read"
	default:
		return nil, badRequest("unknown op %d", r.Op)
	}
	line := []byte(s + "\n")
	if _, err := ParseRequest(line); err != nil {
		return nil, err
	}
	return line, nil
}

// Error is a refusal or failure the helper replied with. Unwrap gives its
// errno when the message named one, so errors.Is(err, fs.ErrNotExist) and
// errors.As(err, &syscall.Errno) work as on a local error.
type Error struct {
	Errno syscall.Errno // 0 when the message names none
	Msg   string        // the text after "error: "
}

func (e *Error) Error() string { return "gnomon-timedate-helper: " + e.Msg }

// Unwrap is the errno, if any.
func (e *Error) Unwrap() error {
	if e.Errno == 0 {
		return nil
	}
	return e.Errno
}

// EncodeReply is the reply line for the outcome err (nil: "ok"). Errors
// carrying an errno start with its name; control bytes become spaces and
// the line is cut to MaxLine.
func EncodeReply(err error) []byte {
	if err == nil {
		return []byte("ok\n")
	}
	msg := err.Error()
	var errno syscall.Errno
	if errors.Is(err, ErrBadRequest) || errors.Is(err, sysfiles.ErrInvalidTimezone) {
		errno = syscall.EINVAL
	} else {
		errors.As(err, &errno)
	}
	if name := unix.ErrnoName(errno); errno != 0 && name != "" {
		msg = name + ": " + msg
	}
	b := []byte("error: ")
	for i := 0; i < len(msg) && len(b) < MaxLine-1; i++ {
		c := msg[i]
		if c < 0x20 || c == 0x7f {
			c = ' '
		}
		b = append(b, c)
	}
	return append(b, '\n')
}

var errnoByName = func() map[string]syscall.Errno {
	m := map[string]syscall.Errno{}
	for e := syscall.Errno(1); e < 4096; e++ {
		if n := unix.ErrnoName(e); n != "" {
			m[n] = e
		}
	}
	return m
}()

// ParseReply decodes a reply line: nil for "ok", an *Error for
// "error: ...", a protocol error for anything else.
func ParseReply(line []byte) error {
	if len(line) > MaxLine {
		return fmt.Errorf("gnomon-timedate-helper: reply longer than %d bytes", MaxLine)
	}
	s, ok := strings.CutSuffix(string(line), "\n")
	if !ok || strings.ContainsRune(s, '\n') {
		return errors.New("gnomon-timedate-helper: reply is not one line")
	}
	if s == "ok" {
		return nil
	}
	msg, ok := strings.CutPrefix(s, "error: ")
	if !ok {
		return fmt.Errorf("gnomon-timedate-helper: unexpected reply %q", s)
	}
	e := &Error{Msg: msg}
	if name, _, ok := strings.Cut(msg, ": "); ok {
		e.Errno = errnoByName[name]
	}
	return e
}

// EncodeRTCReply is rtc-read's success line, "ok <unix-micros>\n", for
// the reading t; it fails with sysfiles.ErrRTCRange (EINVAL) for a reading
// the line cannot carry exactly.
func EncodeRTCReply(t time.Time) ([]byte, error) {
	if err := sysfiles.CheckRTCTime(t); err != nil {
		return nil, err
	}
	return []byte("ok " + strconv.FormatInt(t.UnixMicro(), 10) + "\n"), nil
}

// ParseRTCReply decodes the reply to rtc-read: the reading (in UTC) for
// "ok <unix-micros>", an *Error for "error: ...", a protocol error for
// anything else, a bare "ok" included.
func ParseRTCReply(line []byte) (time.Time, error) {
	if rest, ok := bytes.CutPrefix(line, []byte("ok ")); ok && len(line) <= MaxLine {
		if digits, ok := bytes.CutSuffix(rest, []byte("\n")); ok {
			if us, ok := parseCount(string(digits)); ok {
				return time.UnixMicro(us).UTC(), nil
			}
		}
		return time.Time{}, fmt.Errorf("gnomon-timedate-helper: unexpected reply %q", line)
	}
	if err := ParseReply(line); err != nil {
		return time.Time{}, err
	}
	return time.Time{}, errors.New("gnomon-timedate-helper: rtc-read answered without a time")
}
