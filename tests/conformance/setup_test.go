package conformance

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	godbus "github.com/godbus/dbus/v5"

	"gnomon.dev/gnomon/tests/peers"
)

const polkitRules = "/etc/polkit-1/rules.d"

// ntpUnit is the unit timedated is told to manage
// ($SYSTEMD_TIMEDATED_NTP_SERVICES), served by the systemd1 stand-in.
const ntpUnit = "systemd-timesyncd.service"

// systemd1 is a stand-in for the part of PID 1's org.freedesktop.systemd1
// that systemd-timedated 252 uses: GetAll("") on the NTP unit's object
// (LoadState, ActiveState, UnitFileState), EnableUnitFiles,
// DisableUnitFiles, Reload, StartUnit and StopUnit, and the JobRemoved
// signal that tells timedated a job is done. Start and stop finish at
// once.
type systemd1 struct {
	conn     *godbus.Conn
	mu       sync.Mutex
	active   string
	fileSt   string
	nextJob  uint32
	requests []string
}

const sdPath = godbus.ObjectPath("/org/freedesktop/systemd1")

func unitPath(name string) godbus.ObjectPath {
	var b strings.Builder
	for _, c := range []byte(name) {
		if c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' {
			b.WriteByte(c)
		} else {
			fmt.Fprintf(&b, "_%02x", c)
		}
	}
	return godbus.ObjectPath("/org/freedesktop/systemd1/unit/" + b.String())
}

type sdManager struct{ s *systemd1 }

func (m sdManager) job(start bool, unit string) (godbus.ObjectPath, *godbus.Error) {
	s := m.s
	s.mu.Lock()
	s.nextJob++
	id := s.nextJob
	if start {
		s.active = "active"
	} else {
		s.active = "inactive"
	}
	s.requests = append(s.requests, fmt.Sprintf("start=%v %s", start, unit))
	s.mu.Unlock()
	p := godbus.ObjectPath(fmt.Sprintf("/org/freedesktop/systemd1/job/%d", id))
	go func() {
		time.Sleep(20 * time.Millisecond)
		_ = s.conn.Emit(sdPath, "org.freedesktop.systemd1.Manager.JobRemoved", id, p, unit, "done")
	}()
	return p, nil
}

func (m sdManager) StartUnit(unit, mode string) (godbus.ObjectPath, *godbus.Error) {
	return m.job(true, unit)
}
func (m sdManager) StopUnit(unit, mode string) (godbus.ObjectPath, *godbus.Error) {
	return m.job(false, unit)
}

type unitChange struct{ Type, File, Dest string }

func (m sdManager) EnableUnitFiles(files []string, runtime, force bool) (bool, []unitChange, *godbus.Error) {
	m.s.mu.Lock()
	m.s.fileSt = "enabled"
	m.s.mu.Unlock()
	return true, []unitChange{{"symlink", "/etc/systemd/system/sysinit.target.wants/" + ntpUnit, "/lib/systemd/system/" + ntpUnit}}, nil
}
func (m sdManager) DisableUnitFiles(files []string, runtime bool) ([]unitChange, *godbus.Error) {
	m.s.mu.Lock()
	m.s.fileSt = "disabled"
	m.s.mu.Unlock()
	return []unitChange{{"unlink", "/etc/systemd/system/sysinit.target.wants/" + ntpUnit, ""}}, nil
}
func (m sdManager) Reload() *godbus.Error    { return nil }
func (m sdManager) Subscribe() *godbus.Error { return nil }

type sdUnitProps struct{ s *systemd1 }

func (p sdUnitProps) GetAll(iface string) (map[string]godbus.Variant, *godbus.Error) {
	p.s.mu.Lock()
	defer p.s.mu.Unlock()
	return map[string]godbus.Variant{
		"Id": godbus.MakeVariant(ntpUnit), "LoadState": godbus.MakeVariant("loaded"),
		"ActiveState": godbus.MakeVariant(p.s.active), "UnitFileState": godbus.MakeVariant(p.s.fileSt),
	}, nil
}

// jobCount is how many start and stop jobs timedated asked for.
func (s *systemd1) jobCount() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.requests)
}

