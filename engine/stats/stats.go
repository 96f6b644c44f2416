// Package stats keeps the recent measurements of one source and estimates,
// by weighted linear regression, the source's offset now and the rate at
// which it changes (the local clock's frequency error against that source),
// with their uncertainties. It is the Go kin of chrony's sourcestats: the
// regression window shrinks by a runs test when the residuals show that the
// clock has wandered, so old samples never bias a fresh estimate.
//
// Offsets are reference minus local, in seconds as float64; times are the
// engine's (cooked) local times.
package stats

import (
	"math"
	"slices"
	"time"
)

// Point is one filtered measurement.
type Point struct {
	Time   time.Time
	Offset float64 // s, reference minus local
	Delay  float64 // s, round trip (0 for reference clocks)
	Disp   float64 // s, the measurement's own dispersion
}

// Estimate is what the regression concludes.
type Estimate struct {
	// Offset is the estimated offset at the time asked for, OffsetSD its
	// standard error.
	Offset, OffsetSD float64
	// FreqPPM is the slope of offset over time: the frequency correction
	// the local clock needs to follow this source. FreqSD is its standard
	// error. With fewer than MinRegression samples, FreqPPM is 0 and FreqSD
	// is +Inf.
	FreqPPM, FreqSD float64
	// Jitter is the residual RMS of the samples used about the fit.
	Jitter float64
	// MinDelay is the smallest round-trip delay among the samples used.
	MinDelay float64
	// Disp is the dispersion of the newest sample.
	Disp float64
	// N is how many samples the fit used; Span how far apart the oldest
	// and newest were; Last is the newest sample's time.
	N    int
	Span time.Duration
	Last time.Time
}

// MinRegression is the fewest samples from which a frequency is estimated.
const MinRegression = 3

// Stats is the sample window of one source. The zero value is not usable;
// call New.
type Stats struct {
	max    int
	maxAge time.Duration // 0: no limit
	pts    []Point       // oldest first

	// cached fit, relative to pts[len-1].Time
	valid             bool
	a, b              float64 // offset at newest time, slope (s/s)
	varA, varB, covAB float64
	sigma             float64
	minDelay          float64
	meanW             float64 // mean weight of the fitted window
	exFloor           float64 // mean half-excess delay of the window (s)

	work []float64 // residual scratch
	wts  []float64
	exs  []float64 // excess-delay scratch
}

// New returns an empty window holding at most maxSamples samples (64 when
// maxSamples < MinRegression).
func New(maxSamples int) *Stats {
	if maxSamples < MinRegression {
		maxSamples = 64
	}
	return &Stats{max: maxSamples, pts: make([]Point, 0, maxSamples),
		work: make([]float64, maxSamples), wts: make([]float64, maxSamples), exs: make([]float64, 0, maxSamples)}
}

// SetMaxAge limits the window to samples at most d older than the newest
// (keeping MinRegression samples regardless). When the oscillator wanders,
// an old sample says more about where the clock was than where it is: the
// best window balances measurement noise against that wander, and the
// system sets it from both (see engine/system).
func (s *Stats) SetMaxAge(d time.Duration) { s.maxAge = d }

// MinFreqSamples: below this many samples a slope's standard error is
// not taken from the weighted residuals alone (see regress).
const MinFreqSamples = 8

// Len is how many samples are held.
func (s *Stats) Len() int { return len(s.pts) }

// Reset forgets every sample (after a clock jump, or when a source is
// replaced).
func (s *Stats) Reset() {
	s.pts = s.pts[:0]
	s.valid = false
}

// Add appends a sample and refits. Samples must come in time order; one
// older than the newest held is ignored and Add returns false.
func (s *Stats) Add(p Point) bool {
	if n := len(s.pts); n > 0 && p.Time.Before(s.pts[n-1].Time) {
		return false
	}
	if len(s.pts) == s.max {
		copy(s.pts, s.pts[1:])
		s.pts = s.pts[:len(s.pts)-1]
	}
	s.pts = append(s.pts, p)
	s.fit()
	return true
}

