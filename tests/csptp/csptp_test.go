// Package csptp tests gnomond's client-server PTP (the P1588.1 draft
// layout and SPTP) against itself and against facebook/time's ptp4u
// (server) and sptp (client), in network namespaces joined by a veth
// pair, with software timestamps. Every daemon runs without
// CAP_SYS_TIME; gnomond in observe mode, sptp in free-running mode.
package csptp

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"gnomon.dev/gnomon/tests/peers"
)

// fbtimeVersion pins facebook/time (it has no tags: a pseudo-version of
// the module proxy).
const fbtimeVersion = "v0.0.0-20260822211804-f81aedc1c1e3"

var gnomondBin, gnomonctlBin string

func TestMain(m *testing.M) {
	os.Exit(peers.BuildAndRun(m, map[string]*string{"./cmd/gnomond": &gnomondBin, "./cmd/gnomonctl": &gnomonctlBin}))
}

var (
	fbOnce sync.Once
	fbDir  string
	fbErr  error
)

// fbtool builds facebook/time's ptp4u and sptp once, from the module
// proxy, into a cache directory outside the repository (GNOMON_FBTIME_DIR
// or the user cache), and returns the path of name. A failed build skips
// the test, and fails it under CI=true.
func fbtool(t testing.TB, name string) string {
	t.Helper()
	fbOnce.Do(func() {
		dir := os.Getenv("GNOMON_FBTIME_DIR")
		if dir == "" {
			cache, err := os.UserCacheDir()
			if err != nil {
				cache = os.TempDir()
			}
			dir = filepath.Join(cache, "gnomon-test", "fbtime-"+fbtimeVersion)
		}
		fbDir = dir
		if _, err := os.Stat(filepath.Join(dir, "ptp4u")); err == nil {
			if _, err := os.Stat(filepath.Join(dir, "sptp")); err == nil {
				return
			}
		}
		goBin, err := exec.LookPath("go")
		if err != nil {
			goBin = "/usr/local/go/bin/go"
		}
		cmd := exec.Command(goBin, "install", "github.com/facebook/time/cmd/ptp4u@"+fbtimeVersion, "github.com/facebook/time/cmd/sptp@"+fbtimeVersion)
		cmd.Env = append(os.Environ(), "GOBIN="+dir, "GOFLAGS=-mod=mod", "GOWORK=off")
		cmd.Dir = os.TempDir()
		if out, err := cmd.CombinedOutput(); err != nil {
			fbErr = fmt.Errorf("go install facebook/time@%s: %v\n%s", fbtimeVersion, err, out)
		}
	})
	if fbErr != nil {
		peers.SkipOrFatal(t, "%v", fbErr)
	}
	return filepath.Join(fbDir, name)
}

// pair makes namespaces gn-prof-<tag>-s (10.77.0.1 on veth "srv0") and
// gn-prof-<tag>-c (10.77.0.2 on "cli0") joined by a veth pair.
func pair(t testing.TB) (srv, cli string) {
	t.Helper()
	peers.NeedRoot(t, "network namespaces, setpriv")
	peers.NeedTool(t, "setpriv")
	tag := peers.RandomHex(t, 2)
	srv, cli = peers.Netns(t, "gn-prof-"+tag+"-s"), peers.Netns(t, "gn-prof-"+tag+"-c")
	peers.Veth(t, "gnp"+tag, srv, "srv0", "10.77.0.1/24", cli, "cli0", "10.77.0.2/24")
	return srv, cli
}

func startGnomond(t testing.TB, dir, ns, name, cfg string) *peers.Proc {
	t.Helper()
	return peers.StartGnomondIn(t, gnomondBin, dir, ns, name, cfg)
}

type measurement struct {
	Msg         string `json:"msg"`
	Variant     string `json:"variant"`
	OffsetNS    int64  `json:"offset_ns"`
	PathDelayNS int64  `json:"path_delay_ns"`
	Grandmaster string `json:"grandmaster"`
	ClockClass  int    `json:"clock_class"`
}

