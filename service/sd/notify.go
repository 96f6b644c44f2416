//go:build linux

// Package sd is gnomond's glue to systemd: sd_notify, the watchdog, socket
// activation, a journald log handler, and a rate limiter for log lines
// that outside input can provoke.
package sd

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// States for Notify. See sd_notify(3).
const (
	Ready     = "READY=1"
	Stopping  = "STOPPING=1"
	Reloading = "RELOADING=1" // Notify adds the MONOTONIC_USEC Type=notify-reload wants
	Watchdog  = "WATCHDOG=1"
)

// Status returns the STATUS= line for s (newlines become spaces: the
// protocol is one assignment per line).
func Status(s string) string {
	return "STATUS=" + strings.ReplaceAll(s, "\n", " ")
}

// notifyTimeout bounds Notify's send: the service manager should never
// make the daemon wait, and a notification that cannot be sent is
// reported, not retried.
const notifyTimeout = 5 * time.Second

// Notify sends state (newline-separated assignments such as READY=1 and
// STATUS=...) to the service manager at $NOTIFY_SOCKET, a path or an
// abstract ("@...") datagram socket. Without NOTIFY_SOCKET it does nothing
// and returns nil. A state with RELOADING=1 gets MONOTONIC_USEC added.
func Notify(state string) error {
	if !Enabled() {
		return nil // before the context: its timer is not free (called per sample)
	}
	ctx, cancel := context.WithTimeout(context.Background(), notifyTimeout)
	defer cancel()
	return NotifyContext(ctx, state)
}

// Enabled reports whether there is a service manager to notify
// ($NOTIFY_SOCKET is set).
func Enabled() bool { return os.Getenv("NOTIFY_SOCKET") != "" }

// NotifyContext is Notify bounded by ctx.
func NotifyContext(ctx context.Context, state string) error {
	addr := os.Getenv("NOTIFY_SOCKET")
	if addr == "" {
		return nil
	}
	if addr[0] != '/' && addr[0] != '@' {
		return fmt.Errorf("sd: NOTIFY_SOCKET %q: only path and abstract sockets are supported", addr)
	}
	msg, err := addMonotonic(state)
	if err != nil {
		return err
	}
	var d net.Dialer
	c, err := d.DialContext(ctx, "unixgram", addr) // Go maps a leading '@' to the abstract namespace
	if err != nil {
		return fmt.Errorf("sd: notify: %w", err)
	}
	defer c.Close()
	if dl, ok := ctx.Deadline(); ok {
		c.SetWriteDeadline(dl)
	}
	stop := context.AfterFunc(ctx, func() { c.SetWriteDeadline(time.Unix(1, 0)) })
	defer stop()
	if _, err := c.Write([]byte(msg)); err != nil {
		return fmt.Errorf("sd: notify: %w", err)
	}
	return nil
}

// addMonotonic appends MONOTONIC_USEC=<CLOCK_MONOTONIC µs> to a state
// that has RELOADING=1 and no MONOTONIC_USEC of its own.
func addMonotonic(state string) (string, error) {
	lines := strings.Split(state, "\n")
	reloading, has := false, false
	for _, l := range lines {
		reloading = reloading || l == Reloading
		has = has || strings.HasPrefix(l, "MONOTONIC_USEC=")
	}
	if !reloading || has {
		return state, nil
	}
	var ts unix.Timespec
	if err := unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts); err != nil {
		return "", fmt.Errorf("sd: notify: %w", err)
	}
	usec := ts.Nano() / 1000
	return strings.TrimSuffix(state, "\n") + "\nMONOTONIC_USEC=" + strconv.FormatInt(usec, 10), nil
}

// WatchdogInterval returns the service manager's watchdog timeout from
// WATCHDOG_USEC (and WATCHDOG_PID, when set, must be this process), or 0
// when the watchdog is off. Send Watchdog every half of it.
func WatchdogInterval() (time.Duration, error) {
	us := os.Getenv("WATCHDOG_USEC")
	if us == "" {
		return 0, nil
	}
	if p := os.Getenv("WATCHDOG_PID"); p != "" {
		pid, err := strconv.Atoi(p)
		if err != nil {
			return 0, fmt.Errorf("sd: WATCHDOG_PID %q: %w", p, err)
		}
		if pid != os.Getpid() {
			return 0, nil
		}
	}
	n, err := strconv.ParseUint(us, 10, 63)
	if err != nil {
		return 0, fmt.Errorf("sd: WATCHDOG_USEC %q: %w", us, err)
	}
	if n == 0 || n > uint64(1<<63-1)/1000 {
		return 0, fmt.Errorf("sd: WATCHDOG_USEC %q: %w", us, errors.New("out of range"))
	}
	return time.Duration(n) * time.Microsecond, nil
}
