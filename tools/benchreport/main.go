// Command benchreport turns the raw CSV of one `make bench` run
// (scripts/bench.sh) into the generated section of docs/benchmarks.md
// (between "<!-- bench:begin -->" and "<!-- bench:end -->"), copies the CSV
// beside the plots, and draws the plots with gnuplot (SVG) when it is
// installed.
//
//	benchreport -in bench-results/DATE -doc docs/benchmarks.md -plots docs/bench
package main

import (
	"encoding/csv"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
)

const (
	begin = "<!-- bench:begin -->"
	end   = "<!-- bench:end -->"
)

// order is how daemons are listed.
var order = []string{"gnomond", "chronyd", "ntpd", "chronyd-4m", "ntpd-4m", "floor"}

func main() {
	in := flag.String("in", "", "directory of one run's CSV files")
	doc := flag.String("doc", "docs/benchmarks.md", "markdown file whose generated section is replaced")
	plots := flag.String("plots", "docs/bench", "directory for the plots and a copy of the CSV")
	flag.Parse()
	if *in == "" {
		fmt.Fprintln(os.Stderr, "benchreport: -in DIR is required")
		os.Exit(2)
	}
	if err := run(*in, *doc, *plots, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "benchreport:", err)
		os.Exit(1)
	}
}

// table is a CSV file as rows of column name -> value.
type table []map[string]string

func readCSV(path string) (table, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	r := csv.NewReader(f)
	r.FieldsPerRecord = -1
	recs, err := r.ReadAll()
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if len(recs) == 0 {
		return nil, fmt.Errorf("%s: empty", path)
	}
	var t table
	for i, rec := range recs[1:] {
		if len(rec) != len(recs[0]) {
			return nil, fmt.Errorf("%s:%d: %d fields, the header has %d", path, i+2, len(rec), len(recs[0]))
		}
		m := map[string]string{}
		for j, h := range recs[0] {
			m[h] = rec[j]
		}
		t = append(t, m)
	}
	return t, nil
}

func num(s string) (float64, bool) {
	v, err := strconv.ParseFloat(s, 64)
	return v, err == nil && !math.IsNaN(v)
}

// stat is the median and range of some values.
type stat struct {
	n             int
	med, min, max float64
}

func statOf(vs []float64) stat {
	if len(vs) == 0 {
		return stat{}
	}
	s := slices.Clone(vs)
	sort.Float64s(s)
	med := s[len(s)/2]
	if len(s)%2 == 0 {
		med = (s[len(s)/2-1] + s[len(s)/2]) / 2
	}
	return stat{n: len(s), med: med, min: s[0], max: s[len(s)-1]}
}

// fmtStat prints "median (min–max)" with prec decimals, or "–".
func (s stat) fmt(prec int) string {
	if s.n == 0 {
		return "–"
	}
	f := func(v float64) string { return strconv.FormatFloat(v, 'f', prec, 64) }
	if s.n == 1 || s.min == s.max {
		return f(s.med)
	}
	return fmt.Sprintf("%s (%s–%s)", f(s.med), f(s.min), f(s.max))
}

// point is one (daemon, offered rate) cell of the throughput table.
type point struct {
	answers, loss, p50, p99, cpu []float64
	limited                      int
}

// servers is one throughput file's cells.
type servers struct {
	daemons []string
	rates   []float64 // offered, ascending, 0 (as fast as possible) last
	thr     map[string]map[float64]*point
}

type report struct {
	machine    [][2]string
	servers            // NTP (throughput.csv)
	nts        servers // NTS (nts.csv), empty when not measured
	mem        table
	client     table
	heap       table
	firstSync  table
	memByPhase map[string]map[string][]float64 // daemon -> phase group -> rss kB
}

