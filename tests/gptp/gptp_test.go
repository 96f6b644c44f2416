// Package gptp tests gnomond's gPTP (802.1AS) profile against linuxptp's
// ptp4l with the gPTP.cfg it ships (a copy in ctl/migrate/testdata/ptp4l),
// in network namespaces joined by veth pairs, with software timestamps
// and --neighborPropDelayThresh 100000 (a veth's software-stamped peer
// delay is above 802.1AS's 800 ns). Every daemon runs without
// CAP_SYS_TIME; gnomond in observe mode, ptp4l with free_running 1.
package gptp

import (
	"bufio"
	"encoding/json"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"gnomon.dev/gnomon/tests/peers"
)

var gnomondBin string

func TestMain(m *testing.M) {
	os.Exit(peers.BuildAndRun(m, map[string]*string{"./cmd/gnomond": &gnomondBin}))
}

func ip(t testing.TB, args ...string) string {
	t.Helper()
	out, err := exec.Command(peers.NeedTool(t, "ip"), args...).CombinedOutput()
	if err != nil {
		t.Fatalf("ip %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

func netns(t testing.TB, tag, role string) string {
	t.Helper()
	name := "gn-prof-" + tag + "-" + role
	ip(t, "netns", "add", name)
	t.Cleanup(func() {
		if out, err := exec.Command("ip", "netns", "del", name).CombinedOutput(); err != nil {
			t.Errorf("ip netns del %s: %v: %s", name, err, out)
		}
	})
	ip(t, "-n", name, "link", "set", "lo", "up")
	return name
}

func link(t testing.TB, tag, a, ifA, b, ifB string) {
	t.Helper()
	tmpA, tmpB := "gg"+tag+ifA, "gg"+tag+ifB
	ip(t, "link", "add", tmpA, "type", "veth", "peer", "name", tmpB)
	ip(t, "link", "set", tmpA, "netns", a, "name", ifA)
	ip(t, "link", "set", tmpB, "netns", b, "name", ifB)
	ip(t, "-n", a, "link", "set", ifA, "up")
	ip(t, "-n", b, "link", "set", ifB, "up")
}

func identityOf(t testing.TB, ns, iface string) string {
	t.Helper()
	out := ip(t, "-n", ns, "-o", "link", "show", iface)
	m := regexp.MustCompile(`link/ether ([0-9a-f:]{17})`).FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("no MAC address for %s in %s: %s", iface, ns, out)
	}
	h := strings.ReplaceAll(m[1], ":", "")
	return h[0:6] + ".fffe." + h[6:12]
}

func safeIn(t testing.TB, ns string, argv ...string) []string {
	t.Helper()
	return peers.InNetns(t, ns, peers.Safe(t, argv...))
}

func setup(t *testing.T) (tag, dir, cfg string) {
	t.Helper()
	peers.NeedRoot(t, "network namespaces, setpriv")
	peers.NeedTool(t, "ptp4l")
	peers.NeedTool(t, "setpriv")
	cfg = filepath.Join(peers.ModuleRoot(t), "ctl", "migrate", "testdata", "ptp4l", "gPTP.cfg")
	if _, err := os.Stat(cfg); err != nil {
		t.Fatal(err)
	}
	return peers.RandomHex(t, 2), peers.TempDir(t, 0o755), cfg
}

// ptp4l with gPTP.cfg, software timestamps, never touching a clock, with
// debug logging (asCapable changes are logged at debug level) and a
// summary interval of one Sync interval (1/8 s), so that every offset is
// printed rather than a summary of them.
func ptp4l(cfg, dir, name string, args ...string) []string {
	return append([]string{"ptp4l", "-f", cfg, "-S", "-m", "-q", "-l", "7", "--free_running", "1", "--summary_interval", "-3",
		"--neighborPropDelayThresh", "100000", "--uds_address", filepath.Join(dir, name+".sock")}, args...)
}

const gnomondHead = `[clock]
mode = "observe"
drift-file = ""
[log]
level = "debug"
format = "json"
`

func startGnomond(t testing.TB, dir, ns, name, cfg string) *peers.Proc {
	t.Helper()
	path := filepath.Join(dir, name+".toml")
	if err := os.WriteFile(path, []byte(gnomondHead+cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	return peers.Start(t, dir, name, nil, safeIn(t, ns, gnomondBin, "--config", path, "--no-dbus", "--user", "", "--state-dir", "")...)
}

type measurement struct {
	Msg         string `json:"msg"`
	OffsetNS    int64  `json:"offset_ns"`
	RawOffsetNS int64  `json:"raw_offset_ns"`
	PathDelayNS int64  `json:"path_delay_ns"`
	State       string `json:"state"`
	Grandmaster string `json:"grandmaster"`
}

func gnomondMeasurements(t testing.TB, p *peers.Proc) []measurement {
	t.Helper()
	f, err := os.Open(p.Log)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []measurement
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		var m measurement
		if json.Unmarshal(sc.Bytes(), &m) == nil && m.Msg == "PTP measurement" {
			out = append(out, m)
		}
	}
	return out
}

var offsetRE = regexp.MustCompile(`master offset\s+(-?\d+) s(\d) freq\s+[+-]?\d+ path delay\s+(-?\d+)`)

func ptp4lOffsets(t testing.TB, p *peers.Proc) (offsets, delays []float64) {
	t.Helper()
	for _, m := range offsetRE.FindAllStringSubmatch(readLog(t, p), -1) {
		o, _ := strconv.ParseFloat(m[1], 64)
		d, _ := strconv.ParseFloat(m[3], 64)
		offsets = append(offsets, -o) // ptp4l prints local minus master; gnomond's sign is master minus local
		delays = append(delays, d)
	}
	return offsets, delays
}

// the bounds of tests/ptp: loose enough for a loaded CI machine, tight
// enough to catch a sign or a path delay gone wrong.
func bound(t testing.TB, what string, s stats) {
	t.Helper()
	t.Logf("%s: %s", what, s)
	if s.N < 5 || s.RMS > 50e3 || s.Med > 10e3 {
		t.Errorf("%s: %s: outside RMS 50 µs / median 10 µs (or too few samples)", what, s)
	}
}

// ptp4l (gPTP.cfg) is grandmaster with two ports; gnomond (profile =
// "gptp") is slave on one link, a ptp4l slave (gPTP.cfg) on the other is
// the yardstick.
func TestPTP4lGrandmasterGnomondSlave(t *testing.T) {
	t.Parallel()
	tag, dir, cfg := setup(t)
	m, g, p := netns(t, tag, "m"), netns(t, tag, "g"), netns(t, tag, "p")
	link(t, tag, m, "m0", g, "g0")
	link(t, tag, m, "m1", p, "p0")
	gm := identityOf(t, m, "m0")
	master := peers.Start(t, dir, "ptp4l-master", nil, safeIn(t, m, ptp4l(cfg, dir, "m", "-i", "m0", "-i", "m1", "--priority1", "100")...)...)
	slave := peers.Start(t, dir, "ptp4l-slave", nil, safeIn(t, p, ptp4l(cfg, dir, "s", "-i", "p0")...)...)
	gn := startGnomond(t, dir, g, "gnomond", "[[source]]\nmode = \"ptp\"\nprofile = \"gptp\"\ninterface = \"g0\"\ntimestamping = \"software\"\n")
	var since time.Time
	ok := waitFor(60*time.Second, func() bool {
		ms := gnomondMeasurements(t, gn)
		if len(ms) > 0 && ms[len(ms)-1].State == "SLAVE" && since.IsZero() {
			since = time.Now()
		}
		return !since.IsZero() && time.Since(since) > 6*time.Second || !gn.Alive() || !master.Alive()
	})
	if !ok {
		t.Fatalf("gnomond did not stay SLAVE for 6 s (alive %v, ptp4l alive %v)", gn.Alive(), master.Alive())
	}
	ms := gnomondMeasurements(t, gn)
	if last := ms[len(ms)-1]; last.State != "SLAVE" || last.Grandmaster != gm {
		t.Errorf("gnomond: state %s, grandmaster %s; ptp4l's clock is %s", last.State, last.Grandmaster, gm)
	}
	// ptp4l sends Sync on a gPTP port only once it is asCapable: the
	// measurements above say it was on gnomond's link; its log says so.
	if n := strings.Count(readLog(t, master), "setting asCapable"); n < 2 {
		t.Errorf("ptp4l master logged asCapable %d times, want both ports", n)
	}
	// gnomond's side of the link: asCapable, and the neighborRateRatio
	// of two ports on one host's clock is 1
	if l, ok := lastLink(t, gn); !ok || !l.AsCapable || math.Abs(l.NRR-1) > 1e-4 {
		t.Errorf("gnomond's last gPTP link record: %+v (found %v)", l, ok)
	} else {
		t.Logf("gnomond: asCapable, neighborRateRatio %.9f", l.NRR)
	}
	var offs, dels []float64
	for _, x := range ms[len(ms)/3:] {
		offs = append(offs, float64(x.RawOffsetNS))
		dels = append(dels, float64(x.PathDelayNS))
	}
	bound(t, "gnomond gPTP slave of ptp4l (system clock)", statsOf(offs, dels))
	po, pd := ptp4lOffsets(t, slave)
	t.Logf("ptp4l gPTP slave of ptp4l (yardstick): %s", statsOf(po, pd))
}

// gnomond (profile = "gptp", [[ptp-port]] priority1 100) is grandmaster,
// ptp4l with gPTP.cfg selects it, becomes asCapable on the link, takes
// gnomond's Follow_Ups (ptp4l drops a gPTP Follow_Up without the
// follow-up information TLV) and measures it.
func TestGnomondGrandmasterPTP4lSlave(t *testing.T) {
	t.Parallel()
	tag, dir, cfg := setup(t)
	g, p := netns(t, tag, "g"), netns(t, tag, "p")
	link(t, tag, g, "g0", p, "p0")
	gid := identityOf(t, g, "g0")
	startGnomond(t, dir, g, "gnomond", "[[ptp-port]]\nprofile = \"gptp\"\ninterface = \"g0\"\ntimestamping = \"software\"\npriority1 = 100\n")
	slave := peers.Start(t, dir, "ptp4l-slave", nil, safeIn(t, p, ptp4l(cfg, dir, "s", "-i", "p0")...)...)
	ok := waitFor(60*time.Second, func() bool {
		o, _ := ptp4lOffsets(t, slave)
		return len(o) >= 12 || !slave.Alive()
	})
	log := readLog(t, slave)
	if !ok {
		t.Fatalf("ptp4l measured gnomond %d times", strings.Count(log, "master offset"))
	}
	if !strings.Contains(log, "setting asCapable") {
		t.Error("ptp4l never became asCapable on gnomond's link")
	}
	if !strings.Contains(log, "selected best master clock "+gid) {
		t.Errorf("ptp4l did not select gnomond's clock %s", gid)
	}
	po, pd := ptp4lOffsets(t, slave)
	bound(t, "ptp4l gPTP slave of gnomond", statsOf(po[len(po)/3:], pd[len(pd)/3:]))
}

func linuxptpConfig(t testing.TB, name string) string {
	t.Helper()
	return filepath.Join(peers.ModuleRoot(t), "ctl", "migrate", "testdata", "ptp4l", name)
}

// ptp4l with linuxptp's automotive-master.cfg (static master, no BMCA, no
// Announce) and gnomond with profile = "automotive" as slave.
func TestPTP4lAutomotiveMasterGnomondSlave(t *testing.T) {
	t.Parallel()
	tag, dir, _ := setup(t)
	m, g := netns(t, tag, "m"), netns(t, tag, "g")
	link(t, tag, m, "m0", g, "g0")
	gm := identityOf(t, m, "m0")
	master := peers.Start(t, dir, "ptp4l-master", nil, safeIn(t, m, ptp4l(linuxptpConfig(t, "automotive-master.cfg"), dir, "m", "-i", "m0")...)...)
	gn := startGnomond(t, dir, g, "gnomond", "[[source]]\nmode = \"ptp\"\nprofile = \"automotive\"\ninterface = \"g0\"\ntimestamping = \"software\"\n")
	ok := waitFor(40*time.Second, func() bool {
		return len(gnomondMeasurements(t, gn)) >= 60 || !gn.Alive() || !master.Alive()
	})
	ms := gnomondMeasurements(t, gn)
	if !ok || len(ms) < 60 {
		t.Fatalf("gnomond measured %d times (alive %v, ptp4l alive %v)", len(ms), gn.Alive(), master.Alive())
	}
	if last := ms[len(ms)-1]; last.State != "SLAVE" || last.Grandmaster != gm {
		t.Errorf("gnomond: state %s, grandmaster %s; ptp4l's clock is %s", last.State, last.Grandmaster, gm)
	}
	var offs, dels []float64
	for _, x := range ms[len(ms)/3:] {
		offs = append(offs, float64(x.RawOffsetNS))
		dels = append(dels, float64(x.PathDelayNS))
	}
	bound(t, "gnomond automotive slave of ptp4l (system clock)", statsOf(offs, dels))
	if l, ok := lastLink(t, gn); !ok || !l.AsCapable {
		t.Errorf("gnomond's last gPTP link record: %+v (found %v): the automotive profile assumes asCapable", l, ok)
	}
}

// gnomond (profile = "automotive", role = "grandmaster") and ptp4l with
// linuxptp's automotive-slave.cfg.
func TestGnomondAutomotiveGrandmasterPTP4lSlave(t *testing.T) {
	t.Parallel()
	tag, dir, _ := setup(t)
	g, p := netns(t, tag, "g"), netns(t, tag, "p")
	link(t, tag, g, "g0", p, "p0")
	gn := startGnomond(t, dir, g, "gnomond", "[[ptp-port]]\nprofile = \"automotive\"\nrole = \"grandmaster\"\ninterface = \"g0\"\ntimestamping = \"software\"\n")
	slave := peers.Start(t, dir, "ptp4l-slave", nil, safeIn(t, p, ptp4l(linuxptpConfig(t, "automotive-slave.cfg"), dir, "s", "-i", "p0")...)...)
	ok := waitFor(60*time.Second, func() bool {
		o, _ := ptp4lOffsets(t, slave)
		return len(o) >= 12 || !slave.Alive() || !gn.Alive()
	})
	if !ok {
		t.Fatalf("ptp4l measured gnomond %d times", strings.Count(readLog(t, slave), "master offset"))
	}
	po, pd := ptp4lOffsets(t, slave)
	bound(t, "ptp4l automotive slave of gnomond", statsOf(po[len(po)/3:], pd[len(pd)/3:]))
}

type linkRecord struct {
	Msg       string  `json:"msg"`
	AsCapable bool    `json:"as_capable"`
	NRR       float64 `json:"neighbor_rate_ratio"`
}

// lastLink is gnomond's newest "gPTP link" log record.
func lastLink(t testing.TB, p *peers.Proc) (linkRecord, bool) {
	t.Helper()
	var last linkRecord
	found := false
	for _, l := range strings.Split(readLog(t, p), "\n") {
		var r linkRecord
		if json.Unmarshal([]byte(l), &r) == nil && r.Msg == "gPTP link" {
			last, found = r, true
		}
	}
	return last, found
}

// The shared PTP test helpers (tests/peers/ptplab.go).
type stats = peers.Stats

var (
	statsOf = peers.StatsOf
	waitFor = peers.WaitFor
	readLog = peers.ReadLog
)
