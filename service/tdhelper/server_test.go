package tdhelper

import (
	"context"
	"errors"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// fakeFiles records the calls and fails with err; its RTC reads rtc.
type fakeFiles struct {
	mu    sync.Mutex
	calls []string
	err   error
	rtc   time.Time
}

func (f *fakeFiles) record(s string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, s)
	return f.err
}

func (f *fakeFiles) SetTimezone(_ context.Context, zone string) error {
	return f.record("timezone " + zone)
}
func (f *fakeFiles) SetLocalRTC(_ context.Context, local bool) error {
	if local {
		return f.record("local-rtc true")
	}
	return f.record("local-rtc false")
}
func (f *fakeFiles) SetRTC(_ context.Context, t time.Time, local bool) error {
	s := "rtc " + t.UTC().Format(time.RFC3339Nano)
	if local {
		s += " local"
	}
	return f.record(s)
}
func (f *fakeFiles) ReadRTC(context.Context) (time.Time, error) {
	if err := f.record("rtc-read"); err != nil {
		return time.Time{}, err
	}
	return f.rtc, nil
}

// serve runs a Server on a socket in a temporary directory until the test
// ends.
func serve(t *testing.T, s *Server) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "h.sock")
	l, err := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	if s.Log == nil {
		s.Log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Serve(ctx, l) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Serve: %v", err)
		}
		l.Close()
	})
	return path
}

func TestClientServer(t *testing.T) {
	rtc := time.Date(2026, 11, 25, 11, 59, 58, 0, time.UTC)
	f := &fakeFiles{rtc: rtc}
	path := serve(t, &Server{Files: f, AllowUIDs: []uint32{uint32(os.Getuid())}})
	c := &Client{Path: path}
	ctx := context.Background()
	at := time.Date(2026, 11, 25, 12, 0, 1, 500, time.UTC)
	if err := c.SetTimezone(ctx, "Europe/Berlin"); err != nil {
		t.Fatal(err)
	}
	if err := c.SetLocalRTC(ctx, true); err != nil {
		t.Fatal(err)
	}
	if err := c.SetLocalRTC(ctx, false); err != nil {
		t.Fatal(err)
	}
	if err := c.SetRTC(ctx, at, true); err != nil {
		t.Fatal(err)
	}
	got, err := c.ReadRTC(ctx)
	if err != nil || !got.Equal(rtc) || got.Location() != time.UTC {
		t.Errorf("ReadRTC: %v, %v; want %v", got, err, rtc)
	}
	if err := c.Do(ctx, Request{Op: OpReadRTC}); err != nil {
		t.Errorf("Do(rtc-read): %v", err)
	}
	want := []string{"timezone Europe/Berlin", "local-rtc true", "local-rtc false", "rtc 2026-11-25T12:00:01.0000005Z local", "rtc-read", "rtc-read"}
	f.mu.Lock()
	calls := strings.Join(f.calls, "|")
	f.mu.Unlock()
	if calls != strings.Join(want, "|") {
		t.Errorf("calls %q, want %q", calls, want)
	}
	// The client refuses to send what the helper would refuse.
	if err := c.SetTimezone(ctx, "../../etc/shadow"); !errors.Is(err, ErrBadRequest) {
		t.Errorf("bad zone: %v", err)
	}
}

func TestServerErrors(t *testing.T) {
	for _, tc := range []struct {
		name  string
		err   error
		errno syscall.Errno
	}{
		{"permission", &fs.PathError{Op: "rename", Path: "/etc/localtime", Err: syscall.EACCES}, syscall.EACCES},
		{"no rtc", &fs.PathError{Op: "open", Path: "/dev/rtc", Err: syscall.ENOENT}, syscall.ENOENT},
		{"busy", &fs.PathError{Op: "ioctl", Path: "/dev/rtc", Err: syscall.EBUSY}, syscall.EBUSY},
		{"no valid time", syscall.EINVAL, syscall.EINVAL},
		{"plain", errors.New("disk on fire"), 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := &fakeFiles{err: tc.err}
			c := &Client{Path: serve(t, &Server{Files: f})}
			check := func(op string, err error) {
				t.Helper()
				var he *Error
				if !errors.As(err, &he) || he.Errno != tc.errno || !strings.Contains(he.Msg, tc.err.Error()) {
					t.Fatalf("%s: got %#v, want errno %v and %q", op, err, tc.errno, tc.err)
				}
				if errors.Is(err, fs.ErrNotExist) != (tc.errno == syscall.ENOENT) {
					t.Errorf("%s: errors.Is(ErrNotExist) wrong for %v", op, err)
				}
			}
			check("rtc-set", c.SetRTC(context.Background(), time.Unix(1e9, 0), false))
			rt, err := c.ReadRTC(context.Background())
			check("rtc-read", err)
			if !rt.IsZero() {
				t.Errorf("rtc-read failed but gave %v", rt)
			}
		})
	}
}

