package discipline

import (
	"errors"
	"math"
	"testing"
	"time"

	"gnomon.dev/gnomon/engine/clock"
	"gnomon.dev/gnomon/engine/sample"
)

var start = time.Date(2026, 5, 4, 10, 0, 0, 0, time.UTC)

func newSim(cfg clock.SimConfig) *clock.Sim {
	if cfg.Start.IsZero() {
		cfg.Start = start
	}
	return clock.NewSim(cfg)
}

func newDisc(t *testing.T, cfg Config, clk clock.Clock) *Discipline {
	t.Helper()
	d, err := New(cfg, clk)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return d
}

// advanceLocal moves the simulated clock forward until its reading is at
// or past target.
func advanceLocal(sim *clock.Sim, target time.Time) {
	for i := 0; i < 100; i++ {
		d := target.Sub(sim.Now())
		if d <= 0 {
			return
		}
		sim.AdvanceTo(sim.TrueNow().Add(d))
	}
	panic("advanceLocal: clock does not advance")
}

// TestStepLimit: offsets above StepThreshold are stepped while StepLimit
// allows, slewed after; a negative limit always steps; offsets at or
// below the threshold are always slewed.
func TestStepLimit(t *testing.T) {
	tests := []struct {
		name      string
		limit     int
		offsets   []float64 // s, one Update each, 100 s apart
		wantSteps []bool
	}{
		{"limit-1", 1, []float64{0.5, 0.5, -0.7}, []bool{true, false, false}},
		{"limit-2", 2, []float64{0.5, -0.5, 0.5}, []bool{true, true, false}},
		{"limit-0", 0, []float64{2, 2}, []bool{false, false}},
		{"always", -1, []float64{0.5, -3, 10, 0.2}, []bool{true, true, true, true}},
		{"small-not-stepped", 3, []float64{0.05, 0.1, -0.1, 0.11}, []bool{false, false, false, true}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			sim := newSim(clock.SimConfig{})
			d := newDisc(t, Config{StepThreshold: 100 * time.Millisecond, StepLimit: tc.limit}, sim)
			steps := 0
			for i, off := range tc.offsets {
				sim.AdvanceTo(start.Add(time.Duration(i+1) * 100 * time.Second))
				errBefore := sim.ErrorSeconds()
				remaining := d.Remaining(sim.Now())
				ch, err := d.Update(sim.Now(), Estimate{Offset: off, OffsetSD: 1e-3, FreqSD: math.Inf(1), Interval: 16 * time.Second})
				if err != nil {
					t.Fatalf("update %d: %v", i, err)
				}
				if ch.Stepped != tc.wantSteps[i] {
					t.Errorf("update %d (offset %g): Stepped=%v, want %v", i, off, ch.Stepped, tc.wantSteps[i])
				}
				if ch.Offset != time.Duration(off*1e9) {
					t.Errorf("update %d: Change.Offset %v, want %v", i, ch.Offset, time.Duration(off*1e9))
				}
				if tc.wantSteps[i] {
					steps++
					// The step includes what was still being slewed.
					want := off + remaining
					if got := sim.ErrorSeconds() - errBefore; math.Abs(got-want) > 1e-9 {
						t.Errorf("update %d: clock moved by %g s, want %g", i, got, want)
					}
					if math.Abs(ch.Step.Seconds()-want) > 1e-9 {
						t.Errorf("update %d: Change.Step %v, want %g s", i, ch.Step, want)
					}
					if !d.NextWakeup().IsZero() || d.Remaining(sim.Now()) != 0 {
						t.Errorf("update %d: slew left after a step (wakeup %v, remaining %g)", i, d.NextWakeup(), d.Remaining(sim.Now()))
					}
				} else {
					if sim.ErrorSeconds() != errBefore {
						t.Errorf("update %d: slew moved the clock at once by %g s", i, sim.ErrorSeconds()-errBefore)
					}
					if d.NextWakeup().IsZero() {
						t.Errorf("update %d: slew without a wakeup", i)
					}
				}
				n, last := sim.Steps()
				if n != steps || d.Steps() != steps {
					t.Errorf("update %d: Sim.Steps %d, Discipline.Steps %d, want %d", i, n, d.Steps(), steps)
				}
				if tc.wantSteps[i] && last != ch.Step {
					t.Errorf("update %d: Sim last step %v, Change.Step %v", i, last, ch.Step)
				}
			}
			if d.Updates() != len(tc.offsets) {
				t.Errorf("Updates = %d", d.Updates())
			}
		})
	}
}

// TestAllowStep grants exactly one step beyond the limit.
func TestAllowStep(t *testing.T) {
	for _, limit := range []int{0, 1, 2} {
		sim := newSim(clock.SimConfig{})
		d := newDisc(t, Config{StepThreshold: 100 * time.Millisecond, StepLimit: limit}, sim)
		e := Estimate{Offset: 1, FreqSD: math.Inf(1), Interval: 16 * time.Second}
		update := func(i int) bool {
			sim.AdvanceTo(sim.TrueNow().Add(time.Minute))
			ch, err := d.Update(sim.Now(), e)
			if err != nil {
				t.Fatalf("limit %d update %d: %v", limit, i, err)
			}
			return ch.Stepped
		}
		for i := 0; i < limit; i++ {
			if !update(i) {
				t.Fatalf("limit %d: step %d within the limit not taken", limit, i)
			}
		}
		if update(limit) {
			t.Errorf("limit %d: stepped beyond the limit without AllowStep", limit)
		}
		d.AllowStep()
		if !update(limit + 1) {
			t.Errorf("limit %d: AllowStep did not grant a step", limit)
		}
		if update(limit + 2) {
			t.Errorf("limit %d: AllowStep granted more than one step", limit)
		}
		if n, _ := sim.Steps(); n != limit+1 {
			t.Errorf("limit %d: %d steps, want %d", limit, n, limit+1)
		}
	}
}

