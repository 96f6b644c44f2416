package tdhelper

import (
	"errors"
	"fmt"
	"io/fs"
	"strings"
	"syscall"
	"testing"
	"time"

	"gnomon.dev/gnomon/service/sysfiles"
)

func TestParseRequest(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want Request
		ok   bool
	}{
		{"timezone Europe/Berlin\n", Request{Op: OpTimezone, Zone: "Europe/Berlin"}, true},
		{"timezone UTC\n", Request{Op: OpTimezone, Zone: "UTC"}, true},
		{"timezone Etc/GMT+5\n", Request{Op: OpTimezone, Zone: "Etc/GMT+5"}, true},
		{"local-rtc 1\n", Request{Op: OpLocalRTC, Local: true}, true},
		{"local-rtc 0\n", Request{Op: OpLocalRTC}, true},
		{"rtc-set 1764072000000000000 utc\n", Request{Op: OpSetRTC, Time: time.Unix(1764072000, 0)}, true},
		{"rtc-set 0 local\n", Request{Op: OpSetRTC, Time: time.Unix(0, 0), Local: true}, true},
		{"rtc-set 9223372036854775807 utc\n", Request{Op: OpSetRTC, Time: time.Unix(0, 1<<63-1)}, true},
		{"rtc-read\n", Request{Op: OpReadRTC}, true},

		{"timezone Europe/Berlin", Request{}, false},     // no newline
		{"timezone Europe/Berlin\r\n", Request{}, false}, // CR
		{"timezone  Europe/Berlin\n", Request{}, false},  // two spaces
		{"timezone Europe/Berlin \n", Request{}, false},  // trailing space
		{" timezone Europe/Berlin\n", Request{}, false},
		{"timezone\n", Request{}, false},
		{"timezone \n", Request{}, false},
		{"timezone ../../etc/shadow\n", Request{}, false},
		{"timezone /etc/shadow\n", Request{}, false},
		{"timezone Europe//Berlin\n", Request{}, false},
		{"timezone Europe/Berlin/\n", Request{}, false},
		{"timezone Europe/Berlin extra\n", Request{}, false},
		{"timezone Europe/Berlin\nlocal-rtc 1\n", Request{}, false},
		{"timezone Éurope\n", Request{}, false},
		{"timezone Europe/Ber\x00lin\n", Request{}, false},
		{"timezone Europe/Ber\tlin\n", Request{}, false},
		{"TIMEZONE Europe/Berlin\n", Request{}, false},
		{"timezone " + strings.Repeat("a", 4096) + "\n", Request{}, false},
		{"local-rtc\n", Request{}, false},
		{"local-rtc 2\n", Request{}, false},
		{"local-rtc yes\n", Request{}, false},
		{"local-rtc 01\n", Request{}, false},
		{"local-rtc 1 1\n", Request{}, false},
		{"rtc-set 1764072000000000000\n", Request{}, false},
		{"rtc-set 1764072000000000000 UTC\n", Request{}, false},
		{"rtc-set -1 utc\n", Request{}, false},
		{"rtc-set +1 utc\n", Request{}, false},
		{"rtc-set 01 utc\n", Request{}, false},
		{"rtc-set 9223372036854775808 utc\n", Request{}, false},
		{"rtc-set 1e9 utc\n", Request{}, false},
		{"rtc-set  utc\n", Request{}, false},
		{"rtc-read", Request{}, false},
		{"rtc-read \n", Request{}, false},
		{" rtc-read\n", Request{}, false},
		{"rtc-read\r\n", Request{}, false},
		{"rtc-read 0\n", Request{}, false},
		{"rtc-read utc\n", Request{}, false},
		{"rtc-read\nrtc-read\n", Request{}, false},
		{"RTC-READ\n", Request{}, false},
		{"rtc-read\x00\n", Request{}, false},
		{"\n", Request{}, false},
		{"", Request{}, false},
		{"ok\n", Request{}, false},
	} {
		got, err := ParseRequest([]byte(tc.in))
		if (err == nil) != tc.ok {
			t.Errorf("%q: err %v, want ok=%v", tc.in, err, tc.ok)
			continue
		}
		if err != nil {
			if !errors.Is(err, ErrBadRequest) {
				t.Errorf("%q: error %v is not ErrBadRequest", tc.in, err)
			}
			continue
		}
		if got.Op != tc.want.Op || got.Zone != tc.want.Zone || got.Local != tc.want.Local || !got.Time.Equal(tc.want.Time) {
			t.Errorf("%q: %+v, want %+v", tc.in, got, tc.want)
		}
		// Every accepted request encodes back to the same line.
		line, err := got.Encode()
		if err != nil || string(line) != tc.in {
			t.Errorf("%q: Encode gives %q, %v", tc.in, line, err)
		}
	}
}