func startSystemd1(t *testing.T, addr string) *systemd1 {
	conn, err := godbus.Connect(addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	s := &systemd1{conn: conn, active: "active", fileSt: "enabled"}
	if err := conn.Export(sdManager{s}, sdPath, "org.freedesktop.systemd1.Manager"); err != nil {
		t.Fatal(err)
	}
	if err := conn.Export(sdUnitProps{s}, unitPath(ntpUnit), "org.freedesktop.DBus.Properties"); err != nil {
		t.Fatal(err)
	}
	if _, err := conn.RequestName("org.freedesktop.systemd1", godbus.NameFlagDoNotQueue); err != nil {
		t.Fatal(err)
	}
	return s
}

// netifState is the shell line that writes what systemd-networkd would
// write in /run/systemd/netif/state, with its NTP= line, in a private
// /run/systemd: both timesyncd and gnomond read it for LinkNTPServers.
const netifState = `mkdir -p /run/systemd/netif/links && printf '# This is private data. Do not parse.\nOPER_STATE=routable\nNTP=127.0.0.7 a..b ntp.example 127.0.0.7\n' > /run/systemd/netif/state`

// overlayEtc is the shell line that gives the process a private /etc: an
// overlay of the real one whose changes land in upper.
func overlayEtc(upper, work string) string {
	return fmt.Sprintf("mount -t overlay overlay -o lowerdir=/etc,upperdir=%s,workdir=%s /etc", upper, work)
}

func mkdirs(t *testing.T, dirs ...string) {
	for _, d := range dirs {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
}

func writeFile(t *testing.T, path, content string, perm os.FileMode) {
	if err := os.WriteFile(path, []byte(content), perm); err != nil {
		t.Fatal(err)
	}
}

// setup starts both sides. users are the unprivileged callers.
func setup(t *testing.T, users []testUser, exe string) (sd, gn *side) {
	dir := peers.TempDir(t, 0o755)
	policy := peers.PermissiveBusPolicy

	// --- systemd: timedated (bus-activated, so that its 30 s idle exit does
	// not matter) and timesyncd on bus A.
	sd = &side{name: "systemd", dir: filepath.Join(dir, "systemd")}
	tdUpper, tdWork := filepath.Join(sd.dir, "td-upper"), filepath.Join(sd.dir, "td-work")
	tsUpper, tsWork := filepath.Join(sd.dir, "ts-upper"), filepath.Join(sd.dir, "ts-work")
	services := filepath.Join(sd.dir, "services")
	mkdirs(t, tdUpper, tdWork, filepath.Join(tsUpper, "systemd"), tsWork, services)
	sd.upper = tdUpper
	addrA := "unix:path=" + filepath.Join(sd.dir, "system_bus_socket")
	tdScript := filepath.Join(sd.dir, "timedated.sh")
	writeFile(t, tdScript, fmt.Sprintf(`#!/bin/sh
export DBUS_SYSTEM_BUS_ADDRESS=%s SYSTEMD_TIMEDATED_NTP_SERVICES=%s SYSTEMD_LOG_LEVEL=debug
exec unshare -m --propagation private sh -c '%s && exec setpriv --bounding-set=-sys_time --inh-caps=-sys_time %s'
`, addrA, ntpUnit, overlayEtc(tdUpper, tdWork), timedatedPath), 0o755)
	writeFile(t, filepath.Join(services, "org.freedesktop.timedate1.service"),
		"[D-BUS Service]\nName=org.freedesktop.timedate1\nExec=/bin/sh "+tdScript+"\nUser=root\n", 0o644)
	sd.bus = peers.StartSystemBus(t, sd.dir, policy+"  <servicedir>"+services+"</servicedir>\n")
	sd.jobs = startSystemd1(t, sd.bus.Addr).jobCount

	ts := lookupUser(t, "systemd-timesync")
	writeFile(t, filepath.Join(tsUpper, "systemd", "timesyncd.conf"), "[Time]\nNTP=\nFallbackNTP=\n", 0o644)
	tsInner := fmt.Sprintf(`%s && mount -t tmpfs -o mode=0755 tmpfs /run/systemd && %s && mkdir -p /run/systemd/timesync && chown %s:%s /run/systemd/timesync && mount -t tmpfs -o uid=%s,gid=%s tmpfs /var/lib/systemd && mkdir -p /var/lib/systemd/timesync && exec setpriv --reuid=%s --regid=%s --clear-groups --bounding-set=-sys_time --inh-caps=-sys_time %s`,
		overlayEtc(tsUpper, tsWork), netifState, ts.uid, ts.gid, ts.uid, ts.gid, ts.uid, ts.gid, timesyncdPath())
	peers.Start(t, sd.dir, "timesyncd", []string{"DBUS_SYSTEM_BUS_ADDRESS=" + sd.bus.Addr, "SYSTEMD_LOG_LEVEL=debug"},
		"unshare", "-m", "-n", "--propagation", "private", "sh", "-c", tsInner)

	// --- gnomon: gnomond in observe mode on bus B, without CAP_SYS_TIME,
	// with a private /etc.
	gn = &side{name: "gnomon", dir: filepath.Join(dir, "gnomon")}
	gUpper, gWork, state := filepath.Join(gn.dir, "upper"), filepath.Join(gn.dir, "work"), filepath.Join(gn.dir, "state")
	mkdirs(t, gUpper, gWork, state)
	gn.upper = gUpper
	gn.bus = peers.StartSystemBus(t, gn.dir, policy)
	cfg := filepath.Join(gn.dir, "gnomon.toml")
	// No sources (timesyncd has none either); timesyncd's poll and
	// distance defaults.
	writeFile(t, cfg, "[clock]\nmode = \"observe\"\ndrift-file = \"\"\n\n[synchronization]\nmax-distance = 5.0\n\n[source-defaults]\npoll-interval-limits = { min = 5, max = 11 }\n", 0o644)
	gInner := fmt.Sprintf(`%s && mount -t tmpfs -o mode=0755 tmpfs /run/systemd && %s && ip link set lo up && exec setpriv --bounding-set=-sys_time --inh-caps=-sys_time %s --config %s --observe --user "" --state-dir %s --bus-address %s --timedate-helper "" --log-level debug`,
		overlayEtc(gUpper, gWork), netifState, gnomondBin, cfg, state, gn.bus.Addr)
	peers.Start(t, gn.dir, "gnomond", nil, "unshare", "-m", "-n", "--propagation", "private", "sh", "-c", gInner)

	for _, s := range []*side{sd, gn} {
		s.polkitd = peers.Start(t, s.dir, "polkitd", []string{"DBUS_SYSTEM_BUS_ADDRESS=" + s.bus.Addr}, "/usr/lib/polkit-1/polkitd", "--no-debug")
		c, err := godbus.Connect(s.bus.Addr)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		s.root = c
		s.sigs = make(chan *godbus.Signal, 256)
		if err := c.AddMatchSignal(godbus.WithMatchInterface("org.freedesktop.DBus.Properties"), godbus.WithMatchMember("PropertiesChanged")); err != nil {
			t.Fatal(err)
		}
		c.Signal(s.sigs)
		names := []string{"org.freedesktop.PolicyKit1", "org.freedesktop.timesync1"}
		if s == gn {
			names = append(names, "org.freedesktop.timedate1")
		}
		for _, n := range names {
			peers.Eventually(t, 15*time.Second, s.name+": "+n+" on the bus", func() error {
				var has bool
				if err := c.BusObject().Call("org.freedesktop.DBus.NameHasOwner", 0, n).Store(&has); err != nil {
					return err
				}
				if !has {
					return fmt.Errorf("no owner")
				}
				return nil
			})
		}
		s.clients = map[string]*client{}
		for _, u := range users {
			s.clients[u.name] = startClient(t, exe, s.bus.Addr, u)
		}
	}
	return sd, gn
}

// setupUsers makes the unprivileged callers and the polkit rule that
// allows one of them and denies another; the third gets polkit's default
// for systemd's actions, auth_admin_keep: a challenge.
func setupUsers(t *testing.T, tag string) []testUser {
	var users []testUser
	for _, role := range []string{"allow", "deny", "chal"} {
		name := "gncf" + tag + role
		if out, err := runOut("useradd", "-M", "-s", "/usr/sbin/nologin", name); err != nil {
			t.Fatalf("useradd %s: %v %s", name, err, out)
		}
		t.Cleanup(func() { _, _ = runOut("userdel", name) })
		u := lookupUser(t, name)
		u.name = role
		users = append(users, u)
	}
	rule := filepath.Join(polkitRules, "49-gnomon-conformance-"+tag+".rules")
	text := fmt.Sprintf(`polkit.addRule(function(action, subject) {
    if (action.id.indexOf("org.freedesktop.timedate1.") == 0 || action.id.indexOf("org.freedesktop.timesync1.") == 0) {
        if (subject.user == "gncf%[1]sallow") { return polkit.Result.YES; }
        if (subject.user == "gncf%[1]sdeny") { return polkit.Result.NO; }
    }
});
`, tag)
	writeFile(t, rule, text, 0o644)
	t.Cleanup(func() { os.Remove(rule) })
	return users
}
