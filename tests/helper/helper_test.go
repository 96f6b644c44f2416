// Package helpertest runs the real gnomon-timedate-helper as root on a
// socket in a temporary directory with a temporary system root, and talks
// to it as a user made for the test (allowed), as nobody (refused) and as
// root; then runs gnomond as that unprivileged user on a private bus and
// changes the zone with the real timedatectl, through the helper.
package helpertest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"gnomon.dev/gnomon/service/tdhelper"
)

var helperBin, gnomondBin string

// TestMain builds the two programs, or, re-executed by a test as another
// user with GNOMON_HELPER_CLIENT set, acts as a helper client: it sends the
// request line in $GNOMON_HELPER_REQUEST to the socket in
// $GNOMON_HELPER_CLIENT and prints the reply line.
func TestMain(m *testing.M) {
	if sock := os.Getenv("GNOMON_HELPER_CLIENT"); sock != "" {
		os.Exit(clientMain(sock, os.Getenv("GNOMON_HELPER_REQUEST")))
	}
	os.Exit(buildAndRun(m))
}

func clientMain(sock, req string) int {
	r, err := tdhelper.ParseRequest([]byte(req + "\n"))
	if err != nil {
		// Send it raw: the helper must refuse it itself.
		fmt.Print(rawRequest(sock, req+"\n"))
		return 0
	}
	err = (&tdhelper.Client{Path: sock, Timeout: 10 * time.Second}).Do(context.Background(), r)
	fmt.Print(string(tdhelper.EncodeReply(unwrapHelper(err))))
	return 0
}

// unwrapHelper turns a helper's *Error back into its reply line's error.
func unwrapHelper(err error) error {
	var he *tdhelper.Error
	if errors.As(err, &he) {
		return errors.New(he.Msg)
	}
	return err
}