// TestPanicThreshold: an offset above the panic threshold is refused with
// an error wrapping ErrPanic, and nothing changes.
func TestPanicThreshold(t *testing.T) {
	tests := []struct {
		name    string
		offset  float64
		refused bool
	}{
		{"far-ahead", 2000, true},
		{"far-behind", -2000, true},
		{"just-above", 1000.001, true},
		{"at-threshold", 1000, false},
		{"below", 999, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			sim := newSim(clock.SimConfig{})
			d := newDisc(t, Config{StepThreshold: time.Second, StepLimit: -1, PanicThreshold: 1000 * time.Second, InitialFreqPPM: 7}, sim)
			sim.AdvanceTo(start.Add(time.Minute))
			errBefore := sim.ErrorSeconds()
			ch, err := d.Update(sim.Now(), Estimate{Offset: tc.offset, FreqPPM: 3, FreqSD: 0.1, Interval: 64 * time.Second})
			if !tc.refused {
				if err != nil || !ch.Stepped {
					t.Fatalf("offset %g: err %v stepped %v, want a step", tc.offset, err, ch.Stepped)
				}
				return
			}
			if !errors.Is(err, ErrPanic) {
				t.Fatalf("err = %v, want ErrPanic", err)
			}
			if ch != (Change{}) {
				t.Errorf("Change = %+v, want zero", ch)
			}
			if n, _ := sim.Steps(); n != 0 || sim.ErrorSeconds() != errBefore {
				t.Errorf("clock changed: %d steps, error %g -> %g", n, errBefore, sim.ErrorSeconds())
			}
			if d.FrequencyPPM() != 7 || sim.CorrectionPPM() != 7 {
				t.Errorf("frequency changed: discipline %g, clock %g, want 7", d.FrequencyPPM(), sim.CorrectionPPM())
			}
			if d.FrequencySD() != 100 {
				t.Errorf("frequency SD changed to %g", d.FrequencySD())
			}
			if d.Updates() != 0 || d.Steps() != 0 || !d.LastUpdate().IsZero() || d.LastOffset() != 0 {
				t.Errorf("state changed: updates %d steps %d last %v offset %g", d.Updates(), d.Steps(), d.LastUpdate(), d.LastOffset())
			}
			if !d.NextWakeup().IsZero() {
				t.Error("slew started")
			}
		})
	}
}

// failClock is a clock whose Step and/or SetFrequency fail after New.
type failClock struct {
	*clock.Sim
	failStep, failFreq bool
}

var errBroken = errors.New("broken clock")

func (c *failClock) Step(d time.Duration) error {
	if c.failStep {
		return errBroken
	}
	return c.Sim.Step(d)
}

func (c *failClock) SetFrequency(f float64) error {
	if c.failFreq {
		return errBroken
	}
	return c.Sim.SetFrequency(f)
}

// TestClockErrorChangesNothing: when the clock refuses, Update returns its
// error and, as documented, nothing was changed.
func TestClockErrorChangesNothing(t *testing.T) {
	tests := []struct {
		name     string
		offset   float64
		failStep bool
		failFreq bool
	}{
		{"step-fails", 1, true, false},
		{"slew-fails", 0.01, false, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := &failClock{Sim: newSim(clock.SimConfig{})}
			d := newDisc(t, Config{StepThreshold: 100 * time.Millisecond, StepLimit: -1, InitialFreqPPM: 5}, c)
			c.failStep, c.failFreq = tc.failStep, tc.failFreq
			c.AdvanceTo(start.Add(time.Minute))
			_, err := d.Update(c.Now(), Estimate{Offset: tc.offset, FreqPPM: 2, FreqSD: 0.5, Interval: 16 * time.Second})
			if !errors.Is(err, errBroken) {
				t.Fatalf("err = %v, want the clock's error", err)
			}
			if d.FrequencyPPM() != 5 || c.CorrectionPPM() != 5 {
				t.Errorf("FrequencyPPM = %g, clock %g, want 5", d.FrequencyPPM(), c.CorrectionPPM())
			}
			if d.Steps() != 0 || !d.NextWakeup().IsZero() || d.Remaining(c.Now()) != 0 {
				t.Errorf("steps %d wakeup %v remaining %g", d.Steps(), d.NextWakeup(), d.Remaining(c.Now()))
			}
			if d.FrequencySD() != 100 {
				t.Errorf("FrequencySD = %g, want the initial 100: a failed update must not shrink the uncertainty", d.FrequencySD())
			}
			if d.Updates() != 0 || !d.LastUpdate().IsZero() || d.LastOffset() != 0 {
				t.Errorf("a failed update was recorded: Updates %d LastUpdate %v LastOffset %g", d.Updates(), d.LastUpdate(), d.LastOffset())
			}
		})
	}
}

// flakyClock fails SetFrequency after okFreq successful calls, and Step
// always when failStep.
type flakyClock struct {
	*clock.Sim
	okFreq   int
	failStep bool
}

func (c *flakyClock) SetFrequency(f float64) error {
	if c.okFreq <= 0 {
		return errBroken
	}
	c.okFreq--
	return c.Sim.SetFrequency(f)
}

func (c *flakyClock) Step(d time.Duration) error {
	if c.failStep {
		return errBroken
	}
	return c.Sim.Step(d)
}

