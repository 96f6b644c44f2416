// Package dbustest runs gnomond's D-Bus services against the real
// components: a private system-type dbus-daemon using gnomon's own bus
// policy files, the real polkitd with gnomon's action files, gnomond in
// observe mode (without CAP_SYS_TIME) syncing from chronyd -x on loopback,
// and the real timedatectl, busctl and gdbus as clients.
package dbustest

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	godbus "github.com/godbus/dbus/v5"

	gdbus "gnomon.dev/gnomon/dbus"
	"gnomon.dev/gnomon/service/sysclock"
	"gnomon.dev/gnomon/tests/peers"
)

// gnomondBin is the daemon TestMain built (or $GNOMON_TEST_GNOMOND, for
// example one built with -race).
var gnomondBin string

func TestMain(m *testing.M) {
	os.Exit(peers.BuildAndRun(m, map[string]*string{"./cmd/gnomond": &gnomondBin}))
}

// Where polkitd reads actions and local rules. The test's polkitd runs in
// a private mount namespace with directories of the test's own mounted
// over these: the machine's are never written, and a package that
// installed gnomon's actions there does not disturb the test.
const polkitActions = "/usr/share/polkit-1/actions"
const polkitRules = "/etc/polkit-1/rules.d"

// env is one running set-up.
type env struct {
	t       *testing.T
	dir     string
	root    string // the temporary system root gnomond edits
	addr    string
	bus     *peers.SystemBus
	gnomond *peers.Proc
	polkitd *peers.Proc
	rules   string // the test polkitd's /etc/polkit-1/rules.d
	client  *godbus.Conn
	tag     string
}

// busPolicy is Debian's system.conf policy (deny own, deny method calls by
// default) with polkit's and gnomon's policy files included.
func busPolicy(repo string) string {
	return fmt.Sprintf(`  <policy context="default">
    <allow user="*"/>
    <deny own="*"/>
    <deny send_type="method_call"/>
    <allow send_type="signal"/>
    <allow send_requested_reply="true" send_type="method_return"/>
    <allow send_requested_reply="true" send_type="error"/>
    <allow receive_type="method_call"/>
    <allow receive_type="method_return"/>
    <allow receive_type="error"/>
    <allow receive_type="signal"/>
    <allow send_destination="org.freedesktop.DBus" send_interface="org.freedesktop.DBus"/>
    <allow send_destination="org.freedesktop.DBus" send_interface="org.freedesktop.DBus.Introspectable"/>
    <allow send_destination="org.freedesktop.DBus" send_interface="org.freedesktop.DBus.Properties"/>
  </policy>
  <policy user="root">
    <allow send_destination="org.freedesktop.DBus" send_interface="org.freedesktop.DBus.Monitoring"/>
  </policy>
  <include ignore_missing="no">/usr/share/dbus-1/system.d/org.freedesktop.PolicyKit1.conf</include>
  <includedir>%s</includedir>
`, filepath.Join(repo, "units/dbus-1/system.d"))
}

func (e *env) hasOwner(c *godbus.Conn, name string) bool {
	var ok bool
	err := c.BusObject().Call("org.freedesktop.DBus.NameHasOwner", 0, name).Store(&ok)
	return err == nil && ok
}

func (e *env) waitName(c *godbus.Conn, name string, timeout time.Duration) {
	e.t.Helper()
	peers.Eventually(e.t, timeout, name+" on the bus", func() error {
		if !e.hasOwner(c, name) {
			return errors.New("no owner")
		}
		return nil
	})
}

