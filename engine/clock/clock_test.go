package clock

import (
	"errors"
	"math"
	"testing"
	"time"

	"gnomon.dev/gnomon/engine/sample"
)

var start = time.Date(2026, 1, 10, 8, 0, 0, 0, time.UTC)

// manual is a base clock that reads whatever it is set to.
type manual struct{ t time.Time }

func (m *manual) Now() time.Time { return m.t }

// TestVirtualMap drives a Virtual through steps and frequency changes and
// checks Map against an independent piecewise-linear model of the
// correction.
func TestVirtualMap(t *testing.T) {
	type op struct {
		at   time.Duration // base time since start at which to act
		step time.Duration // Step(step) if non-zero
		freq float64       // else SetFrequency(freq)
	}
	tests := []struct {
		name string
		ops  []op
	}{
		{"step-only", []op{{10 * time.Second, time.Second, 0}}},
		{"freq-only", []op{{0, 0, 100}}},
		{"freq-then-step", []op{{10 * time.Second, 0, 100}, {110 * time.Second, -250 * time.Millisecond, 0}}},
		{"freq-changes", []op{{0, 0, 500}, {1000 * time.Second, 0, -50}, {3000 * time.Second, 0, 0}}},
		{"step-freq-step", []op{{0, 2 * time.Second, 0}, {5 * time.Second, 0, -1000}, {65 * time.Second, 0, 1000}, {125 * time.Second, -time.Millisecond, 0}}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			base := &manual{start}
			v := NewVirtual(base)
			// Model: the correction is corr0 at base time ref and grows at
			// freq ppm from there.
			var corr0 float64 // s
			var ref time.Time = start
			var freq float64
			model := func(raw time.Time) float64 { return corr0 + freq*1e-6*raw.Sub(ref).Seconds() }
			check := func(raw time.Time) {
				t.Helper()
				want := model(raw)
				got := v.Map(raw).Sub(raw).Seconds()
				if math.Abs(got-want) > 2e-9 {
					t.Errorf("Map(start+%v) = raw%+.9fs, want %+.9fs", raw.Sub(start), got, want)
				}
				if c := v.Correction(raw).Seconds(); c != got {
					t.Errorf("Correction %g != Map - raw %g", c, got)
				}
				if m := v.Mapping(); !m.Map(raw).Equal(v.Map(raw)) {
					t.Errorf("Mapping().Map %v != Map %v", m.Map(raw), v.Map(raw))
				}
			}
			for _, o := range tc.ops {
				base.t = start.Add(o.at)
				// A Mapping is a copy: what was published before the
				// change keeps mapping as it did.
				prev, probe := v.Mapping(), start.Add(o.at+time.Hour)
				prevWant := v.Map(probe)
				defer func() {
					if got := prev.Map(probe); !got.Equal(prevWant) {
						t.Errorf("a Mapping taken before the change at %v moved: %v, want %v", o.at, got, prevWant)
					}
				}()
				if o.step != 0 {
					corr0 += o.step.Seconds()
					if err := v.Step(o.step); err != nil {
						t.Fatal(err)
					}
				} else {
					corr0, ref, freq = model(base.t), base.t, o.freq
					if err := v.SetFrequency(o.freq); err != nil {
						t.Fatal(err)
					}
					if v.FrequencyPPM() != o.freq {
						t.Errorf("FrequencyPPM %g, want %g", v.FrequencyPPM(), o.freq)
					}
				}
				check(base.t)
				check(base.t.Add(time.Hour))
				check(base.t.Add(-time.Minute))
				if got, want := v.Now(), v.Map(base.t); !got.Equal(want) {
					t.Errorf("Now %v != Map(base) %v", got, want)
				}
			}
		})
	}
}