func load(in string) (*report, error) {
	rep := &report{memByPhase: map[string]map[string][]float64{}}
	if m, err := readRaw(filepath.Join(in, "machine.csv")); err == nil {
		rep.machine = m
	} else {
		return nil, err
	}
	sv, err := loadServers(filepath.Join(in, "throughput.csv"))
	if err != nil {
		return nil, err
	}
	rep.servers = *sv
	if sv, err := loadServers(filepath.Join(in, "nts.csv")); err == nil {
		rep.nts = *sv
	} else if !errors.Is(err, os.ErrNotExist) {
		return nil, err
	}
	if rep.mem, err = readCSV(filepath.Join(in, "memory.csv")); err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, err
	}
	for _, row := range rep.mem {
		kb, ok := num(row["rss_kb"])
		if !ok {
			continue
		}
		d := strings.TrimSuffix(row["daemon"], "-client")
		g := "serving"
		if strings.HasSuffix(row["daemon"], "-client") {
			g = "client"
		}
		if rep.memByPhase[d] == nil {
			rep.memByPhase[d] = map[string][]float64{}
		}
		rep.memByPhase[d][g] = append(rep.memByPhase[d][g], kb)
		if strings.HasSuffix(row["phase"], "-10000") && g == "serving" {
			rep.memByPhase[d]["10k"] = append(rep.memByPhase[d]["10k"], kb)
		}
	}
	if rep.client, err = readCSV(filepath.Join(in, "client.csv")); err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, err
	}
	if rep.heap, err = readCSV(filepath.Join(in, "goheap.csv")); err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, err
	}
	if rep.firstSync, err = readCSV(filepath.Join(in, "firstsync.csv")); err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, err
	}
	return rep, nil
}

// loadServers reads one throughput CSV (ntpload -csv).
func loadServers(path string) (*servers, error) {
	thr, err := readCSV(path)
	if err != nil {
		return nil, err
	}
	sv := &servers{thr: map[string]map[float64]*point{}}
	seenRate := map[float64]bool{}
	for i, row := range thr {
		d := row["label"]
		rate, ok1 := num(row["offered_per_s"])
		ans, ok2 := num(row["answers_per_s"])
		loss, ok3 := num(row["loss_pct"])
		if d == "" || !ok1 || !ok2 || !ok3 {
			return nil, fmt.Errorf("%s:%d: bad row %v", filepath.Base(path), i+2, row)
		}
		if sv.thr[d] == nil {
			sv.thr[d] = map[float64]*point{}
		}
		p := sv.thr[d][rate]
		if p == nil {
			p = &point{}
			sv.thr[d][rate] = p
		}
		seenRate[rate] = true
		p.answers = append(p.answers, ans)
		p.loss = append(p.loss, loss)
		if v, ok := num(row["p50_us"]); ok {
			p.p50 = append(p.p50, v)
		}
		if v, ok := num(row["p99_us"]); ok {
			p.p99 = append(p.p99, v)
		}
		if v, ok := num(row["server_cpu_us_per_answer"]); ok {
			p.cpu = append(p.cpu, v)
		}
		if row["generator_limited"] == "yes" {
			p.limited++
		}
	}
	for r := range seenRate {
		if r > 0 {
			sv.rates = append(sv.rates, r)
		}
	}
	sort.Float64s(sv.rates)
	if seenRate[0] {
		sv.rates = append(sv.rates, 0)
	}
	for _, d := range order {
		if sv.thr[d] != nil {
			sv.daemons = append(sv.daemons, d)
		}
	}
	return sv, nil
}

// readRaw reads key,value lines.
func readRaw(path string) ([][2]string, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	r := csv.NewReader(f)
	r.FieldsPerRecord = -1
	var out [][2]string
	for {
		rec, err := r.Read()
		if err == io.EOF {
			return out, nil
		}
		if err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
		if len(rec) >= 2 {
			out = append(out, [2]string{rec[0], rec[1]})
		}
	}
}

func rateName(r float64) string {
	if r == 0 {
		return "max"
	}
	return strconv.FormatFloat(r, 'f', 0, 64)
}

func (sv *servers) cell(d string, rate float64) *point {
	if sv.thr[d] == nil {
		return nil
	}
	return sv.thr[d][rate]
}

