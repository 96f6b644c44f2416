package helpertest

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	godbus "github.com/godbus/dbus/v5"
)

const permissiveBus = `<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <type>system</type>
  <listen>unix:path=%s</listen>
  <auth>EXTERNAL</auth>
  <policy context="default">
    <allow user="*"/>
    <allow own="*"/>
    <allow send_type="method_call"/>
    <allow send_destination="*"/>
    <allow receive_type="*"/>
  </policy>
</busconfig>
`

// startLogged starts argv logging to dir/name.log and stops it (SIGTERM,
// then SIGKILL) when the test ends.
func startLogged(t *testing.T, dir, name string, env []string, argv ...string) {
	t.Helper()
	logPath := filepath.Join(dir, name+".log")
	f, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Stdout, cmd.Stderr = f, f
	cmd.Env = append(os.Environ(), env...)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
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
			b, _ := os.ReadFile(logPath)
			if len(b) > 5000 {
				b = b[len(b)-5000:]
			}
			t.Logf("--- %s log:\n%s", name, b)
		}
	})
}

func waitFor(t *testing.T, what string, f func() error) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		err := f()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: %v", what, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// TestTimedatectlThroughHelper: gnomond started as root drops to the test
// user (as under systemd it runs as gnomon), keeps its seccomp filter, and
// the real timedatectl changes the zone of the temporary root through the
// helper; with the helper gone, the change fails and nothing is written.
func TestTimedatectlThroughHelper(t *testing.T) {
	e := setup(t)
	for _, tool := range []string{"dbus-daemon", "timedatectl", "unshare"} {
		needTool(t, tool)
	}
	sock := filepath.Join(e.dir, "system_bus_socket")
	addr := "unix:path=" + sock
	conf := filepath.Join(e.dir, "bus.conf")
	if err := os.WriteFile(conf, []byte(fmt.Sprintf(permissiveBus, sock)), 0o644); err != nil {
		t.Fatal(err)
	}
	startLogged(t, e.dir, "dbus-daemon", nil, needTool(t, "dbus-daemon"), "--config-file="+conf, "--nofork", "--nopidfile")
	var bus *godbus.Conn
	waitFor(t, "private bus", func() (err error) { bus, err = godbus.Connect(addr); return err })
	defer bus.Close()

	cfg := filepath.Join(e.dir, "gnomon.toml")
	if err := os.WriteFile(cfg, []byte("[clock]\nmode = \"observe\"\ndrift-file = \"\"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	startLogged(t, e.dir, "gnomond", []string{"DBUS_SYSTEM_BUS_ADDRESS=" + addr},
		needTool(t, "setpriv"), "--bounding-set=-sys_time", "--inh-caps=-sys_time",
		gnomondBin, "--config", cfg, "--user", e.user.Username, "--state-dir", "", "--system-root", e.root,
		"--timedate-helper", e.sock, "--log-level", "debug")
	waitFor(t, "gnomond owns org.freedesktop.timedate1", func() error {
		var owner string
		return bus.BusObject().Call("org.freedesktop.DBus.GetNameOwner", 0, "org.freedesktop.timedate1").Store(&owner)
	})
	// gnomond runs as the test user now.
	var pid uint32
	if err := bus.BusObject().Call("org.freedesktop.DBus.GetConnectionUnixProcessID", 0, "org.freedesktop.timedate1").Store(&pid); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "gnomond drops to the test user", func() error {
		st, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
		if err != nil {
			return err
		}
		for _, l := range strings.Split(string(st), "\n") {
			if f := strings.Fields(l); len(f) == 5 && f[0] == "Uid:" {
				if f[1] == e.user.Uid && f[2] == e.user.Uid {
					return nil
				}
				return fmt.Errorf("%s", l)
			}
		}
		return fmt.Errorf("no Uid line")
	})

	timedatectl := func(args ...string) (string, error) {
		script := `mount -t tmpfs tmpfs /run/systemd && mkdir /run/systemd/system && exec timedatectl --no-pager --no-ask-password "$@"`
		cmd := exec.Command(needTool(t, "unshare"), append([]string{"-m", "sh", "-c", script, "sh"}, args...)...)
		cmd.Env = append(os.Environ(), "DBUS_SYSTEM_BUS_ADDRESS="+addr)
		out, err := cmd.CombinedOutput()
		return string(out), err
	}
	if out, err := timedatectl("set-timezone", "America/New_York"); err != nil {
		t.Fatalf("timedatectl set-timezone: %v\n%s", err, out)
	}
	if got := e.localtime(); got != "../usr/share/zoneinfo/America/New_York" {
		t.Errorf("after set-timezone: etc/localtime -> %q", got)
	}
	out, err := timedatectl("show", "-p", "Timezone", "--value")
	if err != nil || strings.TrimSpace(out) != "America/New_York" {
		t.Errorf("timedatectl show: %q %v", out, err)
	}
	if out, err := timedatectl("set-local-rtc", "1"); err != nil {
		t.Fatalf("timedatectl set-local-rtc: %v\n%s", err, out)
	}
	if b, err := os.ReadFile(filepath.Join(e.root, "etc/adjtime")); err != nil || string(b) != "0.0 0 0\n0\nLOCAL\n" {
		t.Errorf("adjtime %q %v", b, err)
	}
	// Without the helper, gnomond (the test user) cannot write the root's
	// /etc: the call fails and nothing changes.
	e.helper.Process.Signal(syscall.SIGTERM)
	waitFor(t, "helper gone", func() error {
		if _, err := os.Stat(e.sock); err == nil {
			return fmt.Errorf("socket still there")
		}
		return nil
	})
	out, err = timedatectl("set-timezone", "Asia/Tokyo")
	if err == nil || !strings.Contains(out, "Failed to set time zone") {
		t.Errorf("set-timezone without the helper: %v\n%s", err, out)
	}
	if got := e.localtime(); got != "../usr/share/zoneinfo/America/New_York" {
		t.Errorf("without the helper: etc/localtime -> %q", got)
	}
}
