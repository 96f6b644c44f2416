package sim

import (
	"os"
	"slices"
	"testing"
	"time"
)

// measuredLAN is the one-way delays gnomond's exchanges met through the
// LAN relays of make bench-accuracy (testdata/relay-lan-paths.txt, from
// the engine trace of a real run; docs/accuracy.md, "Real time"): each
// way about 30 µs more than the 100 µs + Exp(50 µs) configured, with
// heavier tails (an offset error's quartiles ±23 µs against the
// exponential's ±17 µs, its 1st percentile at −260 µs and beyond).
func measuredLAN(t *testing.T) [][2]time.Duration {
	return loadPathsFile(t, "testdata/relay-lan-paths.txt")
}

// measuredLANAll is the same from every run of 2026-12-07 evening (the
// reproduction and three 15-minute rounds of two builds; 3563 exchanges):
// printed beside, not bounded.
func measuredLANAll(t *testing.T) [][2]time.Duration {
	return loadPathsFile(t, "testdata/relay-lan-paths-all.txt")
}

func loadPathsFile(t *testing.T, name string) [][2]time.Duration {
	t.Helper()
	f, err := os.Open(name)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	p, err := LoadPaths(f)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// rtMeasured is setting s with every server's path replaced by the
// measured relay delays.
func rtMeasured(s rtSetting, paths [][2]time.Duration) rtSetting {
	s.path.Measured = paths
	return s
}

// rtMedianRMS runs s over n seeds for d and returns the median RMS and
// mean error (µs) over the scenario's window (the second half).
func rtMedianRMS(t *testing.T, s rtSetting, d time.Duration, n int) (rms, mean float64) {
	t.Helper()
	var r, m []float64
	for seed := range n {
		res, err := RunScenario(s.scenario(uint64(100+seed), d))
		if err != nil {
			t.Fatalf("%s seed %d: %v", s.name, seed, err)
		}
		r, m = append(r, res.RMS.Seconds()*1e6), append(m, res.Mean.Seconds()*1e6)
	}
	slices.Sort(r)
	slices.Sort(m)
	return r[len(r)/2], m[len(m)/2]
}

// TestRelayPathsStart: the benchmark's equal-polling LAN settings with
// the delays measured through the real relays, 8 minutes (the bench's
// start-up, where gnomond fell behind chronyd). With the joint filter
// started as soon as the frequency was trusted (1 ppm), its frequency
// was still 0.2–0.5 ppm off and the offset it ran up took minutes to
// come back: median RMS over the second half 11.9 µs (LAN) and 11.9 µs
// (falseticker), 20 seeds; with the start held until the frequency is
// precise over the discipline's longest correction (engine/system,
// kalmanStartHorizon) 6.5 and 6.5 µs. The exponential delays of the
// older prediction hid it (4.5 and 4.8 µs either way).
func TestRelayPathsStart(t *testing.T) {
	paths, all := measuredLAN(t), measuredLANAll(t)
	n := max(seeds(t), 20)
	for _, s := range rtSettings() {
		if !s.interleaved || s.defaultPoll || s.path.RoundTrip != rtLAN.RoundTrip {
			continue
		}
		rms, mean := rtMedianRMS(t, rtMeasured(s, paths), 8*time.Minute, n)
		t.Logf("%-18s measured relay delays, 8 min: RMS median %.1f µs, mean median %+.1f µs, %d seeds", s.name, rms, mean, n)
		for _, d := range []time.Duration{8 * time.Minute, 15 * time.Minute} {
			r, m := rtMedianRMS(t, rtMeasured(s, all), d, n)
			t.Logf("%-18s every run's relay delays, %v: RMS median %.1f µs, mean median %+.1f µs", s.name, d, r, m)
		}
		if s.path.Loss > 0 {
			// 30 % loss: over 8 minutes 10–14 µs either way, not bounded;
			// over 15 minutes the start of the joint filter shows. Held
			// only by FreqSD·horizon ≤ OffsetSD, it started at 502 s
			// (median of 40 seeds; in real time after 198–423 s) and the
			// median RMS was 7.7 µs; with the windows' span also asked for
			// (kalmanStartSpan) 566 s and 6.1 µs.
			r, _ := rtMedianRMS(t, rtMeasured(s, all), 15*time.Minute, 2*n)
			if r > 7 {
				t.Errorf("%s with every run's relay delays: median RMS %.1f µs over 15 minutes' second half, want ≤ 7 µs", s.name, r)
			}
			continue
		}
		if rms > 9 {
			t.Errorf("%s with the measured relay delays: median RMS %.1f µs over 8 minutes' second half, want ≤ 9 µs", s.name, rms)
		}
	}
}