// Adjust corrects every held sample for a change of the local clock made
// at time at: the clock's reading jumped by offset seconds and its
// frequency changed by freqPPM from then on. The samples are rewritten as
// though the clock had always run with the new parameters, so the fit
// stays consistent across corrections.
func (s *Stats) Adjust(at time.Time, offset, freqPPM float64) {
	for i := range s.pts {
		shift := offset + freqPPM*1e-6*s.pts[i].Time.Sub(at).Seconds()
		s.pts[i].Offset -= shift
		s.pts[i].Time = s.pts[i].Time.Add(time.Duration(shift * 1e9))
	}
	if len(s.pts) > 0 {
		s.fit()
	}
}

// Estimate extrapolates the fit to time now. ok is false with no samples.
func (s *Stats) Estimate(now time.Time) (e Estimate, ok bool) {
	n := len(s.pts)
	if n == 0 || !s.valid {
		return Estimate{}, false
	}
	last := s.pts[n-1]
	x := now.Sub(last.Time).Seconds()
	e.Offset = s.a + s.b*x
	if math.IsInf(s.varB, 1) {
		e.OffsetSD = math.Sqrt(s.varA)
	} else {
		e.OffsetSD = math.Sqrt(math.Max(0, s.varA+2*x*s.covAB+x*x*s.varB))
	}
	e.FreqPPM = s.b * 1e6
	e.FreqSD = math.Sqrt(s.varB) * 1e6
	e.Jitter = s.sigma
	e.MinDelay = s.minDelay
	e.Disp = last.Disp
	e.N = len(s.pts)
	e.Span = last.Time.Sub(s.pts[n-e.N].Time)
	e.Last = last.Time
	return e, true
}

// fit chooses the largest window of newest samples whose residuals pass
// the runs test, prunes the older ones, and caches the weighted fit.
func (s *Stats) fit() {
	n := len(s.pts)
	s.valid = true
	if n < MinRegression {
		s.fitMean()
		return
	}
	start := 0
	for ; start <= n-MinRegression; start++ {
		s.regress(start)
		if s.runsOK(start) {
			break
		}
	}
	if start > n-MinRegression {
		start = n - MinRegression
		s.regress(start)
	}

	if start > 0 {
		copy(s.pts, s.pts[start:])
		s.pts = s.pts[:n-start]
	}
	if s.maxAge > 0 {
		s.level()
	}
}

// level re-estimates the offset from the samples within maxAge of the
// newest only, along the slope of the whole window: the frequency is best
// measured over a long window, the offset over a short one.
func (s *Stats) level() {
	n := len(s.pts)
	newest := s.pts[n-1].Time
	start := max(n-MinRegression, 0)
	for start > 0 && newest.Sub(s.pts[start-1].Time) <= s.maxAge {
		start--
	}
	if start == 0 {
		return
	}
	var W, sum, sx float64
	for i := start; i < n; i++ {
		x := s.pts[i].Time.Sub(newest).Seconds()
		w := s.wts[i]
		W += w
		sum += w * (s.pts[i].Offset - s.b*x)
		sx += w * x
	}
	xm := sx / W
	sigma2 := s.sigma * s.sigma * s.meanW
	s.a = sum / W
	s.varA = sigma2/W + xm*xm*s.varB
	s.covAB = -xm * s.varB
}

// excessClip: in the weights' floor, a sample's excess delay counts at
// most this many times the window's median excess. With ordinary
// queueing jitter (the simulator's exponential delays) almost no sample
// reaches it and the floor is the plain mean; on the VM bench's WAN path,
// where the emulated guest's host stalled now and then, a few samples
// hundreds of ms late had raised the mean excess tenfold, every ordinary
// sample then weighed the same, and the estimates swung by milliseconds
// (docs/accuracy.md, "In a VM guest on its kernel clock": 3 clips the
// LAN scenario's weights too much, 10 leaves most of the harm).
const excessClip = 5