// TestHalfDoneUpdateIsReported: when the clock fails half-way (the new
// frequency is set, the step fails, and the old frequency cannot be put
// back), Update returns the error AND a Change saying exactly what was
// done (the frequency changed, nothing stepped), and the discipline's own
// account matches the clock.
func TestHalfDoneUpdateIsReported(t *testing.T) {
	c := &flakyClock{Sim: newSim(clock.SimConfig{}), okFreq: 1}
	d := newDisc(t, Config{StepThreshold: 100 * time.Millisecond, StepLimit: -1, InitialFreqPPM: 5, FreqTrust: -1}, c)
	c.okFreq, c.failStep = 1, true
	c.AdvanceTo(start.Add(time.Minute))
	ch, err := d.Update(c.Now(), Estimate{Offset: 1, FreqPPM: 2, FreqSD: 0.5, Interval: 16 * time.Second})
	if !errors.Is(err, errBroken) {
		t.Fatalf("err = %v, want the clock's error", err)
	}
	if ch.At.IsZero() || ch.Stepped || ch.Offset != 0 || ch.FreqPPM != 2 {
		t.Errorf("Change %+v, want one saying: frequency +2 ppm, no step, no offset", ch)
	}
	if d.FrequencyPPM() != 7 || c.CorrectionPPM() != 7 {
		t.Errorf("discipline frequency %g, clock %g: want both 7", d.FrequencyPPM(), c.CorrectionPPM())
	}
	if d.Steps() != 0 || d.Remaining(c.Now()) != 0 {
		t.Errorf("steps %d remaining %g, want 0 and 0", d.Steps(), d.Remaining(c.Now()))
	}
}

// TestFailedWakeupKeepsSlewing: when the clock refuses to end a slew, the
// slew goes on in the engine's account too (Cook stays exact) and Wakeup
// is due again soon.
func TestFailedWakeupKeepsSlewing(t *testing.T) {
	c := &flakyClock{Sim: newSim(clock.SimConfig{}), okFreq: 2}
	d := newDisc(t, Config{StepThreshold: time.Second}, c)
	if _, err := d.Update(c.Now(), Estimate{Offset: 0.001, OffsetSD: 1e-4, FreqSD: math.Inf(1), Interval: 16 * time.Second}); err != nil {
		t.Fatal(err)
	}
	err0 := c.ErrorSeconds()
	end := d.NextWakeup()
	advanceLocal(c.Sim, end.Add(10*time.Second))
	if err := d.Wakeup(c.Now()); !errors.Is(err, errBroken) {
		t.Fatalf("Wakeup err = %v, want the clock's", err)
	}
	if next := d.NextWakeup(); next.IsZero() || next.Sub(c.Now()) > 2*time.Second {
		t.Errorf("NextWakeup %v, want about a second from %v", next, c.Now())
	}
	// The clock slewed on past the end: Cook still tells true time as the
	// update left it.
	moved := c.ErrorSeconds() - err0
	if got := d.Remaining(c.Now()); math.Abs(moved+got-0.001) > 1e-9 {
		t.Errorf("clock moved %g s and %g s remain: want them to add up to the 0.001 s slewed", moved, got)
	}
}

// TestFailedSlewKeepsResidual: a correction left over from a slew that
// ended late is still owed after an update the clock refused.
func TestFailedSlewKeepsResidual(t *testing.T) {
	c := &failClock{Sim: newSim(clock.SimConfig{})}
	d := newDisc(t, Config{StepThreshold: time.Second}, c)
	if _, err := d.Update(c.Now(), Estimate{Offset: 0.01, OffsetSD: 1e-4, FreqSD: math.Inf(1), Interval: 16 * time.Second}); err != nil {
		t.Fatal(err)
	}
	// End the slew 30 s late: it overshot, and the overshoot is owed.
	advanceLocal(c.Sim, d.NextWakeup().Add(30*time.Second))
	if err := d.Wakeup(c.Now()); err != nil {
		t.Fatal(err)
	}
	owed := d.Remaining(c.Now())
	if owed >= 0 {
		t.Fatalf("no overshoot after a late wakeup: remaining %g", owed)
	}
	c.failFreq = true
	c.AdvanceTo(c.TrueNow().Add(time.Second))
	if _, err := d.Update(c.Now(), Estimate{Offset: 0.002, OffsetSD: 1e-4, FreqSD: math.Inf(1), Interval: 16 * time.Second}); !errors.Is(err, errBroken) {
		t.Fatalf("err = %v", err)
	}
	if got := d.Remaining(c.Now()); got != owed {
		t.Errorf("Remaining %g after a refused update, want the owed %g", got, owed)
	}
}

// TestCookTracksTrueTime: while a slew runs and after it ends (on time or
// late), the engine's time (Cook) keeps the error the update left: the
// clock catches up exactly as the remaining correction shrinks. The clock
// here runs at the right rate at its base frequency (oscillator +12 ppm,
// correction -12 ppm), as a disciplined clock does; the bound allows 1 ppm
// of the amount slewed.
func TestCookTracksTrueTime(t *testing.T) {
	for _, late := range []time.Duration{0, 30 * time.Second, time.Hour} {
		// The clock is 20 ms behind.
		sim := newSim(clock.SimConfig{Offset: -20 * time.Millisecond, FreqPPM: 12})
		d := newDisc(t, Config{StepThreshold: time.Second, InitialFreqPPM: -12}, sim)
		cookedErr := func() float64 { return d.Cook(sim.Now()).Sub(sim.TrueNow()).Seconds() }
		if _, err := d.Update(sim.Now(), Estimate{Offset: 0.02, OffsetSD: 1e-4, FreqSD: math.Inf(1), Interval: 16 * time.Second}); err != nil {
			t.Fatal(err)
		}
		if e := cookedErr(); math.Abs(e) > 2e-9 {
			t.Fatalf("engine time off by %g s right after the update", e)
		}
		end := d.NextWakeup()
		for _, frac := range []float64{0.3, 0.7, 1} {
			advanceLocal(sim, sim.Now().Add(time.Duration(frac*float64(end.Sub(sim.Now())))))
			if e := cookedErr(); math.Abs(e) > 2e-9+1e-6*0.02 {
				t.Errorf("late %v: during the slew engine time off by %g s", late, e)
			}
		}
		advanceLocal(sim, end.Add(late))
		if err := d.Wakeup(sim.Now()); err != nil {
			t.Fatal(err)
		}
		slewed := 0.02 - d.Remaining(sim.Now()) // the overshoot is owed back
		for i := 0; i < 3; i++ {
			if e := cookedErr(); math.Abs(e) > 2e-9+1e-6*slewed {
				t.Errorf("late %v: %d min after the slew (%g s slewed), engine time off by %g s", late, i*10, slewed, e)
			}
			sim.AdvanceTo(sim.TrueNow().Add(10 * time.Minute))
		}
	}
}