// markdown is the generated section.
func (rep *report) markdown(plotsRel string) string {
	var b strings.Builder
	w := func(f string, a ...any) { fmt.Fprintf(&b, f, a...) }
	w("%s\n\n", begin)
	w("_Generated by `make bench` (scripts/bench.sh → tools/benchreport) from the CSV in `%s/`; do not edit by hand._\n\n", plotsRel)
	w("| machine | |\n| --- | --- |\n")
	for _, kv := range rep.machine {
		w("| %s | %s |\n", kv[0], strings.ReplaceAll(kv[1], "|", "\\|"))
	}
	w("\nEvery figure is the **median over rounds (min–max)**. Rate limiting is off in every server; all run\n")
	w("on loopback in a network namespace of the script's own; \"max\" is the generator sending as fast as it can.\n\n")

	rep.serverSection(w, &rep.servers, "NTP")
	if len(rep.nts.daemons) > 0 {
		w("\n")
		rep.serverSection(w, &rep.nts, "NTS")
	}
	w("\n#### Memory (RSS, MiB: median (min–max) of the 1 s samples)\n\n| daemon | serving (all loads) | serving at 10 000/s | client of 4 servers | peak |\n| --- | --- | --- | --- | --- |\n")
	for _, d := range order {
		m := rep.memByPhase[d]
		if m == nil {
			continue
		}
		mib := func(vs []float64) string {
			if len(vs) == 0 {
				return "–"
			}
			s := statOf(vs)
			s.med, s.min, s.max = s.med/1024, s.min/1024, s.max/1024
			return s.fmt(1)
		}
		var all []float64
		for _, vs := range m {
			all = append(all, vs...)
		}
		w("| %s | %s | %s | %s | %.1f |\n", d, mib(m["serving"]), mib(m["10k"]), mib(m["client"]), statOf(all).max/1024)
	}
	if len(rep.heap) == 0 && rep.memByPhase["gnomond"] != nil {
		w("\ngnomond's Go heap: gnomond ran with GODEBUG=gctrace=1 and **no collection ran** in the whole run, so it\n")
		w("allocated less than the runtime's first heap goal (4 MB) from its start on, serving included.\n")
	}
	if len(rep.heap) > 0 {
		w("\ngnomond's Go heap (live heap after each GC, from GODEBUG=gctrace=1):")
		for _, ph := range []string{"server", "client"} {
			var vs []float64
			for _, row := range rep.heap {
				if row["phase"] == ph {
					if v, ok := num(row["heap_live_mb"]); ok {
						vs = append(vs, v)
					}
				}
			}
			if len(vs) > 0 {
				w(" %s phase %s MB over %d GCs;", ph, statOf(vs).fmt(0), len(vs))
			}
		}
		w(" (gctrace rounds to whole MB.)\n")
	}
	if len(rep.client) > 0 {
		w("\n#### Client CPU (4 local servers, fixed poll)\n\n| daemon | poll | measured for | CPU s | CPU s per hour | wake-ups per hour | RSS at the end (MiB) |\n| --- | --- | --- | --- | --- | --- | --- |\n")
		for _, row := range rep.client {
			rss, _ := num(row["rss_kb"])
			poll := "16 s"
			if p, ok := num(row["poll"]); ok {
				poll = fmt.Sprintf("%.0f s", math.Ldexp(1, int(p)))
			}
			wk := row["wakeups_per_hour"]
			if wk == "" {
				wk = "–"
			}
			w("| %s | %s | %s s | %s | %s | %s | %.1f |\n", row["daemon"], poll, row["seconds"], row["cpu_s"], row["cpu_s_per_hour"], wk, rss/1024)
		}
		w("\nCPU time is the sum of the threads' on-CPU time (/proc/PID/task/*/schedstat, nanoseconds), over the\n")
		w("measured window (after the start-up and initial burst), extrapolated to an hour; wake-ups are the threads'\n")
		w("voluntary context switches in that window.\n")
	}
	if len(rep.firstSync) > 0 {
		w("\n#### Time to first sync (s, from the daemon's start to its first synchronized answer)\n\n| daemon | median (min–max) | failed | target |\n| --- | --- | --- | --- |\n")
		for _, d := range order {
			var vs []float64
			failed, seen := 0, false
			for _, row := range rep.firstSync {
				if row["daemon"] != d {
					continue
				}
				seen = true
				if v, ok := num(row["seconds"]); ok {
					vs = append(vs, v)
				} else {
					failed++
				}
			}
			if !seen {
				continue
			}
			target := ""
			if d == "gnomond" {
				target = "≤ 2 s on loopback"
				if st := statOf(vs); st.n > 0 && st.med > 2 {
					target += ": **missed**"
				}
			}
			w("| %s | %s | %d | %s |\n", d, statOf(vs).fmt(2), failed, target)
		}
		w("\nEach daemon with its quick-start option (`iburst`; gnomond's sources have it by default) and default\n")
		w("polling; measured from outside the same way for all: a query every ~0.1 s until one is answered\n")
		w("synchronized (leap ≠ 3, a valid stratum), so the resolution is about 0.1 s.\n")
	}
	w("\nPlots: [answers/s](%[1]s/answers.svg), [loss](%[1]s/loss.svg), [CPU per answer](%[1]s/cpu.svg),\n", plotsRel)
	w("[p99 latency](%[1]s/p99.svg), [RSS over time](%[1]s/rss.svg)", plotsRel)
	if len(rep.nts.daemons) > 0 {
		w(", [NTS answers/s](%[1]s/nts-answers.svg), [NTS CPU per answer](%[1]s/nts-cpu.svg)", plotsRel)
	}
	w(".\n\n")
	w("![answers/s against offered load](%s/answers.svg)\n![CPU per answer](%s/cpu.svg)\n![RSS over time](%s/rss.svg)\n\n", plotsRel, plotsRel, plotsRel)
	w("%s\n", end)
	return b.String()
}

