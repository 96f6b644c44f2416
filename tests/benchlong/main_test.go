package main

import (
	"bytes"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestFit(t *testing.T) {
	var pts []point
	for i := range 100 {
		pts = append(pts, point{float64(i), 3 + 0.5*float64(i) + 0.1*float64(i%2)})
	}
	s, ok := fit(pts)
	if !ok || math.Abs(s-0.5) > 1e-3 {
		t.Errorf("fit = %v, %v; want slope 0.5", s, ok)
	}
	if _, ok := fit([]point{{1, 1}, {1, 2}}); ok {
		t.Error("fit of one distinct time succeeded")
	}
}

// soak writes a soak's directory: 2 hours of samples every 10 s for a flat
// daemon, one that leaks 200 kB/h, and one that jumps once in the middle.
func soak(t *testing.T) string {
	dir := t.TempDir()
	var b strings.Builder
	b.WriteString("t_s,daemon,rss_kb,cpu_s\n")
	for i := 0; i <= 720; i++ {
		ts := float64(i * 10)
		noise := float64((i*7919)%13) - 6 // deterministic ±6 kB
		fmt.Fprintf(&b, "%.1f,gnomond-flat,%.0f,%.4f\n", ts, 9000+noise, ts*0.0002)
		fmt.Fprintf(&b, "%.1f,gnomond-leak,%.0f,%.4f\n", ts, 9000+noise+200*ts/3600, ts*0.0001)
		jump := 0.0
		if ts > 3000 {
			jump = 9000
		}
		fmt.Fprintf(&b, "%.1f,chronyd-jump,%.0f,%.4f\n", ts, 5000+jump, 0.0)
	}
	write := func(name, text string) {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("samples.csv", b.String())
	write("machine.csv", "date,x\nseconds,7200\n")
	write("goheap.csv", "daemon,t_s,heap_live_mb,heap_goal_mb\ngnomond-flat,100,2,4\ngnomond-flat,4000,2,4\ngnomond-flat,5000,2,4\ngnomond-flat,7000,3,4\n")
	return dir
}

func TestAnalyse(t *testing.T) {
	dir := soak(t)
	order, all, span, err := load(dir)
	if err != nil {
		t.Fatal(err)
	}
	dur := span.sampledS
	if dur != 7200 || span.plannedS != 7200 || span.truncated() || len(order) != 3 {
		t.Fatalf("load: span %+v, daemons %v", span, order)
	}
	lim := limits{slopeKBPerH: 150, peakFactor: 1.5}
	want := map[string]bool{"gnomond-flat": true, "gnomond-leak": false, "chronyd-jump": false}
	for _, name := range order {
		g, err := analyse(*all[name], dur, lim)
		if err != nil {
			t.Fatal(err)
		}
		if flat := len(g.problems) == 0; flat != want[name] {
			t.Errorf("%s: flat = %v, want %v (%s; slope %.1f kB/h, peak ratio %.2f)", name, flat, want[name], g.verdict(), g.slopeKBPerH, g.peakRatio)
		}
		switch name {
		case "gnomond-leak":
			if math.Abs(g.slopeKBPerH-200) > 5 {
				t.Errorf("leak slope %.1f kB/h, want 200", g.slopeKBPerH)
			}
		case "chronyd-jump":
			if g.judged || g.peakRatio < 2.7 {
				t.Errorf("chronyd-jump: judged %v, peak ratio %.2f; want not judged, ~2.8", g.judged, g.peakRatio)
			}
		case "gnomond-flat":
			if g.gcs != 4 || g.heapPeakMB != 3 || math.IsNaN(g.heapSlopeMBPerH) || math.Abs(g.cpuSPerH-0.72) > 1e-6 {
				t.Errorf("gnomond-flat: gcs %d, heap peak %v, heap slope %v, cpu %v s/h", g.gcs, g.heapPeakMB, g.heapSlopeMBPerH, g.cpuSPerH)
			}
		}
	}
}

func TestRun(t *testing.T) {
	dir := soak(t)
	var out, errb bytes.Buffer
	if code := run([]string{"-in", dir}, &out, &errb); code != 0 {
		t.Fatalf("without -check: exit %d: %s", code, errb.String())
	}
	if code := run([]string{"-in", dir, "-check"}, &out, &errb); code != 1 {
		t.Errorf("with -check and a leaking gnomond: exit %d, want 1", code)
	}
	if !strings.Contains(errb.String(), "gnomond-leak") || strings.Contains(errb.String(), "gnomond-flat") {
		t.Errorf("stderr should name gnomond-leak only:\n%s", errb.String())
	}
	for _, f := range []string{"growth.csv", "summary.md", "long-rss.gp", "long-cpu.gp", "long-heap.gp", "plot/gnomond-flat.dat"} {
		if _, err := os.Stat(filepath.Join(dir, f)); err != nil {
			t.Errorf("%s not written: %v", f, err)
		}
	}
	if code := run([]string{"-in", t.TempDir()}, &out, &errb); code != 1 {
		t.Errorf("empty directory: exit %d, want 1", code)
	}
	if err := os.WriteFile(filepath.Join(dir, "samples.csv"), []byte("t_s,daemon,rss_kb,cpu_s\n1,x,notanumber,0\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	errb.Reset()
	if code := run([]string{"-in", dir}, &out, &errb); code != 1 || !strings.Contains(errb.String(), "samples.csv:2: rss_kb") {
		t.Errorf("bad number: exit %d, stderr %q; want 1 naming samples.csv:2: rss_kb", code, errb.String())
	}
}

// A soak stopped before its planned end is analysed over what it sampled, the
// summary says so, and -check fails even when every gnomond looks flat.
func TestRunTruncated(t *testing.T) {
	dir := soak(t)
	if err := os.WriteFile(filepath.Join(dir, "machine.csv"), []byte("seconds,21600\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	_, all, span, err := load(dir)
	if err != nil {
		t.Fatal(err)
	}
	if !span.truncated() || span.sampledS != 7200 {
		t.Fatalf("span %+v: want truncated, sampled 7200 s", span)
	}
	g, err := analyse(*all["gnomond-leak"], span.sampledS, limits{slopeKBPerH: 150, peakFactor: 1.5})
	if err != nil || math.Abs(g.slopeKBPerH-200) > 5 || g.firstWindowS != 1200 {
		t.Errorf("leak over the sampled span: slope %.1f kB/h, first window %.0f s, err %v; want 200, 1200", g.slopeKBPerH, g.firstWindowS, err)
	}
	var out, errb bytes.Buffer
	if code := run([]string{"-in", dir}, &out, &errb); code != 0 {
		t.Fatalf("without -check: exit %d: %s", code, errb.String())
	}
	if !strings.Contains(out.String(), "TRUNCATED") || !strings.Contains(out.String(), "Soak of 7200 s") {
		t.Errorf("summary does not say the soak was truncated:\n%s", out.String())
	}
	errb.Reset()
	if code := run([]string{"-in", dir, "-check"}, &out, &errb); code != 1 || !strings.Contains(errb.String(), "truncated: planned 21600 s") {
		t.Errorf("-check on a truncated soak: exit %d, stderr %q; want 1 naming the truncation", code, errb.String())
	}
}