// A reading the reply cannot carry exactly is refused with EINVAL (what
// the kernel says of an RTC without a valid time), never rounded.
func TestServerRTCRange(t *testing.T) {
	for _, rtc := range []time.Time{
		time.Date(1969, 12, 31, 23, 59, 59, 0, time.UTC),
		time.Date(300000, 1, 1, 0, 0, 0, 0, time.UTC),
		time.Date(2026, 1, 1, 0, 0, 0, 500, time.UTC),
	} {
		c := &Client{Path: serve(t, &Server{Files: &fakeFiles{rtc: rtc}})}
		got, err := c.ReadRTC(context.Background())
		var he *Error
		if !errors.As(err, &he) || he.Errno != syscall.EINVAL || !got.IsZero() {
			t.Errorf("RTC at %v: %v, %v; want EINVAL", rtc, got, err)
		}
	}
}

// rawExchange sends raw bytes and returns the reply.
func rawExchange(t *testing.T, path string, send string, closeWrite bool) string {
	t.Helper()
	conn, err := net.Dial("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(20 * time.Second))
	if _, err := conn.Write([]byte(send)); err != nil {
		t.Fatal(err)
	}
	if closeWrite {
		conn.(*net.UnixConn).CloseWrite()
	}
	b, err := io.ReadAll(conn)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestServerRefusesBadRequests(t *testing.T) {
	f := &fakeFiles{rtc: time.Unix(1764072000, 0)}
	path := serve(t, &Server{Files: f, RequestTimeout: 2 * time.Second})
	for _, tc := range []struct {
		send       string
		closeWrite bool
		want       string
	}{
		{"timezone ../../etc/shadow\n", false, "error: EINVAL: "},
		{"timezone Europe/Berlin", true, "error: EINVAL: bad request: no complete line\n"},
		{"", true, "error: EINVAL: bad request: no complete line\n"},
		{strings.Repeat("x", 3*MaxLine), false, "error: EINVAL: bad request: longer than"},
		{"local-rtc 1\r\n", false, "error: EINVAL: "},
		{"reboot\n", false, "error: EINVAL: bad request: unknown request\n"},
		{"local-rtc 1\nlocal-rtc 0\n", false, "error: EINVAL: bad request: more than one request on a connection\n"},
		{"rtc-read 1\n", false, "error: EINVAL: bad request: rtc-read takes nothing\n"},
		{"rtc-read \n", false, "error: EINVAL: bad request: rtc-read takes nothing\n"},
		{"rtc-read\nrtc-read\n", false, "error: EINVAL: bad request: more than one request on a connection\n"},
		{"rtc-read", true, "error: EINVAL: bad request: no complete line\n"},
		{"local-rtc 1\n", false, "ok\n"},
		{"rtc-read\n", false, "ok 1764072000000000\n"},
	} {
		got := rawExchange(t, path, tc.send, tc.closeWrite)
		if !strings.HasPrefix(got, tc.want) || strings.Count(got, "\n") != 1 {
			t.Errorf("%.40q: reply %q, want %q…", tc.send, got, tc.want)
		}
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if strings.Join(f.calls, "|") != "local-rtc true|rtc-read" {
		t.Errorf("calls %q: only the two valid requests may act", f.calls)
	}
}

func TestServerIdleAndCancel(t *testing.T) {
	path := filepath.Join(t.TempDir(), "h.sock")
	l, err := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	s := &Server{Files: &fakeFiles{}, IdleTimeout: 50 * time.Millisecond, Log: slog.New(slog.NewTextHandler(io.Discard, nil))}
	if err := s.Serve(context.Background(), l); err != nil {
		t.Fatalf("idle Serve: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	s.IdleTimeout = 0
	if err := s.Serve(ctx, l); err != nil {
		t.Fatalf("cancelled Serve: %v", err)
	}
}

func TestClientNoHelper(t *testing.T) {
	c := &Client{Path: filepath.Join(t.TempDir(), "absent.sock")}
	err := c.SetTimezone(context.Background(), "UTC")
	if err == nil || !errors.Is(err, syscall.ENOENT) {
		t.Errorf("no socket: %v", err)
	}
	// A helper that never answers: the context ends the wait.
	path := filepath.Join(t.TempDir(), "mute.sock")
	l, err := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	ctx, cancel := context.WithCancel(context.Background())
	go func() {
		conn, err := l.Accept()
		if err == nil {
			cancel()
			defer conn.Close()
			io.Copy(io.Discard, conn)
		}
	}()
	if err := (&Client{Path: path}).SetLocalRTC(ctx, true); !errors.Is(err, context.Canceled) {
		t.Errorf("mute helper: %v", err)
	}
}
