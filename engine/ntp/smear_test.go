package ntp

import (
	"testing"
	"time"

	"gnomon.dev/gnomon/engine/sample"
)

// smearRun drives a Smear through a simulated leap: continuous time t runs
// from 14 h before the leap to 14 h after; the kernel clock (wall) takes
// the leap at midnight unless steps is false; the sources announce it
// until the leap. It checks every served time against the smear curve.
func smearRun(t *testing.T, window time.Duration, insert, steps bool, every func(i int) time.Duration) {
	t.Helper()
	leapAt := time.Date(2026, 12, 31, 24, 0, 0, 0, time.UTC)
	sign := time.Second
	ann := sample.LeapInsert
	if !insert {
		sign, ann = -time.Second, sample.LeapDelete
	}
	s := &Smear{Window: window}
	t0 := leapAt.Add(-14 * time.Hour)
	var lastServed time.Time
	maxErr := time.Duration(0)
	for i, tc := 0, t0; tc.Before(leapAt.Add(14 * time.Hour)); i, tc = i+1, tc.Add(every(i)) {
		wall := tc
		if steps && !tc.Before(leapAt) {
			wall = tc.Add(-sign)
		}
		a := sample.LeapNone
		if tc.Before(leapAt) {
			a = ann
		}
		corr, leap := s.Correct(wall, tc.Sub(t0), a)
		served := wall.Add(corr)
		frac := float64(tc.Sub(leapAt.Add(-window/2))) / float64(window)
		frac = max(0, min(1, frac))
		want := tc.Add(-time.Duration(frac * float64(sign)))
		if !steps {
			if tc.After(leapAt.Add(3 * time.Second)) {
				want = wall // abandoned: the clock handles the leap
			}
		}
		if d := served.Sub(want).Abs(); d > maxErr {
			maxErr = d
		}
		if !steps {
			continue
		}
		if served.Sub(want).Abs() > time.Microsecond {
			t.Fatalf("t = leap%+v: served %v, want %v (corr %v)", tc.Sub(leapAt), served, want, corr)
		}
		inWindow := frac > 0 && frac < 1
		if inWindow && leap != sample.LeapNone {
			t.Fatalf("t = leap%+v: leap %v served during the smear", tc.Sub(leapAt), leap)
		}
		if tc.Before(leapAt.Add(-window/2)) && leap != a {
			t.Fatalf("t = leap%+v: leap %v before the smear, want %v", tc.Sub(leapAt), leap, a)
		}
		if !lastServed.IsZero() && served.Before(lastServed) {
			t.Fatalf("t = leap%+v: served time went back from %v to %v", tc.Sub(leapAt), lastServed, served)
		}
		lastServed = served
	}
	if !steps && maxErr > time.Microsecond {
		t.Logf("without a kernel step the served time jumps back to the clock: largest difference from the curve %v", maxErr)
	}
	if s.Active() {
		t.Error("smear still active after the window")
	}
}

func TestSmearCurve(t *testing.T) {
	second := func(int) time.Duration { return time.Second }
	for _, tc := range []struct {
		name   string
		window time.Duration
		insert bool
		every  func(int) time.Duration
	}{
		{"24h insertion every second", 24 * time.Hour, true, second},
		{"24h deletion every second", 24 * time.Hour, false, second},
		{"1h insertion every second", time.Hour, true, second},
		// Sparse, uneven requests: 0.3 s to 17 min apart.
		{"24h insertion, sparse requests", 24 * time.Hour, true, func(i int) time.Duration {
			return 300*time.Millisecond + time.Duration(i*7919%1000)*time.Second
		}},
	} {
		t.Run(tc.name, func(t *testing.T) { smearRun(t, tc.window, tc.insert, true, tc.every) })
	}
}

func TestSmearWithoutKernelStep(t *testing.T) {
	s := &Smear{Window: time.Hour}
	leapAt := time.Date(2026, 6, 30, 24, 0, 0, 0, time.UTC)
	t0 := leapAt.Add(-time.Hour)
	var corr time.Duration
	for tc := t0; tc.Before(leapAt.Add(10 * time.Second)); tc = tc.Add(time.Second) {
		a := sample.LeapNone
		if tc.Before(leapAt) {
			a = sample.LeapInsert
		}
		corr, _ = s.Correct(tc, tc.Sub(t0), a)
	}
	if corr != 0 || s.Active() {
		t.Errorf("no kernel step: correction %v, active %v; want the smear stopped", corr, s.Active())
	}
}

func TestSmearOnlyAtMonthEnd(t *testing.T) {
	s := &Smear{Window: 24 * time.Hour}
	// A leap announced on 15 December is not due tonight: no smear.
	wall := time.Date(2026, 12, 15, 20, 0, 0, 0, time.UTC)
	corr, leap := s.Correct(wall, 0, sample.LeapInsert)
	if corr != 0 || leap != sample.LeapInsert || s.Active() {
		t.Errorf("mid-month: corr %v leap %v active %v", corr, leap, s.Active())
	}
}
