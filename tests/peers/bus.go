package peers

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	godbus "github.com/godbus/dbus/v5"
)

// PermissiveBusPolicy lets every user own any name and call any method on
// a SystemBus: whether a caller may change something is then for gnomond
// and polkit to decide, not the bus.
const PermissiveBusPolicy = `  <policy context="default">
    <allow user="*"/>
    <allow own="*"/>
    <allow send_type="method_call"/>
    <allow send_destination="*"/>
    <allow receive_type="*"/>
    <allow receive_sender="*"/>
  </policy>
`

// SystemBus is a private dbus-daemon of the system type that a test
// started with StartSystemBus; clients find it at Addr (for
// DBUS_SYSTEM_BUS_ADDRESS).
type SystemBus struct {
	*Proc
	Sock string // the listening socket
	Addr string // unix:path=Sock
	Conf string // the configuration file
	dir  string
}

// StartSystemBus writes dir/bus.conf, a system-type bus listening on
// dir/system_bus_socket with EXTERNAL authentication and then policy (the
// XML that follows in <busconfig>: <policy> elements, <include>s; see
// PermissiveBusPolicy), starts dbus-daemon on it and waits up to 10 s
// until a client can connect. The daemon is stopped when the test ends.
func StartSystemBus(t testing.TB, dir, policy string) *SystemBus {
	t.Helper()
	b := &SystemBus{Sock: filepath.Join(dir, "system_bus_socket"), Conf: filepath.Join(dir, "bus.conf"), dir: dir}
	b.Addr = "unix:path=" + b.Sock
	conf := `<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <type>system</type>
  <listen>` + b.Addr + `</listen>
  <auth>EXTERNAL</auth>
` + policy + `</busconfig>
`
	if err := os.WriteFile(b.Conf, []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	b.start(t)
	return b
}

// Restart starts a new dbus-daemon on the same configuration and address
// after the previous one has exited (a test kills the bus to see its
// clients come back), removing the socket the dead one left behind.
func (b *SystemBus) Restart(t testing.TB) {
	t.Helper()
	if b.Alive() {
		t.Fatal("SystemBus.Restart: the previous dbus-daemon is still running")
	}
	os.Remove(b.Sock)
	b.start(t)
}

func (b *SystemBus) start(t testing.TB) {
	t.Helper()
	b.Proc = Start(t, b.dir, "dbus-daemon", nil, NeedTool(t, "dbus-daemon"), "--config-file="+b.Conf, "--nofork", "--nopidfile")
	Eventually(t, 10*time.Second, "dbus-daemon listening", func() error {
		c, err := godbus.Connect(b.Addr)
		if err != nil {
			return err
		}
		c.Close()
		return nil
	})
}

// NewSystemRoot makes dir/root, a temporary system root for gnomond's
// --system-root and the timedate helper's --root: etc, usr/share and dev,
// this machine's zoneinfo linked at usr/share/zoneinfo, and etc/localtime
// a relative link to zone (like "Europe/Berlin"). It returns the root.
func NewSystemRoot(t testing.TB, dir, zone string) string {
	t.Helper()
	root := filepath.Join(dir, "root")
	for _, d := range []string{"etc", "usr/share", "dev"} {
		if err := os.MkdirAll(filepath.Join(root, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Symlink("/usr/share/zoneinfo", filepath.Join(root, "usr/share/zoneinfo")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("../usr/share/zoneinfo/"+zone, filepath.Join(root, "etc/localtime")); err != nil {
		t.Fatal(err)
	}
	return root
}