func measurements(t testing.TB, p *peers.Proc, variant string) []measurement {
	t.Helper()
	var out []measurement
	for _, m := range peers.LogRecords[measurement](t, p, "csptp measurement") {
		if m.Variant == variant {
			out = append(out, m)
		}
	}
	return out
}

// later: the last two thirds (after the start-up and the delay filter).
func later[T any](xs []T) []T { return xs[len(xs)/3:] }

func gnomondStats(ms []measurement) stats {
	var o, d []float64
	for _, m := range later(ms) {
		o = append(o, float64(m.OffsetNS))
		d = append(d, float64(m.PathDelayNS))
	}
	return statsOf(o, d)
}

// bound is what software timestamps on a veth pair of a loaded 2-core
// machine allow (the same bounds as tests/ptp): wide enough for CI,
// tight enough to catch a sign, a UTC offset or a path delay gone wrong.
func bound(t testing.TB, what string, s stats) {
	t.Helper()
	t.Logf("%s: %s", what, s)
	if s.N < 5 || s.RMS > 50e3 || s.Med > 10e3 {
		t.Errorf("%s: %s: outside RMS 50 µs / median 10 µs (or too few samples)", what, s)
	}
}

const gnomondServer = `
[[csptp-server]]
listen = "10.77.0.1"
clock-class = 6
clock-accuracy = 0x21
rate-limit = { interval = 0.05, burst = 16 }
workers = 2
`

// gnomond client (both layouts) against gnomond server.
func TestGnomondClientServer(t *testing.T) {
	t.Parallel()
	srv, cli := pair(t)
	dir := peers.TempDir(t, 0o755)
	startGnomond(t, dir, srv, "server", gnomondServer)
	c := startGnomond(t, dir, cli, "client", `
[[source]]
mode = "csptp"
address = "10.77.0.1"
interval = 0.25

[[source]]
mode = "csptp"
address = "10.77.0.1"
variant = "sptp"
interval = 0.25
`)
	for _, v := range []string{"1588.1", "sptp"} {
		if !waitFor(30*time.Second, func() bool { return len(measurements(t, c, v)) >= 40 }) {
			t.Fatalf("%s: %d measurements", v, len(measurements(t, c, v)))
		}
		ms := measurements(t, c, v)
		if ms[len(ms)-1].ClockClass != 6 {
			t.Errorf("%s: clock class %d", v, ms[len(ms)-1].ClockClass)
		}
		bound(t, "gnomond "+v+" client of gnomond", gnomondStats(ms))
	}
}

// gnomond's SPTP client against ptp4u.
func TestGnomondClientPTP4u(t *testing.T) {
	t.Parallel()
	bin := fbtool(t, "ptp4u")
	srv, cli := pair(t)
	dir := peers.TempDir(t, 0o755)
	startPTP4u(t, bin, dir, srv)
	c := startGnomond(t, dir, cli, "client", `
[[source]]
mode = "csptp"
address = "10.77.0.1"
variant = "sptp"
interval = 0.25
`)
	if !waitFor(30*time.Second, func() bool { return len(measurements(t, c, "sptp")) >= 40 }) {
		t.Fatalf("%d measurements", len(measurements(t, c, "sptp")))
	}
	ms := measurements(t, c, "sptp")
	if want := macIdentity(t, srv, "srv0"); ms[len(ms)-1].Grandmaster != want || ms[len(ms)-1].ClockClass != 6 {
		t.Errorf("grandmaster %s class %d, want ptp4u's %s class 6", ms[len(ms)-1].Grandmaster, ms[len(ms)-1].ClockClass, want)
	}
	bound(t, "gnomond sptp client of ptp4u", gnomondStats(ms))
}

// sptp's offset lines: "[addr gmid:...] offset <ns> servo ... path delay <ns> (...)".
var sptpRE = regexp.MustCompile(`gmid:([0-9a-f.]+)\] offset\s+(-?\d+) servo \S+ freq\s+\S+ path delay\s+(-?\d+)`)

