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
// helper; with the helper gone, the change fails and nothing is written.
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
}