// TestFrequencyRange: SetFrequency beyond MaxFrequencyPPM (or NaN) fails
// with ErrFrequencyRange and leaves the clock's frequency alone.
func TestFrequencyRange(t *testing.T) {
	tests := []struct {
		name string
		max  float64 // Sim's configured maximum (0: default)
		freq float64
		ok   bool
	}{
		{"default-max", 0, 100000, true},
		{"default-above", 0, 100000.5, false},
		{"default-below", 0, -100001, false},
		{"custom-at", 500, -500, true},
		{"custom-above", 500, 500.001, false},
		{"nan", 0, math.NaN(), false},
		{"inf", 0, math.Inf(1), false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			sim := NewSim(SimConfig{Start: start, MaxFrequencyPPM: tc.max})
			if err := sim.SetFrequency(3); err != nil {
				t.Fatal(err)
			}
			err := sim.SetFrequency(tc.freq)
			if tc.ok {
				if err != nil || sim.CorrectionPPM() != tc.freq {
					t.Errorf("Sim.SetFrequency(%g) = %v, correction %g", tc.freq, err, sim.CorrectionPPM())
				}
			} else {
				if !errors.Is(err, ErrFrequencyRange) {
					t.Errorf("Sim.SetFrequency(%g) = %v, want ErrFrequencyRange", tc.freq, err)
				}
				if sim.CorrectionPPM() != 3 {
					t.Errorf("Sim correction %g after a refused change, want 3", sim.CorrectionPPM())
				}
			}
			want := tc.max
			if want == 0 {
				want = 100000
			}
			if sim.MaxFrequencyPPM() != want {
				t.Errorf("Sim MaxFrequencyPPM %g, want %g", sim.MaxFrequencyPPM(), want)
			}

			if tc.max != 0 {
				return // Virtual has the fixed default maximum
			}
			base := &manual{start}
			v := NewVirtual(base)
			_ = v.SetFrequency(3)
			err = v.SetFrequency(tc.freq)
			if tc.ok != (err == nil) || (!tc.ok && !errors.Is(err, ErrFrequencyRange)) {
				t.Errorf("Virtual.SetFrequency(%g) = %v", tc.freq, err)
			}
			if !tc.ok && v.FrequencyPPM() != 3 {
				t.Errorf("Virtual frequency %g after a refused change", v.FrequencyPPM())
			}
			if v.MaxFrequencyPPM() != 100000 {
				t.Errorf("Virtual MaxFrequencyPPM %g", v.MaxFrequencyPPM())
			}
		})
	}
}

// TestSimFrequencyIntegrates: with no wander the error grows exactly at
// the natural frequency plus the correction, over whole and fractional
// seconds.
func TestSimFrequencyIntegrates(t *testing.T) {
	tests := []struct {
		name    string
		offset  time.Duration
		freqPPM float64
		corrPPM float64
		advance []time.Duration // successive AdvanceTo steps
	}{
		{"fast", 100 * time.Millisecond, 25, 0, []time.Duration{1000 * time.Second}},
		{"slow-fractional", -2 * time.Second, -17.5, 0, []time.Duration{1500 * time.Millisecond, 250 * time.Millisecond, 33 * time.Second}},
		{"corrected", 0, 30, -30, []time.Duration{time.Hour}},
		{"over-corrected", 0, 30, 70, []time.Duration{10 * time.Minute, 3 * time.Microsecond}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			sim := NewSim(SimConfig{Start: start, Offset: tc.offset, FreqPPM: tc.freqPPM, Seed: 1})
			if err := sim.SetFrequency(tc.corrPPM); err != nil {
				t.Fatal(err)
			}
			now := start
			for _, d := range tc.advance {
				now = now.Add(d)
				sim.AdvanceTo(now)
				el := now.Sub(start).Seconds()
				want := tc.offset.Seconds() + (tc.freqPPM+tc.corrPPM)*1e-6*el
				if got := sim.ErrorSeconds(); math.Abs(got-want) > 1e-12 {
					t.Errorf("after %gs: error %.12f, want %.12f", el, got, want)
				}
				if !sim.TrueNow().Equal(now) {
					t.Errorf("TrueNow %v, want %v", sim.TrueNow(), now)
				}
				// Without read noise Now is true time plus the error.
				if got, want := sim.Now(), now.Add(sim.Error()); !got.Equal(want) {
					t.Errorf("Now %v, want %v", got, want)
				}
			}
			if got := sim.FrequencyErrorPPM(); got != tc.freqPPM+tc.corrPPM {
				t.Errorf("FrequencyErrorPPM %g", got)
			}
			if sim.OscillatorPPM() != tc.freqPPM {
				t.Errorf("OscillatorPPM %g", sim.OscillatorPPM())
			}
			// AdvanceTo never goes back.
			sim.AdvanceTo(start)
			if !sim.TrueNow().Equal(now) {
				t.Errorf("AdvanceTo the past moved TrueNow to %v", sim.TrueNow())
			}
		})
	}
}

// TestSimStepAndJump: Step and Jump move the reading; only Step counts.
func TestSimStepAndJump(t *testing.T) {
	sim := NewSim(SimConfig{Start: start})
	if err := sim.Step(1500 * time.Millisecond); err != nil {
		t.Fatal(err)
	}
	if err := sim.Step(-250 * time.Millisecond); err != nil {
		t.Fatal(err)
	}
	sim.Jump(10 * time.Second)
	if n, last := sim.Steps(); n != 2 || last != -250*time.Millisecond {
		t.Errorf("Steps = %d, %v", n, last)
	}
	if got := sim.Error(); got != 11250*time.Millisecond {
		t.Errorf("Error %v, want 11.25s", got)
	}
	if got := sim.Now(); !got.Equal(start.Add(11250 * time.Millisecond)) {
		t.Errorf("Now %v", got)
	}
}