// minFloorDiv bounds how far the least round trip may pull the weights'
// scale below the mean half-excess (see weights).
const minFloorDiv = 8

// weights gives each sample a weight inversely proportional to the
// variance its delay allows: a sample whose round trip took e longer than
// the quickest can be off by up to e/2, so its variance grows as (e/2)^2
// over a floor set by the typical excess (scale-free: the same on a LAN as
// over the Internet).
func (s *Stats) weights(start int) {
	n := len(s.pts)
	minD := math.Inf(1)
	for i := start; i < n; i++ {
		minD = math.Min(minD, s.pts[i].Delay)
	}
	s.minDelay = minD
	// floor: mean half-excess, at least 1 ns plus the newest dispersion
	// share, so a window of identical delays weights evenly. Each excess
	// counts at most excessClip times the median: a few samples held up
	// by hundreds of ms (a stalled host or path) must not raise the floor
	// until every ordinary sample weighs the same, which would let the
	// jitter of all of them into the fit (see excessClip).
	ex := s.exs[:0]
	for i := start; i < n; i++ {
		ex = append(ex, (s.pts[i].Delay-minD)/2)
	}
	slices.Sort(ex)
	lim := excessClip * ex[len(ex)/2]
	if lim <= 0 {
		// Half the delays or more equal to the least (a quiet path,
		// delays in coarse steps): no scale to clip against, and a clip
		// at 0 would leave the 1 ns floor alone, weighing a sample with
		// a little queueing next to nothing.
		lim = math.Inf(1)
	}
	var sumEx float64
	for _, e := range ex {
		sumEx += math.Min(e, lim)
	}
	floor := math.Max(sumEx/float64(n-start), 1e-9)
	s.exFloor = floor
	// The weights' scale is at most half the least round trip (chrony's
	// sourcestats does the same), but no less than an eighth of the mean
	// half-excess: where the jitter is larger than the path's fixed
	// delay, an ordinary sample's excess sat mostly on one way (the VM
	// bench's emulated guest: its extra delay came on the way back, so
	// the offset fell by about half of it) and weights on the mean's scale
	// let that into the estimate (docs/accuracy.md, "In the VM guest: LAN
	// and falseticker with more turns").
	floor = math.Max(math.Min(floor, minD/2), floor/minFloorDiv)
	for i := start; i < n; i++ {
		ex := (s.pts[i].Delay - minD) / 2 / floor
		s.wts[i] = 1 / (1 + ex*ex)
	}
}

func (s *Stats) fitMean() {
	n := len(s.pts)
	s.weights(0)
	var W, sy float64
	for i := 0; i < n; i++ {
		W += s.wts[i]
		sy += s.wts[i] * s.pts[i].Offset
	}
	s.a = sy / W
	s.b = 0
	var ss float64
	for i := 0; i < n; i++ {
		r := s.pts[i].Offset - s.a
		ss += s.wts[i] * r * r
	}
	// With one or two samples there is no honest residual estimate: take
	// the quickest sample's possible error (half its delay over the
	// shortest) plus its dispersion as the scale.
	last := s.pts[n-1]
	floor := last.Disp + 1e-9
	s.sigma = math.Max(math.Sqrt(ss/W), floor)
	s.varA = s.sigma * s.sigma / W
	s.varB = math.Inf(1)
	s.covAB = 0
}

