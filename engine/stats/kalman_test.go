package stats

import (
	"math"
	"math/rand/v2"
	"testing"
	"time"
)

// TestKalmanTracksDriftingClock: fed noisy offsets of a clock whose
// frequency random-walks, the filter's offset and frequency stay within a
// few of their own standard errors of the truth, and closer than the raw
// samples are.
func TestKalmanTracksDriftingClock(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	const wander = 1e-9 // s/s per √s
	k := NewKalman(2 * wander)
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	x, y := 0.0, 2e-6 // truth: offset (s), frequency (s/s)
	const sigma = 10e-6
	k.Start(t0, 0, sigma*sigma, 0, 1e-8)
	var sumX, sumRaw float64
	var n int
	dt := 4.0
	for i := 1; i <= 2000; i++ {
		y += wander * math.Sqrt(dt) * rng.NormFloat64()
		x += y * dt
		at := t0.Add(time.Duration(float64(i) * dt * 1e9))
		meas := x + sigma*rng.NormFloat64()
		k.Update(at, meas, sigma*sigma)
		if i > 500 {
			ex, sx, ey, sy := k.Estimate(at)
			if math.Abs(ex-x) > 5*sx || math.Abs(ey-y) > 5*sy {
				t.Fatalf("step %d: estimate %g±%g s, %g±%g s/s; truth %g s, %g s/s", i, ex, sx, ey, sy, x, y)
			}
			sumX += (ex - x) * (ex - x)
			sumRaw += (meas - x) * (meas - x)
			n++
		}
	}
	if rx, rr := math.Sqrt(sumX/float64(n)), math.Sqrt(sumRaw/float64(n)); !(rx < rr/2) {
		t.Errorf("filter RMS %g s, samples %g s: want the filter at least twice better", rx, rr)
	}
}

// TestKalmanAdjust: a change of the clock moves the state exactly as it
// moves stored samples.
func TestKalmanAdjust(t *testing.T) {
	k := NewKalman(1e-9)
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	k.Start(t0, 1e-3, 1e-12, 5e-6, 1e-14)
	k.Adjust(t0.Add(-10*time.Second), 1e-3, 5)
	x, _, y, _ := k.Estimate(t0.Add(10 * time.Millisecond))
	// offset 1 ms less and 5 ppm·10 s less; frequency 5 ppm less
	if want := -5e-6 * 10; math.Abs(x-want) > 1e-9 {
		t.Errorf("offset after Adjust %g, want %g", x, want)
	}
	if math.Abs(y) > 1e-15 {
		t.Errorf("frequency after Adjust %g, want 0", y)
	}
}

// TestKalmanOutlierWeighedDown: one sample a millisecond off moves a
// settled estimate by far less than the sample's own error.
func TestKalmanOutlierWeighedDown(t *testing.T) {
	k := NewKalman(1e-9)
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	k.Start(t0, 0, 1e-10, 0, 1e-14)
	for i := 1; i <= 100; i++ {
		k.Update(t0.Add(time.Duration(i)*time.Second), 0, 1e-10)
	}
	k.Update(t0.Add(101*time.Second), 1e-3, 1e-10)
	if x, _, _, _ := k.Estimate(t0.Add(101 * time.Second)); math.Abs(x) > 50e-6 {
		t.Errorf("one 1 ms outlier moved the estimate by %g s", x)
	}
}

// TestNewestDelayVar: the variance grows with the newest sample's extra
// delay as e²/12 over the floor.
func TestNewestDelayVar(t *testing.T) {
	s := New(16)
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	for i, d := range []float64{100e-6, 120e-6, 100e-6, 160e-6} {
		s.Add(Point{Time: t0.Add(time.Duration(i) * 16 * time.Second), Delay: d})
	}
	if got, want := s.NewestDelayVar(1e-6), 60e-6*60e-6/12+1e-12; math.Abs(got-want) > 1e-15 {
		t.Errorf("NewestDelayVar = %g, want %g", got, want)
	}
}
