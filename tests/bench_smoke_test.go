package tests

// The bounded part of `make bench` inside `make test`: one short round of
// scripts/bench.sh (SMOKE=1) must produce the raw CSV for every daemon,
// and tools/benchreport must turn it into the docs section and the plot
// scripts. Nothing here asserts a speed: only that the harness measures.

import (
	"context"
	"encoding/csv"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"gnomon.dev/gnomon/tests/peers"
)

func readCSVFile(t *testing.T, path string) (header []string, rows []map[string]string) {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	recs, err := csv.NewReader(f).ReadAll()
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	if len(recs) < 2 {
		t.Fatalf("%s: %d lines, want a header and rows", path, len(recs))
	}
	for _, rec := range recs[1:] {
		m := map[string]string{}
		for i, h := range recs[0] {
			m[h] = rec[i]
		}
		rows = append(rows, m)
	}
	return recs[0], rows
}

func TestBenchSmoke(t *testing.T) {
	peers.NeedRoot(t, "network namespace, chronyd, ntpd")
	for _, tool := range []string{"ip", "taskset", "setpriv", "chronyd"} {
		peers.NeedTool(t, tool)
	}
	root := peers.ModuleRoot(t)
	dir := peers.TempDir(t, 0o755)
	bin := filepath.Join(dir, "bin")
	if err := os.Mkdir(bin, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, pkg := range []string{"./tests/ntpload", "./tests/ntpfloor", "./tools/benchreport"} {
		peers.Build(t, bin, pkg)
	}
	b, err := os.ReadFile(gnomondBin)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(bin, "gnomond"), b, 0o755); err != nil {
		t.Fatal(err)
	}
	ntpd := "/opt/gnomon-peers/ntpsec/usr/sbin/ntpd"
	servers := []string{"floor", "gnomond", "chronyd"}
	if _, err := os.Stat(ntpd); err == nil {
		servers = append(servers, "ntpd")
	} else {
		peers.SkipOrFatal(t, "NTPsec's ntpd is not at %s (scripts/install-peers.sh unpacks it)", ntpd)
	}
	out := filepath.Join(dir, "out")
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, filepath.Join(root, "scripts/bench.sh"))
	cmd.Dir = root
	cmd.Env = append(os.Environ(), "SMOKE=1", "REPORT=0", "BIN="+bin, "OUT="+out, "SERVERS="+strings.Join(servers, " "))
	log, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("scripts/bench.sh: %v\n%s", err, log)
	}

	header, rows := readCSVFile(t, filepath.Join(out, "throughput.csv"))
	for _, col := range []string{"tag", "label", "offered_per_s", "sent", "answered", "loss_pct", "answers_per_s", "p50_us", "p99_us", "server_cpu_us_per_answer"} {
		if !slices.Contains(header, col) {
			t.Errorf("throughput.csv lacks column %s: %v", col, header)
		}
	}
	for _, s := range servers {
		found := false
		for _, r := range rows {
			if r["label"] != s {
				continue
			}
			found = true
			sent, _ := strconv.Atoi(r["sent"])
			ans, _ := strconv.Atoi(r["answered"])
			if sent == 0 || ans == 0 || ans > sent {
				t.Errorf("%s: sent %d, answered %d: want both > 0, answered <= sent", s, sent, ans)
			}
			if cpu, err := strconv.ParseFloat(r["server_cpu_s"], 64); err != nil || cpu <= 0 {
				t.Errorf("%s: server_cpu_s %q, want a positive CPU time", s, r["server_cpu_s"])
			}
		}
		if !found {
			t.Errorf("throughput.csv has no row for %s:\n%s", s, log)
		}
	}
	_, mem := readCSVFile(t, filepath.Join(out, "memory.csv"))
	_, client := readCSVFile(t, filepath.Join(out, "client.csv"))
	for _, s := range servers {
		if !slices.ContainsFunc(mem, func(r map[string]string) bool { return r["daemon"] == s }) {
			t.Errorf("memory.csv has no RSS sample of %s", s)
		}
		if s == "floor" {
			continue
		}
		i := slices.IndexFunc(client, func(r map[string]string) bool { return r["daemon"] == s })
		if i < 0 {
			t.Errorf("client.csv has no row for %s", s)
			continue
		}
		if rss, _ := strconv.Atoi(client[i]["rss_kb"]); rss <= 0 {
			t.Errorf("client.csv %s: rss_kb %q", s, client[i]["rss_kb"])
		}
	}

	_, nts := readCSVFile(t, filepath.Join(out, "nts.csv"))
	for _, s := range servers {
		if s == "floor" {
			continue
		}
		i := slices.IndexFunc(nts, func(r map[string]string) bool { return r["label"] == s })
		if i < 0 {
			t.Errorf("nts.csv has no row for %s", s)
			continue
		}
		if n, _ := strconv.Atoi(nts[i]["answered"]); n == 0 || nts[i]["proto"] != "nts" {
			t.Errorf("nts.csv %s: %v: want authenticated answers", s, nts[i])
		}
	}
	_, fs := readCSVFile(t, filepath.Join(out, "firstsync.csv"))
	for _, s := range servers {
		if s == "floor" || s == "ntpd" { // ntpd: see phase 3 in scripts/bench.sh
			continue
		}
		i := slices.IndexFunc(fs, func(r map[string]string) bool { return r["daemon"] == s })
		if i < 0 {
			t.Errorf("firstsync.csv has no row for %s", s)
			continue
		}
		if v, err := strconv.ParseFloat(fs[i]["seconds"], 64); err != nil || v <= 0 {
			t.Errorf("firstsync.csv %s: seconds %q, want a positive time (the daemon never served synchronized?)", s, fs[i]["seconds"])
		}
	}

	// The report: the docs section spliced into a copy of the page (twice:
	// the second run replaces the first), the data and plot scripts written.
	doc := filepath.Join(dir, "benchmarks.md")
	page, err := os.ReadFile(filepath.Join(root, "docs/benchmarks.md"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(doc, page, 0o644); err != nil {
		t.Fatal(err)
	}
	plots := filepath.Join(dir, "plots")
	for range 2 {
		rep := exec.CommandContext(ctx, filepath.Join(bin, "benchreport"), "-in", out, "-doc", doc, "-plots", plots)
		if o, err := rep.CombinedOutput(); err != nil {
			t.Fatalf("benchreport: %v\n%s", err, o)
		}
	}
	got, err := os.ReadFile(doc)
	if err != nil {
		t.Fatal(err)
	}
	if n := strings.Count(string(got), "<!-- bench:begin -->"); n != 1 {
		t.Errorf("the page has %d generated sections, want 1", n)
	}
	for _, s := range servers {
		if !strings.Contains(string(got), "| "+s+" |") {
			t.Errorf("the generated section has no row for %s", s)
		}
	}
	for _, f := range []string{"answers.gp", "cpu.gp", "rss.gp", "data/throughput.csv", "data/gnomond.dat"} {
		if _, err := os.Stat(filepath.Join(plots, f)); err != nil {
			t.Errorf("benchreport did not write %s: %v", f, err)
		}
	}
	if _, err := exec.LookPath("gnuplot"); err == nil {
		if _, err := os.Stat(filepath.Join(plots, "answers.svg")); err != nil {
			t.Errorf("gnuplot is installed but answers.svg was not drawn: %v", err)
		}
	}
}
