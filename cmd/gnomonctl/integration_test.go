package main

// gnomonctl against the real gnomond: a private system bus (dbus-daemon),
// the real polkitd with gnomon's action file, chronyd -x as a stratum-1
// server on loopback, gnomond in observe mode syncing from it. Every daemon
// runs without CAP_SYS_TIME.

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"
)

func skipOrFatal(t *testing.T, format string, args ...any) {
	t.Helper()
	if os.Getenv("CI") == "true" {
		t.Fatalf(format+" (CI=true: may not be skipped)", args...)
	}
	t.Skipf(format, args...)
}

func tool(t *testing.T, name string) string {
	t.Helper()
	if filepath.IsAbs(name) {
		if _, err := os.Stat(name); err != nil {
			skipOrFatal(t, "%s: %v", name, err)
		}
		return name
	}
	if p, err := exec.LookPath(name); err == nil {
		return p
	}
	for _, d := range []string{"/usr/sbin", "/sbin"} {
		if _, err := os.Stat(filepath.Join(d, name)); err == nil {
			return filepath.Join(d, name)
		}
	}
	skipOrFatal(t, "%s is not installed", name)
	return ""
}

// daemon is a process the test started; it is stopped (SIGTERM, then
// SIGKILL) when the test ends, and its output shown if the test failed.
type daemon struct {
	name string
	cmd  *exec.Cmd
	out  *bytes.Buffer
	done chan struct{}
}

func start(t *testing.T, name string, env []string, argv ...string) *daemon {
	t.Helper()
	d := &daemon{name: name, out: &bytes.Buffer{}, done: make(chan struct{})}
	d.cmd = exec.Command(argv[0], argv[1:]...)
	d.cmd.Env = append(os.Environ(), env...)
	pr, pw, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	d.cmd.Stdout, d.cmd.Stderr = pw, pw
	if err := d.cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", name, err)
	}
	pw.Close()
	copied := make(chan struct{})
	go func() {
		var buf [4096]byte
		for {
			n, err := pr.Read(buf[:])
			if n > 0 && d.out.Len() < 1<<20 {
				d.out.Write(buf[:n])
			}
			if err != nil {
				break
			}
		}
		pr.Close()
		close(copied)
	}()
	go func() {
		d.cmd.Wait()
		<-copied
		close(d.done)
	}()
	t.Cleanup(func() {
		d.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-d.done:
		case <-time.After(5 * time.Second):
			d.cmd.Process.Kill()
			<-d.done
		}
		if t.Failed() {
			s := d.out.String()
			if len(s) > 5000 {
				s = s[len(s)-5000:]
			}
			t.Logf("--- %s output:\n%s", name, s)
		}
	})
	return d
}

func eventually(t *testing.T, timeout time.Duration, what string, f func() error) {
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
		time.Sleep(200 * time.Millisecond)
	}
}

func freeUDPPort(t *testing.T) int {
	t.Helper()
	c, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	return c.LocalAddr().(*net.UDPAddr).Port
}

// build builds a command of this module into dir.
func build(t *testing.T, dir, pkg string) string {
	t.Helper()
	_, file, _, _ := runtime.Caller(0)
	root := filepath.Join(filepath.Dir(file), "..", "..")
	out := filepath.Join(dir, filepath.Base(pkg))
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "go", "build", "-o", out, pkg)
	cmd.Dir = root
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build %s: %v\n%s", pkg, err, b)
	}
	return out
}

type ctlResult struct {
	code           int
	stdout, stderr string
}

// ctl runs the built gnomonctl on the private bus, as root or (with
// asNobody) as the unprivileged user nobody.
func ctl(t *testing.T, bin, addr string, asNobody bool, args ...string) ctlResult {
	t.Helper()
	argv := append([]string{bin, "--bus", addr}, args...)
	if asNobody {
		argv = append([]string{tool(t, "setpriv"), "--reuid=65534", "--regid=65534", "--clear-groups"}, argv...)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatalf("%v: %v", argv, err)
	}
	return ctlResult{code, stdout.String(), stderr.String()}
}

