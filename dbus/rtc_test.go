package dbus

import (
	"context"
	"errors"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
	"time"

	godbus "github.com/godbus/dbus/v5"

	"gnomon.dev/gnomon/service/sysfiles"
	"gnomon.dev/gnomon/service/tdhelper"
)

// The mapping of an RTC read to RTCTimeUSec, timedated's rules plus the
// two fallbacks that keep GetAll working.
func TestRTCUSec(t *testing.T) {
	at := time.Date(2025, 11, 25, 12, 0, 0, 0, time.UTC)
	reply := func(errno syscall.Errno) error { return &tdhelper.Error{Errno: errno, Msg: errno.Error()} }
	pathErr := func(errno syscall.Errno) error { return &fs.PathError{Op: "open", Path: "/dev/rtc", Err: errno} }
	for _, tc := range []struct {
		name   string
		rt     time.Time
		direct bool
		err    error
		us     uint64
		warn   bool
		fail   bool
	}{
		{"direct reading", at, true, nil, uint64(at.UnixMicro()), false, false},
		{"helper reading", at, false, nil, uint64(at.UnixMicro()), false, false},
		{"epoch", time.Unix(0, 0), true, nil, 0, false, false},
		{"before 1970", time.Unix(-1, 0), false, nil, 0, true, false},
		{"past int64 µs", time.Date(300000, 1, 1, 0, 0, 0, 0, time.UTC), true, nil, 0, true, false},

		{"direct no RTC", time.Time{}, true, pathErr(syscall.ENOENT), 0, false, false},
		{"direct busy", time.Time{}, true, pathErr(syscall.EBUSY), 0, true, false},
		{"direct no valid time", time.Time{}, true, pathErr(syscall.EINVAL), 0, false, false},
		{"direct out of range", time.Time{}, true, sysfiles.ErrRTCRange, 0, false, false},
		{"direct EACCES", time.Time{}, true, pathErr(syscall.EACCES), 0, true, false},
		{"direct EPERM", time.Time{}, true, pathErr(syscall.EPERM), 0, true, false},
		{"direct ENOTTY", time.Time{}, true, pathErr(syscall.ENOTTY), 0, false, true},
		{"direct EIO", time.Time{}, true, pathErr(syscall.EIO), 0, false, true},

		{"helper ENOENT", time.Time{}, false, reply(syscall.ENOENT), 0, false, false},
		{"helper EBUSY", time.Time{}, false, reply(syscall.EBUSY), 0, true, false},
		{"helper EINVAL", time.Time{}, false, reply(syscall.EINVAL), 0, false, false},
		// The helper is root: a refusal there is a real error, not the
		// device being root's.
		{"helper EACCES", time.Time{}, false, reply(syscall.EACCES), 0, false, true},
		{"helper EPERM (uid refused)", time.Time{}, false, reply(syscall.EPERM), 0, false, true},
		{"helper ENOTTY", time.Time{}, false, reply(syscall.ENOTTY), 0, false, true},
		{"helper no errno", time.Time{}, false, &tdhelper.Error{Msg: "disk on fire"}, 0, false, true},
		// No reply at all: the helper is away.
		{"helper socket missing", time.Time{}, false, &os.SyscallError{Syscall: "connect", Err: syscall.ENOENT}, 0, true, false},
		{"helper refused connection", time.Time{}, false, &os.SyscallError{Syscall: "connect", Err: syscall.ECONNREFUSED}, 0, true, false},
		{"helper timed out", time.Time{}, false, context.DeadlineExceeded, 0, true, false},
		{"helper protocol", time.Time{}, false, errors.New("gnomon-timedate-helper: unexpected reply"), 0, true, false},
	} {
		us, warn, err := rtcUSec(tc.rt, tc.direct, tc.err)
		if us != tc.us || (warn != "") != tc.warn || (err != nil && warn == "") != tc.fail {
			t.Errorf("%s: %d, warn %q, err %v; want %d, warn %v, fail %v", tc.name, us, warn, err, tc.us, tc.warn, tc.fail)
		}
	}
}

// seamFiles is a SystemFiles with an RTC: it records the reads and answers
// with the next reading.
type seamFiles struct {
	mu    sync.Mutex
	reads int
	rtc   []time.Time
	err   error
}

func (f *seamFiles) SetTimezone(context.Context, string) error     { return nil }
func (f *seamFiles) SetLocalRTC(context.Context, bool) error       { return nil }
func (f *seamFiles) SetRTC(context.Context, time.Time, bool) error { return nil }
func (f *seamFiles) ReadRTC(ctx context.Context) (time.Time, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if _, ok := ctx.Deadline(); !ok {
		return time.Time{}, errors.New("read without a deadline")
	}
	f.reads++
	if f.err != nil {
		return time.Time{}, f.err
	}
	t := f.rtc[0]
	if len(f.rtc) > 1 {
		f.rtc = f.rtc[1:]
	}
	return t, nil
}

// writeOnlyFiles is a SystemFiles without an RTC read.
type writeOnlyFiles struct{}

func (writeOnlyFiles) SetTimezone(context.Context, string) error     { return nil }
func (writeOnlyFiles) SetLocalRTC(context.Context, bool) error       { return nil }
func (writeOnlyFiles) SetRTC(context.Context, time.Time, bool) error { return nil }

