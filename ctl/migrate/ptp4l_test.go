package migrate

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"gnomon.dev/gnomon/service/config"
)

// ptp4lCorpus: linuxptp 3.1.1's example configurations as Debian ships
// them (/usr/share/doc/linuxptp/configs), and a hand-written multi-port
// file. The examples name no interface (ptp4l takes it with -i), so they
// are migrated with --interface eth0, and with the phc2sys line a
// linuxptp user runs beside ptp4l.
var ptp4lCorpus = []struct {
	file    string
	ifaces  []string
	phc2sys []string
}{
	{"default.cfg", []string{"eth0"}, []string{"phc2sys -a -r -m"}},
	{"gPTP.cfg", []string{"eth0"}, nil},
	{"automotive-master.cfg", []string{"eth0"}, nil},
	{"automotive-slave.cfg", []string{"eth0"}, []string{"phc2sys -s eth0 -c CLOCK_REALTIME -w -O 0 -E linreg"}},
	{"UNICAST-MASTER.cfg", []string{"eth0"}, nil},
	{"UNICAST-SLAVE.cfg", nil, nil},
	{"G.8275.1.cfg", []string{"eth0"}, nil},
	{"G.8275.2.cfg", []string{"eth0"}, nil},
	{"G.8265.1.cfg", []string{"eth0"}, nil},
	{"E2E-TC.cfg", []string{"eth0", "eth1"}, nil},
	{"P2P-TC.cfg", []string{"eth0", "eth1"}, nil},
	{"multiport.conf", []string{"eth0", "eth9"}, []string{"phc2sys -s /dev/ptp0 -c eth1 -n 24 -q", "phc2sys -a -r -x"}},
	{"gPTP.cfg:no-interface", nil, nil},
}

func migratePTP4lCorpus(t *testing.T) map[string]*Result {
	t.Helper()
	out := map[string]*Result{}
	for _, c := range ptp4lCorpus {
		file, _, _ := strings.Cut(c.file, ":")
		res, err := PTP4l(filepath.Join("testdata", "ptp4l", file), PTP4lOptions{Interfaces: c.ifaces, Phc2sys: c.phc2sys})
		if err != nil {
			t.Fatalf("%s: %v", c.file, err)
		}
		out[c.file] = res
	}
	return out
}

func TestPTP4lGolden(t *testing.T) {
	for name, res := range migratePTP4lCorpus(t) {
		t.Run(name, func(t *testing.T) {
			if _, err := config.Parse(name, res.TOML, config.Options{CanSetClock: true}); err != nil {
				t.Fatalf("migrated %s does not parse:\n%v\n%s", name, err, res.TOML)
			}
			base := "ptp4l-" + strings.NewReplacer(".cfg", "", ".conf", "", ":", "-").Replace(name)
			checkGolden(t, base+".toml", res.TOML)
			checkGolden(t, base+".warnings", []byte(warningsText(res.Warnings)))
		})
	}
}