// serverSection writes the tables of one protocol's server runs.
func (rep *report) serverSection(w func(string, ...any), sv *servers, proto string) {
	w("#### %s server: answers/s against offered load\n\n", proto)
	w("| offered/s |")
	for _, d := range sv.daemons {
		w(" %s |", d)
	}
	w("\n| --- |%s\n", strings.Repeat(" --- |", len(sv.daemons)))
	for _, r := range sv.rates {
		w("| %s |", rateName(r))
		for _, d := range sv.daemons {
			p := sv.cell(d, r)
			if p == nil {
				w(" – |")
				continue
			}
			s := statOf(p.answers).fmt(0)
			if l := statOf(p.loss); l.max > 0 {
				s += fmt.Sprintf(", loss %s %%", l.fmt(2))
			}
			if p.limited > 0 {
				s += " †"
			}
			w(" %s |", s)
		}
		w("\n")
	}
	w("\n† the generator could not send at the offered rate in at least one round (a lower bound for the server).\n\n")

	w("#### %s server: CPU per answer (µs: the server's threads' on-CPU time from schedstat ÷ answers)\n\n", proto)
	w("| offered/s |")
	for _, d := range sv.daemons {
		w(" %s |", d)
	}
	if sv.thr["floor"] != nil {
		w(" gnomond ÷ floor | chronyd ÷ floor | ntpd ÷ floor |")
	}
	w("\n| --- |%s", strings.Repeat(" --- |", len(sv.daemons)))
	if sv.thr["floor"] != nil {
		w(" --- | --- | --- |")
	}
	w("\n")
	for _, r := range sv.rates {
		w("| %s |", rateName(r))
		for _, d := range sv.daemons {
			if p := sv.cell(d, r); p != nil {
				w(" %s |", statOf(p.cpu).fmt(2))
			} else {
				w(" – |")
			}
		}
		if f := sv.cell("floor", r); f != nil {
			fl := statOf(f.cpu).med
			for _, d := range []string{"gnomond", "chronyd", "ntpd"} {
				p := sv.cell(d, r)
				if p == nil || fl == 0 || len(p.cpu) == 0 {
					w(" – |")
					continue
				}
				w(" %.2f× |", statOf(p.cpu).med/fl)
			}
		}
		w("\n")
	}
	w("\n#### %s server: latency p50 / p99 (µs)\n\n| offered/s |", proto)
	for _, d := range sv.daemons {
		w(" %s |", d)
	}
	w("\n| --- |%s\n", strings.Repeat(" --- |", len(sv.daemons)))
	for _, r := range sv.rates {
		w("| %s |", rateName(r))
		for _, d := range sv.daemons {
			if p := sv.cell(d, r); p != nil {
				w(" %s / %s |", statOf(p.p50).fmt(0), statOf(p.p99).fmt(0))
			} else {
				w(" – |")
			}
		}
		w("\n")
	}

	w("\n#### %s ratios (of the medians)\n\n| figure | gnomond/chronyd | gnomond/ntpd | |\n| --- | --- | --- | --- |\n", proto)
	ratio := func(f func(*point) float64, other string, r float64) string {
		g, o := sv.cell("gnomond", r), sv.cell(other, r)
		if g == nil || o == nil {
			return "–"
		}
		a, c := f(g), f(o)
		if c == 0 || a == 0 {
			return "–"
		}
		return fmt.Sprintf("%.2f", a/c)
	}
	cpuMed := func(p *point) float64 { return statOf(p.cpu).med }
	ansMed := func(p *point) float64 { return statOf(p.answers).med }
	for _, r := range sv.rates {
		if r != 10000 && r != 0 {
			continue
		}
		at := rateName(r) + "/s offered"
		if r == 0 {
			at = "overload (generator flat out)"
		}
		w("| CPU per answer at %s | %s | %s | |\n", at, ratio(cpuMed, "chronyd", r), ratio(cpuMed, "ntpd", r))
		w("| answers/s at %s | %s | %s | |\n", at, ratio(ansMed, "chronyd", r), ratio(ansMed, "ntpd", r))
	}

}