// TestSimLeap: with a leap armed, the clock inserts (steps back) or
// deletes (steps forward) a second at its own UTC midnight, records the
// true time, and clears the leap; without one nothing happens.
func TestSimLeap(t *testing.T) {
	tests := []struct {
		name     string
		offset   time.Duration // local minus true
		leap     sample.Leap
		wantJump float64 // s, change of the error
		// wantAt is the true time of the leap, relative to true midnight.
		wantAt time.Duration
	}{
		{"insert", 0, sample.LeapInsert, -1, 0},
		{"insert-clock-ahead", 10 * time.Second, sample.LeapInsert, -1, -10 * time.Second},
		{"insert-clock-behind", -3 * time.Second, sample.LeapInsert, -1, 3 * time.Second},
		{"delete", 0, sample.LeapDelete, +1, -time.Second},
		{"delete-clock-ahead", 5 * time.Second, sample.LeapDelete, +1, -6 * time.Second},
		{"none", 0, sample.LeapNone, 0, 0},
	}
	midnight := time.Date(2026, 7, 1, 0, 0, 0, 0, time.UTC)
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			sim := NewSim(SimConfig{Start: midnight.Add(-time.Minute), Offset: tc.offset})
			if err := sim.SetStatus(Status{Synchronized: true, Leap: tc.leap}); err != nil {
				t.Fatal(err)
			}
			// Just before the leap: nothing yet.
			if tc.wantJump != 0 {
				sim.AdvanceTo(midnight.Add(tc.wantAt - time.Second))
				if len(sim.LeapTimes()) != 0 || sim.Error() != tc.offset {
					t.Fatalf("leap too early: %v, error %v", sim.LeapTimes(), sim.Error())
				}
			}
			sim.AdvanceTo(midnight.Add(time.Minute))
			if got := sim.ErrorSeconds() - tc.offset.Seconds(); got != tc.wantJump {
				t.Errorf("error changed by %g s, want %g", got, tc.wantJump)
			}
			if tc.wantJump == 0 {
				if len(sim.LeapTimes()) != 0 {
					t.Errorf("LeapTimes %v without a leap", sim.LeapTimes())
				}
				return
			}
			lt := sim.LeapTimes()
			if len(lt) != 1 || !lt[0].Equal(midnight.Add(tc.wantAt)) {
				t.Errorf("LeapTimes %v, want [%v]", lt, midnight.Add(tc.wantAt))
			}
			if sim.Status().Leap != sample.LeapNone || !sim.Status().Synchronized {
				t.Errorf("status after the leap %+v: leap must be cleared, the rest kept", sim.Status())
			}
			// Once only: another midnight passes without a leap.
			sim.AdvanceTo(midnight.Add(25 * time.Hour))
			if len(sim.LeapTimes()) != 1 {
				t.Errorf("leap applied again: %v", sim.LeapTimes())
			}
		})
	}
}

// TestSimLeapInstant: the leap is recorded at the true moment the clock
// read midnight (23:59:59 for a deletion), also when that falls inside a
// simulation substep and the clock runs fast or slow.
func TestSimLeapInstant(t *testing.T) {
	midnight := time.Date(2026, 12, 31, 0, 0, 0, 0, time.UTC).AddDate(0, 0, 1)
	tests := []struct {
		name    string
		offset  time.Duration
		freqPPM float64
		leap    sample.Leap
	}{
		{"half-second-ahead", 500 * time.Millisecond, 0, sample.LeapInsert},
		{"odd-behind", -1234567 * time.Nanosecond, 0, sample.LeapInsert},
		{"fast-100ppm", 0, 100, sample.LeapInsert},
		{"slow-delete", 250 * time.Millisecond, -300, sample.LeapDelete},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			begin := midnight.Add(-100 * time.Second)
			sim := NewSim(SimConfig{Start: begin, Offset: tc.offset, FreqPPM: tc.freqPPM})
			_ = sim.SetStatus(Status{Leap: tc.leap})
			target := midnight // the local reading at which the clock acts
			if tc.leap == sample.LeapDelete {
				target = midnight.Add(-time.Second)
			}
			// local(T) = T + offset + f·(T − begin) = target
			f := tc.freqPPM * 1e-6
			want := begin.Add(time.Duration((target.Sub(begin).Seconds() - tc.offset.Seconds()) / (1 + f) * 1e9))
			for sim.TrueNow().Before(midnight.Add(10 * time.Second)) {
				sim.AdvanceTo(sim.TrueNow().Add(700 * time.Millisecond))
			}
			lt := sim.LeapTimes()
			if len(lt) != 1 {
				t.Fatalf("LeapTimes %v", lt)
			}
			if d := lt[0].Sub(want); d < -time.Microsecond || d > time.Microsecond {
				t.Errorf("leap at true %v, want %v (off by %v)", lt[0].Format("15:04:05.000000000"), want.Format("15:04:05.000000000"), d)
			}
		})
	}
}