// The settings the examples are about come through.
func TestPTP4lMappings(t *testing.T) {
	res := migratePTP4lCorpus(t)
	parse := func(name string) *config.Config {
		c, err := config.Parse(name, res[name].TOML, config.Options{CanSetClock: true})
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	g := parse("gPTP.cfg")
	if len(g.PTPPorts) != 1 || g.PTPPorts[0].Profile != "gptp" || g.PTPPorts[0].Transport != "ethernet" || g.PTPPorts[0].DelayMechanism != "p2p" ||
		g.PTPPorts[0].Priority1 != 248 || g.PTPPorts[0].SyncInterval != -3 || g.PTPPorts[0].AnnounceInterval != 0 {
		t.Errorf("gPTP: %+v", g.PTPPorts)
	}
	a := parse("automotive-slave.cfg")
	if len(a.Sources) != 1 || a.Sources[0].Mode != config.SourcePTP || a.Sources[0].PTP.Interface != "eth0" || a.Sources[0].PTP.Profile != "automotive" {
		t.Errorf("automotive-slave: %+v", a.Sources)
	}
	if am := parse("automotive-master.cfg"); len(am.PTPPorts) != 1 || am.PTPPorts[0].Role != "grandmaster" || am.PTPPorts[0].Profile != "automotive" {
		t.Errorf("automotive-master: %+v", am.PTPPorts)
	}
	m := parse("multiport.conf")
	if m.Clock.Mode != "observe" || len(m.PTPPorts) != 3 || len(m.Sources) != 1 {
		t.Fatalf("multiport: clock %q, %d ports, %d sources", m.Clock.Mode, len(m.PTPPorts), len(m.Sources))
	}
	e0, e1, e9 := m.PTPPorts[0], m.PTPPorts[1], m.PTPPorts[2]
	if e0.Interface != "eth0" || e0.Transport != "udp6" || !e0.MasterOnly || !e0.OneStep || e0.Domain != 24 || e0.Priority1 != 100 ||
		e0.ClockClass != 6 || e0.ClockAccuracy != 0x21 || e0.SyncInterval != -3 || e0.DelayRequestInterval != -3 ||
		e0.Asymmetry != 150*time.Nanosecond || e0.Timestamping != "software" || e0.ManagementSocket != "/run/ptp4l-test" {
		t.Errorf("eth0: %+v", e0)
	}
	if e1.Interface != "eth1" || e1.Transport != "ethernet" || e1.DelayMechanism != "e2e" || e1.AnnounceReceiptTimeout != 3 || e1.ManagementSocket != "" {
		t.Errorf("eth1: %+v", e1)
	}
	if e9.Interface != "eth9" || e9.Domain != 24 {
		t.Errorf("eth9 (from --interface): %+v", e9)
	}
	if s := m.Sources[0]; s.PTP.Interface != "wlan0" || s.PTP.DelayMechanism != "p2p" {
		t.Errorf("wlan0: %+v", s.PTP)
	}
	w := warningsText(res["multiport.conf"].Warnings)
	for _, want := range []string{":13: summary_interval: logging", ":14: tx_timestamp_timeout: no equivalent", ":15: no_such_option: unknown ptp4l option",
		":26: delay_mechanism: Auto", ":27: announceReceiptTimeout: \"1\" is not an integer between 2 and 255", ":29: eth1: a second section",
		":35: time_stamping: \"onestep\"", ":37: section header without ']'", "-c eth1: disciplining a PHC", "-x: unknown or unsupported phc2sys option"} {
		if !strings.Contains(w, want) {
			t.Errorf("no warning %q in\n%s", want, w)
		}
	}
	// every line of linuxptp's gPTP and automotive examples is what the
	// profiles do (inhibit_delay_req, syncReceiptTimeout 3,
	// neighborPropDelayThresh 800, the operational intervals)
	for _, name := range []string{"automotive-master.cfg", "gPTP.cfg"} {
		if w := warningsText(res[name].Warnings); w != "" {
			t.Errorf("%s warnings:\n%s", name, w)
		}
	}
	if w := warningsText(res["default.cfg"].Warnings); strings.Count(w, "\n") != 1 {
		t.Errorf("default.cfg repeats linuxptp's defaults: only the phc2sys line should warn, got\n%s", w)
	}
}

// neighborPropDelayThresh other than 802.1AS's 800 ns is carried over on
// a gPTP port, and warned about outside one.
func TestPTP4lNeighborPropDelayThresh(t *testing.T) {
	dir := t.TempDir()
	for _, tc := range []struct {
		conf, want string
	}{
		{"[global]\ntransportSpecific 0x1\nnetwork_transport L2\ndelay_mechanism P2P\nneighborPropDelayThresh 100000\n", "neighbor-prop-delay-thresh = 0.0001"},
		{"[global]\nneighborPropDelayThresh 100000\n", ""},
	} {
		path := filepath.Join(dir, "p.cfg")
		os.WriteFile(path, []byte(tc.conf), 0o644)
		res, err := PTP4l(path, PTP4lOptions{Interfaces: []string{"eth0"}})
		if err != nil {
			t.Fatal(err)
		}
		c, err := config.Parse("p.toml", res.TOML, config.Options{CanSetClock: true})
		if err != nil {
			t.Fatalf("%s: %v\n%s", tc.conf, err, res.TOML)
		}
		w := warningsText(res.Warnings)
		if tc.want != "" && (!strings.Contains(string(res.TOML), tc.want) || c.PTPPorts[0].NeighborPropDelayThresh != 100*time.Microsecond || w != "") {
			t.Errorf("gPTP: %+v, warnings %q\n%s", c.PTPPorts, w, res.TOML)
		}
		if tc.want == "" && (strings.Contains(string(res.TOML), "neighbor-prop") || !strings.Contains(w, "neighborPropDelayThresh")) {
			t.Errorf("not gPTP: warnings %q\n%s", w, res.TOML)
		}
	}
}

func TestPTP4lUnreadable(t *testing.T) {
	dir := t.TempDir()
	bin := filepath.Join(dir, "bin.cfg")
	os.WriteFile(bin, []byte{0x7f, 'E', 'L', 'F', 0, 0xff}, 0o644)
	for _, p := range []string{filepath.Join(dir, "missing.cfg"), bin} {
		if _, err := PTP4l(p, PTP4lOptions{}); err == nil {
			t.Errorf("%s: no error", p)
		}
	}
}

// TestGnomondAcceptsPTP4l runs gnomond check-config on every migrated
// example.
func TestGnomondAcceptsPTP4l(t *testing.T) {
	if testing.Short() {
		t.Skip("builds gnomond")
	}
	bin := buildGnomond(t)
	dir := t.TempDir()
	for name, res := range migratePTP4lCorpus(t) {
		t.Run(name, func(t *testing.T) {
			p := filepath.Join(dir, strings.ReplaceAll(name, ":", "-")+".gnomon.toml")
			if err := os.WriteFile(p, res.TOML, 0o644); err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			out, err := exec.CommandContext(ctx, bin, "check-config", p).CombinedOutput()
			if err != nil || !bytes.Contains(out, []byte(": ok (")) {
				t.Fatalf("gnomond check-config %s: %v\n%s\n%s", p, err, out, res.TOML)
			}
		})
	}
}

func FuzzPTP4l(f *testing.F) {
	for _, c := range ptp4lCorpus {
		file, _, _ := strings.Cut(c.file, ":")
		b, err := os.ReadFile(filepath.Join("testdata", "ptp4l", file))
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b, "phc2sys -a -r")
	}
	f.Fuzz(func(t *testing.T, b []byte, phc string) {
		dir := t.TempDir()
		p := filepath.Join(dir, "ptp4l.conf")
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
		res, err := PTP4l(p, PTP4lOptions{Interfaces: []string{"eth0"}, Phc2sys: []string{phc}})
		if err != nil {
			return
		}
		if _, err := config.Parse("fuzz", res.TOML, config.Options{CanSetClock: true}); err != nil {
			t.Fatalf("migrated output does not parse: %v\n%s\n--- from\n%q", err, res.TOML, b)
		}
	})
}