// splice replaces the generated section of doc (or puts it after the
// first heading when there is none yet).
func splice(doc, section string) string {
	i, j := strings.Index(doc, begin), strings.Index(doc, end)
	if i >= 0 && j > i {
		return doc[:i] + strings.TrimSuffix(section, "\n") + doc[j+len(end):]
	}
	head := "\n## Side by side: `make bench`\n\n"
	k := strings.Index(doc, "\n## ")
	if k < 0 {
		return doc + head + section
	}
	return doc[:k] + head + section + doc[k:]
}

func run(in, docPath, plots string, stdout io.Writer) error {
	rep, err := load(in)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Join(plots, "data"), 0o755); err != nil {
		return err
	}
	for _, f := range []string{"machine.csv", "throughput.csv", "memory.csv", "client.csv", "goheap.csv", "firstsync.csv", "nts.csv"} {
		b, err := os.ReadFile(filepath.Join(in, f))
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err != nil {
			return err
		}
		if err := os.WriteFile(filepath.Join(plots, "data", f), b, 0o644); err != nil {
			return err
		}
	}
	if err := rep.plots(plots, stdout); err != nil {
		return err
	}
	doc, err := os.ReadFile(docPath)
	if err != nil {
		return err
	}
	rel, err := filepath.Rel(filepath.Dir(docPath), plots)
	if err != nil {
		rel = plots
	}
	out := splice(string(doc), rep.markdown(filepath.ToSlash(rel)))
	if err := os.WriteFile(docPath, []byte(out), 0o644); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "benchreport: wrote %s and %s/\n", docPath, plots)
	return nil
}