// TestSimLeapReading: around an inserted leap second the clock reads
// 23:59:59 twice, as the kernel shows 23:59:60.
func TestSimLeapReading(t *testing.T) {
	midnight := time.Date(2026, 12, 31, 0, 0, 0, 0, time.UTC).AddDate(0, 0, 1)
	sim := NewSim(SimConfig{Start: midnight.Add(-2 * time.Second)})
	_ = sim.SetStatus(Status{Leap: sample.LeapInsert})
	var readings []string
	for i := 0; i <= 3; i++ {
		sim.AdvanceTo(midnight.Add(time.Duration(i-2) * time.Second))
		readings = append(readings, sim.Now().Format("15:04:05"))
	}
	want := []string{"23:59:58", "23:59:59", "23:59:59", "00:00:00"}
	for i := range want {
		if readings[i] != want[i] {
			t.Fatalf("readings %v, want %v", readings, want)
		}
	}
}

// TestSimReadNoise: readings scatter about the noiseless reading with the
// configured standard deviation and zero mean, reproducibly per seed.
func TestSimReadNoise(t *testing.T) {
	for _, noise := range []time.Duration{20 * time.Nanosecond, time.Microsecond, 5 * time.Millisecond} {
		sim := NewSim(SimConfig{Start: start, ReadNoise: noise, Seed: 42, Offset: time.Second})
		sim.AdvanceTo(start.Add(time.Minute))
		const n = 20000
		var sum, sum2 float64
		exact := sim.TrueNow().Add(sim.Error())
		for i := 0; i < n; i++ {
			e := float64(sim.Now().Sub(exact))
			sum += e
			sum2 += e * e
		}
		mean := sum / n
		sd := math.Sqrt(sum2/n - mean*mean)
		if math.Abs(mean) > 4*float64(noise)/math.Sqrt(n) {
			t.Errorf("noise %v: mean %g ns, want ~0", noise, mean)
		}
		if math.Abs(sd/float64(noise)-1) > 0.03 {
			t.Errorf("noise %v: SD %g ns, want %d", noise, sd, noise.Nanoseconds())
		}
	}
	read := func(seed uint64) [5]time.Time {
		sim := NewSim(SimConfig{Start: start, ReadNoise: time.Microsecond, Seed: seed})
		var r [5]time.Time
		for i := range r {
			r[i] = sim.Now()
		}
		return r
	}
	if a, b := read(1), read(1); a != b {
		t.Error("same seed, different readings")
	}
	if read(1) == read(2) {
		t.Error("different seeds, same readings")
	}
}

// TestSimWander: the random walk has the configured spread after a given
// time, over many seeds: SD of the frequency change after T seconds is
// wander·sqrt(T).
func TestSimWander(t *testing.T) {
	const q, T, seeds = 0.01, 400.0, 400
	var sum2 float64
	for seed := uint64(1); seed <= seeds; seed++ {
		sim := NewSim(SimConfig{Start: start, WanderPPMPerSqrtS: q, Seed: seed})
		sim.AdvanceTo(start.Add(T * time.Second))
		w := sim.OscillatorPPM()
		sum2 += w * w
	}
	sd := math.Sqrt(sum2 / seeds)
	if want := q * math.Sqrt(T); math.Abs(sd/want-1) > 0.15 {
		t.Errorf("wander SD after %gs: %g ppm, want %g", T, sd, want)
	}
}

// TestScale stretches durations by a frequency.
func TestScale(t *testing.T) {
	tests := []struct {
		d    time.Duration
		ppm  float64
		want time.Duration
	}{
		{time.Second, 100, time.Second + 100*time.Microsecond},
		{time.Second, -500, time.Second - 500*time.Microsecond},
		{time.Hour, 0, time.Hour},
		{-time.Second, 1000, -time.Second - time.Millisecond},
	}
	for _, tc := range tests {
		if got := Scale(tc.d, tc.ppm); got != tc.want {
			t.Errorf("Scale(%v, %g) = %v, want %v", tc.d, tc.ppm, got, tc.want)
		}
	}
}

// TestStatusRoundTrip: both clocks keep the status they are given.
func TestStatusRoundTrip(t *testing.T) {
	st := Status{Synchronized: true, Leap: sample.LeapDelete, MaxError: 3 * time.Millisecond, EstError: 40 * time.Microsecond}
	v := NewVirtual(&manual{start})
	sim := NewSim(SimConfig{Start: start})
	for _, c := range []interface {
		Clock
		Status() Status
	}{v, sim} {
		if err := c.SetStatus(st); err != nil {
			t.Fatal(err)
		}
		if c.Status() != st {
			t.Errorf("%T status %+v, want %+v", c, c.Status(), st)
		}
	}
}