// TestFrequencyClamp: the frequency stays within ±MaxFreqPPM, from the
// initial value and from updates.
func TestFrequencyClamp(t *testing.T) {
	tests := []struct {
		name    string
		max     float64
		initial float64
		updates []float64 // FreqPPM of each estimate
		want    float64
	}{
		{"initial-high", 100, 1000, nil, 100},
		{"initial-low", 100, -1000, nil, -100},
		{"initial-nan", 100, math.NaN(), nil, 0},
		{"update-high", 100, 0, []float64{1000}, 100},
		{"update-low", 100, 50, []float64{-1000}, -100},
		{"accumulates", 100, 60, []float64{30, 30}, 100},
		{"within", 100, 10, []float64{20, -5}, 25},
		{"default-500", 0, 0, []float64{800}, 500},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			sim := newSim(clock.SimConfig{})
			d := newDisc(t, Config{MaxFreqPPM: tc.max, InitialFreqPPM: tc.initial, StepThreshold: time.Second, FreqTrust: -1}, sim)
			for i, f := range tc.updates {
				sim.AdvanceTo(start.Add(time.Duration(i+1) * time.Minute))
				if _, err := d.Update(sim.Now(), Estimate{Offset: 0, FreqPPM: f, FreqSD: 0.01, Interval: 16 * time.Second}); err != nil {
					t.Fatalf("update %d: %v", i, err)
				}
			}
			if d.FrequencyPPM() != tc.want {
				t.Errorf("FrequencyPPM = %g, want %g", d.FrequencyPPM(), tc.want)
			}
			if sim.CorrectionPPM() != tc.want {
				t.Errorf("clock frequency = %g, want %g", sim.CorrectionPPM(), tc.want)
			}
		})
	}
}

// TestFrequencyAppliedWhole: with FreqTrust < 0 the regressions' slope,
// the error left in the current frequency, is applied whole; the
// frequency's uncertainty is the smaller of the held one (grown by the
// assumed wander) and the estimate's.
func TestFrequencyAppliedWhole(t *testing.T) {
	const wander = 0.01 // ppm/√s
	sim := newSim(clock.SimConfig{})
	d := newDisc(t, Config{InitialFreqPPM: 3, InitialFreqSD: 100, WanderPPMPerSqrtS: wander, FreqTrust: -1}, sim)
	steps := []struct {
		dt       time.Duration // since the previous update
		freq, sd float64       // the estimate
		want     float64       // frequency after
		wantSD   float64       // its SD after
	}{
		{0, 10, 0.1, 13, 0.1},
		// A noisy estimate is still applied whole; the held SD (0.1
		// grown by 100 s of wander) is the smaller.
		{100 * time.Second, -20, 10, -7, math.Sqrt(0.01 + wander*wander*100)},
		// A better one replaces the SD.
		{16 * time.Second, 0.5, 0.01, -6.5, 0.01},
		// Unknown frequency: nothing applied, the SD grows.
		{400 * time.Second, 99, math.Inf(1), -6.5, math.Sqrt(0.0001 + wander*wander*400)},
	}
	for i, st := range steps {
		sim.AdvanceTo(sim.TrueNow().Add(st.dt))
		ch, err := d.Update(sim.Now(), Estimate{FreqPPM: st.freq, FreqSD: st.sd, Interval: 16 * time.Second})
		if err != nil {
			t.Fatal(err)
		}
		if math.Abs(d.FrequencyPPM()-st.want) > 1e-12 || sim.CorrectionPPM() != d.FrequencyPPM() {
			t.Errorf("update %d: frequency %g (clock %g), want %g", i, d.FrequencyPPM(), sim.CorrectionPPM(), st.want)
		}
		if i > 0 && math.Abs(ch.FreqPPM-(st.want-steps[i-1].want)) > 1e-12 {
			t.Errorf("update %d: Change.FreqPPM %g", i, ch.FreqPPM)
		}
		// (elapsed time is read on the corrected clock: ppm-level differences)
		if math.Abs(d.FrequencySD()-st.wantSD) > 1e-4*st.wantSD {
			t.Errorf("update %d: frequency SD %g, want %g", i, d.FrequencySD(), st.wantSD)
		}
	}
}