// facebook/time's sptp client against gnomond's server.
func TestSPTPClientGnomondServer(t *testing.T) {
	t.Parallel()
	fbtool(t, "sptp")
	srv, cli := pair(t)
	dir := peers.TempDir(t, 0o755)
	g := startGnomond(t, dir, srv, "server", gnomondServer)
	bound(t, "sptp client of gnomond", runSPTP(t, dir, cli))
	if strings.Contains(readLog(t, g), `"level":"ERROR"`) {
		t.Error("gnomond server logged an error")
	}
}

// startPTP4u runs ptp4u on srv0 (10.77.0.1) with software timestamps,
// clock class 6 and a UTC offset of 37 s.
func startPTP4u(t testing.TB, bin, dir, srv string) {
	t.Helper()
	cfg := filepath.Join(dir, "ptp4u.yaml")
	if err := os.WriteFile(cfg, []byte("clockaccuracy: 33\nclockclass: 6\ndraininterval: \"30s\"\nmaxsubduration: \"1h\"\nmetricinterval: \"1m\"\nminsubinterval: \"1s\"\nutcoffset: \"37s\"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	peers.Start(t, dir, "ptp4u", nil, safeIn(t, srv, bin, "-iface", "srv0", "-ip", "10.77.0.1", "-timestamptype", "software",
		"-config", cfg, "-pidfile", filepath.Join(dir, "ptp4u.pid"), "-drainfile", filepath.Join(dir, "drain"),
		"-undrainfile", filepath.Join(dir, "undrain"), "-monitoringport", "0", "-workers", "2", "-recvworkers", "2", "-loglevel", "info")...)
}

// runSPTP runs sptp (free-running, software timestamps) in cli against
// 10.77.0.1 until it has printed 40 offsets, and returns their statistics
// in gnomond's sign with the 37 s taken out (below).
func runSPTP(t testing.TB, dir, cli string) stats {
	t.Helper()
	bin := fbtool(t, "sptp")
	cfg := filepath.Join(dir, "sptp.yaml")
	if err := os.WriteFile(cfg, []byte("iface: cli0\ntimestamping: software\nfreerunning: true\ninterval: 250ms\nmonitoringport: 0\n"+
		"servers:\n  10.77.0.1: 0\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	p := peers.Start(t, dir, "sptp", nil, safeIn(t, cli, bin, "-config", cfg)...)
	var got [][]string
	ok := waitFor(30*time.Second, func() bool {
		b, _ := os.ReadFile(p.Log)
		got = sptpRE.FindAllStringSubmatch(string(b), -1)
		return len(got) >= 40 || !p.Alive()
	})
	if !ok || len(got) < 40 {
		t.Fatalf("sptp logged %d offsets (alive %v)", len(got), p.Alive())
	}
	var o, d []float64
	for _, m := range later(got) {
		x, _ := strconv.ParseFloat(m[2], 64)
		y, _ := strconv.ParseFloat(m[3], 64)
		// sptp prints local minus server (gnomond's sign is server minus
		// local), and with software timestamps it compares the system
		// clock (UTC) with the server's TAI without applying the announced
		// currentUtcOffset: against ptp4u as against gnomond it reports
		// -37 s. Take the 37 s out.
		o = append(o, -x-37e9)
		d = append(d, y)
	}
	return statsOf(o, d)
}

// sptp against ptp4u: the yardstick for sptp against gnomond.
func TestSPTPClientPTP4u(t *testing.T) {
	t.Parallel()
	bin := fbtool(t, "ptp4u")
	srv, cli := pair(t)
	dir := peers.TempDir(t, 0o755)
	startPTP4u(t, bin, dir, srv)
	bound(t, "sptp client of ptp4u (yardstick)", runSPTP(t, dir, cli))
}

// The shared PTP test helpers (tests/peers/ptplab.go).
type stats = peers.Stats

var (
	statsOf = peers.StatsOf
	waitFor = peers.WaitFor
	readLog = peers.ReadLog
	safeIn  = peers.SafeIn
	// macIdentity is the clock identity of an interface's MAC address.
	macIdentity = peers.MACIdentity
)
