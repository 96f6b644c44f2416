// Package ptp tests gnomond's PTP against linuxptp's ptp4l and pmc
// (Debian 12's linuxptp 3.1.1) in network namespaces joined by veth
// pairs, with software timestamps. Every daemon runs without
// CAP_SYS_TIME; gnomond in observe mode, ptp4l with free_running 1.
package ptp

import (
	"bufio"
	"encoding/json"
	"flag"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"gnomon.dev/gnomon/tests/peers"
)

var gnomondBin, gnomonctlBin string

func TestMain(m *testing.M) {
	// The tests mostly wait for daemons on timers: run them all at once
	// unless -parallel was given (the default is GOMAXPROCS, 2 here).
	flag.Parse()
	set := false
	flag.Visit(func(f *flag.Flag) { set = set || f.Name == "test.parallel" })
	if !set {
		_ = flag.Set("test.parallel", "8")
	}
	os.Exit(peers.BuildAndRun(m, map[string]*string{"./cmd/gnomond": &gnomondBin, "./cmd/gnomonctl": &gnomonctlBin}))
}

// full runs every transport; without it the bounded part runs (UDPv4 E2E
// and Ethernet P2P). make test-ptp sets it.
func full() bool { return os.Getenv("GNOMON_PTP_FULL") == "1" }

func ip(t testing.TB, args ...string) string {
	t.Helper()
	out, err := exec.Command(peers.NeedTool(t, "ip"), args...).CombinedOutput()
	if err != nil {
		t.Fatalf("ip %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

// netns makes a namespace named gn-ptp-<tag>-<role>, lo up, deleted when
// the test ends (after the processes in it: cleanups run in reverse).
func netns(t testing.TB, tag, role string) string {
	t.Helper()
	name := "gn-ptp-" + tag + "-" + role
	ip(t, "netns", "add", name)
	t.Cleanup(func() {
		if out, err := exec.Command("ip", "netns", "del", name).CombinedOutput(); err != nil {
			t.Errorf("ip netns del %s: %v: %s", name, err, out)
		}
	})
	ip(t, "-n", name, "link", "set", "lo", "up")
	return name
}

// link joins namespaces a and b with a veth pair: interface ifA in a
// (address addrA) and ifB in b.
func link(t testing.TB, tag, a, ifA, addrA, b, ifB, addrB string) {
	t.Helper()
	tmpA, tmpB := "gq"+tag+ifA, "gq"+tag+ifB
	ip(t, "link", "add", tmpA, "type", "veth", "peer", "name", tmpB)
	ip(t, "link", "set", tmpA, "netns", a, "name", ifA)
	ip(t, "link", "set", tmpB, "netns", b, "name", ifB)
	ip(t, "-n", a, "addr", "add", addrA, "dev", ifA)
	ip(t, "-n", b, "addr", "add", addrB, "dev", ifB)
	ip(t, "-n", a, "link", "set", ifA, "up")
	ip(t, "-n", b, "link", "set", ifB, "up")
}

// identityOf is the clock identity ptp4l and gnomond derive from an
// interface's MAC address.
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

// safeIn runs argv in namespace ns without CAP_SYS_TIME.
func safeIn(t testing.TB, ns string, argv ...string) []string {
	t.Helper()
	return peers.InNetns(t, ns, peers.Safe(t, argv...))
}

func ptp4lFlags(transport, delay string) []string {
	f := []string{"-S", "-m", "-q", "--free_running", "1", "--delay_mechanism", delay}
	switch transport {
	case "udp4":
		f = append(f, "-4")
	case "udp6":
		f = append(f, "-6")
	case "ethernet":
		f = append(f, "-2")
	}
	return f
}

// startGnomond writes cfg and runs gnomond in ns (observe mode is in cfg).
func startGnomond(t testing.TB, dir, ns, name, cfg string) *peers.Proc {
	t.Helper()
	path := filepath.Join(dir, name+".toml")
	if err := os.WriteFile(path, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	// Registered first, so it runs after the process is stopped: a gnomond
	// built with -race (GNOMON_TEST_GNOMOND) reports races in its log.
	t.Cleanup(func() {
		if b, err := os.ReadFile(filepath.Join(dir, name+".log")); err == nil && strings.Contains(string(b), "WARNING: DATA RACE") {
			t.Errorf("%s reported a data race:\n%s", name, b)
		}
	})
	return peers.Start(t, dir, name, nil, safeIn(t, ns, gnomondBin, "--config", path, "--no-dbus", "--user", "", "--state-dir", "")...)
}

const gnomondHead = `[clock]
mode = "observe"
drift-file = ""
[log]
level = "debug"
format = "json"
`

// measurement is one "PTP measurement" log record of gnomond.
type measurement struct {
	Msg            string `json:"msg"`
	OffsetNS       int64  `json:"offset_ns"`
	RawOffsetNS    int64  `json:"raw_offset_ns"`
	PathDelayNS    int64  `json:"path_delay_ns"`
	State          string `json:"state"`
	Servo          string `json:"servo"`
	Grandmaster    string `json:"grandmaster"`
	Malformed      uint64 `json:"malformed"`
	WrongVersion   uint64 `json:"wrong_version"`
	ForeignDropped uint64 `json:"foreign_dropped"`
	RxAnnounce     uint64 `json:"rx_announce"`
	Foreign        int    `json:"foreign"`
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

var ptp4lOffsetRE = regexp.MustCompile(`master offset\s+(-?\d+) s(\d) freq\s+[+-]?\d+ path delay\s+(-?\d+)`)

// ptp4lOffsets are the "master offset" lines of a ptp4l log.
func ptp4lOffsets(t testing.TB, p *peers.Proc) (offsets, delays []float64) {
	t.Helper()
	b, err := os.ReadFile(p.Log)
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range ptp4lOffsetRE.FindAllStringSubmatch(string(b), -1) {
		o, _ := strconv.ParseFloat(m[1], 64)
		d, _ := strconv.ParseFloat(m[3], 64)
		offsets = append(offsets, o)
		delays = append(delays, d)
	}
	return offsets, delays
}

func logHas(t testing.TB, p *peers.Proc, s string) bool {
	t.Helper()
	b, err := os.ReadFile(p.Log)
	if err != nil {
		t.Fatal(err)
	}
	return strings.Contains(string(b), s)
}

func setup(t *testing.T) (tag, dir string) {
	t.Helper()
	peers.NeedRoot(t, "network namespaces, setpriv")
	peers.NeedTool(t, "ptp4l")
	peers.NeedTool(t, "setpriv")
	return peers.RandomHex(t, 2), peers.TempDir(t, 0o755)
}

// The shared PTP test helpers (tests/peers/ptplab.go).
type stats = peers.Stats

var (
	statsOf = peers.StatsOf
	waitFor = peers.WaitFor
	inNetns = peers.InNetnsDo
)