// setup starts everything; it is torn down by t.Cleanup.
func setup(t *testing.T) *env {
	peers.NeedRoot(t, "private system bus, polkitd, useradd, setpriv")
	for _, tool := range []string{"dbus-daemon", "/usr/lib/polkit-1/polkitd", "timedatectl", "busctl", "gdbus", "unshare", "useradd", "userdel", "groupadd", "groupdel", "setpriv", "chronyd"} {
		peers.NeedTool(t, tool)
	}
	e := &env{t: t, dir: peers.TempDir(t, 0o755), tag: peers.RandomHex(t, 3)}
	repo := peers.ModuleRoot(t)
	e.bus = peers.StartSystemBus(t, e.dir, busPolicy(repo))
	e.addr = e.bus.Addr

	// polkitd sees gnomon's actions and no others, and local rules from a
	// directory of this test only.
	actions := filepath.Join(e.dir, "polkit-actions")
	e.rules = filepath.Join(e.dir, "polkit-rules")
	for _, d := range []string{actions, e.rules} {
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	for _, f := range []string{"org.gnomon.timedate1.policy", "org.gnomon.Gnomon1.policy"} {
		data, err := os.ReadFile(filepath.Join(repo, "polkit", f))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(actions, f), data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	script := `mount --bind "$1" ` + polkitActions + ` && mount --bind "$2" ` + polkitRules + ` && exec /usr/lib/polkit-1/polkitd --no-debug`
	e.polkitd = peers.Start(t, e.dir, "polkitd", []string{"DBUS_SYSTEM_BUS_ADDRESS=" + e.addr},
		peers.NeedTool(t, "unshare"), "-m", "--propagation", "private", "sh", "-c", script, "sh", actions, e.rules)

	c, err := godbus.Connect(e.addr)
	if err != nil {
		t.Fatal(err)
	}
	e.client = c
	t.Cleanup(func() { e.client.Close() })
	e.waitName(c, "org.freedesktop.PolicyKit1", 15*time.Second)

	// The temporary system root: /etc/localtime -> Europe/Berlin, no
	// adjtime, the real zoneinfo, and gnomond's state directory.
	e.root = peers.NewSystemRoot(t, e.dir, "Europe/Berlin")
	if err := os.Mkdir(filepath.Join(e.root, "state"), 0o755); err != nil {
		t.Fatal(err)
	}

	port := peers.FreePort(t)
	peers.StartChronyd(t, peers.TempDir(t, 0o777), port, "")
	cfg := fmt.Sprintf("[clock]\nmode = \"observe\"\ndrift-file = \"\"\n\n[[source]]\nmode = \"server\"\naddress = \"127.0.0.1:%d\"\npoll-interval-limits = { min = 0, max = 2 }\n", port)
	cfgPath := filepath.Join(e.dir, "gnomon.toml")
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	e.gnomond = peers.Start(t, e.dir, "gnomond", []string{"DBUS_SYSTEM_BUS_ADDRESS=" + e.addr},
		peers.Safe(t, gnomondBin, "--config", cfgPath, "--user", "", "--state-dir", filepath.Join(e.root, "state"),
			"--system-root", e.root, "--log-level", "debug")...)
	for _, n := range []string{gdbus.NameTimedate, gdbus.NameTimesync, gdbus.NameGnomon} {
		e.waitName(c, n, 15*time.Second)
	}
	return e
}

// timedatectl runs the real timedatectl on the private bus, in a mount
// namespace where /run/systemd/system exists.
func (e *env) timedatectl(args ...string) (string, error) {
	script := `mount -t tmpfs tmpfs /run/systemd && mkdir /run/systemd/system && exec timedatectl --no-pager --no-ask-password "$@"`
	argv := append([]string{"-m", "sh", "-c", script, "sh"}, args...)
	cmd := exec.Command(peers.NeedTool(e.t, "unshare"), argv...)
	cmd.Env = append(os.Environ(), "DBUS_SYSTEM_BUS_ADDRESS="+e.addr, "SYSTEMD_PAGER=cat", "SYSTEMD_COLORS=0", "LC_ALL=C")
	out, err := cmd.CombinedOutput()
	return string(out), err
}

func (e *env) mustTimedatectl(args ...string) string {
	e.t.Helper()
	out, err := e.timedatectl(args...)
	if err != nil {
		e.t.Fatalf("timedatectl %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return out
}

// run runs a client tool on the private bus.
func (e *env) run(argv ...string) (string, error) {
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Env = append(os.Environ(), "DBUS_SYSTEM_BUS_ADDRESS="+e.addr, "LC_ALL=C")
	out, err := cmd.CombinedOutput()
	return string(out), err
}

func keyValues(out string) map[string]string {
	m := map[string]string{}
	for _, l := range strings.Split(out, "\n") {
		if k, v, ok := strings.Cut(l, "="); ok {
			m[k] = v
		}
	}
	return m
}

func (e *env) localtimeTarget() string {
	s, err := os.Readlink(filepath.Join(e.root, "etc/localtime"))
	if err != nil {
		return "error: " + err.Error()
	}
	return s
}

func (e *env) waitSynced() {
	e.t.Helper()
	peers.Eventually(e.t, 30*time.Second, "gnomond selects chronyd (timesync1 ServerName and NTPMessage)", func() error {
		m := keyValues(e.mustTimedatectl("show-timesync"))
		if m["ServerName"] != "127.0.0.1" || !strings.Contains(m["NTPMessage"], "Stratum=1") {
			return fmt.Errorf("ServerName=%q NTPMessage=%q", m["ServerName"], m["NTPMessage"])
		}
		return nil
	})
}

func TestDBus(t *testing.T) {
	e := setup(t)
	e.waitSynced()

	t.Run("status", func(t *testing.T) { e.t = t; testStatus(e) })
	t.Run("show", func(t *testing.T) { e.t = t; testShow(e) })
	t.Run("timesync", func(t *testing.T) { e.t = t; testTimesync(e) })
	t.Run("list-timezones", func(t *testing.T) { e.t = t; testListTimezones(e) })
	t.Run("set-timezone", func(t *testing.T) { e.t = t; testSetTimezone(e) })
	t.Run("ntp-and-set-time", func(t *testing.T) { e.t = t; testNTPAndSetTime(e) })
	t.Run("set-local-rtc", func(t *testing.T) { e.t = t; testLocalRTC(e) })
	t.Run("introspect", func(t *testing.T) { e.t = t; testIntrospect(e) })
	t.Run("gnomon1", func(t *testing.T) { e.t = t; testGnomon1(e) })
	t.Run("timesync-methods", func(t *testing.T) { e.t = t; testTimesyncMethods(e) })
	t.Run("log-control", func(t *testing.T) { e.t = t; testLogControl(e) })
	t.Run("gnome-settings", func(t *testing.T) { e.t = t; testGnomeSettings(e) })
	t.Run("polkit-unprivileged", func(t *testing.T) { e.t = t; testPolkitUser(e) })
	t.Run("reconnect", func(t *testing.T) { e.t = t; testReconnect(e) })
}

var (
	reLocal = regexp.MustCompile(`^\s+Local time: \w{3} (\d{4}-\d\d-\d\d \d\d:\d\d:\d\d) (\S+)$`)
	reUTC   = regexp.MustCompile(`^\s+Universal time: \w{3} (\d{4}-\d\d-\d\d \d\d:\d\d:\d\d) UTC$`)
)

func zoneInfo(name string, at time.Time) (abbr, off string) {
	loc, err := time.LoadLocation(name)
	if err != nil {
		return "?", "?"
	}
	abbr, secs := at.In(loc).Zone()
	sign := "+"
	if secs < 0 {
		sign, secs = "-", -secs
	}
	return abbr, fmt.Sprintf("%s%02d%02d", sign, secs/3600, secs%3600/60)
}

func testStatus(e *env) {
	t := e.t
	now := time.Now()
	out := e.mustTimedatectl("status")
	lines := strings.Split(strings.TrimRight(out, "\n"), "\n")
	if len(lines) != 7 {
		t.Fatalf("timedatectl status: want 7 lines, got %d:\n%s", len(lines), out)
	}
	berlin, _ := time.LoadLocation("Europe/Berlin")
	if m := reLocal.FindStringSubmatch(lines[0]); m == nil {
		t.Errorf("line 1 %q is not a local time", lines[0])
	} else {
		got, err := time.ParseInLocation("2006-01-02 15:04:05", m[1], berlin)
		abbr, _ := zoneInfo("Europe/Berlin", now)
		if err != nil || got.Sub(now).Abs() > 5*time.Second || m[2] != abbr {
			t.Errorf("Local time %q: want about %s %s", lines[0], now.In(berlin).Format(time.DateTime), abbr)
		}
	}
	if m := reUTC.FindStringSubmatch(lines[1]); m == nil {
		t.Errorf("line 2 %q is not a universal time", lines[1])
	} else if got, err := time.Parse("2006-01-02 15:04:05", m[1]); err != nil || got.Sub(now).Abs() > 5*time.Second {
		t.Errorf("Universal time %q: want about %s", lines[1], now.UTC().Format(time.DateTime))
	}
	abbr, off := zoneInfo("Europe/Berlin", now)
	k, err := sysclock.ReadKernelStatus()
	if err != nil {
		t.Fatal(err)
	}
	synced := map[bool]string{true: "yes", false: "no"}[k.Synced]
	want := []string{
		fmt.Sprintf("%26s %s", "RTC time:", "n/a"),
		fmt.Sprintf("%26s Europe/Berlin (%s, %s)", "Time zone:", abbr, off),
		"System clock synchronized: " + synced,
		fmt.Sprintf("%26s %s", "NTP service:", "active"),
		fmt.Sprintf("%26s %s", "RTC in local TZ:", "no"),
	}
	for i, w := range want {
		if lines[i+2] != w {
			t.Errorf("status line %d: got %q, want %q", i+3, lines[i+2], w)
		}
	}
}

func testShow(e *env) {
	t := e.t
	m := keyValues(e.mustTimedatectl("show"))
	k, _ := sysclock.ReadKernelStatus()
	want := map[string]string{"Timezone": "Europe/Berlin", "LocalRTC": "no", "CanNTP": "yes", "NTP": "yes",
		"NTPSynchronized": map[bool]string{true: "yes", false: "no"}[k.Synced], "RTCTimeUSec": ""}
	for key, w := range want {
		if m[key] != w {
			t.Errorf("show: %s=%q, want %q", key, m[key], w)
		}
	}
	if !strings.HasPrefix(m["TimeUSec"], time.Now().Format("Mon 2006-01-02")) && !strings.HasPrefix(m["TimeUSec"], time.Now().In(time.UTC).Format("Mon 2006-01-02")) {
		t.Errorf("show: TimeUSec=%q is not today", m["TimeUSec"])
	}
}

var (
	reServer = regexp.MustCompile(`^\s+Server: 127\.0\.0\.1 \(127\.0\.0\.1\)$`)
	rePoll   = regexp.MustCompile(`^Poll interval: (\S+) \(min: 1min 4s; max 17min 4s\)$`)
	reOffset = regexp.MustCompile(`^\s+Offset: ([+-]?[0-9.]+)(us|ms|s)?$`)
)

func testTimesync(e *env) {
	t := e.t
	m := keyValues(e.mustTimedatectl("show-timesync"))
	want := map[string]string{"ServerName": "127.0.0.1", "ServerAddress": "127.0.0.1", "RootDistanceMaxUSec": "3s",
		"PollIntervalMinUSec": "1min 4s", "PollIntervalMaxUSec": "17min 4s", "LinkNTPServers": "", "FallbackNTPServers": ""}
	for key, w := range want {
		if m[key] != w {
			t.Errorf("show-timesync: %s=%q, want %q", key, m[key], w)
		}
	}
	if !strings.HasPrefix(m["SystemNTPServers"], "127.0.0.1") {
		t.Errorf("show-timesync: SystemNTPServers=%q", m["SystemNTPServers"])
	}
	for _, f := range []string{"Leap=0", "Version=4", "Mode=4", "Stratum=1", "Ignored=no"} {
		if !strings.Contains(m["NTPMessage"], f) {
			t.Errorf("show-timesync: NTPMessage=%q lacks %s", m["NTPMessage"], f)
		}
	}
	out := e.mustTimedatectl("timesync-status")
	var server, poll, stratum, offset bool
	for _, l := range strings.Split(out, "\n") {
		l = strings.TrimRight(l, " ")
		switch {
		case reServer.MatchString(l):
			server = true
		case rePoll.MatchString(strings.TrimSpace(l)):
			iv := rePoll.FindStringSubmatch(strings.TrimSpace(l))[1]
			poll = slices.Contains([]string{"1s", "2s", "4s"}, iv)
		case strings.TrimSpace(l) == "Stratum: 1":
			stratum = true
		case reOffset.MatchString(l):
			mm := reOffset.FindStringSubmatch(l)
			v, _ := strconv.ParseFloat(mm[1], 64)
			scale := map[string]float64{"": 1, "us": 1e-6, "ms": 1e-3, "s": 1}[mm[2]]
			offset = v*scale < 0.01 && v*scale > -0.01
		}
	}
	if !server || !poll || !stratum || !offset {
		t.Errorf("timesync-status: server %v, poll %v, stratum %v, offset %v in:\n%s", server, poll, stratum, offset, out)
	}
}

func testListTimezones(e *env) {
	t := e.t
	out := e.mustTimedatectl("list-timezones")
	zones := strings.Fields(out)
	want, err := gdbus.Paths{}.ListTimezones()
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(zones, want) {
		t.Errorf("list-timezones: %d zones, want %d", len(zones), len(want))
	}
	if len(zones) < 300 || !slices.Contains(zones, "Europe/Berlin") || !slices.Contains(zones, "UTC") || !slices.IsSorted(zones) {
		t.Errorf("list-timezones: %d zones, sorted %v", len(zones), slices.IsSorted(zones))
	}
}

// signals subscribes to PropertiesChanged on path.
func (e *env) signals(path godbus.ObjectPath) (chan *godbus.Signal, func()) {
	c := e.client
	opts := []godbus.MatchOption{godbus.WithMatchObjectPath(path), godbus.WithMatchInterface("org.freedesktop.DBus.Properties"), godbus.WithMatchMember("PropertiesChanged")}
	if err := c.AddMatchSignal(opts...); err != nil {
		e.t.Fatal(err)
	}
	ch := make(chan *godbus.Signal, 64)
	c.Signal(ch)
	return ch, func() {
		c.RemoveSignal(ch)
		_ = c.RemoveMatchSignal(opts...)
	}
}

// waitSignal waits for a PropertiesChanged carrying prop == want (any
// value when want is nil).
func waitSignal(t *testing.T, ch chan *godbus.Signal, iface, prop string, want any) {
	t.Helper()
	timeout := time.After(10 * time.Second)
	for {
		select {
		case s := <-ch:
			if len(s.Body) != 3 || s.Body[0] != iface {
				continue
			}
			changed, _ := s.Body[1].(map[string]godbus.Variant)
			if v, ok := changed[prop]; ok && (want == nil || v.Value() == want) {
				return
			}
		case <-timeout:
			t.Fatalf("no PropertiesChanged %s.%s = %v", iface, prop, want)
		}
	}
}

func testSetTimezone(e *env) {
	t := e.t
	ch, done := e.signals(gdbus.PathTimedate)
	defer done()
	e.mustTimedatectl("set-timezone", "America/New_York")
	if got := e.localtimeTarget(); got != "../usr/share/zoneinfo/America/New_York" {
		t.Errorf("/etc/localtime -> %q", got)
	}
	waitSignal(t, ch, "org.freedesktop.timedate1", "Timezone", "America/New_York")
	if m := keyValues(e.mustTimedatectl("show")); m["Timezone"] != "America/New_York" {
		t.Errorf("Timezone after set: %q", m["Timezone"])
	}
	out, err := e.timedatectl("set-timezone", "Not/AZone")
	if err == nil || !strings.Contains(out, "Invalid or not installed time zone 'Not/AZone'") {
		t.Errorf("set-timezone Not/AZone: %v %q", err, out)
	}
	for _, bad := range []string{"../etc/passwd", "Europe//Berlin", "/Europe/Berlin"} {
		if out, err := e.timedatectl("set-timezone", bad); err == nil {
			t.Errorf("set-timezone %q accepted: %s", bad, out)
		}
	}
	e.mustTimedatectl("set-timezone", "UTC")
	if got := e.localtimeTarget(); got != "../usr/share/zoneinfo/UTC" {
		t.Errorf("/etc/localtime -> %q after UTC", got)
	}
	e.mustTimedatectl("set-timezone", "Europe/Berlin")
	entries, _ := os.ReadDir(filepath.Join(e.root, "etc"))
	for _, en := range entries {
		if strings.HasPrefix(en.Name(), ".localtime") {
			t.Errorf("temporary file left behind: %s", en.Name())
		}
	}
}

func testNTPAndSetTime(e *env) {
	t := e.t
	out, err := e.timedatectl("set-time", "2030-01-01 00:00:00")
	if err == nil || !strings.Contains(out, "Automatic time synchronization is enabled") {
		t.Errorf("set-time with NTP on: %v %q", err, out)
	}
	ch, done := e.signals(gdbus.PathTimedate)
	defer done()
	e.mustTimedatectl("set-ntp", "false")
	waitSignal(t, ch, "org.freedesktop.timedate1", "NTP", false)
	if m := keyValues(e.mustTimedatectl("show")); m["NTP"] != "no" {
		t.Errorf("NTP after set-ntp false: %q", m["NTP"])
	}
	if !strings.Contains(e.mustTimedatectl("status"), "NTP service: inactive") {
		t.Error("status does not say NTP service: inactive")
	}
	if _, err := os.Stat(filepath.Join(e.root, "state", "ntp-disabled")); err != nil {
		t.Errorf("SetNTP(false) not persisted: %v", err)
	}
	before := time.Now()
	out, err = e.timedatectl("set-time", "2030-01-01 00:00:00")
	if err == nil || !strings.Contains(out, "observe mode") {
		t.Errorf("set-time in observe mode: %v %q", err, out)
	}
	// The wall clock moved if it ran apart from the monotonic clock
	// (however long timedatectl took on a loaded machine).
	mono, wall := time.Since(before), time.Now().Round(0).Sub(before.Round(0))
	if d := wall - mono; d > time.Second || d < -time.Second || time.Now().Year() >= 2030 {
		t.Fatalf("the clock moved: %v on the wall clock in %v", wall, mono)
	}
	e.mustTimedatectl("set-ntp", "true")
	waitSignal(t, ch, "org.freedesktop.timedate1", "NTP", true)
	if m := keyValues(e.mustTimedatectl("show")); m["NTP"] != "yes" {
		t.Errorf("NTP after set-ntp true: %q", m["NTP"])
	}
}

func testLocalRTC(e *env) {
	t := e.t
	adj := filepath.Join(e.root, "etc/adjtime")
	ch, done := e.signals(gdbus.PathTimedate)
	defer done()
	out := e.mustTimedatectl("set-local-rtc", "1")
	_ = out
	waitSignal(t, ch, "org.freedesktop.timedate1", "LocalRTC", true)
	if b, err := os.ReadFile(adj); err != nil || string(b) != "0.0 0 0\n0\nLOCAL\n" {
		t.Errorf("adjtime after set-local-rtc 1: %q %v", b, err)
	}
	if st := e.mustTimedatectl("status"); !strings.Contains(st, "RTC in local TZ: yes") {
		t.Errorf("status after set-local-rtc 1:\n%s", st)
	}
	// --adjust-system-clock works without an RTC (every VM), as with
	// timedated: /etc/adjtime changes, the clock is left alone.
	e.mustTimedatectl("--adjust-system-clock", "set-local-rtc", "0")
	waitSignal(t, ch, "org.freedesktop.timedate1", "LocalRTC", false)
	if _, err := os.Stat(adj); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("adjtime should be deleted when it is all defaults (UTC): %v", err)
	}
	// A file with drift data keeps its first lines.
	if err := os.WriteFile(adj, []byte("0.5 1700000000 0.0\n1700000000\nUTC\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	// gnomond caches LocalRTC (false) like timedated: set-local-rtc 1 rewrites.
	e.mustTimedatectl("set-local-rtc", "1")
	if b, _ := os.ReadFile(adj); string(b) != "0.5 1700000000 0.0\n1700000000\nLOCAL\n" {
		t.Errorf("adjtime with drift: %q", b)
	}
	e.mustTimedatectl("set-local-rtc", "0")
	if b, _ := os.ReadFile(adj); string(b) != "0.5 1700000000 0.0\n1700000000\nUTC\n" {
		t.Errorf("adjtime with drift back to UTC: %q", b)
	}
}

// introspection runs busctl introspect and returns member -> type/signature.
func (e *env) introspect(service, path, iface string) map[string]string {
	e.t.Helper()
	out, err := e.run(peers.NeedTool(e.t, "busctl"), "--system", "introspect", "--no-pager", "--no-legend", service, path, iface)
	if err != nil {
		e.t.Fatalf("busctl introspect %s %s: %v\n%s", service, path, err, out)
	}
	m := map[string]string{}
	sc := bufio.NewScanner(strings.NewReader(out))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) < 3 {
			continue
		}
		name := strings.TrimPrefix(f[0], ".")
		switch f[1] {
		case "property":
			m["property "+name] = f[2]
		case "method":
			outSig := "-"
			if len(f) > 3 {
				outSig = f[3]
			}
			m["method "+name] = f[2] + " " + outSig
		case "signal":
			m["signal "+name] = f[2]
		}
	}
	return m
}

func specMembers(s *gdbus.InterfaceSpec) map[string]string {
	m := map[string]string{}
	for _, p := range s.Props {
		m["property "+p.Name] = p.Type
	}
	for _, me := range s.Methods {
		in, out := me.InSignature(), me.OutSignature()
		if in == "" {
			in = "-"
		}
		if out == "" {
			out = "-"
		}
		m["method "+me.Name] = in + " " + out
	}
	return m
}

func diffMembers(t *testing.T, what string, got, want map[string]string) {
	t.Helper()
	for k, w := range want {
		if got[k] != w {
			t.Errorf("%s: %s is %q, want %q", what, k, got[k], w)
		}
	}
	for k := range got {
		if _, ok := want[k]; !ok {
			t.Errorf("%s: unexpected %s", what, k)
		}
	}
}

func testIntrospect(e *env) {
	t := e.t
	diffMembers(t, "timedate1", e.introspect(gdbus.NameTimedate, string(gdbus.PathTimedate), gdbus.TimedateSpec.Name), specMembers(gdbus.TimedateSpec))
	diffMembers(t, "timesync1", e.introspect(gdbus.NameTimesync, string(gdbus.PathTimesync), gdbus.TimesyncSpec.Name), specMembers(gdbus.TimesyncSpec))
	diffMembers(t, "Gnomon1.Manager", e.introspect(gdbus.NameGnomon, string(gdbus.PathGnomon), gdbus.GnomonManagerSpec.Name), specMembers(gdbus.GnomonManagerSpec))
	// The spec (dbus-spec.md §2.1): exact types of timedate1.
	want := map[string]string{"property Timezone": "s", "property LocalRTC": "b", "property CanNTP": "b", "property NTP": "b",
		"property NTPSynchronized": "b", "property TimeUSec": "t", "property RTCTimeUSec": "t",
		"method SetTime": "xbb -", "method SetTimezone": "sb -", "method SetLocalRTC": "bbb -", "method SetNTP": "bb -",
		"method ListTimezones": "- as"}
	diffMembers(t, "timedate1 vs spec", e.introspect(gdbus.NameTimedate, string(gdbus.PathTimedate), gdbus.TimedateSpec.Name), want)
	props := e.introspect(gdbus.NameTimedate, string(gdbus.PathTimedate), "org.freedesktop.DBus.Properties")
	if props["signal PropertiesChanged"] != "sa{sv}as" {
		t.Errorf("PropertiesChanged signal: %q", props["signal PropertiesChanged"])
	}
	// The Gnomon1 source object.
	var sources []godbus.ObjectPath
	if err := e.client.Object(gdbus.NameGnomon, gdbus.PathGnomon).StoreProperty(gdbus.GnomonManagerSpec.Name+".Sources", &sources); err != nil || len(sources) == 0 {
		t.Fatalf("Sources: %v %v", sources, err)
	}
	diffMembers(t, "Gnomon1.Source", e.introspect(gdbus.NameGnomon, string(sources[0]), gdbus.GnomonSourceSpec.Name), specMembers(gdbus.GnomonSourceSpec))
	// GetAll("") with an empty interface name answers every property.
	var all map[string]godbus.Variant
	if err := e.client.Object(gdbus.NameTimedate, gdbus.PathTimedate).Call("org.freedesktop.DBus.Properties.GetAll", 0, "").Store(&all); err != nil {
		t.Fatal(err)
	}
	if len(all) != len(gdbus.TimedateSpec.Props) {
		t.Errorf("GetAll(\"\"): %d properties", len(all))
	}
	// Set is refused as read-only.
	err := e.client.Object(gdbus.NameTimedate, gdbus.PathTimedate).Call("org.freedesktop.DBus.Properties.Set", 0, gdbus.TimedateSpec.Name, "NTP", godbus.MakeVariant(false)).Err
	var de godbus.Error
	if !errors.As(err, &de) || de.Name != "org.freedesktop.DBus.Error.PropertyReadOnly" {
		t.Errorf("Set NTP: %v", err)
	}
}

func testGnomon1(e *env) {
	t := e.t
	obj := e.client.Object(gdbus.NameGnomon, gdbus.PathGnomon)
	var sel godbus.ObjectPath
	if err := obj.StoreProperty(gdbus.GnomonManagerSpec.Name+".SelectedSource", &sel); err != nil || sel == "/" {
		t.Fatalf("SelectedSource: %q %v", sel, err)
	}
	var state, addr string
	src := e.client.Object(gdbus.NameGnomon, sel)
	if err := src.StoreProperty(gdbus.GnomonSourceSpec.Name+".State", &state); err != nil || state != "selected" {
		t.Errorf("selected source State: %q %v", state, err)
	}
	if err := src.StoreProperty(gdbus.GnomonSourceSpec.Name+".Address", &addr); err != nil || !strings.HasPrefix(addr, "127.0.0.1:") {
		t.Errorf("selected source Address: %q %v", addr, err)
	}
	var mode string
	if err := obj.StoreProperty(gdbus.GnomonManagerSpec.Name+".ClockMode", &mode); err != nil || mode != "observe" {
		t.Errorf("ClockMode %q %v", mode, err)
	}
	if err := obj.Call(gdbus.GnomonManagerSpec.Name+".Burst", 0, godbus.ObjectPath("/"), false).Err; err != nil {
		t.Errorf("Burst(/): %v", err)
	}
	err := obj.Call(gdbus.GnomonManagerSpec.Name+".RemoveSource", 0, godbus.ObjectPath("/org/gnomon/Gnomon1/source/999999"), false).Err
	var de godbus.Error
	if !errors.As(err, &de) || de.Name != gdbus.ErrNoSuchSource {
		t.Errorf("RemoveSource(unknown): %v", err)
	}
	err = obj.Call(gdbus.GnomonManagerSpec.Name+".AddSource", 0, "bogus", "127.0.0.1", false).Err
	if !errors.As(err, &de) || de.Name != gdbus.ErrInvalidArgs {
		t.Errorf("AddSource(bogus mode): %v", err)
	}

	// Reload (the method and SIGHUP) re-reads the configuration file.
	reloads := func() int { return strings.Count(e.gnomond.Tail(1<<20), "configuration reloaded") }
	if err := obj.Call(gdbus.GnomonManagerSpec.Name+".Reload", 0, false).Err; err != nil {
		t.Errorf("Reload: %v", err)
	}
	if n := reloads(); n != 1 {
		t.Errorf("after Reload: %d reloads logged", n)
	}
	_ = e.gnomond.Cmd.Process.Signal(syscall.SIGHUP)
	peers.Eventually(t, 5*time.Second, "SIGHUP reload", func() error {
		if n := reloads(); n != 2 {
			return fmt.Errorf("%d reloads logged", n)
		}
		return nil
	})

	// A source added at run time gets an object, is announced in Sources,
	// and its object goes away with it.
	ch, done := e.signals(gdbus.PathGnomon)
	defer done()
	var added godbus.ObjectPath
	if err := obj.Call(gdbus.GnomonManagerSpec.Name+".AddSource", 0, "server", "127.0.0.2:"+strconv.Itoa(peers.FreePort(t)), false).Store(&added); err != nil {
		t.Fatalf("AddSource: %v", err)
	}
	waitSources := func(want bool) {
		t.Helper()
		timeout := time.After(10 * time.Second)
		for {
			select {
			case sig := <-ch:
				if len(sig.Body) != 3 || sig.Body[0] != gdbus.GnomonManagerSpec.Name {
					continue
				}
				changed, _ := sig.Body[1].(map[string]godbus.Variant)
				if v, ok := changed["Sources"]; ok {
					paths, _ := v.Value().([]godbus.ObjectPath)
					if slices.Contains(paths, added) == want {
						return
					}
				}
			case <-timeout:
				t.Fatalf("no Sources change with %s present=%v", added, want)
			}
		}
	}
	waitSources(true)
	var origin, kind string
	if err := e.client.Object(gdbus.NameGnomon, added).StoreProperty(gdbus.GnomonSourceSpec.Name+".Origin", &origin); err != nil || origin != "dbus" {
		t.Errorf("added source Origin %q %v", origin, err)
	}
	if err := e.client.Object(gdbus.NameGnomon, added).StoreProperty(gdbus.GnomonSourceSpec.Name+".Kind", &kind); err != nil || kind != "server" {
		t.Errorf("added source Kind %q %v", kind, err)
	}
	if err := obj.Call(gdbus.GnomonManagerSpec.Name+".RemoveSource", 0, added, false).Err; err != nil {
		t.Fatalf("RemoveSource: %v", err)
	}
	waitSources(false)
	peers.Eventually(t, 5*time.Second, "removed source object gone", func() error {
		var id uint64
		if err := e.client.Object(gdbus.NameGnomon, added).StoreProperty(gdbus.GnomonSourceSpec.Name+".ID", &id); err == nil {
			return fmt.Errorf("still answers: ID %d", id)
		}
		return nil
	})
}

// testTimesyncMethods: SetRuntimeNTPServers and the NTPMessage signal.
func testTimesyncMethods(e *env) {
	t := e.t
	ch, done := e.signals(gdbus.PathTimesync)
	defer done()
	// NTPMessage is signalled after new replies (poll 1-4 s here).
	timeout := time.After(15 * time.Second)
	for got := false; !got; {
		select {
		case sig := <-ch:
			if changed, ok := sig.Body[1].(map[string]godbus.Variant); ok && sig.Body[0] == gdbus.TimesyncSpec.Name {
				_, got = changed["NTPMessage"]
			}
		case <-timeout:
			t.Fatal("no NTPMessage PropertiesChanged")
		}
	}
	busctl := peers.NeedTool(t, "busctl")
	call := func(args ...string) (string, error) {
		return e.run(append([]string{busctl, "--system", "call", gdbus.NameTimesync, string(gdbus.PathTimesync), gdbus.TimesyncSpec.Name, "SetRuntimeNTPServers", "as"}, args...)...)
	}
	// systemd 252's name check is loose ("not a name" is a valid DNS name
	// to it); an empty label is not.
	if out, err := call("1", "a..b"); err == nil || !strings.Contains(out, "Invalid NTP server name or address, refusing: a..b") {
		t.Errorf("invalid runtime server: %v %s", err, out)
	}
	if out, err := call("1", "127.0.0.3"); err != nil {
		t.Fatalf("SetRuntimeNTPServers: %v %s", err, out)
	}
	if m := keyValues(e.mustTimedatectl("show-timesync")); m["RuntimeNTPServers"] != "127.0.0.3" {
		t.Errorf("RuntimeNTPServers=%q", m["RuntimeNTPServers"])
	}
	// timesyncd's precedence: the runtime servers replace the configured
	// ones while they are set.
	peers.Eventually(t, 10*time.Second, "only the runtime source in use", func() error {
		if got := e.sourceOrigins(); got != "runtime" {
			return fmt.Errorf("source origins %q", got)
		}
		return nil
	})
	if out, err := call("0"); err != nil {
		t.Fatalf("SetRuntimeNTPServers([]): %v %s", err, out)
	}
	if m := keyValues(e.mustTimedatectl("show-timesync")); m["RuntimeNTPServers"] != "" {
		t.Errorf("RuntimeNTPServers=%q after clearing", m["RuntimeNTPServers"])
	}
	peers.Eventually(t, 10*time.Second, "the configured source back", func() error {
		if got := e.sourceOrigins(); got != "config" {
			return fmt.Errorf("source origins %q", got)
		}
		return nil
	})
}

// sourceOrigins lists the Origin of each of Gnomon1's sources, sorted
// and without repeats.
func (e *env) sourceOrigins() string {
	var paths []godbus.ObjectPath
	if err := e.client.Object(gdbus.NameGnomon, gdbus.PathGnomon).StoreProperty(gdbus.GnomonManagerSpec.Name+".Sources", &paths); err != nil {
		return err.Error()
	}
	seen := map[string]bool{}
	for _, p := range paths {
		var o string
		if err := e.client.Object(gdbus.NameGnomon, p).StoreProperty(gdbus.GnomonSourceSpec.Name+".Origin", &o); err == nil {
			seen[o] = true
		}
	}
	var out []string
	for o := range seen {
		out = append(out, o)
	}
	sort.Strings(out)
	return strings.Join(out, " ")
}

// testLogControl: LogControl1's LogLevel changes gnomond's log level at
// run time, through any of the three names (systemctl service-log-level
// uses BusName=, org.gnomon.Gnomon1).
func testLogControl(e *env) {
	t := e.t
	busctl := peers.NeedTool(t, "busctl")
	set := func(name, level string) {
		if out, err := e.run(busctl, "--system", "set-property", name, string(gdbus.PathLogControl), gdbus.LogControlSpec.Name, "LogLevel", "s", level); err != nil {
			t.Fatalf("set LogLevel %s on %s: %v %s", level, name, err, out)
		}
	}
	zone := func(z string) {
		if err := e.client.Object(gdbus.NameTimedate, gdbus.PathTimedate).Call(gdbus.TimedateSpec.Name+".SetTimezone", 0, z, false).Err; err != nil {
			t.Fatalf("SetTimezone %s: %v", z, err)
		}
	}
	logged := func(z string) bool {
		data, _ := os.ReadFile(e.gnomond.Log)
		return strings.Contains(string(data), "timezone="+z)
	}
	set(gdbus.NameTimedate, "warning")
	zone("Asia/Kolkata")
	set(gdbus.NameGnomon, "debug")
	zone("Asia/Dhaka")
	peers.Eventually(t, 5*time.Second, "the info line after LogLevel=debug", func() error {
		if !logged("Asia/Dhaka") {
			return fmt.Errorf("not logged")
		}
		return nil
	})
	if logged("Asia/Kolkata") {
		t.Error("an info line was logged while LogLevel was warning")
	}
	var level string
	if err := e.client.Object(gdbus.NameTimesync, gdbus.PathLogControl).StoreProperty(gdbus.LogControlSpec.Name+".LogLevel", &level); err != nil || level != "debug" {
		t.Errorf("LogLevel through timesync1: %q %v", level, err)
	}
	// LogTarget moves the log: "null" silences it, "console" brings it
	// back on standard error (systemctl service-log-target).
	target := func(v string) {
		if out, err := e.run(busctl, "--system", "set-property", gdbus.NameGnomon, string(gdbus.PathLogControl), gdbus.LogControlSpec.Name, "LogTarget", "s", v); err != nil {
			t.Fatalf("set LogTarget %s: %v %s", v, err, out)
		}
	}
	target("null")
	zone("Asia/Tokyo")
	target("console")
	zone("America/Lima")
	peers.Eventually(t, 5*time.Second, "the info line after LogTarget=console", func() error {
		if !logged("America/Lima") {
			return fmt.Errorf("not logged")
		}
		return nil
	})
	if logged("Asia/Tokyo") {
		t.Error("an info line was logged while LogTarget was null")
	}
	zone("Europe/Berlin")
}

// testGnomeSettings replays what GNOME Settings' Date & Time panel sends
// (dbus-spec.md §7.1 and the observed trace), with gdbus.
func testGnomeSettings(e *env) {
	t := e.t
	gd := peers.NeedTool(t, "gdbus")
	call := func(method string, args ...string) (string, error) {
		argv := append([]string{gd, "call", "--system", "--dest", gdbus.NameTimedate, "--object-path", string(gdbus.PathTimedate), "--method", method}, args...)
		return e.run(argv...)
	}
	out, err := call("org.freedesktop.DBus.Properties.GetAll", "org.freedesktop.timedate1")
	if err != nil {
		t.Fatalf("GetAll: %v %s", err, out)
	}
	for _, p := range []string{"'Timezone': <'Europe/Berlin'>", "'CanNTP': <true>", "'NTP': <true>", "'LocalRTC': <false>"} {
		if !strings.Contains(out, p) {
			t.Errorf("GetAll lacks %s: %s", p, out)
		}
	}
	now := strconv.FormatInt(time.Now().Unix()*1_000_000, 10)
	out, err = call("org.freedesktop.timedate1.SetTime", now, "false", "true")
	if err == nil || !strings.Contains(out, "org.freedesktop.timedate1.AutomaticTimeSyncEnabled") {
		t.Errorf("SetTime while NTP on: %v %s", err, out)
	}
	ch, done := e.signals(gdbus.PathTimedate)
	defer done()
	if out, err := call("org.freedesktop.timedate1.SetTimezone", "Europe/Paris", "true"); err != nil {
		t.Errorf("SetTimezone: %v %s", err, out)
	}
	waitSignal(t, ch, "org.freedesktop.timedate1", "Timezone", "Europe/Paris")
	if out, err := call("org.freedesktop.timedate1.SetNTP", "false", "true"); err != nil {
		t.Errorf("SetNTP false: %v %s", err, out)
	}
	waitSignal(t, ch, "org.freedesktop.timedate1", "NTP", false)
	if out, err := call("org.freedesktop.timedate1.SetNTP", "true", "true"); err != nil {
		t.Errorf("SetNTP true: %v %s", err, out)
	}
	waitSignal(t, ch, "org.freedesktop.timedate1", "NTP", true)
	if out, err := call("org.freedesktop.timedate1.SetTimezone", "Europe/Berlin", "true"); err != nil {
		t.Errorf("SetTimezone back: %v %s", err, out)
	}
}

// testPolkitUser: an unprivileged user is refused by polkit and nothing
// changes; a rules file granting the user's group lets the call through.
func testPolkitUser(e *env) {
	t := e.t
	name := "gk" + e.tag
	group := "gkg" + e.tag
	if out, err := exec.Command("groupadd", group).CombinedOutput(); err != nil {
		t.Fatalf("groupadd: %v %s", err, out)
	}
	t.Cleanup(func() { exec.Command("groupdel", group).Run() })
	if out, err := exec.Command("useradd", "-M", "-s", "/usr/sbin/nologin", "-G", group, name).CombinedOutput(); err != nil {
		t.Fatalf("useradd: %v %s", err, out)
	}
	t.Cleanup(func() { exec.Command("userdel", name).Run() })
	u, err := user.Lookup(name)
	if err != nil {
		t.Fatal(err)
	}
	// gdbus prints the D-Bus error name and message, so a polkit refusal
	// (the daemon's AccessDenied "Permission denied") is told apart from a bus
	// policy rejection ("Rejected send message ...").
	asUser := func(method string, args ...string) (string, error) {
		argv := append([]string{peers.NeedTool(t, "setpriv"), "--reuid=" + u.Uid, "--regid=" + u.Gid, "--init-groups",
			peers.NeedTool(t, "gdbus"), "call", "--system", "--dest", gdbus.NameTimedate, "--object-path", string(gdbus.PathTimedate),
			"--method", gdbus.TimedateSpec.Name + "." + method}, args...)
		return e.run(argv...)
	}
	refused := func(out string) bool {
		return strings.Contains(out, "org.freedesktop.DBus.Error.AccessDenied: Permission denied") ||
			strings.Contains(out, "org.freedesktop.DBus.Error.InteractiveAuthorizationRequired: Interactive authentication required.")
	}
	before := e.localtimeTarget()
	out, err := asUser("SetTimezone", "Asia/Tokyo", "false")
	if err == nil {
		t.Fatalf("unprivileged SetTimezone succeeded: %s", out)
	}
	if !refused(out) {
		t.Errorf("unprivileged SetTimezone: %q", out)
	}
	if got := e.localtimeTarget(); got != before {
		t.Errorf("refused call changed /etc/localtime: %q -> %q", before, got)
	}
	if m := keyValues(e.mustTimedatectl("show")); m["Timezone"] != "Europe/Berlin" {
		t.Errorf("refused call changed Timezone: %q", m["Timezone"])
	}
	// Reading is open to everyone.
	if out, err := e.run(peers.NeedTool(t, "setpriv"), "--reuid="+u.Uid, "--regid="+u.Gid, "--init-groups",
		peers.NeedTool(t, "busctl"), "--system", "get-property", gdbus.NameTimedate, string(gdbus.PathTimedate), gdbus.TimedateSpec.Name, "Timezone"); err != nil || !strings.Contains(out, "Europe/Berlin") {
		t.Errorf("unprivileged get-property: %v %s", err, out)
	}
	rule := filepath.Join(e.rules, "49-gnomon-test-"+e.tag+".rules")
	text := fmt.Sprintf(`polkit.addRule(function(action, subject) {
    if (action.id == "org.freedesktop.timedate1.set-timezone" && subject.isInGroup(%q)) {
        return polkit.Result.YES;
    }
});
`, group)
	if err := os.WriteFile(rule, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	if pw, err := user.Lookup("polkitd"); err == nil {
		uid, _ := strconv.Atoi(pw.Uid)
		os.Chown(rule, uid, 0)
	}
	// polkitd notices the new rules file by itself.
	peers.Eventually(t, 15*time.Second, "SetTimezone allowed by the group rule", func() error {
		out, err := asUser("SetTimezone", "Asia/Tokyo", "false")
		if err != nil {
			return fmt.Errorf("%v: %s", err, out)
		}
		return nil
	})
	if got := e.localtimeTarget(); got != "../usr/share/zoneinfo/Asia/Tokyo" {
		t.Errorf("/etc/localtime after allowed call: %q", got)
	}
	// The rule grants set-timezone only, nothing else.
	for _, interactive := range []string{"false", "true"} {
		if out, err := asUser("SetNTP", "false", interactive); err == nil || !refused(out) {
			t.Errorf("unprivileged SetNTP(false, %s): %v %s", interactive, err, out)
		}
	}
	if m := keyValues(e.mustTimedatectl("show")); m["NTP"] != "yes" {
		t.Errorf("refused SetNTP changed NTP: %q", m["NTP"])
	}
	e.mustTimedatectl("set-timezone", "Europe/Berlin")

	// Without polkit on the bus only root is allowed (fail closed), even
	// for the user the rule would let through.
	e.polkitd.Stop()
	peers.Eventually(t, 10*time.Second, "polkitd gone from the bus", func() error {
		if e.hasOwner(e.client, "org.freedesktop.PolicyKit1") {
			return errors.New("still there")
		}
		return nil
	})
	out, err = asUser("SetTimezone", "Asia/Tokyo", "false")
	if err == nil || !strings.Contains(out, "org.freedesktop.DBus.Error.AccessDenied") {
		t.Errorf("SetTimezone without polkit: %v %s", err, out)
	}
	if got := e.localtimeTarget(); got != "../usr/share/zoneinfo/Europe/Berlin" {
		t.Errorf("refused call without polkit changed /etc/localtime: %q", got)
	}
	e.mustTimedatectl("set-timezone", "Europe/Paris")
	e.mustTimedatectl("set-timezone", "Europe/Berlin")
}

// testReconnect kills the bus and starts a new one at the same address:
// gnomond keeps running and its names come back.
func (e *env) packetCount(c *godbus.Conn) uint64 {
	var m struct {
		Leap, Version, Mode, Stratum uint32
		Precision                    int32
		RootDelay, RootDispersion    uint64
		Reference                    []byte
		T1, T2, T3, T4               uint64
		Ignored                      bool
		PacketCount, Jitter          uint64
	}
	v, err := c.Object(gdbus.NameTimesync, gdbus.PathTimesync).GetProperty(gdbus.TimesyncSpec.Name + ".NTPMessage")
	if err != nil {
		e.t.Fatalf("NTPMessage: %v", err)
	}
	if err := godbus.Store([]any{v.Value()}, &m); err != nil {
		e.t.Fatalf("NTPMessage %v: %v", v, err)
	}
	return m.PacketCount
}

func testReconnect(e *env) {
	t := e.t
	before := e.packetCount(e.client)
	e.client.Close()
	// Kill the bus outright (SIGKILL), as a crash would.
	_ = e.bus.Cmd.Process.Kill()
	<-e.bus.Done()
	time.Sleep(500 * time.Millisecond)
	if !e.gnomond.Alive() {
		t.Fatal("gnomond exited when the bus went away")
	}
	e.bus.Restart(t)
	c, err := godbus.Connect(e.addr)
	if err != nil {
		t.Fatal(err)
	}
	e.client = c
	for _, n := range []string{gdbus.NameTimedate, gdbus.NameTimesync, gdbus.NameGnomon} {
		e.waitName(c, n, 20*time.Second)
	}
	var tz string
	if err := c.Object(gdbus.NameTimedate, gdbus.PathTimedate).StoreProperty(gdbus.TimedateSpec.Name+".Timezone", &tz); err != nil || tz != "Europe/Berlin" {
		t.Errorf("Timezone after reconnect: %q %v", tz, err)
	}
	var name string
	if err := c.Object(gdbus.NameTimesync, gdbus.PathTimesync).StoreProperty(gdbus.TimesyncSpec.Name+".ServerName", &name); err != nil || name != "127.0.0.1" {
		t.Errorf("ServerName after reconnect: %q %v", name, err)
	}
	// Synchronization went on while the bus was away.
	peers.Eventually(t, 15*time.Second, "new NTP replies after the bus came back", func() error {
		if n := e.packetCount(c); n <= before {
			return fmt.Errorf("packet count %d, was %d", n, before)
		}
		return nil
	})
	if !e.gnomond.Alive() {
		t.Fatal("gnomond exited")
	}
}