func TestEncodeRefuses(t *testing.T) {
	for _, r := range []Request{
		{Op: OpTimezone, Zone: "../x"},
		{Op: OpTimezone, Zone: ""},
		{Op: OpTimezone, Zone: "a b"},
		{Op: OpSetRTC, Time: time.Unix(-1, 0)},
		{Op: OpSetRTC, Time: time.Date(2300, 1, 1, 0, 0, 0, 0, time.UTC)},
		{Op: 0},
		{Op: 99},
	} {
		if line, err := r.Encode(); err == nil {
			t.Errorf("%+v: encoded as %q", r, line)
		}
	}
}

func TestReplies(t *testing.T) {
	for _, tc := range []struct {
		err      error
		line     string
		errno    syscall.Errno
		notExist bool
	}{
		{nil, "ok\n", 0, false},
		{&fs.PathError{Op: "rename", Path: "/etc/localtime", Err: syscall.EACCES}, "error: EACCES: rename /etc/localtime: permission denied\n", syscall.EACCES, false},
		{&fs.PathError{Op: "open", Path: "/dev/rtc", Err: syscall.ENOENT}, "error: ENOENT: open /dev/rtc: no such file or directory\n", syscall.ENOENT, true},
		{badRequest("unknown request"), "error: EINVAL: bad request: unknown request\n", syscall.EINVAL, false},
		{sysfiles.ErrInvalidTimezone, "error: EINVAL: invalid or not installed time zone\n", syscall.EINVAL, false},
		{errors.New("two\nlines"), "error: two lines\n", 0, false},
		{ErrPeerRefused, "error: EPERM: operation not permitted: this peer may not use gnomon-timedate-helper\n", syscall.EPERM, false},
	} {
		line := EncodeReply(tc.err)
		if string(line) != tc.line {
			t.Errorf("%v: reply %q, want %q", tc.err, line, tc.line)
		}
		got := ParseReply(line)
		if (got == nil) != (tc.err == nil) {
			t.Errorf("%q: parsed %v", line, got)
			continue
		}
		if got == nil {
			continue
		}
		var he *Error
		if !errors.As(got, &he) || he.Errno != tc.errno {
			t.Errorf("%q: parsed %#v, want errno %v", line, got, tc.errno)
		}
		var errno syscall.Errno
		if errors.As(got, &errno) != (tc.errno != 0) {
			t.Errorf("%q: errors.As errno: %v", line, errno)
		}
		if errors.Is(got, fs.ErrNotExist) != tc.notExist {
			t.Errorf("%q: errors.Is(ErrNotExist) = %v", line, !tc.notExist)
		}
	}
	long := EncodeReply(errors.New(strings.Repeat("x", 2*MaxLine)))
	if len(long) > MaxLine || ParseReply(long) == nil {
		t.Errorf("long reply: %d bytes", len(long))
	}
	for _, bad := range []string{"", "ok", "OK\n", "error:x\n", "ok\nok\n", "fine\n", "error: " + strings.Repeat("x", MaxLine) + "\n"} {
		err := ParseReply([]byte(bad))
		var he *Error
		if err == nil || errors.As(err, &he) {
			t.Errorf("%q: %v, want a protocol error", bad, err)
		}
	}
}

func TestRTCReplies(t *testing.T) {
	for _, tc := range []struct {
		at   time.Time
		line string
	}{
		{time.Unix(0, 0), "ok 0\n"},
		{time.Unix(1764072000, 0), "ok 1764072000000000\n"},
		{time.Date(2025, 11, 25, 13, 0, 0, 0, time.FixedZone("CET", 3600)), "ok 1764072000000000\n"},
		{time.UnixMicro(1<<63 - 1), "ok 9223372036854775807\n"},
	} {
		line, err := EncodeRTCReply(tc.at)
		if err != nil || string(line) != tc.line {
			t.Errorf("%v: %q, %v; want %q", tc.at, line, err, tc.line)
			continue
		}
		got, err := ParseRTCReply(line)
		if err != nil || !got.Equal(tc.at) || got.Location() != time.UTC {
			t.Errorf("%q: %v, %v; want %v", line, got, err, tc.at)
		}
	}
	for _, at := range []time.Time{time.Unix(-1, 0), time.Unix(0, 1), time.Date(300000, 1, 1, 0, 0, 0, 0, time.UTC)} {
		if line, err := EncodeRTCReply(at); !errors.Is(err, syscall.EINVAL) {
			t.Errorf("%v: %q, %v; want EINVAL", at, line, err)
		}
	}
	// Errors as for the other requests.
	_, err := ParseRTCReply([]byte("error: ENOENT: open /dev/rtc: no such file or directory\n"))
	var he *Error
	if !errors.As(err, &he) || he.Errno != syscall.ENOENT || !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("ENOENT reply: %#v", err)
	}
	// Anything else is a protocol error, not an *Error and not a time.
	for _, bad := range []string{
		"ok\n", "ok \n", "ok 1", "ok 01\n", "ok -1\n", "ok +1\n", "ok 1 \n", "ok  1\n", "ok 1\r\n",
		"ok 9223372036854775808\n", "ok 1e6\n", "ok 0x10\n", "ok 1\nok 1\n", "OK 1\n", "ok 1\x00\n", "", "1\n",
	} {
		got, err := ParseRTCReply([]byte(bad))
		if err == nil || errors.As(err, &he) || !got.IsZero() {
			t.Errorf("%q: %v, %v; want a protocol error", bad, got, err)
		}
	}
	// A write request's reply is never "ok <n>".
	if err := ParseReply([]byte("ok 5\n")); err == nil {
		t.Errorf(`ParseReply took "ok 5"`)
	}
}

