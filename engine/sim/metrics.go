package sim

import (
	"math"
	"slices"
)

// Phase is the disciplined clock's true error (local minus true, seconds)
// sampled once a simulated second: what a user of the clock feels. A
// sample may be missing (NaN: the scenario skipped that second), and a
// discontinuity (a step, a jump) splits the series into segments; every
// statistic below uses only differences within one segment.
type Phase struct {
	x   []float64
	seg []int // segment of each sample; -1 for a missing one
	cur int
	brk bool
}

// Add appends the next second's error; NaN marks it missing.
func (p *Phase) Add(x float64) {
	if math.IsNaN(x) {
		p.x = append(p.x, x)
		p.seg = append(p.seg, -1)
		p.brk = true
		return
	}
	if p.brk {
		p.cur++
		p.brk = false
	}
	p.x = append(p.x, x)
	p.seg = append(p.seg, p.cur)
}

// Break says the clock was discontinuous between the previous sample and
// the next one.
func (p *Phase) Break() { p.brk = true }

// Len is how many seconds were recorded.
func (p *Phase) Len() int { return len(p.x) }

// same says whether samples i and j (i <= j) are both present and in one
// segment, so that every sample between them is too.
func (p *Phase) same(i, j int) bool {
	return p.seg[i] >= 0 && p.seg[i] == p.seg[j]
}

// Rate is the RMS and largest absolute rate error (ppm) over windows of m
// seconds ending at samples from..end-1: (x[i]-x[i-m])/m, slews included.
func (p *Phase) Rate(from, m int) (rms, maxAbs float64) {
	var sum2 float64
	n := 0
	for i := max(from, m); i < len(p.x); i++ {
		if !p.same(i-m, i) {
			continue
		}
		y := (p.x[i] - p.x[i-m]) / float64(m) * 1e6
		sum2 += y * y
		maxAbs = math.Max(maxAbs, math.Abs(y))
		n++
	}
	if n == 0 {
		return math.NaN(), math.NaN()
	}
	return math.Sqrt(sum2 / float64(n)), maxAbs
}

// ADev is the overlapping Allan deviation (dimensionless) at τ = m s over
// the samples from..end, NaN when no term fits.
func (p *Phase) ADev(from, m int) float64 {
	var sum float64
	n := 0
	for i := from; i+2*m < len(p.x); i++ {
		if !p.same(i, i+2*m) {
			continue
		}
		d := p.x[i+2*m] - 2*p.x[i+m] + p.x[i]
		sum += d * d
		n++
	}
	if n == 0 {
		return math.NaN()
	}
	tau := float64(m)
	return math.Sqrt(sum / (2 * tau * tau * float64(n)))
}

// TDev is the time deviation (s) at τ = m s over the samples from..end:
// σx²(τ) = 1/(6m²) ⟨(Σ_{i=j}^{j+m-1} x[i+2m]-2x[i+m]+x[i])²⟩, NaN when no
// term fits.
func (p *Phase) TDev(from, m int) float64 {
	// Prefix sums of x give each inner sum as three range sums.
	x := p.x[min(from, len(p.x)):]
	seg := p.seg[min(from, len(p.seg)):]
	pre := make([]float64, len(x)+1)
	for i, v := range x {
		if math.IsNaN(v) {
			v = 0
		}
		pre[i+1] = pre[i] + v
	}
	rs := func(a, b int) float64 { return pre[b] - pre[a] } // Σ x[a:b]
	var sum float64
	n := 0
	for j := 0; j+3*m-1 < len(x); j++ {
		if seg[j] < 0 || seg[j] != seg[j+3*m-1] {
			continue
		}
		s := rs(j+2*m, j+3*m) - 2*rs(j+m, j+2*m) + rs(j, j+m)
		sum += s * s
		n++
	}
	if n == 0 {
		return math.NaN()
	}
	mm := float64(m)
	return math.Sqrt(sum / (6 * mm * mm * float64(n)))
}

// MTIE is the maximum time interval error (s) over windows of m seconds
// (m+1 samples) from..end: the largest peak-to-peak phase within any such
// window. NaN when no window fits.
func (p *Phase) MTIE(from, m int) float64 {
	best := math.NaN()
	// Monotone deques of indices for the window's max and min.
	var hi, lo []int
	start := from // first sample of the current segment run
	for i := from; i < len(p.x); i++ {
		if p.seg[i] < 0 {
			hi, lo = hi[:0], lo[:0]
			start = i + 1
			continue
		}
		if i > start && p.seg[i] != p.seg[i-1] {
			hi, lo = hi[:0], lo[:0]
			start = i
		}
		for len(hi) > 0 && p.x[hi[len(hi)-1]] <= p.x[i] {
			hi = hi[:len(hi)-1]
		}
		hi = append(hi, i)
		for len(lo) > 0 && p.x[lo[len(lo)-1]] >= p.x[i] {
			lo = lo[:len(lo)-1]
		}
		lo = append(lo, i)
		for hi[0] < i-m {
			hi = hi[1:]
		}
		for lo[0] < i-m {
			lo = lo[1:]
		}
		if i-start >= m {
			d := p.x[hi[0]] - p.x[lo[0]]
			if math.IsNaN(best) || d > best {
				best = d
			}
		}
	}
	return best
}

// MaxAbs is the largest |x| over samples from..to-1 (NaN when none).
func (p *Phase) MaxAbs(from, to int) float64 {
	best := math.NaN()
	for i := max(from, 0); i < min(to, len(p.x)); i++ {
		if v := math.Abs(p.x[i]); !math.IsNaN(v) && (math.IsNaN(best) || v > best) {
			best = v
		}
	}
	return best
}

// median and worst of a column over seeds; NaNs (not measured) are left out.
func median(v []float64) float64 {
	w := finite(v)
	if len(w) == 0 {
		return math.NaN()
	}
	slices.Sort(w)
	n := len(w)
	if n%2 == 1 {
		return w[n/2]
	}
	return (w[n/2-1] + w[n/2]) / 2
}

func worst(v []float64) float64 {
	w := finite(v)
	if len(w) == 0 {
		return math.NaN()
	}
	return slices.Max(w)
}

func finite(v []float64) []float64 {
	w := make([]float64, 0, len(v))
	for _, x := range v {
		if !math.IsNaN(x) {
			w = append(w, x)
		}
	}
	return w
}