func TestAgainstGnomond(t *testing.T) {
	if testing.Short() {
		t.Skip("starts daemons")
	}
	if os.Geteuid() != 0 {
		skipOrFatal(t, "needs root (polkitd, setpriv)")
	}
	dbusDaemon, polkitd, chronyd, setpriv := tool(t, "dbus-daemon"), tool(t, "/usr/lib/polkit-1/polkitd"), tool(t, "chronyd"), tool(t, "setpriv")
	safe := func(argv ...string) []string {
		return append([]string{setpriv, "--bounding-set=-sys_time", "--inh-caps=-sys_time"}, argv...)
	}

	dir, err := os.MkdirTemp("", "gnomonctl-it-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	// nobody must reach the binary and the bus socket.
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	gnomond := build(t, dir, "./cmd/gnomond")
	gnomonctl := build(t, dir, "./cmd/gnomonctl")

	// A private system bus that everyone may use (polkit decides).
	sock := filepath.Join(dir, "system_bus_socket")
	addr := "unix:path=" + sock
	busConf := filepath.Join(dir, "bus.conf")
	os.WriteFile(busConf, []byte(`<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <type>system</type>
  <listen>`+addr+`</listen>
  <auth>EXTERNAL</auth>
  <policy context="default">
    <allow user="*"/>
    <allow own="*"/>
    <allow send_type="method_call"/>
    <allow send_destination="*"/>
    <allow receive_sender="*"/>
  </policy>
</busconfig>
`), 0o644)
	start(t, "dbus-daemon", nil, dbusDaemon, "--config-file="+busConf, "--nofork", "--nopidfile")
	eventually(t, 10*time.Second, "the bus socket", func() error { _, err := os.Stat(sock); return err })

	// gnomon's polkit action, under a name of this test's own, so that
	// other tests installing polkit/org.gnomon.Gnomon1.policy are not
	// disturbed (polkit takes the same definition twice).
	_, file, _, _ := runtime.Caller(0)
	policy, err := os.ReadFile(filepath.Join(filepath.Dir(file), "..", "..", "polkit", "org.gnomon.Gnomon1.policy"))
	if err != nil {
		skipOrFatal(t, "polkit action file: %v", err)
	}
	tag := make([]byte, 4)
	rand.Read(tag)
	actionFile := "/usr/share/polkit-1/actions/org.gnomon.Gnomon1.gnomonctl-test-" + hex.EncodeToString(tag) + ".policy"
	if err := os.WriteFile(actionFile, policy, 0o644); err != nil {
		skipOrFatal(t, "installing the polkit action: %v", err)
	}
	t.Cleanup(func() { os.Remove(actionFile) })
	start(t, "polkitd", []string{"DBUS_SYSTEM_BUS_ADDRESS=" + addr}, polkitd, "--no-debug")

	// chronyd -x: a stratum-1 server on loopback.
	port := freeUDPPort(t)
	chronyConf := filepath.Join(dir, "chrony.conf")
	os.WriteFile(chronyConf, []byte(fmt.Sprintf("port %d\nbindaddress 127.0.0.1\nallow 127.0.0.1\nlocal stratum 1\ncmdport 0\nbindcmdaddress /\npidfile %s\n",
		port, filepath.Join(dir, "chronyd.pid"))), 0o644)
	os.Chmod(dir, 0o777) // chronyd drops to _chrony and writes its PID file here
	start(t, "chronyd", nil, safe(chronyd, "-x", "-d", "-f", chronyConf)...)

	// gnomond in observe mode, polling chronyd quickly.
	cfg := filepath.Join(dir, "gnomon.toml")
	os.WriteFile(cfg, []byte(fmt.Sprintf(`[clock]
mode = "observe"
drift-file = ""

[[source]]
mode = "server"
address = "127.0.0.1:%d"
poll-interval-limits = { min = 0, max = 2 }
`, port)), 0o644)
	state := filepath.Join(dir, "state")
	os.Mkdir(state, 0o755)
	start(t, "gnomond", []string{"DBUS_SYSTEM_BUS_ADDRESS=" + addr},
		safe(gnomond, "--config", cfg, "--user", "", "--state-dir", state, "--system-root", dir, "--log-level", "debug")...)

	// status shows the chronyd source as selected.
	var st ctlResult
	eventually(t, 60*time.Second, "gnomonctl status shows chronyd selected", func() error {
		st = ctl(t, gnomonctl, addr, false, "status")
		if st.code != 0 {
			return fmt.Errorf("exit %d: %s", st.code, st.stderr)
		}
		if !strings.Contains(st.stdout, "Synchronized:     yes") || !strings.Contains(st.stdout, "^* 127.0.0.1 ") {
			return fmt.Errorf("not yet:\n%s", st.stdout)
		}
		return nil
	})
	t.Logf("gnomonctl status:\n%s", st.stdout)

	// --json parses, and says the same.
	js := ctl(t, gnomonctl, addr, false, "status", "--json")
	var s struct {
		SchemaVersion int    `json:"schema_version"`
		Synchronized  bool   `json:"synchronized"`
		ClockMode     string `json:"clock_mode"`
		Stratum       int    `json:"stratum"`
		SelectedName  string `json:"selected_name"`
		Sources       []struct {
			Address  string `json:"address"`
			State    string `json:"state"`
			Selected bool   `json:"selected"`
			Stratum  int    `json:"stratum"`
			Reach    int    `json:"reach"`
		} `json:"sources"`
	}
	if err := json.Unmarshal([]byte(js.stdout), &s); err != nil || js.code != 0 {
		t.Fatalf("status --json: exit %d, %v\n%s", js.code, err, js.stdout)
	}
	want := fmt.Sprintf("127.0.0.1:%d", port)
	if s.SchemaVersion != 1 || !s.Synchronized || s.ClockMode != "observe" || s.Stratum != 2 || len(s.Sources) != 1 ||
		s.Sources[0].Address != want || !s.Sources[0].Selected || s.Sources[0].State != "selected" || s.Sources[0].Stratum != 1 || s.Sources[0].Reach == 0 {
		t.Errorf("status --json = %+v", s)
	}
	if src := ctl(t, gnomonctl, addr, false, "sources", "--json"); src.code != 0 || !json.Valid([]byte(src.stdout)) {
		t.Errorf("sources --json: exit %d\n%s%s", src.code, src.stdout, src.stderr)
	}
	if w := ctl(t, gnomonctl, addr, false, "sources", "--watch", "--count", "2", "--interval", "100ms"); w.code != 0 || strings.Count(w.stdout, "MS Name/IP") != 2 {
		t.Errorf("sources --watch: exit %d\n%s%s", w.code, w.stdout, w.stderr)
	}

	// An unprivileged user may read, but polkit refuses changes.
	if r := ctl(t, gnomonctl, addr, true, "status"); r.code != 0 {
		t.Errorf("status as nobody: exit %d %s", r.code, r.stderr)
	}
	for _, args := range [][]string{
		{"add-source", "127.0.0.2"},
		{"add-source", "--no-ask-password", "127.0.0.2"},
		{"remove-source", want},
		{"burst"},
		{"reload", "--no-ask-password"},
	} {
		r := ctl(t, gnomonctl, addr, true, args...)
		if r.code != 1 || !strings.Contains(r.stderr, "hint: polkit refused") {
			t.Errorf("%v as nobody: exit %d, stderr %q; want 1 and the polkit hint", args, r.code, r.stderr)
		}
	}
	// Root may: add a second source, see it, remove it.
	add := ctl(t, gnomonctl, addr, false, "add-source", "127.0.0.3:"+fmt.Sprint(port))
	if add.code != 0 || !strings.Contains(add.stdout, "added server") {
		t.Fatalf("add-source as root: exit %d\n%s%s", add.code, add.stdout, add.stderr)
	}
	eventually(t, 10*time.Second, "the new source listed", func() error {
		r := ctl(t, gnomonctl, addr, false, "sources")
		if !strings.Contains(r.stdout, "127.0.0.3") {
			return fmt.Errorf("%s", r.stdout)
		}
		return nil
	})
	if r := ctl(t, gnomonctl, addr, false, "burst", "127.0.0.3:"+fmt.Sprint(port)); r.code != 0 {
		t.Errorf("burst as root: exit %d %s", r.code, r.stderr)
	}
	if r := ctl(t, gnomonctl, addr, false, "remove-source", "127.0.0.3:"+fmt.Sprint(port)); r.code != 0 {
		t.Errorf("remove-source as root: exit %d %s", r.code, r.stderr)
	}
	if r := ctl(t, gnomonctl, addr, false, "remove-source", "127.0.0.3:"+fmt.Sprint(port)); r.code != 1 {
		t.Errorf("remove-source of a removed source: exit %d %s", r.code, r.stderr)
	}
}
