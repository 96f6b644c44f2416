package dbustest

// Small helpers copied (and trimmed) from tests/peers_test.go: building
// gnomond, starting processes that are killed when the test ends, chronyd
// -x on loopback, and the CI skip rule.

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"math/big"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

var gnomondBin string

func TestMain(m *testing.M) { os.Exit(runMain(m)) }

func runMain(m *testing.M) int {
	// A prebuilt gnomond (for example one built with -race) may be given.
	if b := os.Getenv("GNOMON_TEST_GNOMOND"); b != "" {
		gnomondBin = b
		return m.Run()
	}
	dir, err := os.MkdirTemp("", "gnomon-k-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "tests/dbus:", err)
		return 1
	}
	defer os.RemoveAll(dir)
	if err := os.Chmod(dir, 0o755); err != nil {
		fmt.Fprintln(os.Stderr, "tests/dbus:", err)
		return 1
	}
	gnomondBin = filepath.Join(dir, "gnomond")
	goTool, err := exec.LookPath("go")
	if err != nil {
		goTool = "/usr/local/go/bin/go"
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	build := exec.CommandContext(ctx, goTool, "build", "-o", gnomondBin, "./cmd/gnomond")
	build.Dir = "../.."
	if out, err := build.CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "tests/dbus: building gnomond: %v\n%s", err, out)
		return 1
	}
	return m.Run()
}

func inCI() bool { return os.Getenv("CI") == "true" }

func skipOrFatal(t *testing.T, format string, args ...any) {
	t.Helper()
	msg := fmt.Sprintf(format, args...)
	if inCI() {
		t.Fatalf("%s (CI=true: this may not be skipped)", msg)
	}
	t.Skip(msg)
}

func needRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		skipOrFatal(t, "needs root (private system bus, polkitd, useradd, setpriv)")
	}
}

func needTool(t *testing.T, name string) string {
	t.Helper()
	if filepath.IsAbs(name) {
		if _, err := os.Stat(name); err != nil {
			skipOrFatal(t, "peer %s is not installed: %v", name, err)
		}
		return name
	}
	p, err := exec.LookPath(name)
	if err != nil {
		for _, dir := range []string{"/usr/sbin", "/sbin", "/usr/bin"} {
			if _, serr := os.Stat(filepath.Join(dir, name)); serr == nil {
				return filepath.Join(dir, name)
			}
		}
		skipOrFatal(t, "peer %s is not installed: %v", name, err)
	}
	return p
}

// safe starts a time daemon without CAP_SYS_TIME.
func safe(t *testing.T, argv ...string) []string {
	t.Helper()
	return append([]string{needTool(t, "setpriv"), "--bounding-set=-sys_time", "--inh-caps=-sys_time"}, argv...)
}

func tempDir(t *testing.T) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "gnomon-k-")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	return dir
}

func randomHex(t *testing.T, n int) string {
	t.Helper()
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(b)
}

// freePort is a random free high UDP port on 127.0.0.1.
func freePort(t *testing.T) int {
	t.Helper()
	for range 200 {
		n, err := rand.Int(rand.Reader, big.NewInt(12000))
		if err != nil {
			t.Fatal(err)
		}
		p := 20000 + int(n.Int64())
		c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: p})
		if err != nil {
			continue
		}
		c.Close()
		return p
	}
	t.Fatal("no free UDP port found")
	return 0
}

type proc struct {
	name string
	cmd  *exec.Cmd
	log  string
	done chan struct{}
	err  error
}

// startProc starts argv logging to dir/name.log; it is stopped when the
// test ends and its log shown if the test failed.
func startProc(t *testing.T, dir, name string, env []string, argv ...string) *proc {
	t.Helper()
	logPath := filepath.Join(dir, name+".log")
	f, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Stdout, cmd.Stderr = f, f
	cmd.Env = append(os.Environ(), env...)
	cmd.Dir = dir
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", name, err)
	}
	p := &proc{name: name, cmd: cmd, log: logPath, done: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		close(p.done)
	}()
	t.Cleanup(func() {
		p.stop()
		if t.Failed() {
			t.Logf("--- %s (%s) log:\n%s", name, strings.Join(argv, " "), p.tail(6000))
		}
	})
	return p
}

func (p *proc) alive() bool {
	select {
	case <-p.done:
		return false
	default:
		return true
	}
}

func (p *proc) stop() {
	if !p.alive() {
		return
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
		return
	case <-time.After(5 * time.Second):
	}
	_ = p.cmd.Process.Kill()
	<-p.done
}

func (p *proc) tail(n int) string {
	b, err := os.ReadFile(p.log)
	if err != nil {
		return err.Error()
	}
	if len(b) > n {
		b = b[len(b)-n:]
	}
	return string(b)
}

// startChronyd runs chronyd -x as a local stratum-1 server on
// 127.0.0.1:port, without CAP_SYS_TIME.
func startChronyd(t *testing.T, dir string, port int) *proc {
	t.Helper()
	bin := needTool(t, "chronyd")
	tag := "chronyd-" + strconv.Itoa(port)
	conf := filepath.Join(dir, tag+".conf")
	text := fmt.Sprintf("port %d\nbindaddress 127.0.0.1\nallow 127.0.0.1\nlocal stratum 1\ncmdport 0\nbindcmdaddress /\npidfile %s\n",
		port, filepath.Join(dir, tag+".pid"))
	if err := os.WriteFile(conf, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	return startProc(t, dir, tag, nil, safe(t, bin, "-x", "-d", "-f", conf)...)
}

// eventually retries f until it returns nil or timeout passes.
func eventually(t *testing.T, timeout time.Duration, what string, f func() error) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	var err error
	for {
		if err = f(); err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %v: %v", what, timeout, err)
		}
		time.Sleep(150 * time.Millisecond)
	}
}