// TestFrequencyTrust: an estimate is applied whole when it stands far from
// zero in its standard errors, shrunk as it nears FreqTrust of them, and
// not at all within them: a slope fitted to a few jittery samples (±400
// ppm with a standard error of 200) does not move the clock.
func TestFrequencyTrust(t *testing.T) {
	tests := []struct {
		freq, sd, trust float64
		want            float64
	}{
		{30, 0.1, 0, 30 * (1 - 9*0.01/900)},
		{30, 3, 0, 30 * (1 - 9*9.0/900)},
		{-400, 200, 0, 0},
		{400, 134, 0, 0},
		{400, 100, 0, 400 * (1 - 9.0/16)},
		{0.02, 0.01, 0, 0},
		{0.02, 0.01, -1, 0.02},
		{10, 4, 2, 10 * (1 - 4*16.0/100)},
	}
	for _, tc := range tests {
		sim := newSim(clock.SimConfig{})
		d := newDisc(t, Config{FreqTrust: tc.trust}, sim)
		if _, err := d.Update(sim.Now(), Estimate{FreqPPM: tc.freq, FreqSD: tc.sd, Interval: 16 * time.Second}); err != nil {
			t.Fatal(err)
		}
		if math.Abs(d.FrequencyPPM()-tc.want) > 1e-9 {
			t.Errorf("estimate %g ± %g (trust %g): frequency %g, want %g", tc.freq, tc.sd, tc.trust, d.FrequencyPPM(), tc.want)
		}
	}
}

// TestKnownFrequencyAppliedWhole: once an estimate with a standard error
// under FreqKnownPPM has been applied, later estimates are applied whole
// however weak (they are the error left in a known frequency); before,
// a weak one is not.
func TestKnownFrequencyAppliedWhole(t *testing.T) {
	up, d := freqUpdater(t)
	up(5, 2) // within 3 SE of zero, SE 2 ppm: nothing, not known
	if d.FrequencyPPM() != 0 || d.FrequencyKnown() {
		t.Fatalf("a weak estimate moved an unknown frequency to %g (known %t)", d.FrequencyPPM(), d.FrequencyKnown())
	}
	up(30, 3) // strong but SE 3 ppm: shrunk, still not known
	want := 30 * (1 - 9*9.0/900)
	up(5, 2) // weak: still nothing
	if math.Abs(d.FrequencyPPM()-want) > 1e-9 || d.FrequencyKnown() {
		t.Fatalf("frequency %g (known %t), want %g, not known", d.FrequencyPPM(), d.FrequencyKnown(), want)
	}
	up(5, 0.5) // SE under 1 ppm: applied (shrunk) and now known
	want += 5 * (1 - 9*0.25/25)
	if !d.FrequencyKnown() {
		t.Fatal("an estimate with SE 0.5 ppm applied, frequency still not known")
	}
	up(0.05, 0.04) // weak, but the frequency is known: whole
	want += 0.05
	if math.Abs(d.FrequencyPPM()-want) > 1e-9 {
		t.Errorf("frequency %g, want %g", d.FrequencyPPM(), want)
	}
}

// TestKnownWhenPreciseNearZero: a clock that starts at its true frequency
// gets estimates near zero, within their noise however precise: they are
// not applied, but once their standard error is under FreqKnownPPM the
// frequency is known (and the next estimate is applied whole). Before, the
// frequency of such a clock was never known.
func TestKnownWhenPreciseNearZero(t *testing.T) {
	up, d := freqUpdater(t)
	up(0.5, 3) // imprecise: nothing, not known
	up(0, 2)   // exactly zero, imprecise: not known
	if d.FrequencyPPM() != 0 || d.FrequencyKnown() {
		t.Fatalf("frequency %g known %t after imprecise estimates, want 0, not known", d.FrequencyPPM(), d.FrequencyKnown())
	}
	up(0.05, 0.04) // precise, within 3 SE of zero: not applied, but known
	if d.FrequencyPPM() != 0 || !d.FrequencyKnown() {
		t.Fatalf("frequency %g known %t after a precise estimate near zero, want 0, known", d.FrequencyPPM(), d.FrequencyKnown())
	}
	up(0.02, 0.03) // known: whole
	if math.Abs(d.FrequencyPPM()-0.02) > 1e-12 {
		t.Errorf("frequency %g, want 0.02 (applied whole once known)", d.FrequencyPPM())
	}
}

// TestUnknownFrequencyIgnored: an estimate with FreqSD +Inf or NaN FreqPPM
// leaves the frequency alone.
func TestUnknownFrequencyIgnored(t *testing.T) {
	for _, e := range []Estimate{
		{FreqPPM: 50, FreqSD: math.Inf(1)},
		{FreqPPM: math.NaN(), FreqSD: 1},
		{FreqPPM: 50, FreqSD: -1},
	} {
		sim := newSim(clock.SimConfig{})
		d := newDisc(t, Config{InitialFreqPPM: 12}, sim)
		e.Interval = 16 * time.Second
		ch, err := d.Update(sim.Now(), e)
		if err != nil {
			t.Fatal(err)
		}
		if d.FrequencyPPM() != 12 || ch.FreqPPM != 0 {
			t.Errorf("estimate %+v: frequency %g, change %g, want 12 and 0", e, d.FrequencyPPM(), ch.FreqPPM)
		}
	}
}