func rawRequest(sock, line string) string {
	c, err := (&netDialer{}).dial(sock)
	if err != nil {
		return "dial: " + err.Error() + "\n"
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	c.Write([]byte(line))
	b := make([]byte, tdhelper.MaxLine)
	n, _ := c.Read(b)
	return string(b[:n])
}

func buildAndRun(m *testing.M) int {
	dir, err := os.MkdirTemp("", "gnomon-n-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	os.Chmod(dir, 0o755)
	goTool, err := exec.LookPath("go")
	if err != nil {
		goTool = "/usr/local/go/bin/go"
	}
	helperBin = filepath.Join(dir, "gnomon-timedate-helper")
	gnomondBin = filepath.Join(dir, "gnomond")
	for bin, pkg := range map[string]string{helperBin: "./cmd/gnomon-timedate-helper", gnomondBin: "./cmd/gnomond"} {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
		build := exec.CommandContext(ctx, goTool, "build", "-o", bin, pkg)
		build.Dir = "../.."
		// gnomond drops privileges on every thread, which cgo programs cannot.
		build.Env = append(os.Environ(), "CGO_ENABLED=0")
		out, err := build.CombinedOutput()
		cancel()
		if err != nil {
			fmt.Fprintf(os.Stderr, "tests/helper: building %s: %v\n%s", pkg, err, out)
			return 1
		}
	}
	return m.Run()
}

func skipOrFatal(t *testing.T, format string, args ...any) {
	t.Helper()
	msg := fmt.Sprintf(format, args...)
	if os.Getenv("CI") == "true" {
		t.Fatalf("%s (CI=true: this may not be skipped)", msg)
	}
	t.Skip(msg)
}

func needTool(t *testing.T, name string) string {
	t.Helper()
	if p, err := exec.LookPath(name); err == nil {
		return p
	}
	for _, d := range []string{"/usr/sbin", "/sbin", "/usr/bin"} {
		if _, err := os.Stat(filepath.Join(d, name)); err == nil {
			return filepath.Join(d, name)
		}
	}
	skipOrFatal(t, "%s is not installed", name)
	return ""
}

func randomHex(t *testing.T, n int) string {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(b)
}

// env is a temporary system root, a test user and a running helper.
type env struct {
	t        *testing.T
	dir      string // 0755, root's
	root     string // the system root the helper writes under
	sock     string
	user     *user.User
	helper   *exec.Cmd
	helperLg string
}

func setup(t *testing.T) *env {
	if os.Geteuid() != 0 {
		skipOrFatal(t, "needs root (the helper runs as root; useradd, setpriv)")
	}
	for _, tool := range []string{"useradd", "userdel", "setpriv"} {
		needTool(t, tool)
	}
	e := &env{t: t}
	dir, err := os.MkdirTemp("", "gnomon-n-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	os.Chmod(dir, 0o755)
	e.dir = dir
	e.root = filepath.Join(dir, "root")
	for _, d := range []string{"etc", "usr/share", "dev"} {
		if err := os.MkdirAll(filepath.Join(e.root, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Symlink("/usr/share/zoneinfo", filepath.Join(e.root, "usr/share/zoneinfo")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("../usr/share/zoneinfo/Europe/Berlin", filepath.Join(e.root, "etc/localtime")); err != nil {
		t.Fatal(err)
	}
	name := "gnh" + randomHex(t, 4)
	if out, err := exec.Command(needTool(t, "useradd"), "-r", "-M", "-d", "/nonexistent", "-s", "/usr/sbin/nologin", name).CombinedOutput(); err != nil {
		t.Fatalf("useradd: %v %s", err, out)
	}
	t.Cleanup(func() {
		if out, err := exec.Command(needTool(t, "userdel"), name).CombinedOutput(); err != nil {
			t.Errorf("userdel %s: %v %s", name, err, out)
		}
	})
	if e.user, err = user.Lookup(name); err != nil {
		t.Fatal(err)
	}
	e.sock = filepath.Join(dir, "helper.sock")
	e.helperLg = filepath.Join(dir, "helper.log")
	e.startHelper()
	return e
}

func (e *env) startHelper() {
	t := e.t
	lg, err := os.OpenFile(e.helperLg, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	defer lg.Close()
	// Without CAP_SYS_TIME: this test has no RTC to set, and no test
	// touches the clock.
	cmd := exec.Command(needTool(t, "setpriv"), "--bounding-set=-sys_time", "--inh-caps=-sys_time",
		helperBin, "--listen", e.sock, "--root", e.root, "--allow-user", e.user.Username, "--idle-timeout", "0", "--log-level", "debug")
	cmd.Stdout, cmd.Stderr = lg, lg
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	e.helper = cmd
	done := make(chan struct{})
	go func() { cmd.Wait(); close(done) }()
	t.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			cmd.Process.Kill()
			<-done
		}
		if t.Failed() {
			b, _ := os.ReadFile(e.helperLg)
			t.Logf("helper log:\n%s", b)
		}
	})
	deadline := time.Now().Add(10 * time.Second)
	for {
		if _, err := os.Stat(e.sock); err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatal("the helper did not create its socket")
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// as sends req to the helper from a child process running as uid:gid.
func (e *env) as(uid, gid, req string) string {
	t := e.t
	t.Helper()
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(needTool(t, "setpriv"), "--reuid="+uid, "--regid="+gid, "--clear-groups", self)
	cmd.Env = append(os.Environ(), "GNOMON_HELPER_CLIENT="+e.sock, "GNOMON_HELPER_REQUEST="+req)
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("client as %s: %v", uid, err)
	}
	return string(out)
}

func (e *env) localtime() string {
	l, _ := os.Readlink(filepath.Join(e.root, "etc/localtime"))
	return l
}

func TestHelper(t *testing.T) {
	e := setup(t)
	nobody, err := user.Lookup("nobody")
	if err != nil {
		t.Fatal(err)
	}
	u, g := e.user.Uid, e.user.Gid
	steps := []struct {
		who, uid, gid, req string
		reply              string // prefix
		localtime          string
	}{
		{"user", u, g, "timezone America/New_York", "ok\n", "../usr/share/zoneinfo/America/New_York"},
		{"nobody", nobody.Uid, nobody.Gid, "timezone Asia/Tokyo", "error: EPERM: ", "../usr/share/zoneinfo/America/New_York"},
		{"user", u, g, "timezone Nowhere/Atlantis", "error: EINVAL: invalid or not installed time zone", "../usr/share/zoneinfo/America/New_York"},
		{"user", u, g, "timezone ../../../etc/passwd", "error: EINVAL: bad request", "../usr/share/zoneinfo/America/New_York"},
		{"user", u, g, "timezone Europe/Berlin\ntimezone Asia/Tokyo", "error: EINVAL: bad request", "../usr/share/zoneinfo/America/New_York"},
		{"user", u, g, "local-rtc 1", "ok\n", ""},
		{"nobody", nobody.Uid, nobody.Gid, "local-rtc 0", "error: EPERM: ", ""},
		{"user", u, g, "rtc-set 1764072000000000000 utc", "error: ENOENT: ", ""},
		{"root", "0", "0", "timezone Asia/Tokyo", "ok\n", "../usr/share/zoneinfo/Asia/Tokyo"},
	}
	for i, s := range steps {
		got := e.as(s.uid, s.gid, s.req)
		if !strings.HasPrefix(got, s.reply) || !strings.HasSuffix(got, "\n") {
			t.Errorf("%d %s %q: reply %q, want %q…", i, s.who, s.req, got, s.reply)
		}
		if s.localtime != "" && e.localtime() != s.localtime {
			t.Errorf("%d %s %q: /etc/localtime -> %q, want %q", i, s.who, s.req, e.localtime(), s.localtime)
		}
		if s.req == "local-rtc 1" || s.req == "local-rtc 0" {
			b, err := os.ReadFile(filepath.Join(e.root, "etc/adjtime"))
			if err != nil || string(b) != "0.0 0 0\n0\nLOCAL\n" {
				t.Errorf("%d %s %q: adjtime %q, %v", i, s.who, s.req, b, err)
			}
		}
	}
	// The files are root's, written atomically, with nothing left behind.
	st, err := os.Lstat(filepath.Join(e.root, "etc/adjtime"))
	if err != nil || st.Mode().Perm() != 0o644 || st.Sys().(*syscall.Stat_t).Uid != 0 {
		t.Errorf("adjtime: %v %v", st, err)
	}
	ents, _ := os.ReadDir(filepath.Join(e.root, "etc"))
	for _, en := range ents {
		if strings.HasPrefix(en.Name(), ".") {
			t.Errorf("left behind etc/%s", en.Name())
		}
	}
	// The user cannot write there itself: the helper is what made it work.
	if out, err := exec.Command(needTool(t, "setpriv"), "--reuid="+u, "--regid="+g, "--clear-groups",
		"ln", "-sfn", "../usr/share/zoneinfo/UTC", filepath.Join(e.root, "etc/localtime")).CombinedOutput(); err == nil {
		t.Errorf("the test user could replace etc/localtime itself: %s", out)
	}
}
