// Package gptp tests gnomond's gPTP (802.1AS) profile against linuxptp's
// ptp4l with the gPTP.cfg it ships (a copy in ctl/migrate/testdata/ptp4l),
// in network namespaces joined by veth pairs, with software timestamps
// and --neighborPropDelayThresh 100000 (a veth's software-stamped peer
// delay is above 802.1AS's 800 ns). Every daemon runs without
// CAP_SYS_TIME; gnomond in observe mode, ptp4l with free_running 1.
package gptp

import (
	"math"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"gnomon.dev/gnomon/tests/peers"
)

var gnomondBin, gnomonctlBin string

func TestMain(m *testing.M) {
	os.Exit(peers.BuildAndRun(m, map[string]*string{"./cmd/gnomond": &gnomondBin, "./cmd/gnomonctl": &gnomonctlBin}))
}

func netns(t testing.TB, tag, role string) string {
	t.Helper()
	return peers.Netns(t, "gn-prof-"+tag+"-"+role)
}

func link(t testing.TB, tag, a, ifA, b, ifB string) {
	t.Helper()
	peers.Veth(t, "gg"+tag, a, ifA, "", b, ifB, "")
}

func setup(t *testing.T) (tag, dir, cfg string) {
	t.Helper()
	peers.NeedRoot(t, "network namespaces, setpriv")
	peers.NeedTool(t, "ptp4l")
	peers.NeedTool(t, "pmc")
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

func startGnomond(t testing.TB, dir, ns, name, cfg string) *peers.Proc {
	t.Helper()
	return peers.StartGnomondIn(t, gnomondBin, dir, ns, name, cfg)
}

type measurement struct {
	OffsetNS    int64  `json:"offset_ns"`
	RawOffsetNS int64  `json:"raw_offset_ns"`
	PathDelayNS int64  `json:"path_delay_ns"`
	State       string `json:"state"`
	Grandmaster string `json:"grandmaster"`
}

func gnomondMeasurements(t testing.TB, p *peers.Proc) []measurement {
	t.Helper()
	return peers.LogRecords[measurement](t, p, "PTP measurement")
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

// thresh is 802.1AS's neighborPropDelayThresh for a software-timestamped
// veth (ptp4l gets the same on its command line).
const thresh = "neighbor-prop-delay-thresh = 100e-6\n"

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
	gn, sources := startGnomondBus(t, dir, g, "gnomond", "[[source]]\nmode = \"ptp\"\nprofile = \"gptp\"\ninterface = \"g0\"\ntimestamping = \"software\"\n"+thresh)
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
	// gnomond's side of the link on D-Bus (gnomonctl sources --json):
	// asCapable, the neighborRateRatio of two ports on one host's clock
	// is 1, and its neighborPropDelay is the one ptp4l measures on the
	// same link (pmc)
	srcs, raw := sources()
	l := ptpLink(srcs)
	if l == nil || !l.AsCapable || !l.NeighborRateRatioValid || math.Abs(l.NeighborRateRatio-1) > 1e-4 || l.NeighborPropDelayThreshNS != 100_000 {
		t.Fatalf("gnomond's 802.1AS link on D-Bus: %+v\n%s", l, raw)
	}
	nd := pmc(t, dir, filepath.Join(dir, "m.sock"), "PORT_DATA_SET_NP")[1]
	pd := pmc(t, dir, filepath.Join(dir, "m.sock"), "PORT_DATA_SET")[1]
	peer, _ := strconv.ParseFloat(pd["peerMeanPathDelay"], 64)
	t.Logf("gnomond: asCapable, neighborRateRatio %.9f, neighborPropDelay %d ns; ptp4l's port to it: asCapable %s, peerMeanPathDelay %.0f ns",
		l.NeighborRateRatio, l.NeighborPropDelayNS, nd["asCapable"], peer)
	if nd["asCapable"] != "1" || nd["neighborPropDelayThresh"] != "100000" {
		t.Errorf("ptp4l's PORT_DATA_SET_NP for gnomond's link: %v", nd)
	}
	if l.NeighborPropDelayNS <= 0 || peer <= 0 || math.Abs(float64(l.NeighborPropDelayNS)-peer) > 5000 {
		t.Errorf("neighborPropDelay: gnomond %d ns, ptp4l %.0f ns on the same link (want both positive, within 5 µs)", l.NeighborPropDelayNS, peer)
	}
	var offs, dels []float64
	for _, x := range ms[len(ms)/3:] {
		offs = append(offs, float64(x.RawOffsetNS))
		dels = append(dels, float64(x.PathDelayNS))
	}
	bound(t, "gnomond gPTP slave of ptp4l (system clock)", statsOf(offs, dels))
	po, pdl := ptp4lOffsets(t, slave)
	t.Logf("ptp4l gPTP slave of ptp4l (yardstick): %s", statsOf(po, pdl))
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
	_, sources := startGnomondBus(t, dir, g, "gnomond", "[[ptp-port]]\nprofile = \"gptp\"\ninterface = \"g0\"\ntimestamping = \"software\"\npriority1 = 100\n"+thresh)
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
	if nd := pmc(t, dir, filepath.Join(dir, "s.sock"), "PORT_DATA_SET_NP")[1]; nd["asCapable"] != "1" {
		t.Errorf("ptp4l's PORT_DATA_SET_NP: %v, want asCapable 1", nd)
	}
	// ptp4l's view of gnomond's follow-up information TLV (TIME_STATUS_NP:
	// gnomond sends cumulativeScaledRateOffset 0, an end station's, to
	// which ptp4l adds its own neighborRateRatio's offset, 1 within
	// 1e-4 on one host's clock; gmTimeBaseIndicator 0; gnomond the
	// grandmaster present)
	for _, ts := range pmc(t, dir, filepath.Join(dir, "s.sock"), "TIME_STATUS_NP") {
		csro, err := strconv.ParseFloat(ts["cumulativeScaledRateOffset"], 64)
		if err != nil || math.Abs(csro) > 1e-4 || ts["gmTimeBaseIndicator"] != "0" || ts["gmPresent"] != "true" || ts["gmIdentity"] != gid {
			t.Errorf("ptp4l's TIME_STATUS_NP: %v", ts)
		}
	}
	// gnomond's side on D-Bus against ptp4l's peer delay of the link
	srcs, raw := sources()
	l := ptpLink(srcs)
	pd := pmc(t, dir, filepath.Join(dir, "s.sock"), "PORT_DATA_SET")[1]
	peer, _ := strconv.ParseFloat(pd["peerMeanPathDelay"], 64)
	if l == nil || !l.AsCapable || math.Abs(l.NeighborRateRatio-1) > 1e-4 || l.NeighborPropDelayNS <= 0 || math.Abs(float64(l.NeighborPropDelayNS)-peer) > 5000 {
		t.Errorf("gnomond's 802.1AS link %+v against ptp4l's peerMeanPathDelay %.0f ns\n%s", l, peer, raw)
	} else {
		t.Logf("gnomond grandmaster: asCapable, neighborRateRatio %.9f, neighborPropDelay %d ns; ptp4l slave: peerMeanPathDelay %.0f ns",
			l.NeighborRateRatio, l.NeighborPropDelayNS, peer)
	}
	po, pdl := ptp4lOffsets(t, slave)
	bound(t, "ptp4l gPTP slave of gnomond", statsOf(po[len(po)/3:], pdl[len(pdl)/3:]))
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
	// Once its servo locks, gnomond asks ptp4l for the operational Sync
	// interval (1 s) and slows its own Pdelay_Req to 4 s, as
	// automotive-slave.cfg's ptp4l would (operLogSyncInterval 0,
	// operLogPdelayReqInterval 2); ptp4l's port data set shows the change
	// and its Syncs carry it.
	ok := waitFor(90*time.Second, func() bool {
		l, _ := lastLink(t, gn)
		return len(gnomondMeasurements(t, gn)) >= 60 && l.IntervalRequestsSent >= 1 && l.SyncInterval == 0 || !gn.Alive() || !master.Alive()
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
	if l, ok := lastLink(t, gn); !ok || !l.AsCapable || l.IntervalRequestsSent != 1 || l.SyncInterval != 0 || l.PdelayInterval != 2 {
		t.Errorf("gnomond's last gPTP link record: %+v (found %v): want asCapable (assumed), one interval request, Sync 2^0 s, Pdelay 2^2 s", l, ok)
	}
	if pd := pmc(t, dir, filepath.Join(dir, "m.sock"), "PORT_DATA_SET")[1]; pd["logSyncInterval"] != "0" {
		t.Errorf("ptp4l's PORT_DATA_SET after gnomond's request: %v, want logSyncInterval 0", pd)
	} else {
		t.Logf("ptp4l's port after gnomond's message interval request: logSyncInterval %s, portState %s", pd["logSyncInterval"], pd["portState"])
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
	AsCapable            bool    `json:"as_capable"`
	NRR                  float64 `json:"neighbor_rate_ratio"`
	NeighborPropDelayNS  int64   `json:"neighbor_prop_delay_ns"`
	SyncInterval         int     `json:"sync_interval"`
	PdelayInterval       int     `json:"pdelay_interval"`
	IntervalRequestsSent int     `json:"interval_requests_sent"`
}

// lastLink is gnomond's newest "gPTP link" log record.
func lastLink(t testing.TB, p *peers.Proc) (linkRecord, bool) {
	t.Helper()
	rs := peers.LogRecords[linkRecord](t, p, "gPTP link")
	if len(rs) == 0 {
		return linkRecord{}, false
	}
	return rs[len(rs)-1], true
}

// The shared PTP test helpers (tests/peers/ptplab.go).
type stats = peers.Stats

var (
	statsOf    = peers.StatsOf
	waitFor    = peers.WaitFor
	readLog    = peers.ReadLog
	identityOf = peers.MACIdentity
	safeIn     = peers.SafeIn
)
