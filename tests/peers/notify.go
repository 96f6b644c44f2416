package peers

import (
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// Notifier is a $NOTIFY_SOCKET a test gives a daemon: it collects every
// assignment (READY=1, STATUS=...) the daemon sends with sd_notify.
type Notifier struct {
	Path string // the socket, for NOTIFY_SOCKET=

	conn    *net.UnixConn
	mu      sync.Mutex
	lines   []string
	changed chan struct{} // closed and replaced on every new line
}

// NewNotifier listens on a new datagram socket in dir (writable by
// anyone, for a daemon that drops privileges) until the test ends; if the
// test failed, every line received is shown.
func NewNotifier(t testing.TB, dir string) *Notifier {
	t.Helper()
	path := filepath.Join(dir, "notify-"+RandomHex(t, 3)+".sock")
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: path, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	os.Chmod(path, 0o777)
	n := &Notifier{Path: path, conn: conn, changed: make(chan struct{})}
	stopped := make(chan struct{})
	go func() {
		defer close(stopped)
		buf := make([]byte, 64<<10)
		for {
			k, err := conn.Read(buf)
			if err != nil {
				return
			}
			n.mu.Lock()
			for _, l := range strings.Split(string(buf[:k]), "\n") {
				if l != "" {
					n.lines = append(n.lines, l)
				}
			}
			close(n.changed)
			n.changed = make(chan struct{})
			n.mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		conn.Close()
		<-stopped
		if t.Failed() {
			t.Logf("--- sd_notify lines received:\n%s", strings.Join(n.All(), "\n"))
		}
	})
	return n
}

// All is every line received so far, in order.
func (n *Notifier) All() []string {
	n.mu.Lock()
	defer n.mu.Unlock()
	return append([]string(nil), n.lines...)
}

// WaitFor waits until some line received so far satisfies match and
// returns the first such line, or fails the test, naming what, after
// timeout.
func (n *Notifier) WaitFor(t testing.TB, timeout time.Duration, what string, match func(string) bool) string {
	t.Helper()
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	seen := 0
	for {
		n.mu.Lock()
		lines, ch := n.lines, n.changed
		n.mu.Unlock()
		for _, l := range lines[seen:] {
			if match(l) {
				return l
			}
		}
		seen = len(lines)
		select {
		case <-ch:
		case <-deadline.C:
			t.Fatalf("the daemon did not report %s within %v; last STATUS: %q", what, timeout, n.LastStatus())
			return ""
		}
	}
}

// LastStatus is the most recent STATUS= line, "" if none.
func (n *Notifier) LastStatus() string {
	lines := n.All()
	for i := len(lines) - 1; i >= 0; i-- {
		if strings.HasPrefix(lines[i], "STATUS=") {
			return lines[i]
		}
	}
	return ""
}
