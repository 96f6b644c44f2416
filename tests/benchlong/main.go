// Command benchlong reads the raw data of a memory soak (scripts/bench-long.sh,
// `make bench-long`) and decides whether a daemon's memory grows without
// bound: for each daemon it fits a straight line (least squares) to its RSS
// samples over the second half of the run and compares its peak with the
// peak of its first hour (the first sixth of a shorter run). It writes
// growth.csv, a Markdown summary (summary.md, also printed) and gnuplot
// scripts for RSS, Go heap and CPU over time (*.gp, drawn by the script).
//
//	benchlong -in DIR [-check] [-growth-limit-kb-per-h 150] [-peak-factor 1.5]
//
// With -check it exits 1 when a gnomond instance (a daemon named gnomond-*)
// breaks either limit; the others (chronyd, ntpd) are reported, not judged.
package main

import (
	"encoding/csv"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
)

// point is one sample: seconds since the soak started and a value.
type point struct{ t, v float64 }

// series holds one daemon's samples.
type series struct {
	name string
	rss  []point // kB
	cpu  []point // cumulative CPU seconds
	heap []point // live Go heap after each GC, MiB (gnomond only; --trace-gc, or gctrace whole MB)
}

// fit returns the least-squares slope (value per second) of pts; ok is
// false with fewer than two distinct times.
func fit(pts []point) (slope float64, ok bool) {
	n := float64(len(pts))
	if len(pts) < 2 {
		return 0, false
	}
	var st, sv float64
	for _, p := range pts {
		st += p.t
		sv += p.v
	}
	mt, mv := st/n, sv/n
	var num, den float64
	for _, p := range pts {
		num += (p.t - mt) * (p.v - mv)
		den += (p.t - mt) * (p.t - mt)
	}
	if den == 0 {
		return 0, false
	}
	return num / den, true
}

func from(pts []point, t0 float64) []point {
	i := sort.Search(len(pts), func(i int) bool { return pts[i].t >= t0 })
	return pts[i:]
}

func until(pts []point, t1 float64) []point {
	i := sort.Search(len(pts), func(i int) bool { return pts[i].t > t1 })
	return pts[:i]
}

func peak(pts []point) float64 {
	m := math.Inf(-1)
	for _, p := range pts {
		m = max(m, p.v)
	}
	return m
}

func median(pts []point) float64 {
	if len(pts) == 0 {
		return math.NaN()
	}
	v := make([]float64, len(pts))
	for i, p := range pts {
		v[i] = p.v
	}
	slices.Sort(v)
	if len(v)%2 == 1 {
		return v[len(v)/2]
	}
	return (v[len(v)/2-1] + v[len(v)/2]) / 2
}

// growth is the verdict on one daemon.
type growth struct {
	name            string
	samples         int
	firstWindowS    float64 // the first hour, or the first sixth of a shorter run
	firstPeakKB     float64
	peakKB          float64
	peakRatio       float64
	halfMedianKB    float64 // median RSS over the second half
	slopeKBPerH     float64 // fitted RSS slope over the second half
	cpuSPerH        float64 // over the whole soak
	cpuHalfSPerH    float64 // over the second half
	gcs             int
	heapPeakMB      float64
	heapSlopeMBPerH float64 // NaN with fewer than 3 collections in the second half
	judged          bool    // a gnomond: -check fails on it
	problems        []string
}

// limits are the thresholds of the growth check.
type limits struct {
	slopeKBPerH float64
	peakFactor  float64
}