// TestSlewCorrects: a slewed offset is actually corrected: once the slew
// has ended (Wakeup at NextWakeup), the simulated clock's true error has
// moved by the offset within 1%, the clock is back at the base frequency,
// and nothing remains.
func TestSlewCorrects(t *testing.T) {
	tests := []struct {
		name     string
		offset   float64 // s
		offSD    float64
		interval time.Duration
		oscPPM   float64 // the oscillator's natural error
		basePPM  float64 // the discipline's frequency (cancels oscPPM)
		maxSlew  float64
	}{
		{"ahead-10ms", 0.010, 1e-4, 16 * time.Second, 0, 0, 0},
		{"behind-10ms", -0.010, 1e-4, 16 * time.Second, 0, 0, 0},
		{"noisy-1ms", 0.001, 0.001, 64 * time.Second, 0, 0, 0},
		{"rate-limited-300ms", 0.3, 1e-4, 16 * time.Second, 0, 0, 0},
		{"with-base-freq", -0.05, 1e-3, 32 * time.Second, -40, 40, 0},
		{"slow-slew-limit", 0.02, 1e-4, 16 * time.Second, 25, -25, 50},
		{"tiny", 1e-6, 1e-7, 16 * time.Second, 0, 0, 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			sim := newSim(clock.SimConfig{FreqPPM: tc.oscPPM})
			d := newDisc(t, Config{StepThreshold: time.Second, InitialFreqPPM: tc.basePPM, MaxSlewPPM: tc.maxSlew}, sim)
			sim.AdvanceTo(start.Add(time.Minute))
			err0 := sim.ErrorSeconds()
			raw := sim.Now()
			ch, err := d.Update(raw, Estimate{Offset: tc.offset, OffsetSD: tc.offSD, FreqSD: math.Inf(1), Interval: tc.interval})
			if err != nil {
				t.Fatal(err)
			}
			if ch.Stepped {
				t.Fatal("stepped")
			}
			if got := d.Remaining(raw); math.Abs(got-tc.offset) > 1e-12 {
				t.Errorf("Remaining at start %g, want %g", got, tc.offset)
			}
			end := d.NextWakeup()
			if !end.After(raw) {
				t.Fatalf("NextWakeup %v not after %v", end, raw)
			}
			maxSlew := tc.maxSlew
			if maxSlew == 0 {
				maxSlew = 500
			}
			rate := math.Abs(sim.CorrectionPPM() - tc.basePPM)
			if rate > maxSlew*(1+1e-9) {
				t.Errorf("slewing at %g ppm, above the %g ppm limit", rate, maxSlew)
			}
			// The duration follows from the rate, to within rounding.
			if want := math.Abs(tc.offset) / (rate * 1e-6); math.Abs(end.Sub(raw).Seconds()-want) > 1e-3*want+1e-6 {
				t.Errorf("slew lasts %v, want %gs at %g ppm", end.Sub(raw), want, rate)
			}
			// Halfway, about half is left.
			advanceLocal(sim, raw.Add(end.Sub(raw)/2))
			if got := d.Remaining(sim.Now()); math.Abs(got-tc.offset/2) > 0.01*math.Abs(tc.offset)+1e-9 {
				t.Errorf("halfway: remaining %g, want about %g", got, tc.offset/2)
			}
			if err := d.Wakeup(sim.Now()); err != nil || d.NextWakeup() != end {
				t.Errorf("early Wakeup ended the slew (err %v)", err)
			}
			advanceLocal(sim, end)
			if err := d.Wakeup(sim.Now()); err != nil {
				t.Fatal(err)
			}
			moved := sim.ErrorSeconds() - err0
			if math.Abs(moved-tc.offset) > 0.01*math.Abs(tc.offset) {
				t.Errorf("clock error moved by %g s, want %g s within 1%%", moved, tc.offset)
			}
			if !d.NextWakeup().IsZero() {
				t.Error("NextWakeup still set after the slew ended")
			}
			if sim.CorrectionPPM() != tc.basePPM {
				t.Errorf("clock frequency %g after the slew, want the base %g", sim.CorrectionPPM(), tc.basePPM)
			}
			if r := d.Remaining(sim.Now()); math.Abs(r) > 0.01*math.Abs(tc.offset) {
				t.Errorf("remaining %g after the slew", r)
			}
		})
	}
}

// TestCook: Cook is the reading plus what is still to be slewed, which
// decreases linearly from the offset to zero over the slew.
func TestCook(t *testing.T) {
	sim := newSim(clock.SimConfig{})
	d := newDisc(t, Config{StepThreshold: time.Second}, sim)
	raw := sim.Now()
	if !d.Cook(raw).Equal(raw) || d.Remaining(raw) != 0 {
		t.Fatalf("before any update Cook(%v) = %v", raw, d.Cook(raw))
	}
	if _, err := d.Update(raw, Estimate{Offset: -0.02, OffsetSD: 1e-4, FreqSD: math.Inf(1), Interval: 16 * time.Second}); err != nil {
		t.Fatal(err)
	}
	end := d.NextWakeup()
	dur := end.Sub(raw)
	for _, frac := range []float64{0, 0.1, 0.25, 0.5, 0.9, 1} {
		r := raw.Add(time.Duration(frac * float64(dur)))
		rem := d.Remaining(r)
		if want := -0.02 * (1 - frac); math.Abs(rem-want) > 1e-9 {
			t.Errorf("at %.0f%%: Remaining %g, want %g", frac*100, rem, want)
		}
		if got, want := d.Cook(r), r.Add(time.Duration(rem*1e9)); !got.Equal(want) {
			t.Errorf("at %.0f%%: Cook %v, want raw + Remaining = %v", frac*100, got, want)
		}
	}
	// A new update mid-slew takes over what is left.
	mid := raw.Add(dur / 2)
	if _, err := d.Update(mid, Estimate{Offset: 0.005, OffsetSD: 1e-4, FreqSD: math.Inf(1), Interval: 16 * time.Second}); err != nil {
		t.Fatal(err)
	}
	if got := d.Remaining(mid); math.Abs(got-(-0.01+0.005)) > 1e-9 {
		t.Errorf("after a second update: Remaining %g, want %g", got, -0.005)
	}
}

