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

	"gnomon.dev/gnomon/tests/peers"
)

// TestTimedatectlThroughHelper: gnomond started as root drops to the test
// user (as under systemd it runs as gnomon), keeps its seccomp filter, and
// the real timedatectl changes the zone of the temporary root through the
// helper, and reads RTCTimeUSec through it (0: the root has no RTC); with
// the helper gone, the change fails and nothing is written, while
// RTCTimeUSec still reads 0 and "timedatectl status" still works.
func TestTimedatectlThroughHelper(t *testing.T) {
	e := setup(t)
	for _, tool := range []string{"dbus-daemon", "timedatectl", "unshare"} {
		peers.NeedTool(t, tool)
	}
	addr := peers.StartSystemBus(t, e.dir, peers.PermissiveBusPolicy).Addr
	bus, err := godbus.Connect(addr)
	if err != nil {
		t.Fatal(err)
	}
	defer bus.Close()

	cfg := filepath.Join(e.dir, "gnomon.toml")
	if err := os.WriteFile(cfg, []byte("[clock]\nmode = \"observe\"\ndrift-file = \"\"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	peers.Start(t, e.dir, "gnomond", []string{"DBUS_SYSTEM_BUS_ADDRESS=" + addr},
		peers.Safe(t, gnomondBin, "--config", cfg, "--user", e.user.Username, "--state-dir", "", "--system-root", e.root,
			"--timedate-helper", e.sock, "--log-level", "debug")...)
	peers.Eventually(t, 15*time.Second, "gnomond owns org.freedesktop.timedate1", func() error {
		var owner string
		return bus.BusObject().Call("org.freedesktop.DBus.GetNameOwner", 0, "org.freedesktop.timedate1").Store(&owner)
	})
	// gnomond runs as the test user now.
	var pid uint32
	if err := bus.BusObject().Call("org.freedesktop.DBus.GetConnectionUnixProcessID", 0, "org.freedesktop.timedate1").Store(&pid); err != nil {
		t.Fatal(err)
	}
	peers.Eventually(t, 15*time.Second, "gnomond drops to the test user", func() error {
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
		cmd := exec.Command(peers.NeedTool(t, "unshare"), append([]string{"-m", "sh", "-c", script, "sh"}, args...)...)
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

	// RTCTimeUSec through the helper: the root has no dev/rtc, the helper
	// answers ENOENT, the property reads 0 (timedated's rule) and the
	// helper's log shows the read, asked for by the test user.
	td := bus.Object("org.freedesktop.timedate1", "/org/freedesktop/timedate1")
	rtcUSec := func() (any, error) {
		v, err := td.GetProperty("org.freedesktop.timedate1.RTCTimeUSec")
		return v.Value(), err
	}
	if v, err := rtcUSec(); err != nil || v != uint64(0) {
		t.Errorf("RTCTimeUSec without an RTC: %v, %v", v, err)
	}
	readLogged := func() error {
		log, err := os.ReadFile(e.helper.Log)
		if err != nil {
			return err
		}
		for _, l := range strings.Split(string(log), "\n") {
			if strings.Contains(l, "op=rtc-read") && strings.Contains(l, "uid="+e.user.Uid+" ") && strings.Contains(l, "dev/rtc: no such file or directory") {
				return nil
			}
		}
		return fmt.Errorf("no rtc-read of a missing dev/rtc from uid %s in the helper's log", e.user.Uid)
	}
	if err := readLogged(); err != nil {
		t.Error(err)
	}
	if out, err := timedatectl("status"); err != nil || !strings.Contains(out, "RTC time: n/a") {
		t.Errorf("timedatectl status: %v\n%s", err, out)
	}
	// A dev/rtc only root may open, which is no RTC: read as gnomond's
	// user it would be EACCES (0, by the fallback without a helper); the
	// helper opens it and its ENOTTY fails the read, as timedated's would.
	notRTC := filepath.Join(e.root, "dev/rtc")
	if err := os.WriteFile(notRTC, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if v, err := rtcUSec(); err == nil || !strings.Contains(err.Error(), "Failed to read RTC") {
		t.Errorf("RTCTimeUSec of a root-only non-RTC: %v, %v; want the helper's ENOTTY", v, err)
	}
	if err := os.Remove(notRTC); err != nil {
		t.Fatal(err)
	}
	// Without the helper, gnomond (the test user) cannot write the root's
	// /etc: the call fails and nothing changes.
	e.helper.Cmd.Process.Signal(syscall.SIGTERM)
	peers.Eventually(t, 15*time.Second, "helper gone", func() error {
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
	// Reads do not fail for it: RTCTimeUSec is 0 and status works.
	if v, err := rtcUSec(); err != nil || v != uint64(0) {
		t.Errorf("RTCTimeUSec without the helper: %v, %v", v, err)
	}
	if out, err := timedatectl("status"); err != nil || !strings.Contains(out, "RTC time: n/a") {
		t.Errorf("timedatectl status without the helper: %v\n%s", err, out)
	}
}