func analyse(s series, dur float64, lim limits) (growth, error) {
	g := growth{name: s.name, samples: len(s.rss), judged: strings.HasPrefix(s.name, "gnomond"), heapSlopeMBPerH: math.NaN()}
	if len(s.rss) < 4 {
		return g, fmt.Errorf("%s: %d RSS samples, want at least 4", s.name, len(s.rss))
	}
	g.firstWindowS = min(3600, dur/6)
	first := until(s.rss, s.rss[0].t+g.firstWindowS)
	if len(first) == 0 {
		first = s.rss[:1]
	}
	g.firstPeakKB = peak(first)
	g.peakKB = peak(s.rss)
	g.peakRatio = g.peakKB / g.firstPeakKB
	half := from(s.rss, s.rss[0].t+dur/2)
	if len(half) < 2 {
		half = s.rss[len(s.rss)/2:]
	}
	g.halfMedianKB = median(half)
	slope, ok := fit(half)
	if !ok {
		return g, fmt.Errorf("%s: cannot fit the second half (%d samples)", s.name, len(half))
	}
	g.slopeKBPerH = slope * 3600
	if n := len(s.cpu); n >= 2 && s.cpu[n-1].t > s.cpu[0].t {
		g.cpuSPerH = (s.cpu[n-1].v - s.cpu[0].v) / (s.cpu[n-1].t - s.cpu[0].t) * 3600
		if h := from(s.cpu, s.cpu[0].t+dur/2); len(h) >= 2 && h[len(h)-1].t > h[0].t {
			g.cpuHalfSPerH = (h[len(h)-1].v - h[0].v) / (h[len(h)-1].t - h[0].t) * 3600
		}
	}
	g.gcs = len(s.heap)
	if g.gcs > 0 {
		g.heapPeakMB = peak(s.heap)
		last := s.heap[len(s.heap)-1].t
		if h := from(s.heap, last-dur/2); len(h) >= 3 {
			if hs, ok := fit(h); ok {
				g.heapSlopeMBPerH = hs * 3600
			}
		}
	}
	if g.slopeKBPerH > lim.slopeKBPerH {
		g.problems = append(g.problems, fmt.Sprintf("RSS grows %.0f kB/h over the second half (limit %.0f)", g.slopeKBPerH, lim.slopeKBPerH))
	}
	if g.peakRatio > lim.peakFactor {
		g.problems = append(g.problems, fmt.Sprintf("peak RSS %.0f kB is %.2f× the first window's %.0f kB (limit %.2f×)", g.peakKB, g.peakRatio, g.firstPeakKB, lim.peakFactor))
	}
	return g, nil
}

func (g growth) verdict() string {
	switch {
	case len(g.problems) == 0:
		return "flat"
	case g.judged:
		return "GROWS: " + strings.Join(g.problems, "; ")
	default:
		return "grows (not judged): " + strings.Join(g.problems, "; ")
	}
}

func readCSV(path string) ([]map[string]string, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	recs, err := csv.NewReader(f).ReadAll()
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if len(recs) == 0 {
		return nil, fmt.Errorf("%s: empty", path)
	}
	var rows []map[string]string
	for i, rec := range recs[1:] {
		if len(rec) != len(recs[0]) {
			return nil, fmt.Errorf("%s:%d: %d fields, header has %d", path, i+2, len(rec), len(recs[0]))
		}
		m := map[string]string{}
		for j, h := range recs[0] {
			m[h] = rec[j]
		}
		rows = append(rows, m)
	}
	return rows, nil
}

func num(path string, line int, row map[string]string, key string) (float64, error) {
	v, err := strconv.ParseFloat(row[key], 64)
	if err != nil {
		return 0, fmt.Errorf("%s:%d: %s: %q is not a number", path, line, key, row[key])
	}
	return v, nil
}

// soakSpan is how long a soak was planned to run (machine.csv's seconds; 0
// when it does not say) and how long its samples cover.
type soakSpan struct {
	plannedS float64
	sampledS float64
}

// truncated says the samples end well before the planned end: the soak was
// stopped (killed, the machine went away). Its figures cover what was sampled,
// and it cannot give the verdict of the run that was asked for.
func (s soakSpan) truncated() bool {
	return s.plannedS > 0 && s.sampledS < 0.95*s.plannedS
}

// load reads samples.csv, goheap.csv (optional) and machine.csv's seconds.
// The analysis spans what was sampled (dur), which is the planned length
// unless the soak was stopped early.
func load(dir string) (order []string, all map[string]*series, span soakSpan, err error) {
	all = map[string]*series{}
	get := func(name string) *series {
		s, ok := all[name]
		if !ok {
			s = &series{name: name}
			all[name] = s
			order = append(order, name)
		}
		return s
	}
	p := filepath.Join(dir, "samples.csv")
	rows, err := readCSV(p)
	if err != nil {
		return nil, nil, span, err
	}
	var tmax float64
	for i, r := range rows {
		t, err := num(p, i+2, r, "t_s")
		if err != nil {
			return nil, nil, span, err
		}
		rss, err := num(p, i+2, r, "rss_kb")
		if err != nil {
			return nil, nil, span, err
		}
		cpu, err := num(p, i+2, r, "cpu_s")
		if err != nil {
			return nil, nil, span, err
		}
		s := get(r["daemon"])
		s.rss = append(s.rss, point{t, rss})
		s.cpu = append(s.cpu, point{t, cpu})
		tmax = max(tmax, t)
	}
	p = filepath.Join(dir, "goheap.csv")
	if rows, err := readCSV(p); err == nil {
		for i, r := range rows {
			t, err := num(p, i+2, r, "t_s")
			if err != nil {
				return nil, nil, span, err
			}
			h, err := num(p, i+2, r, "heap_live_mb")
			if err != nil {
				return nil, nil, span, err
			}
			if s, ok := all[r["daemon"]]; ok {
				s.heap = append(s.heap, point{t, h})
			}
		}
	} else if !errors.Is(err, os.ErrNotExist) {
		return nil, nil, span, err
	}
	for _, s := range all {
		for _, pts := range [][]point{s.rss, s.cpu, s.heap} {
			sort.SliceStable(pts, func(i, j int) bool { return pts[i].t < pts[j].t })
		}
	}
	span.sampledS = tmax
	// machine.csv is key,value lines without a header.
	if b, err := os.ReadFile(filepath.Join(dir, "machine.csv")); err == nil {
		for _, l := range strings.Split(string(b), "\n") {
			if v, ok := strings.CutPrefix(l, "seconds,"); ok {
				if s, err := strconv.ParseFloat(v, 64); err == nil && s > 0 {
					span.plannedS = s
				}
			}
		}
	}
	return order, all, span, nil
}

