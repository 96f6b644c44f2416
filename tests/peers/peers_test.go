package peers

import (
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// recorder is a testing.TB that records SkipOrFatal's verdict instead of
// ending the test.
type recorder struct {
	testing.TB
	verdict string
}

func (r *recorder) Helper() {}
func (r *recorder) Fatalf(format string, args ...any) {
	if r.verdict == "" {
		r.verdict = "fatal: " + fmt.Sprintf(format, args...)
	}
}
func (r *recorder) Skip(args ...any) {
	if r.verdict == "" {
		r.verdict = "skip: " + fmt.Sprint(args...)
	}
}

func TestSkipOrFatal(t *testing.T) {
	for _, tc := range []struct{ ci, want string }{
		{"true", "fatal: chronyd is missing (CI=true: this may not be skipped)"},
		{"", "skip: chronyd is missing"},
		{"false", "skip: chronyd is missing"},
		{"1", "skip: chronyd is missing"},
	} {
		t.Run("CI="+tc.ci, func(t *testing.T) {
			t.Setenv("CI", tc.ci)
			r := &recorder{}
			SkipOrFatal(r, "%s is missing", "chronyd")
			if r.verdict != tc.want {
				t.Errorf("verdict %q, want %q", r.verdict, tc.want)
			}
		})
	}
}

func TestNeedTool(t *testing.T) {
	t.Setenv("CI", "true")
	if p := NeedTool(t, "sh"); !filepath.IsAbs(p) {
		t.Errorf("NeedTool(sh) = %q, want an absolute path", p)
	}
	r := &recorder{}
	NeedTool(r, "/nonexistent/gnomon-no-such-tool")
	if !strings.HasPrefix(r.verdict, "fatal: peer /nonexistent/gnomon-no-such-tool is not installed") {
		t.Errorf("missing absolute tool: %q", r.verdict)
	}
	r = &recorder{}
	NeedTool(r, "gnomon-no-such-tool")
	if !strings.HasPrefix(r.verdict, "fatal: peer gnomon-no-such-tool is not installed") {
		t.Errorf("missing tool: %q", r.verdict)
	}
}

func TestInNetns(t *testing.T) {
	argv := []string{"chronyd", "-x"}
	if got := InNetns(t, "", argv); !slices.Equal(got, argv) {
		t.Errorf("InNetns outside a namespace = %v", got)
	}
}

func TestTempDir(t *testing.T) {
	for _, perm := range []os.FileMode{0o777, 0o755} {
		dir := TempDir(t, perm)
		st, err := os.Stat(dir)
		if err != nil || !st.IsDir() || st.Mode().Perm() != perm {
			t.Errorf("TempDir(%o): %v %v", perm, st, err)
		}
	}
}

func TestFreePort(t *testing.T) {
	seen := map[int]bool{}
	for range 20 {
		p := FreePort(t)
		if p < 20000 || p >= 32000 || seen[p] {
			t.Fatalf("FreePort gave %d (seen before: %v)", p, seen[p])
		}
		seen[p] = true
		if !portFree(p) {
			t.Errorf("port %d is not free", p)
		}
	}
	// A port in use is not free.
	l, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	if portFree(l.Addr().(*net.TCPAddr).Port) {
		t.Error("a bound TCP port counts as free")
	}
}

func TestWriteCert(t *testing.T) {
	dir := t.TempDir()
	for _, perm := range []os.FileMode{0o600, 0o644} {
		cf, kf, cert := WriteCert(t, dir, "c", perm)
		if _, err := tls.LoadX509KeyPair(cf, kf); err != nil {
			t.Fatalf("the pair does not load: %v", err)
		}
		if st, err := os.Stat(kf); err != nil || st.Mode().Perm() != perm {
			t.Errorf("key file mode %v, want %o (%v)", st.Mode().Perm(), perm, err)
		}
		if err := cert.VerifyHostname("localhost"); err != nil {
			t.Error(err)
		}
		for _, ip := range []string{"127.0.0.1", "::1"} {
			if err := cert.VerifyHostname(ip); err != nil {
				t.Error(err)
			}
		}
		if err := cert.VerifyHostname("127.0.0.2"); err == nil {
			t.Error("certificate valid for 127.0.0.2")
		}
		if !cert.IsCA || cert.CheckSignatureFrom(cert) != nil {
			t.Error("not a self-signed CA")
		}
	}
	// A second pair of the same name replaces the first.
	_, _, a := WriteCert(t, dir, "r", 0o644)
	cf, _, b := WriteCert(t, dir, "r", 0o644)
	if a.Equal(b) {
		t.Fatal("the same certificate twice")
	}
	if pair, err := tls.LoadX509KeyPair(cf, filepath.Join(dir, "r.key")); err != nil || !b.Equal(pair.Leaf) {
		t.Errorf("the files do not hold the renewed pair: %v", err)
	}
}

func TestStart(t *testing.T) {
	dir := t.TempDir()
	p := Start(t, dir, "sleeper", []string{"GNOMON_PEERS_TEST=hello"}, "sh", "-c", `echo "$GNOMON_PEERS_TEST from $(pwd)"; exec sleep 60`)
	Eventually(t, 10*time.Second, "the greeting in the log", func() error {
		if want := "hello from " + dir; !strings.Contains(p.Tail(LogTail), want) {
			return fmt.Errorf("log %q lacks %q", p.Tail(LogTail), want)
		}
		return nil
	})
	if !p.Alive() || p.Err() != nil {
		t.Fatalf("alive %v, err %v", p.Alive(), p.Err())
	}
	p.Stop()
	if p.Alive() || p.Err() == nil {
		t.Errorf("after Stop: alive %v, err %v", p.Alive(), p.Err())
	}
	if got := p.Tail(5); got != dir[len(dir)-4:]+"\n" {
		t.Errorf("Tail(5) = %q", got)
	}

	// Restarted under the same name, the log is appended to; the exit
	// status is kept.
	q := Start(t, dir, "sleeper", nil, "sh", "-c", "echo second; exit 3")
	<-q.Done()
	var ee *exec.ExitError
	if err := q.Err(); !errors.As(err, &ee) || ee.ExitCode() != 3 {
		t.Errorf("exit: %v", err)
	}
	if log := q.Tail(LogTail); !strings.HasPrefix(log, "hello from ") || !strings.HasSuffix(log, "second\n") {
		t.Errorf("log after a restart: %q", log)
	}
}

func TestNotifier(t *testing.T) {
	n := NewNotifier(t, t.TempDir())
	c, err := net.Dial("unixgram", n.Path)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	for _, msg := range []string{"STATUS=starting\nMAINPID=1", "READY=1\nSTATUS=synchronized\n"} {
		if _, err := c.Write([]byte(msg)); err != nil {
			t.Fatal(err)
		}
	}
	if got := n.WaitFor(t, 10*time.Second, "READY=1", func(l string) bool { return l == "READY=1" }); got != "READY=1" {
		t.Errorf("WaitFor = %q", got)
	}
	n.WaitFor(t, 10*time.Second, "the second STATUS", func(l string) bool { return l == "STATUS=synchronized" })
	if got, want := n.All(), []string{"STATUS=starting", "MAINPID=1", "READY=1", "STATUS=synchronized"}; !slices.Equal(got, want) {
		t.Errorf("All() = %q, want %q", got, want)
	}
	if got := n.LastStatus(); got != "STATUS=synchronized" {
		t.Errorf("LastStatus() = %q", got)
	}
}

func TestNewSystemRoot(t *testing.T) {
	root := NewSystemRoot(t, t.TempDir(), "Europe/Berlin")
	if l, err := os.Readlink(filepath.Join(root, "etc/localtime")); err != nil || l != "../usr/share/zoneinfo/Europe/Berlin" {
		t.Errorf("etc/localtime -> %q, %v", l, err)
	}
	for _, d := range []string{"etc", "dev", "usr/share/zoneinfo"} {
		if st, err := os.Stat(filepath.Join(root, d)); err != nil || !st.IsDir() {
			t.Errorf("%s: %v", d, err)
		}
	}
}

func TestModuleRoot(t *testing.T) {
	root := ModuleRoot(t)
	if _, err := os.Stat(filepath.Join(root, "tests", "peers", "peers.go")); err != nil {
		t.Errorf("ModuleRoot() = %q: %v", root, err)
	}
}
