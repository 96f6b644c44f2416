package tests

// The bounded part of `make bench-long` inside `make test`: a soak of
// about a minute (scripts/bench-long.sh, BENCH_LONG_HOURS=0.02) must sample
// every daemon over time, write the CSV and the plot scripts, and compute
// the growth check for each of them. The check's verdict is not asserted
// (CHECK=0): a minute says nothing about growth over hours, and nothing
// here asserts a speed.

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"testing"
	"time"

	"gnomon.dev/gnomon/tests/peers"
)

func TestBenchLongSmoke(t *testing.T) {
	peers.NeedRoot(t, "network namespace, chronyd, ntpd")
	for _, tool := range []string{"ip", "taskset", "setpriv", "chronyd", "openssl"} {
		peers.NeedTool(t, tool)
	}
	root := peers.ModuleRoot(t)
	dir := peers.TempDir(t, 0o755)
	bin := filepath.Join(dir, "bin")
	if err := os.Mkdir(bin, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, pkg := range []string{"./tests/ntpload", "./tests/benchlong"} {
		peers.Build(t, bin, pkg)
	}
	b, err := os.ReadFile(gnomondBin)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(bin, "gnomond"), b, 0o755); err != nil {
		t.Fatal(err)
	}
	daemons := []string{"gnomond-client", "chronyd-client", "gnomond-ntp", "chronyd-ntp", "gnomond-ke", "chronyd-ke"}
	if _, err := os.Stat("/opt/gnomon-peers/ntpsec/usr/sbin/ntpd"); err == nil {
		daemons = append(daemons, "ntpd-client")
	} else {
		peers.SkipOrFatal(t, "NTPsec's ntpd is not installed (scripts/install-peers.sh unpacks it)")
	}
	out := filepath.Join(dir, "out")
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, filepath.Join(root, "scripts/bench-long.sh"))
	cmd.Dir = root
	// 72 s of soak, a sample every 2 s: about 36 per daemon.
	cmd.Env = append(os.Environ(), "BENCH_LONG_HOURS=0.02", "SAMPLE_S=2", "CHECK=0", "REPORT=0", "LONG_RATE=2000",
		"BIN="+bin, "OUT="+out)
	log, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("scripts/bench-long.sh: %v\n%s", err, log)
	}

	_, samples := readCSVFile(t, filepath.Join(out, "samples.csv"))
	for _, d := range daemons {
		var n int
		var first, last float64
		for _, r := range samples {
			if r["daemon"] != d {
				continue
			}
			n++
			ts, err1 := strconv.ParseFloat(r["t_s"], 64)
			rss, err2 := strconv.Atoi(r["rss_kb"])
			if err1 != nil || err2 != nil || rss <= 0 {
				t.Errorf("samples.csv %s: bad sample %v", d, r)
				continue
			}
			if n == 1 {
				first = ts
			}
			last = ts
		}
		// Spread over the soak, not taken at once.
		if n < 10 || last-first < 40 {
			t.Errorf("samples.csv: %d samples of %s over %.0f s, want at least 10 over 40 s or more", n, d, last-first)
		}
	}
	_, growth := readCSVFile(t, filepath.Join(out, "growth.csv"))
	for _, d := range daemons {
		i := slices.IndexFunc(growth, func(r map[string]string) bool { return r["daemon"] == d })
		if i < 0 {
			t.Errorf("growth.csv has no row for %s", d)
			continue
		}
		g := growth[i]
		if _, err := strconv.ParseFloat(g["slope_kb_per_h"], 64); err != nil {
			t.Errorf("growth.csv %s: slope %q is not a number", d, g["slope_kb_per_h"])
		}
		if r, err := strconv.ParseFloat(g["peak_ratio"], 64); err != nil || r < 1 {
			t.Errorf("growth.csv %s: peak ratio %q, want a number >= 1", d, g["peak_ratio"])
		}
		if g["verdict"] == "" || g["judged"] != strconv.FormatBool(d[:7] == "gnomond") {
			t.Errorf("growth.csv %s: verdict %q, judged %q", d, g["verdict"], g["judged"])
		}
	}
	// The load was served during the soak, and key exchanges happened.
	_, load := readCSVFile(t, filepath.Join(out, "load.csv"))
	for _, d := range []string{"gnomond-ntp", "chronyd-ntp"} {
		i := slices.IndexFunc(load, func(r map[string]string) bool { return r["label"] == d })
		if i < 0 {
			t.Errorf("load.csv has no run for %s", d)
		} else if n, _ := strconv.Atoi(load[i]["answered"]); n == 0 {
			t.Errorf("load.csv %s: no answers: %v", d, load[i])
		}
	}
	// gnomond-ke allocates enough for a collection in a minute of key
	// exchanges: its heap must be in goheap.csv.
	_, heap := readCSVFile(t, filepath.Join(out, "goheap.csv"))
	if !slices.ContainsFunc(heap, func(r map[string]string) bool { return r["daemon"] == "gnomond-ke" }) {
		t.Errorf("goheap.csv has no collection of gnomond-ke (NTS-KE load)")
	}
	for _, f := range []string{"summary.md", "long-rss.gp", "long-cpu.gp", "long-heap.gp", "plot/gnomond-ntp.dat"} {
		if _, err := os.Stat(filepath.Join(out, f)); err != nil {
			t.Errorf("not written: %s: %v", f, err)
		}
	}
	if _, err := exec.LookPath("gnuplot"); err == nil {
		if _, err := os.Stat(filepath.Join(out, "long-rss.svg")); err != nil {
			t.Errorf("gnuplot is installed but long-rss.svg was not drawn: %v", err)
		}
	}
}