func fmtNaN(f float64, format string) string {
	if math.IsNaN(f) {
		return "–"
	}
	return fmt.Sprintf(format, f)
}

func writeGrowth(dir string, gs []growth) error {
	f, err := os.Create(filepath.Join(dir, "growth.csv"))
	if err != nil {
		return err
	}
	w := csv.NewWriter(f)
	_ = w.Write([]string{"daemon", "samples", "first_window_s", "first_peak_kb", "peak_kb", "peak_ratio", "second_half_median_kb",
		"slope_kb_per_h", "cpu_s_per_h", "cpu_s_per_h_second_half", "gcs", "heap_peak_mb", "heap_slope_mb_per_h", "judged", "verdict"})
	for _, g := range gs {
		_ = w.Write([]string{g.name, strconv.Itoa(g.samples), fmt.Sprintf("%.0f", g.firstWindowS), fmt.Sprintf("%.0f", g.firstPeakKB),
			fmt.Sprintf("%.0f", g.peakKB), fmt.Sprintf("%.3f", g.peakRatio), fmt.Sprintf("%.0f", g.halfMedianKB),
			fmt.Sprintf("%.1f", g.slopeKBPerH), fmt.Sprintf("%.3f", g.cpuSPerH), fmt.Sprintf("%.3f", g.cpuHalfSPerH),
			strconv.Itoa(g.gcs), fmt.Sprintf("%.3f", g.heapPeakMB), fmtNaN(g.heapSlopeMBPerH, "%.4f"),
			strconv.FormatBool(g.judged), g.verdict()})
	}
	w.Flush()
	if err := w.Error(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

func summary(w io.Writer, gs []growth, span soakSpan, lim limits) {
	dur := span.sampledS
	if span.truncated() {
		fmt.Fprintf(w, "**TRUNCATED**: planned for %.0f s (%.2f h), its samples end at %.0f s (%.2f h): the soak was stopped. "+
			"The figures below cover what was sampled; they are not the planned run's verdict.\n\n", span.plannedS, span.plannedS/3600, dur, dur/3600)
	}
	fmt.Fprintf(w, "Soak of %.0f s (%.2f h). RSS fitted over the second half; peak against the first %.0f s's peak. "+
		"Limits for gnomond: slope ≤ %.0f kB/h, peak ≤ %.2f× the first window's.\n\n", dur, dur/3600, min(3600, dur/6), lim.slopeKBPerH, lim.peakFactor)
	fmt.Fprintln(w, "| daemon | samples | RSS first window peak (MiB) | RSS peak (MiB) | peak ratio | RSS median, 2nd half (MiB) | RSS slope, 2nd half (kB/h) | CPU s/h (2nd half) | GCs | Go heap peak (MB) | heap slope (MB/h) | verdict |")
	fmt.Fprintln(w, "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
	for _, g := range gs {
		gc, hp := "–", "–"
		if g.judged {
			gc = strconv.Itoa(g.gcs)
			if g.gcs > 0 {
				hp = fmt.Sprintf("%.2f", g.heapPeakMB)
			}
		}
		fmt.Fprintf(w, "| %s | %d | %.2f | %.2f | %.3f | %.2f | %+.1f | %.2f (%.2f) | %s | %s | %s | %s |\n", g.name, g.samples,
			g.firstPeakKB/1024, g.peakKB/1024, g.peakRatio, g.halfMedianKB/1024, g.slopeKBPerH, g.cpuSPerH, g.cpuHalfSPerH,
			gc, hp, fmtNaN(g.heapSlopeMBPerH, "%+.3f"), g.verdict())
	}
}

// plots writes one data file per daemon and the gnuplot scripts.
func plots(dir string, order []string, all map[string]*series) error {
	data := filepath.Join(dir, "plot")
	if err := os.MkdirAll(data, 0o755); err != nil {
		return err
	}
	var rss, cpu, heap []string
	for _, name := range order {
		s := all[name]
		var b strings.Builder
		for i, p := range s.rss {
			fmt.Fprintf(&b, "%.4f %.3f %.4f\n", p.t/3600, p.v/1024, s.cpu[i].v)
		}
		if err := os.WriteFile(filepath.Join(data, name+".dat"), []byte(b.String()), 0o644); err != nil {
			return err
		}
		rss = append(rss, fmt.Sprintf("'plot/%s.dat' using 1:2 with lines title '%s'", name, name))
		cpu = append(cpu, fmt.Sprintf("'plot/%s.dat' using 1:3 with lines title '%s'", name, name))
		if len(s.heap) > 0 {
			b.Reset()
			for _, p := range s.heap {
				fmt.Fprintf(&b, "%.4f %.4f\n", p.t/3600, p.v)
			}
			if err := os.WriteFile(filepath.Join(data, name+".heap"), []byte(b.String()), 0o644); err != nil {
				return err
			}
			heap = append(heap, fmt.Sprintf("'plot/%s.heap' using 1:2 with linespoints title '%s'", name, name))
		}
	}
	head := "set terminal svg size 900,480 dynamic font 'sans,11'\nset key outside right\nset grid\nset xlabel 'hours since the soak started'\n"
	scripts := map[string]string{
		"long-rss.gp": head + "set output 'long-rss.svg'\nset title 'RSS over the soak'\nset ylabel 'RSS (MiB)'\nset yrange [0:*]\nplot " + strings.Join(rss, ", \\\n  ") + "\n",
		"long-cpu.gp": head + "set output 'long-cpu.svg'\nset title 'CPU time over the soak (cumulative)'\nset ylabel 'CPU (s)'\nplot " + strings.Join(cpu, ", \\\n  ") + "\n",
	}
	if len(heap) > 0 {
		scripts["long-heap.gp"] = head + "set output 'long-heap.svg'\nset title 'gnomond live Go heap after each GC (--trace-gc; hours since the daemon started)'\nset ylabel 'live heap (MiB)'\nset yrange [0:*]\nplot " + strings.Join(heap, ", \\\n  ") + "\n"
	}
	for name, text := range scripts {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(text), 0o644); err != nil {
			return err
		}
	}
	return nil
}

func run(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("benchlong", flag.ContinueOnError)
	fs.SetOutput(stderr)
	dir := fs.String("in", "", "the soak's output directory (samples.csv, goheap.csv, machine.csv)")
	check := fs.Bool("check", false, "exit 1 when a gnomond's memory grows beyond the limits")
	var lim limits
	fs.Float64Var(&lim.slopeKBPerH, "growth-limit-kb-per-h", 150, "largest RSS slope over the second half, kB per hour")
	fs.Float64Var(&lim.peakFactor, "peak-factor", 1.5, "largest peak RSS as a multiple of the first hour's peak")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if *dir == "" || fs.NArg() > 0 {
		fmt.Fprintln(stderr, "benchlong: -in DIR is required, and nothing else")
		return 2
	}
	if lim.slopeKBPerH <= 0 || lim.peakFactor <= 1 {
		fmt.Fprintln(stderr, "benchlong: -growth-limit-kb-per-h must be > 0 and -peak-factor > 1")
		return 2
	}
	order, all, span, err := load(*dir)
	if err != nil {
		fmt.Fprintln(stderr, "benchlong:", err)
		return 1
	}
	if len(order) == 0 {
		fmt.Fprintln(stderr, "benchlong: no samples")
		return 1
	}
	var gs []growth
	for _, name := range order {
		g, err := analyse(*all[name], span.sampledS, lim)
		if err != nil {
			fmt.Fprintln(stderr, "benchlong:", err)
			return 1
		}
		gs = append(gs, g)
	}
	if err := writeGrowth(*dir, gs); err != nil {
		fmt.Fprintln(stderr, "benchlong:", err)
		return 1
	}
	var b strings.Builder
	summary(&b, gs, span, lim)
	fmt.Fprint(stdout, b.String())
	if err := os.WriteFile(filepath.Join(*dir, "summary.md"), []byte(b.String()), 0o644); err != nil {
		fmt.Fprintln(stderr, "benchlong:", err)
		return 1
	}
	if err := plots(*dir, order, all); err != nil {
		fmt.Fprintln(stderr, "benchlong:", err)
		return 1
	}
	failed := false
	if span.truncated() {
		failed = true
		fmt.Fprintf(stderr, "benchlong: truncated: planned %.0f s, samples end at %.0f s\n", span.plannedS, span.sampledS)
	}
	for _, g := range gs {
		if g.judged && len(g.problems) > 0 {
			failed = true
			fmt.Fprintf(stderr, "benchlong: %s: %s\n", g.name, g.verdict())
		}
	}
	if failed && *check {
		return 1
	}
	return 0
}

func main() { os.Exit(run(os.Args[1:], os.Stdout, os.Stderr)) }
