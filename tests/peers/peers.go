// Package peers is the shared harness of gnomon's integration tests: the
// CI rule for missing peers, finding installed tools, starting daemons
// without CAP_SYS_TIME, scratch directories, free loopback ports, processes
// that are stopped (and whose logs are shown) when a test ends, chronyd as
// a plain or NTS server, throwaway certificates, network namespaces, the
// sd_notify socket a daemon reports to, building the module's commands
// once per test binary, and a small NTP client built on engine/ntp.
//
// It is an ordinary package so that every test package can import it, but
// only tests use it: nothing in the daemon or the CLI may.
package peers

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"math/big"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
	"time"
)

// InCI reports whether a missing peer or privilege is a failure: it is
// when the environment variable CI is "true".
func InCI() bool { return os.Getenv("CI") == "true" }

// SkipOrFatal skips the test outside CI and fails it under CI=true, where
// every peer is installed and nothing may be skipped.
func SkipOrFatal(t testing.TB, format string, args ...any) {
	t.Helper()
	msg := fmt.Sprintf(format, args...)
	if InCI() {
		t.Fatalf("%s (CI=true: this may not be skipped)", msg)
	}
	t.Skip(msg)
}

// NeedRoot skips (or, under CI=true, fails) the test unless it runs as
// root; why says what needs root, for the message.
func NeedRoot(t testing.TB, why string) {
	t.Helper()
	if os.Geteuid() != 0 {
		SkipOrFatal(t, "needs root (%s)", why)
	}
}

// toolDirs are searched after $PATH: sbin is not always on a test's PATH.
var toolDirs = []string{"/usr/sbin", "/sbin", "/usr/bin"}

// NeedTool returns the path of an installed program, looked up on $PATH
// and then in /usr/sbin, /sbin and /usr/bin; an absolute name must exist
// as it is. A missing program is SkipOrFatal.
func NeedTool(t testing.TB, name string) string {
	t.Helper()
	if filepath.IsAbs(name) {
		if _, err := os.Stat(name); err != nil {
			SkipOrFatal(t, "peer %s is not installed: %v", name, err)
		}
		return name
	}
	p, err := exec.LookPath(name)
	if err == nil {
		return p
	}
	for _, dir := range toolDirs {
		if _, serr := os.Stat(filepath.Join(dir, name)); serr == nil {
			return filepath.Join(dir, name)
		}
	}
	SkipOrFatal(t, "peer %s is not installed: %v", name, err)
	return ""
}

// Safe prefixes argv with setpriv so that the program runs without
// CAP_SYS_TIME, in its bounding and inheritable sets: whatever it tries on
// CLOCK_REALTIME fails with EPERM. Every time daemon a test starts
// (chronyd, ntpd, gnomond) goes through Safe.
func Safe(t testing.TB, argv ...string) []string {
	t.Helper()
	return append([]string{NeedTool(t, "setpriv"), "--bounding-set=-sys_time", "--inh-caps=-sys_time"}, argv...)
}

// InNetns prefixes argv with `ip netns exec ns` when ns is not "".
func InNetns(t testing.TB, ns string, argv []string) []string {
	t.Helper()
	if ns == "" {
		return argv
	}
	return append([]string{NeedTool(t, "ip"), "netns", "exec", ns}, argv...)
}

// TempDir makes a scratch directory with permissions perm, removed when
// the test ends. Use 0o777 where chronyd, which drops to the user _chrony,
// writes (its PID file, NTS dumps); 0o755 where only root writes but other
// users must reach what is inside (a bus socket, a binary).
func TempDir(t testing.TB, perm fs.FileMode) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "gnomon-test-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, perm); err != nil {
		t.Fatal(err)
	}
	return dir
}

// RandomHex is n random bytes in hex, for names a test makes up (users,
// namespaces, sockets) that must not collide with another run's.
func RandomHex(t testing.TB, n int) string {
	t.Helper()
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(b)
}

var ports struct {
	mu   sync.Mutex
	used map[int]bool
}

// FreePort picks a random port in 20000-31999 (high, and below Linux's
// ephemeral range) that is free on 127.0.0.1 for both UDP and TCP and was
// not handed out before in this test binary.
func FreePort(t testing.TB) int {
	t.Helper()
	ports.mu.Lock()
	defer ports.mu.Unlock()
	if ports.used == nil {
		ports.used = map[int]bool{}
	}
	for range 200 {
		n, err := rand.Int(rand.Reader, big.NewInt(12000))
		if err != nil {
			t.Fatal(err)
		}
		p := 20000 + int(n.Int64())
		if ports.used[p] || !portFree(p) {
			continue
		}
		ports.used[p] = true
		return p
	}
	t.Fatal("no free port found")
	return 0
}

// portFree reports whether 127.0.0.1:port can be bound for UDP and TCP.
func portFree(port int) bool {
	u, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: port})
	if err != nil {
		return false
	}
	defer u.Close()
	l, err := net.Listen("tcp4", "127.0.0.1:"+strconv.Itoa(port))
	if err != nil {
		return false
	}
	l.Close()
	return true
}

// Eventually calls f every 100 ms until it returns nil, and fails the test
// with f's last error if that has not happened within timeout.
func Eventually(t testing.TB, timeout time.Duration, what string, f func() error) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		err := f()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %v: %v", what, timeout, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// ModuleRoot is the directory of the module's go.mod, found upwards from
// the working directory (a test runs in its package's directory).
func ModuleRoot(t testing.TB) string {
	t.Helper()
	root, err := moduleRoot()
	if err != nil {
		t.Fatal(err)
	}
	return root
}

func moduleRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		up := filepath.Dir(dir)
		if up == dir {
			return "", errors.New("no go.mod above the working directory")
		}
		dir = up
	}
}
