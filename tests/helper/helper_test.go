// Package helpertest runs the real gnomon-timedate-helper as root on a
// socket in a temporary directory with a temporary system root, and talks
// to it as a user made for the test (allowed), as nobody (refused) and as
// root; then runs gnomond as that unprivileged user on a private bus and
// changes the zone with the real timedatectl, and reads RTCTimeUSec,
// through the helper.
package helpertest

import (
	"context"
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
	"gnomon.dev/gnomon/tests/peers"
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
	// These tests watch gnomond drop to another user, which a race-enabled
	// build cannot do (it links cgo, see service/privdrop): always the
	// CGO_ENABLED=0 build here.
	os.Unsetenv(peers.PrebuiltGnomond)
	os.Exit(peers.BuildAndRun(m, map[string]*string{
		"./cmd/gnomon-timedate-helper": &helperBin,
		"./cmd/gnomond":                &gnomondBin,
	}))
}

func clientMain(sock, req string) int {
	r, err := tdhelper.ParseRequest([]byte(req + "\n"))
	if err != nil {
		// Send it raw: the helper must refuse it itself.
		fmt.Print(rawRequest(sock, req+"\n"))
		return 0
	}
	c := &tdhelper.Client{Path: sock, Timeout: 10 * time.Second}
	if r.Op == tdhelper.OpReadRTC {
		at, err := c.ReadRTC(context.Background())
		if err == nil {
			line, err := tdhelper.EncodeRTCReply(at)
			if err == nil {
				fmt.Print(string(line))
				return 0
			}
		}
		fmt.Print(string(tdhelper.EncodeReply(unwrapHelper(err))))
		return 0
	}
	err = c.Do(context.Background(), r)
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

// env is a temporary system root, a test user and a running helper.
type env struct {
	t      *testing.T
	dir    string // 0755, root's
	root   string // the system root the helper writes under
	sock   string
	user   *user.User
	helper *peers.Proc
}

func setup(t *testing.T) *env {
	peers.NeedRoot(t, "the helper runs as root; useradd, setpriv")
	for _, tool := range []string{"useradd", "userdel", "setpriv"} {
		peers.NeedTool(t, tool)
	}
	e := &env{t: t}
	dir := peers.TempDir(t, 0o755)
	e.dir = dir
	e.root = peers.NewSystemRoot(t, dir, "Europe/Berlin")
	name := "gnh" + peers.RandomHex(t, 4)
	if out, err := exec.Command(peers.NeedTool(t, "useradd"), "-r", "-M", "-d", "/nonexistent", "-s", "/usr/sbin/nologin", name).CombinedOutput(); err != nil {
		t.Fatalf("useradd: %v %s", err, out)
	}
	t.Cleanup(func() {
		if out, err := exec.Command(peers.NeedTool(t, "userdel"), name).CombinedOutput(); err != nil {
			t.Errorf("userdel %s: %v %s", name, err, out)
		}
	})
	var err error
	if e.user, err = user.Lookup(name); err != nil {
		t.Fatal(err)
	}
	e.sock = filepath.Join(dir, "helper.sock")
	e.startHelper()
	return e
}

func (e *env) startHelper() {
	t := e.t
	// Without CAP_SYS_TIME: this test has no RTC to set, and no test
	// touches the clock.
	e.helper = peers.Start(t, e.dir, "helper", nil, peers.Safe(t,
		helperBin, "--listen", e.sock, "--root", e.root, "--allow-user", e.user.Username, "--idle-timeout", "0", "--log-level", "debug")...)
	peers.Eventually(t, 10*time.Second, "the helper creates its socket", func() error {
		_, err := os.Stat(e.sock)
		return err
	})
}

// as sends req to the helper from a child process running as uid:gid.
func (e *env) as(uid, gid, req string) string {
	t := e.t
	t.Helper()
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(peers.NeedTool(t, "setpriv"), "--reuid="+uid, "--regid="+gid, "--clear-groups", self)
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
		{"user", u, g, "rtc-read", "error: ENOENT: ", ""},
		{"user", u, g, "rtc-read now", "error: EINVAL: bad request", ""},
		{"nobody", nobody.Uid, nobody.Gid, "rtc-read", "error: EPERM: ", ""},
		{"root", "0", "0", "rtc-read", "error: ENOENT: ", ""},
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
	// The helper reads the RTC as root: a dev/rtc only root may open (a
	// plain file here, there being no RTC) is opened, and the RTC ioctl's
	// ENOTTY comes back, where the user itself gets EACCES.
	notRTC := filepath.Join(e.root, "dev/rtc")
	if err := os.WriteFile(notRTC, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if got := e.as(u, g, "rtc-read"); !strings.HasPrefix(got, "error: ENOTTY: ") {
		t.Errorf("rtc-read of a root-only non-RTC: %q, want ENOTTY", got)
	}
	if out, err := exec.Command(peers.NeedTool(t, "setpriv"), "--reuid="+u, "--regid="+g, "--clear-groups",
		"cat", notRTC).CombinedOutput(); err == nil {
		t.Errorf("the test user could open dev/rtc itself: %s", out)
	}
	if err := os.Remove(notRTC); err != nil {
		t.Fatal(err)
	}
	// The user cannot write there itself: the helper is what made it work.
	if out, err := exec.Command(peers.NeedTool(t, "setpriv"), "--reuid="+u, "--regid="+g, "--clear-groups",
		"ln", "-sfn", "../usr/share/zoneinfo/UTC", filepath.Join(e.root, "etc/localtime")).CombinedOutput(); err == nil {
		t.Errorf("the test user could replace etc/localtime itself: %s", out)
	}
}