// FuzzParseRequest: whatever arrives on the socket, an accepted request is
// one the helper can act on safely: a zone name that cannot leave the zone
// database, a mode, a time; and it encodes back to exactly the same line.
func FuzzParseRequest(f *testing.F) {
	for _, s := range []string{
		"timezone Europe/Berlin\n", "timezone UTC\n", "local-rtc 1\n", "local-rtc 0\n",
		"rtc-set 1764072000000000000 utc\n", "rtc-set 0 local\n", "timezone ../../etc/shadow\n",
		"timezone Europe/Berlin\r\n", "rtc-set -5 utc\n", "local-rtc 1 1\n", "\n", "timezone America/Argentina/Buenos_Aires\n",
		"rtc-read\n", "rtc-read \n", "rtc-read 0\n", "rtc-read\r\n", "rtc-read",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, line []byte) {
		r, err := ParseRequest(line)
		if err != nil {
			if !errors.Is(err, ErrBadRequest) {
				t.Fatalf("%q: error %v is not ErrBadRequest", line, err)
			}
			if !strings.HasPrefix(string(EncodeReply(err)), "error: EINVAL: ") {
				t.Fatalf("%q: reply %q", line, EncodeReply(err))
			}
			return
		}
		switch r.Op {
		case OpTimezone:
			if r.Zone != "UTC" && !sysfiles.ValidTimezoneName(r.Zone) {
				t.Fatalf("%q: zone %q", line, r.Zone)
			}
			for _, c := range strings.Split(r.Zone, "/") {
				if c == "" || c == "." || c == ".." {
					t.Fatalf("%q: zone component %q", line, c)
				}
			}
		case OpLocalRTC:
		case OpSetRTC:
			if r.Time.Before(time.Unix(0, 0)) {
				t.Fatalf("%q: time %v", line, r.Time)
			}
		case OpReadRTC:
			if string(line) != "rtc-read\n" || r != (Request{Op: OpReadRTC}) {
				t.Fatalf("%q: read request %+v", line, r)
			}
		default:
			t.Fatalf("%q: op %d", line, r.Op)
		}
		back, err := r.Encode()
		if err != nil || string(back) != string(line) {
			t.Fatalf("%q: encodes to %q, %v", line, back, err)
		}
	})
}

// FuzzParseReply: gnomond never takes a garbled reply for success, nor a
// garbled rtc-read reply for a time: an accepted time is in range and
// encodes back to exactly the same line.
func FuzzParseReply(f *testing.F) {
	for _, s := range []string{"ok\n", "error: EACCES: permission denied\n", "error: x\n", "ok", "ok\r\n", "error: \n",
		"ok 1764072000000000\n", "ok 0\n", "ok 9223372036854775807\n", "ok 9223372036854775808\n", "ok -1\n", "ok 01\n",
		"ok 1 \n", "error: ENOENT: open /dev/rtc: no such file or directory\n"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, line []byte) {
		err := ParseReply(line)
		if err == nil && string(line) != "ok\n" {
			t.Fatalf("%q taken for ok", line)
		}
		_ = fmt.Sprint(err)
		at, err := ParseRTCReply(line)
		if err != nil {
			if !at.IsZero() {
				t.Fatalf("%q: error %v with time %v", line, err, at)
			}
			var he *Error
			if errors.As(err, &he) && !strings.HasPrefix(string(line), "error: ") {
				t.Fatalf("%q: taken for the helper's error %#v", line, err)
			}
			return
		}
		back, err := EncodeRTCReply(at)
		if err != nil || string(back) != string(line) {
			t.Fatalf("%q: read as %v, encodes to %q, %v", line, at, back, err)
		}
	})
}