func newSeamService(t *testing.T, b *fakeBackend, root string, files SystemFiles) *Service {
	t.Helper()
	s, err := New(b, Options{Paths: Paths{Root: root}, Files: files, Authorizer: &fakeAuth{},
		Logger:       slog.New(slog.NewTextHandler(io.Discard, nil)),
		KernelSynced: func() (bool, error) { return true, nil }})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// RTCTimeUSec asks the seam on every Get (nothing cached) and maps its
// errors; without a seam read it reads Paths' RTC directly.
func TestRTCTimeUSecThroughSeam(t *testing.T) {
	a := time.Date(2025, 11, 25, 12, 0, 0, 0, time.UTC)
	f := &seamFiles{rtc: []time.Time{a, a.Add(time.Second)}}
	s := newSeamService(t, &fakeBackend{}, t.TempDir(), f)
	if r, direct := s.rtcReader(); r != RTCReader(f) || direct {
		t.Errorf("reader %T, direct %v", r, direct)
	}
	for i, want := range []time.Time{a, a.Add(time.Second)} {
		if got := get(t, s.td.props, "RTCTimeUSec"); got != uint64(want.UnixMicro()) {
			t.Errorf("Get %d: %v, want %d", i, got, want.UnixMicro())
		}
	}
	all, derr := s.td.props.GetAll(TimedateSpec.Name)
	if derr != nil || all["RTCTimeUSec"].Value() != uint64(a.Add(time.Second).UnixMicro()) {
		t.Errorf("GetAll: %v, %v", all["RTCTimeUSec"], derr)
	}
	if f.reads != 3 {
		t.Errorf("%d reads for 2 Gets and a GetAll", f.reads)
	}

	f.err = &tdhelper.Error{Errno: syscall.ENOENT, Msg: "ENOENT: open /dev/rtc: no such file or directory"}
	if got := get(t, s.td.props, "RTCTimeUSec"); got != uint64(0) {
		t.Errorf("helper ENOENT: %v", got)
	}
	f.err = &tdhelper.Error{Errno: syscall.ENOTTY, Msg: "ENOTTY: inappropriate ioctl for device"}
	if _, derr := s.td.props.Get(TimedateSpec.Name, "RTCTimeUSec"); derr == nil {
		t.Errorf("helper ENOTTY: no error")
	}
	if _, derr := s.td.props.GetAll(""); derr == nil {
		t.Errorf("helper ENOTTY: GetAll succeeded")
	}

	// Direct on the root (no dev/rtc): 0, whether chosen or by default.
	for _, files := range []SystemFiles{nil, writeOnlyFiles{}, sysfiles.Direct{Paths: Paths{Root: t.TempDir()}}} {
		root := t.TempDir()
		s := newSeamService(t, &fakeBackend{}, root, files)
		if _, direct := s.rtcReader(); !direct {
			t.Errorf("%T: not direct", files)
		}
		if got := get(t, s.td.props, "RTCTimeUSec"); got != uint64(0) {
			t.Errorf("%T without an RTC: %v", files, got)
		}
	}
	// Direct on something that is no RTC: the read fails, as in timedated.
	root := t.TempDir()
	os.MkdirAll(filepath.Join(root, "dev"), 0o755)
	if err := os.WriteFile(filepath.Join(root, "dev/rtc"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	s = newSeamService(t, &fakeBackend{}, root, nil)
	if _, derr := s.td.props.Get(TimedateSpec.Name, "RTCTimeUSec"); derr == nil || derr.Name != errnoError("", syscall.ENOTTY).Name {
		t.Errorf("dev/rtc a plain file: %v", derr)
	}
}

// SetLocalRTC(fix_system=true) sets the system clock from the seam's
// reading, in the new representation.
func TestFixSystemThroughSeam(t *testing.T) {
	if _, err := os.Stat("/usr/share/zoneinfo/Europe/Berlin"); err != nil {
		t.Fatalf("this test needs the system's zoneinfo: %v", err)
	}
	raw := time.Date(2025, 11, 25, 12, 0, 0, 0, time.UTC) // Berlin is UTC+1 then
	for _, tc := range []struct {
		local bool
		want  time.Time
	}{
		{false, raw},
		{true, raw.Add(-time.Hour)},
	} {
		root := t.TempDir()
		for _, d := range []string{"etc", "usr/share", "dev"} {
			os.MkdirAll(filepath.Join(root, d), 0o755)
		}
		os.Symlink("/usr/share/zoneinfo", filepath.Join(root, "usr/share/zoneinfo"))
		os.Symlink("../usr/share/zoneinfo/Europe/Berlin", filepath.Join(root, "etc/localtime"))
		// gnomond checks that there is an RTC before changing anything;
		// the reading itself comes from the seam.
		os.WriteFile(filepath.Join(root, "dev/rtc"), nil, 0o600)
		f := &seamFiles{rtc: []time.Time{raw}}
		b := &fakeBackend{mode: "system"}
		s := newSeamService(t, b, root, f)
		var msg godbus.Message
		if err := s.td.SetLocalRTC(msg, tc.local, true, false); err != nil {
			t.Fatalf("local %v: %v", tc.local, err)
		}
		if f.reads != 1 || len(b.setTime) != 1 || !b.setTime[0].Truncate(time.Second).Equal(tc.want) {
			t.Errorf("local %v: %d reads, clock set to %v; want %v", tc.local, f.reads, b.setTime, tc.want)
		}
	}
	// A failed read changes the clock not at all (and, as in timedated,
	// the call still succeeds).
	root := t.TempDir()
	os.MkdirAll(filepath.Join(root, "dev"), 0o755)
	os.WriteFile(filepath.Join(root, "dev/rtc"), nil, 0o600)
	f := &seamFiles{err: &tdhelper.Error{Errno: syscall.EIO, Msg: "EIO: input/output error"}}
	b := &fakeBackend{mode: "system"}
	s := newSeamService(t, b, root, f)
	var msg godbus.Message
	if err := s.td.SetLocalRTC(msg, false, true, false); err != nil || f.reads != 1 || len(b.setTime) != 0 {
		t.Errorf("failed read: %v, %d reads, clock set %v", err, f.reads, b.setTime)
	}
}