// plots writes gnuplot data and scripts and runs gnuplot (if installed).
func (rep *report) plots(dir string, stdout io.Writer) error {
	series := func(sv *servers, prefix string, col int) string {
		var parts []string
		for _, d := range sv.daemons {
			parts = append(parts, fmt.Sprintf("'data/%s%s.dat' using 1:%d with linespoints title '%s'", prefix, d, col, d))
		}
		return strings.Join(parts, ", ")
	}
	// One data file per daemon: offered, median answers/s, loss, cpu, p99.
	write := func(sv *servers, prefix string) error {
		for _, d := range sv.daemons {
			var b strings.Builder
			b.WriteString("# offered answers_per_s loss_pct cpu_us p99_us\n")
			for _, r := range sv.rates {
				p := sv.cell(d, r)
				if p == nil || r == 0 {
					continue
				}
				fmt.Fprintf(&b, "%g %g %g %g %g\n", r, statOf(p.answers).med, statOf(p.loss).med, statOf(p.cpu).med, statOf(p.p99).med)
			}
			if err := os.WriteFile(filepath.Join(dir, "data", prefix+d+".dat"), []byte(b.String()), 0o644); err != nil {
				return err
			}
		}
		return nil
	}
	if err := write(&rep.servers, ""); err != nil {
		return err
	}
	head := "set terminal svg size 800,480 dynamic enhanced font 'sans,12' background rgb 'white'\nset grid\nset key top left\n"
	scripts := map[string]string{
		"answers": head + "set output 'answers.svg'\nset title 'NTP: answers/s against offered load (median over rounds)'\nset xlabel 'offered requests/s'\nset ylabel 'answers/s'\nplot " + series(&rep.servers, "", 2) + ", x with lines dashtype 2 title 'offered'\n",
		"loss":    head + "set output 'loss.svg'\nset title 'NTP: loss against offered load'\nset xlabel 'offered requests/s'\nset ylabel 'loss (%)'\nplot " + series(&rep.servers, "", 3) + "\n",
		"cpu":     head + "set output 'cpu.svg'\nset title 'NTP: server CPU per answer'\nset xlabel 'offered requests/s'\nset ylabel 'µs per answer'\nset yrange [0:*]\nplot " + series(&rep.servers, "", 4) + "\n",
		"p99":     head + "set output 'p99.svg'\nset title 'NTP: p99 latency'\nset xlabel 'offered requests/s'\nset ylabel 'µs'\nset logscale y\nplot " + series(&rep.servers, "", 5) + "\n",
		"rss":     head + "set output 'rss.svg'\nset title 'RSS over time (serving, then as clients)'\nset xlabel 's since start'\nset ylabel 'MiB'\nset datafile separator ','\nset key outside right\nplot " + rep.rssSeries() + "\n",
	}
	if len(rep.nts.daemons) > 0 {
		if err := write(&rep.nts, "nts-"); err != nil {
			return err
		}
		scripts["nts-answers"] = head + "set output 'nts-answers.svg'\nset title 'NTS: authenticated answers/s against offered load'\nset xlabel 'offered requests/s'\nset ylabel 'answers/s'\nplot " + series(&rep.nts, "nts-", 2) + ", x with lines dashtype 2 title 'offered'\n"
		scripts["nts-cpu"] = head + "set output 'nts-cpu.svg'\nset title 'NTS: server CPU per authenticated answer'\nset xlabel 'offered requests/s'\nset ylabel 'µs per answer'\nset yrange [0:*]\nplot " + series(&rep.nts, "nts-", 4) + "\n"
	}
	for name, s := range scripts {
		if err := os.WriteFile(filepath.Join(dir, name+".gp"), []byte(s), 0o644); err != nil {
			return err
		}
	}
	gp, err := exec.LookPath("gnuplot")
	if err != nil {
		fmt.Fprintln(stdout, "benchreport: gnuplot not installed: plots not drawn (the .gp scripts are written)")
		return nil
	}
	for name := range scripts {
		cmd := exec.Command(gp, name+".gp")
		cmd.Dir = dir
		if out, err := cmd.CombinedOutput(); err != nil {
			return fmt.Errorf("gnuplot %s.gp: %v\n%s", name, err, out)
		}
	}
	return nil
}

// rssSeries plots memory.csv's rows of each daemon (via awk-free gnuplot
// filtering on the daemon column).
func (rep *report) rssSeries() string {
	seen := map[string]bool{}
	var names []string
	for _, row := range rep.mem {
		if n := row["daemon"]; !seen[n] {
			seen[n] = true
			names = append(names, n)
		}
	}
	sort.Strings(names)
	var parts []string
	for _, n := range names {
		parts = append(parts, fmt.Sprintf("'data/memory.csv' using 1:(strcol(3) eq '%s' ? $4/1024 : 1/0) with lines title '%s'", n, n))
	}
	if len(parts) == 0 {
		return "0 title 'no data'"
	}
	return strings.Join(parts, ", ")
}