// TestSlewWithinClockLimit: a slew never asks the clock for a frequency
// beyond its MaxFrequencyPPM, even when the clock allows no more than
// MaxFreqPPM.
func TestSlewWithinClockLimit(t *testing.T) {
	tests := []struct {
		name     string
		clockMax float64
		cfgMax   float64
		initial  float64
	}{
		{"room-100", 600, 500, 450},
		{"no-room", 500, 500, 300},
		{"clock-below-max", 200, 500, 150},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			sim := newSim(clock.SimConfig{MaxFrequencyPPM: tc.clockMax})
			d := newDisc(t, Config{StepThreshold: time.Second, MaxFreqPPM: tc.cfgMax, InitialFreqPPM: tc.initial}, sim)
			if _, err := d.Update(sim.Now(), Estimate{Offset: 0.5, OffsetSD: 1e-4, FreqSD: math.Inf(1), Interval: 16 * time.Second}); err != nil {
				t.Fatalf("slewing 0.5 s at base %g ppm on a clock limited to %g ppm: %v", tc.initial, tc.clockMax, err)
			}
			if f := sim.CorrectionPPM(); math.Abs(f) > tc.clockMax {
				t.Errorf("clock set to %g ppm", f)
			}
			if d.NextWakeup().IsZero() {
				t.Error("no slew")
			}
		})
	}
}

// TestClockJumped: a slew in progress keeps its place when the clock is
// moved behind the loop's back.
func TestClockJumped(t *testing.T) {
	sim := newSim(clock.SimConfig{})
	d := newDisc(t, Config{StepThreshold: time.Second}, sim)
	raw := sim.Now()
	if _, err := d.Update(raw, Estimate{Offset: 0.01, OffsetSD: 1e-4, FreqSD: math.Inf(1), Interval: 16 * time.Second}); err != nil {
		t.Fatal(err)
	}
	end := d.NextWakeup()
	mid := raw.Add(end.Sub(raw) / 3)
	before := d.Remaining(mid)
	d.ClockJumped(time.Hour)
	if got := d.NextWakeup(); !got.Equal(end.Add(time.Hour)) {
		t.Errorf("NextWakeup %v, want %v", got, end.Add(time.Hour))
	}
	if got := d.Remaining(mid.Add(time.Hour)); math.Abs(got-before) > 1e-12 {
		t.Errorf("Remaining after the jump %g, want %g", got, before)
	}
}

// TestLeapArm: a leap second is handed to the clock only on the last UTC
// day of a month.
func TestLeapArm(t *testing.T) {
	cest := time.FixedZone("CEST", 2*3600)
	tests := []struct {
		name string
		leap sample.Leap
		now  time.Time
		want sample.Leap
	}{
		{"jun30", sample.LeapInsert, time.Date(2026, 6, 30, 12, 0, 0, 0, time.UTC), sample.LeapInsert},
		{"jun30-last-second", sample.LeapInsert, time.Date(2026, 6, 30, 23, 59, 59, 999999999, time.UTC), sample.LeapInsert},
		{"jun29", sample.LeapInsert, time.Date(2026, 6, 29, 12, 0, 0, 0, time.UTC), sample.LeapNone},
		{"jun29-late", sample.LeapInsert, time.Date(2026, 6, 29, 23, 59, 59, 0, time.UTC), sample.LeapNone},
		{"jul1", sample.LeapInsert, time.Date(2026, 7, 1, 0, 0, 0, 0, time.UTC), sample.LeapNone},
		{"dec31", sample.LeapInsert, time.Date(2026, 12, 31, 0, 0, 0, 0, time.UTC), sample.LeapInsert},
		{"dec31-delete", sample.LeapDelete, time.Date(2026, 12, 31, 8, 0, 0, 0, time.UTC), sample.LeapDelete},
		{"feb28-common-year", sample.LeapInsert, time.Date(2027, 2, 28, 1, 0, 0, 0, time.UTC), sample.LeapInsert},
		{"feb28-leap-year", sample.LeapInsert, time.Date(2028, 2, 28, 1, 0, 0, 0, time.UTC), sample.LeapNone},
		{"feb29-leap-year", sample.LeapInsert, time.Date(2028, 2, 29, 1, 0, 0, 0, time.UTC), sample.LeapInsert},
		{"apr30", sample.LeapDelete, time.Date(2026, 4, 30, 1, 0, 0, 0, time.UTC), sample.LeapDelete},
		{"mid-month", sample.LeapInsert, time.Date(2026, 6, 15, 1, 0, 0, 0, time.UTC), sample.LeapNone},
		{"none", sample.LeapNone, time.Date(2026, 6, 30, 12, 0, 0, 0, time.UTC), sample.LeapNone},
		{"unsync", sample.LeapUnsync, time.Date(2026, 6, 30, 12, 0, 0, 0, time.UTC), sample.LeapNone},
		// Local Jul 1 01:00 CEST is Jun 30 23:00 UTC: the UTC day counts.
		{"zone-jul1-local", sample.LeapInsert, time.Date(2026, 7, 1, 1, 0, 0, 0, cest), sample.LeapInsert},
		// Local Jun 30 01:00 CEST is Jun 29 23:00 UTC.
		{"zone-jun30-local", sample.LeapInsert, time.Date(2026, 6, 30, 1, 0, 0, 0, cest), sample.LeapNone},
	}
	for _, tc := range tests {
		if got := LeapArm(tc.leap, tc.now); got != tc.want {
			t.Errorf("%s: LeapArm(%v, %v) = %v, want %v", tc.name, tc.leap, tc.now, got, tc.want)
		}
	}
}

// TestSetStatus reaches the clock.
func TestSetStatus(t *testing.T) {
	sim := newSim(clock.SimConfig{})
	d := newDisc(t, Config{}, sim)
	st := clock.Status{Synchronized: true, Leap: sample.LeapInsert, MaxError: time.Millisecond, EstError: time.Microsecond}
	if err := d.SetStatus(st); err != nil {
		t.Fatal(err)
	}
	if sim.Status() != st {
		t.Errorf("clock status %+v, want %+v", sim.Status(), st)
	}
}