func (s *Stats) regress(start int) {
	n := len(s.pts)
	s.weights(start)
	t0 := s.pts[n-1].Time
	var W, sx, sy float64
	for i := start; i < n; i++ {
		x := s.pts[i].Time.Sub(t0).Seconds()
		w := s.wts[i]
		W += w
		sx += w * x
		sy += w * s.pts[i].Offset
	}
	xm, ym := sx/W, sy/W
	var sxx, sxy float64
	for i := start; i < n; i++ {
		dx := s.pts[i].Time.Sub(t0).Seconds() - xm
		w := s.wts[i]
		sxx += w * dx * dx
		sxy += w * dx * (s.pts[i].Offset - ym)
	}
	b := 0.0
	if sxx > 0 {
		b = sxy / sxx
	}
	a := ym - b*xm // at x = 0, the newest sample's time
	var ss float64
	for i := start; i < n; i++ {
		x := s.pts[i].Time.Sub(t0).Seconds()
		r := s.pts[i].Offset - (a + b*x)
		s.work[i] = r
		ss += s.wts[i] * r * r
	}
	m := n - start
	// sigma2 is the variance of a unit-weight (quickest) sample; never
	// below what the newest sample's dispersion says it can resolve.
	sigma2 := ss / float64(m-2)
	if m == 2 {
		sigma2 = 0
	}
	floor := s.pts[n-1].Disp/3 + 1e-9
	sigma2 = math.Max(sigma2, floor*floor)
	s.a, s.b = a, b
	s.sigma = math.Sqrt(sigma2 * float64(m) / W) // a typical sample's
	s.meanW = W / float64(m)
	if sxx > 0 {
		s.varB = sigma2 / sxx
		if m < MinFreqSamples {
			// With a few samples the delay weights may rest the fit on
			// two or three of them, whose residuals say nothing of the
			// noise: the slope is then no better known than the
			// unweighted spread of the samples, or their typical extra
			// delay (by chance three samples may fall on a line), allows.
			var ux, uxx, uss float64
			for i := start; i < n; i++ {
				ux += s.pts[i].Time.Sub(t0).Seconds()
			}
			ux /= float64(m)
			for i := start; i < n; i++ {
				dx := s.pts[i].Time.Sub(t0).Seconds() - ux
				uxx += dx * dx
				uss += s.work[i] * s.work[i]
			}
			if uxx > 0 && m > 2 {
				s.varB = math.Max(s.varB, math.Max(uss/float64(m-2), s.exFloor*s.exFloor)/uxx)
			}
		}
	} else {
		s.varB = math.Inf(1)
	}
	s.varA = sigma2 / W
	s.covAB = 0
	if sxx > 0 {
		s.varA += xm * xm * s.varB
		s.covAB = -xm * s.varB
	}
}

// runsOK applies the Wald–Wolfowitz runs test to the signs of the
// residuals of the window starting at start: too few runs means the
// residuals are not random, so the window spans a change of frequency
// and must shrink.
func (s *Stats) runsOK(start int) bool {
	n := len(s.pts) - start
	if n < 6 {
		return true
	}
	var pos, neg, runs int
	prev := 0
	for i := start; i < len(s.pts); i++ {
		sign := 1
		if s.work[i] < 0 {
			sign = -1
		}
		if sign > 0 {
			pos++
		} else {
			neg++
		}
		if sign != prev {
			runs++
			prev = sign
		}
	}
	if pos == 0 || neg == 0 {
		return false
	}
	fn, fp, fm := float64(n), float64(pos), float64(neg)
	mu := 1 + 2*fp*fm/fn
	v := 2 * fp * fm * (2*fp*fm - fn) / (fn * fn * (fn - 1))
	// one-sided, about 1% false rejection
	return float64(runs) >= mu-2.33*math.Sqrt(v)
}

// TWiden is how much wider Student's t distribution with dof degrees of
// freedom is than the normal at 95 % (two-sided): the factor by which a
// standard error estimated from dof residual degrees of freedom should be
// widened before it is compared with a normal one. 1 for dof <= 0
// (nothing to go by: the caller's own floor applies).
func TWiden(dof int) float64 {
	// t quantiles at 0.975 for 1..10 degrees of freedom
	tab := [...]float64{12.71, 4.30, 3.18, 2.78, 2.57, 2.45, 2.36, 2.31, 2.26, 2.23}
	switch {
	case dof <= 0:
		return 1
	case dof <= len(tab):
		return tab[dof-1] / 1.96
	}
	return 1 + 1.2/float64(dof)
}
