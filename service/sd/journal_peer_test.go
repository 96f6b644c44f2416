//go:build linux

package sd

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// needPeer skips (or, under CI=true, fails) when a peer is missing.
func needPeer(t *testing.T, what string, ok bool) {
	t.Helper()
	if ok {
		return
	}
	if os.Getenv("CI") == "true" {
		t.Fatalf("%s not available", what)
	}
	t.Skipf("%s not available", what)
}

// TestJournaldPeer logs through a real systemd-journald, run in a mount
// namespace of its own (a fresh tmpfs on /run, volatile storage, kernel
// log off) so it never meets the machine's journal, and reads the entries
// back with journalctl.
func TestJournaldPeer(t *testing.T) {
	journald := "/lib/systemd/systemd-journald"
	_, err := os.Stat(journald)
	needPeer(t, journald, err == nil)
	journalctl, err := exec.LookPath("journalctl")
	needPeer(t, "journalctl", err == nil)
	unshare, err := exec.LookPath("unshare")
	needPeer(t, "unshare", err == nil)
	setpriv, err := exec.LookPath("setpriv")
	needPeer(t, "setpriv", err == nil)
	needPeer(t, "root (for a mount namespace)", os.Geteuid() == 0)

	dir := t.TempDir()
	conf := filepath.Join(dir, "journald.conf")
	if err := os.WriteFile(conf, []byte("[Journal]\nStorage=volatile\nReadKMsg=no\nForwardToSyslog=no\n"+
		"ForwardToKMsg=no\nForwardToConsole=no\nForwardToWall=no\nAudit=no\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	script := `mount -t tmpfs tmpfs /run && mount --bind "$1" /etc/systemd/journald.conf && exec "$2"`
	cmd := exec.Command(setpriv, "--bounding-set=-sys_time", "--inh-caps=-sys_time",
		unshare, "-m", "--propagation", "private", "sh", "-c", script, "sh", conf, journald)
	out := new(lockedBuffer)
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
	})
	// setpriv and unshare exec, so the pid is journald's: its /run is
	// reachable from here through /proc/<pid>/root.
	root := filepath.Join("/proc", strconv.Itoa(cmd.Process.Pid), "root")
	socket := filepath.Join(root, "run/systemd/journal/socket")
	waitFor(t, func() bool { _, err := os.Stat(socket); return err == nil }, "journald's socket", out)

	h, err := NewJournalHandler(socket, slog.LevelDebug)
	if err != nil {
		t.Fatal(err)
	}
	big := strings.Repeat("x", 1<<20)
	log := slog.New(h).With("source", "192.0.2.7")
	log.Warn("gnomon peer test", "offset", 12*time.Millisecond, "detail", "line one\nline two", slog.Group("req", "id", 5))
	log.Info("gnomon peer test big", "dump", big)

	var entries []map[string]any
	waitFor(t, func() bool {
		entries = readJournal(t, journalctl, filepath.Join(root, "run/log/journal"))
		return len(entries) >= 2
	}, "the entries in the journal", out)
	e, eb := entries[0], entries[1]
	for field, want := range map[string]string{
		"MESSAGE":    "gnomon peer test",
		"PRIORITY":   "4",
		"SOURCE":     "192.0.2.7",
		"OFFSET":     "12ms",
		"DETAIL":     "line one\nline two",
		"REQ_ID":     "5",
		"_TRANSPORT": "journal",
	} {
		if got, _ := e[field].(string); got != want {
			t.Errorf("%s=%q, want %q", field, e[field], want)
		}
	}
	if got, _ := e["CODE_FUNC"].(string); !strings.HasSuffix(got, ".TestJournaldPeer") {
		t.Errorf("CODE_FUNC=%v", e["CODE_FUNC"])
	}
	if got, _ := eb["DUMP"].(string); got != big {
		t.Errorf("DUMP has %d bytes, want %d (the memfd entry)", len(got), len(big))
	}
}

// readJournal returns this test's entries in the journal files under dir.
func readJournal(t *testing.T, journalctl, dir string) []map[string]any {
	t.Helper()
	cmd := exec.Command(journalctl, "-D", dir, "-o", "json", "--all", "--no-pager")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			return nil // not there yet
		}
		t.Fatalf("journalctl: %v\n%s", err, stderr.String())
	}
	var entries []map[string]any
	sc := bufio.NewScanner(bytes.NewReader(out))
	sc.Buffer(nil, 8<<20)
	for sc.Scan() {
		var e map[string]any
		if err := json.Unmarshal(sc.Bytes(), &e); err != nil {
			t.Fatalf("journalctl output: %v", err)
		}
		if m, _ := e["MESSAGE"].(string); strings.HasPrefix(m, "gnomon peer test") {
			entries = append(entries, e)
		}
	}
	return entries
}

// lockedBuffer collects a child's output while the test may read it.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// waitFor polls cond until it holds; the deadline only guards against a
// hang.
func waitFor(t *testing.T, cond func() bool, what string, log *lockedBuffer) {
	t.Helper()
	for deadline := time.Now().Add(30 * time.Second); !cond(); {
		if time.Now().After(deadline) {
			t.Fatalf("no %s; journald said:\n%s", what, log.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
}