// TestIntegralTermKeepsCookExact: with the integral term on, the rate it
// adds is counted in Cook, so engine time stays on true time while the
// term moves the clock, and exact offsets drive the clock's own error to
// zero.
func TestIntegralTermKeepsCookExact(t *testing.T) {
	sim := newSim(clock.SimConfig{Offset: -50 * time.Microsecond, FreqPPM: 7.05})
	d := newDisc(t, Config{StepThreshold: time.Second, InitialFreqPPM: -7, IntegralGain: 4}, sim)
	cookedErr := func() float64 { return d.Cook(sim.Now()).Sub(sim.TrueNow()).Seconds() }
	tau := 16 * time.Second
	sawInt := false
	for i := 0; i < 200; i++ {
		e := Estimate{Offset: -cookedErr(), OffsetSD: 1e-6, FreqPPM: 0, FreqSD: 0.01, Interval: tau}
		if i > 0 {
			e.Since = tau
		} else {
			// a first estimate that makes the frequency known
			e.FreqPPM, e.FreqSD = 0.001, 1e-5
		}
		if _, err := d.Update(sim.Now(), e); err != nil {
			t.Fatal(err)
		}
		// (an offset within its uncertainty may be left to the slew in
		// progress, and then stays in engine time)
		if c := cookedErr(); math.Abs(c) > 1e-6+2e-9 {
			t.Fatalf("update %d: engine time off by %g s right after the update", i, c)
		}
		sawInt = sawInt || d.intPPM != 0
		next := sim.Now().Add(tau)
		if w := d.NextWakeup(); !w.IsZero() && w.Before(next) {
			advanceLocal(sim, w)
			if err := d.Wakeup(sim.Now()); err != nil {
				t.Fatal(err)
			}
		}
		advanceLocal(sim, next)
	}
	if !sawInt {
		t.Fatal("the integral term never moved")
	}
	// The base frequency leaves 0.05 ppm that only the integral term can
	// take out (the estimates say nothing of it): it must have learned it.
	if got := d.intPPM; math.Abs(got-(-0.05)) > 0.01 {
		t.Errorf("integral term %.4f ppm, want about -0.05", got)
	}
	if e := sim.ErrorSeconds(); math.Abs(e) > 1e-6 {
		t.Errorf("clock error %g s after 200 updates, want under 1 µs", e)
	}
}

// TestSlewFilterDuration: under the default rule a correction takes
// OffsetSD/FreqSD, within one and four poll intervals (and 300 s), less
// for an offset clearly above its uncertainty; until the frequency is
// known it is slewed at no more than 100 ppm.
func TestSlewFilterDuration(t *testing.T) {
	tau := 16 * time.Second
	known := func(t *testing.T) (*clock.Sim, *Discipline) {
		sim := newSim(clock.SimConfig{})
		d := newDisc(t, Config{StepThreshold: time.Second}, sim)
		if _, err := d.Update(sim.Now(), Estimate{FreqPPM: 0.01, FreqSD: 1e-3, Interval: tau}); err != nil {
			t.Fatal(err)
		}
		if !d.FrequencyKnown() {
			t.Fatal("frequency not known after a precise estimate")
		}
		return sim, d
	}
	for _, c := range []struct {
		name            string
		off, offSD, fSD float64
		want            time.Duration
	}{
		{"OffsetSD/FreqSD", 0.3e-6, 0.5e-6, 0.01, 50 * time.Second},
		{"at most 4 poll intervals", 0.3e-6, 5e-6, 0.01, 4 * tau},
		{"at least one poll interval", 0.3e-6, 0.05e-6, 0.01, tau},
		{"a clear offset faster", 2e-6, 1e-6, 0.01, 32 * time.Second},
	} {
		t.Run(c.name, func(t *testing.T) {
			sim, d := known(t)
			now := sim.Now()
			if _, err := d.Update(now, Estimate{Offset: c.off, OffsetSD: c.offSD, FreqSD: c.fSD, Interval: tau, Since: tau}); err != nil {
				t.Fatal(err)
			}
			if got := d.NextWakeup().Sub(now); (got - c.want).Abs() > 10*time.Millisecond {
				t.Errorf("slew takes %v, want %v", got, c.want)
			}
		})
	}
	t.Run("at most 300 s", func(t *testing.T) {
		sim, d := known(t)
		now := sim.Now()
		if _, err := d.Update(now, Estimate{Offset: 0.3e-6, OffsetSD: 50e-6, FreqSD: 0.01, Interval: 256 * time.Second, Since: tau}); err != nil {
			t.Fatal(err)
		}
		if got := d.NextWakeup().Sub(now); (got - 300*time.Second).Abs() > 10*time.Millisecond {
			t.Errorf("slew takes %v, want 300 s", got)
		}
	})
	t.Run("start", func(t *testing.T) {
		sim := newSim(clock.SimConfig{})
		d := newDisc(t, Config{StepThreshold: time.Second}, sim)
		now := sim.Now()
		if _, err := d.Update(now, Estimate{Offset: 0.05, OffsetSD: 1e-4, FreqSD: math.Inf(1), Interval: tau}); err != nil {
			t.Fatal(err)
		}
		if got := d.NextWakeup().Sub(now); got < 499*time.Second {
			t.Errorf("50 ms slewed in %v before the frequency is known: faster than 100 ppm", got)
		}
	})
}

// freqUpdater is a discipline on a simulated clock and a function that
// gives it a frequency estimate (f ± sd ppm) 16 s after the last.
func freqUpdater(t *testing.T) (func(f, sd float64), *Discipline) {
	sim := newSim(clock.SimConfig{})
	d := newDisc(t, Config{}, sim)
	return func(f, sd float64) {
		t.Helper()
		sim.AdvanceTo(sim.TrueNow().Add(16 * time.Second))
		if _, err := d.Update(sim.Now(), Estimate{FreqPPM: f, FreqSD: sd, Interval: 16 * time.Second}); err != nil {
			t.Fatal(err)
		}
	}, d
}
