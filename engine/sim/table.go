package sim

import (
	"fmt"
	"math"
	"strings"
	"time"
)

// Summary is one scenario run over several seeds.
type Summary struct {
	Name    string
	Results []Result
}

// Seed returns the seed of run k (k = 0 is the scenario's own seed, so a
// one-seed run is today's run).
func Seed(base uint64, k int) uint64 { return base + 1000*uint64(k) }

// col gives the median and the worst (largest) of f over the seeds.
func (s Summary) col(f func(r Result) float64) (med, wst float64) {
	v := make([]float64, len(s.Results))
	for i, r := range s.Results {
		v[i] = f(r)
	}
	return median(v), worst(v)
}

func cell(med, wst float64, f func(float64) string) string {
	if math.IsNaN(med) {
		return "–"
	}
	return f(med) + " / " + f(wst)
}

func secs(d time.Duration) float64 { return d.Seconds() }

func fmtSecs(s float64) string {
	if math.IsInf(s, 1) {
		return "never"
	}
	return fmtDur(time.Duration(s * 1e9))
}

func fmtPPM(v float64) string {
	a := math.Abs(v)
	switch {
	case a < 0.1:
		return fmt.Sprintf("%.4f", v)
	case a < 10:
		return fmt.Sprintf("%.3f", v)
	}
	return fmt.Sprintf("%.1f", v)
}

func fmtSci(v float64) string { return fmt.Sprintf("%.1e", v) }

func fmtInt(v float64) string { return fmt.Sprintf("%.0f", v) }

func fmtSync(v float64) string {
	if math.IsInf(v, 1) {
		return "never"
	}
	return time.Duration(v * 1e9).Round(time.Second).String()
}

// OffsetHeader and OffsetRow make the first table of docs/accuracy.md:
// every cell is "median / worst" over the seeds.
const OffsetHeader = "| scenario | RMS error | mean error | max error | rate RMS 1 s (ppm) | rate max 1 s (ppm) | rate RMS 16 s (ppm) | rate max 16 s (ppm) | max error, first 10 min | time to sync | packets/h | packets/h/server after 1 h | steps |\n" +
	"|---|---|---|---|---|---|---|---|---|---|---|---|---|"

// OffsetRow formats the summary as one row of the first table.
func (s Summary) OffsetRow() string {
	c := func(f func(r Result) float64, fm func(float64) string) string {
		m, w := s.col(f)
		return cell(m, w, fm)
	}
	// The mean error's median and its largest magnitude, with its sign.
	mean := func() string {
		v := make([]float64, len(s.Results))
		w := 0.0
		for i, r := range s.Results {
			v[i] = secs(r.Mean)
			if math.Abs(v[i]) > math.Abs(w) {
				w = v[i]
			}
		}
		return cell(median(v), w, fmtSecs)
	}
	tts := func(r Result) float64 {
		if r.TimeToSync < 0 {
			return math.Inf(1)
		}
		return r.TimeToSync.Seconds()
	}
	return "| " + strings.Join([]string{s.Name,
		c(func(r Result) float64 { return secs(r.RMS) }, fmtSecs),
		mean(),
		c(func(r Result) float64 { return secs(r.Max) }, fmtSecs),
		c(func(r Result) float64 { return r.RateRMS1 }, fmtPPM),
		c(func(r Result) float64 { return r.RateMax1 }, fmtPPM),
		c(func(r Result) float64 { return r.RateRMS16 }, fmtPPM),
		c(func(r Result) float64 { return r.RateMax16 }, fmtPPM),
		c(func(r Result) float64 { return secs(r.EarlyMax) }, fmtSecs),
		c(tts, fmtSync),
		c(func(r Result) float64 { return r.PacketsPerHour }, fmtInt),
		c(func(r Result) float64 { return r.LatePerServer }, fmtInt),
		c(func(r Result) float64 { return float64(r.Steps) }, fmtInt),
	}, " | ") + " |"
}

// StabilityHeader and StabilityRow make the second table: Allan and time
// deviation at Taus, MTIE over MTIEWindows, "median / worst".
func StabilityHeader() string {
	h := []string{"scenario"}
	for _, t := range Taus {
		h = append(h, fmt.Sprintf("ADEV %d s", t))
	}
	for _, t := range Taus {
		h = append(h, fmt.Sprintf("TDEV %d s", t))
	}
	for _, w := range MTIEWindows {
		h = append(h, fmt.Sprintf("MTIE %d s", w))
	}
	return "| " + strings.Join(h, " | ") + " |\n|" + strings.Repeat("---|", len(h))
}

// StabilityRow formats the summary as one row of the second table.
func (s Summary) StabilityRow() string {
	cells := []string{s.Name}
	for i := range Taus {
		m, w := s.col(func(r Result) float64 { return r.ADev[i] })
		cells = append(cells, cell(m, w, fmtSci))
	}
	for i := range Taus {
		m, w := s.col(func(r Result) float64 { return r.TDev[i] })
		cells = append(cells, cell(m, w, fmtSecs))
	}
	for i := range MTIEWindows {
		m, w := s.col(func(r Result) float64 { return r.MTIE[i] })
		cells = append(cells, cell(m, w, fmtSecs))
	}
	return "| " + strings.Join(cells, " | ") + " |"
}

// Tables renders both tables for the summaries, as docs/accuracy.md keeps
// them.
func Tables(sums []Summary) string {
	var b strings.Builder
	seeds := 0
	if len(sums) > 0 {
		seeds = len(sums[0].Results)
	}
	fmt.Fprintf(&b, "Each cell: median / worst over %d seeds.\n\n", seeds)
	b.WriteString(OffsetHeader + "\n")
	for _, s := range sums {
		b.WriteString(s.OffsetRow() + "\n")
	}
	b.WriteString("\nStability of the disciplined clock (from 5 min to the end of each run; – where the run is too short for that τ):\n\n")
	b.WriteString(StabilityHeader() + "\n")
	for _, s := range sums {
		b.WriteString(s.StabilityRow() + "\n")
	}
	return b.String()
}

func fmtDur(d time.Duration) string {
	a := d
	if a < 0 {
		a = -a
	}
	switch {
	case a < time.Microsecond:
		return fmt.Sprintf("%d ns", d.Nanoseconds())
	case a < time.Millisecond:
		return fmt.Sprintf("%.1f µs", float64(d)/1e3)
	case a < time.Second:
		return fmt.Sprintf("%.2f ms", float64(d)/1e6)
	}
	return fmt.Sprintf("%.3f s", d.Seconds())
}
