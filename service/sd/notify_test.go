//go:build linux

package sd

import (
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// listenNotify listens on a unixgram socket at addr (a path, or "@name"
// for an abstract one) and points NOTIFY_SOCKET at it.
func listenNotify(t *testing.T, addr string) *net.UnixConn {
	t.Helper()
	c, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: addr, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	t.Setenv("NOTIFY_SOCKET", addr)
	return c
}

func receive(t *testing.T, c *net.UnixConn) string {
	t.Helper()
	buf := make([]byte, 4096)
	c.SetReadDeadline(time.Now().Add(10 * time.Second)) // a hang guard, not a timing assertion
	n, err := c.Read(buf)
	if err != nil {
		t.Fatal(err)
	}
	return string(buf[:n])
}

func monotonicUS(t *testing.T) int64 {
	var ts unix.Timespec
	if err := unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts); err != nil {
		t.Fatal(err)
	}
	return ts.Nano() / 1000
}

func TestNotify(t *testing.T) {
	for _, addr := range []string{
		filepath.Join(t.TempDir(), "notify"),
		fmt.Sprintf("@gnomon-test-notify-%d-%d", os.Getpid(), time.Now().UnixNano()),
	} {
		t.Run(addr[:1], func(t *testing.T) {
			c := listenNotify(t, addr)
			for _, tc := range []struct{ state, want string }{
				{Ready, "READY=1"},
				{Status("3 sources, offset +12µs"), "STATUS=3 sources, offset +12µs"},
				{Status("two\nlines"), "STATUS=two lines"},
				{Ready + "\n" + Status("synchronized"), "READY=1\nSTATUS=synchronized"},
				{Watchdog, "WATCHDOG=1"},
				{Stopping, "STOPPING=1"},
				{Reloading + "\nMONOTONIC_USEC=42", "RELOADING=1\nMONOTONIC_USEC=42"},
			} {
				if err := Notify(tc.state); err != nil {
					t.Fatal(err)
				}
				if got := receive(t, c); got != tc.want {
					t.Errorf("Notify(%q) sent %q, want %q", tc.state, got, tc.want)
				}
			}
		})
	}
}

func TestNotifyReloadingAddsMonotonic(t *testing.T) {
	c := listenNotify(t, filepath.Join(t.TempDir(), "notify"))
	before := monotonicUS(t)
	if err := Notify(Reloading + "\n" + Status("reloading")); err != nil {
		t.Fatal(err)
	}
	after := monotonicUS(t)
	got := receive(t, c)
	head, usec, ok := strings.Cut(got, "\nMONOTONIC_USEC=")
	if !ok || head != "RELOADING=1\nSTATUS=reloading" {
		t.Fatalf("sent %q", got)
	}
	n, err := strconv.ParseInt(usec, 10, 64)
	if err != nil || n < before || n > after {
		t.Errorf("MONOTONIC_USEC=%s not within [%d, %d]", usec, before, after)
	}
}

func TestNotifyWithoutSocket(t *testing.T) {
	t.Setenv("NOTIFY_SOCKET", "")
	if err := Notify(Ready); err != nil {
		t.Errorf("Notify without NOTIFY_SOCKET: %v", err)
	}
	for _, addr := range []string{"vsock:2:1234", "relative/path", filepath.Join(t.TempDir(), "nobody-listens")} {
		t.Setenv("NOTIFY_SOCKET", addr)
		if err := Notify(Ready); err == nil {
			t.Errorf("Notify to %q succeeded", addr)
		}
	}
}

func TestWatchdogInterval(t *testing.T) {
	pid := strconv.Itoa(os.Getpid())
	tests := []struct {
		usec, pid string
		want      time.Duration
		bad       bool
	}{
		{"", "", 0, false},
		{"30000000", "", 30 * time.Second, false},
		{"30000000", pid, 30 * time.Second, false},
		{"30000000", "1", 0, false}, // meant for another process
		{"1", "", time.Microsecond, false},
		{"0", "", 0, true},
		{"-5", "", 0, true},
		{"ten", "", 0, true},
		{"99999999999999999999", "", 0, true},
		{"30000000", "me", 0, true},
	}
	for _, tc := range tests {
		t.Setenv("WATCHDOG_USEC", tc.usec)
		t.Setenv("WATCHDOG_PID", tc.pid)
		got, err := WatchdogInterval()
		if (err != nil) != tc.bad || got != tc.want {
			t.Errorf("WATCHDOG_USEC=%q WATCHDOG_PID=%q: %v, %v; want %v, error %t", tc.usec, tc.pid, got, err, tc.want, tc.bad)
		}
	}
}
