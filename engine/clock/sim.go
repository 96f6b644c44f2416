package clock

import (
	"math"
	"math/rand/v2"
	"time"

	"gnomon.dev/gnomon/engine/sample"
)

// SimConfig describes a simulated oscillator.
type SimConfig struct {
	// Start is the true time at which the simulation begins.
	Start time.Time
	// Offset is the clock's initial error (local minus true).
	Offset time.Duration
	// FreqPPM is the oscillator's natural frequency error: positive runs fast.
	FreqPPM float64
	// WanderPPMPerSqrtS is the random-walk frequency noise: the standard
	// deviation of the frequency change over one second, in ppm.
	WanderPPMPerSqrtS float64
	// ReadNoise is the standard deviation of each reading's error.
	ReadNoise time.Duration
	// MaxFrequencyPPM bounds SetFrequency (default 100000, the kernel's
	// tick range).
	MaxFrequencyPPM float64
	// Seed makes the noise reproducible.
	Seed uint64
}

// Sim is a simulated clock driven by a simulator that owns true time. The
// simulator moves true time forward with AdvanceTo; between calls the
// clock runs at its natural frequency plus wander plus the correction the
// engine set, and it inserts or deletes a leap second at UTC midnight of its
// own reading when one is armed, as the Linux kernel does.
type Sim struct {
	cfg     SimConfig
	rng     *rand.Rand
	trueNow time.Time
	errSec  float64 // local minus true, seconds
	wander  float64 // ppm
	corr    float64 // ppm, set by SetFrequency
	status  Status

	steps     int
	lastStep  time.Duration
	leapAt    []time.Time // true times at which leap seconds were applied
	freqCalls int
	jumps     int
}

const simSubstep = time.Second

// NewSim returns a simulated clock at cfg.Start.
func NewSim(cfg SimConfig) *Sim {
	if cfg.MaxFrequencyPPM == 0 {
		cfg.MaxFrequencyPPM = 100000
	}
	return &Sim{
		cfg:     cfg,
		rng:     rand.New(rand.NewPCG(cfg.Seed, 0x9e3779b97f4a7c15)),
		trueNow: cfg.Start,
		errSec:  cfg.Offset.Seconds(),
	}
}

// AdvanceTo moves true time forward to t (never backward).
func (s *Sim) AdvanceTo(t time.Time) {
	for s.trueNow.Before(t) {
		dt := t.Sub(s.trueNow)
		if dt > simSubstep {
			dt = simSubstep
		}
		s.advance(dt)
	}
}

func (s *Sim) advance(dt time.Duration) {
	sec := dt.Seconds()
	before := s.localUnrounded()
	rate := (s.cfg.FreqPPM + s.wander + s.corr) * 1e-6
	s.errSec += rate * sec
	if s.cfg.WanderPPMPerSqrtS > 0 {
		s.wander += s.cfg.WanderPPMPerSqrtS * math.Sqrt(sec) * s.rng.NormFloat64()
	}
	start := s.trueNow
	s.trueNow = s.trueNow.Add(dt)
	s.applyLeap(before, s.localUnrounded(), start, rate)
}

// applyLeap mimics the kernel: with STA_INS armed, when the clock passes
// 00:00:00 UTC it is set back one second (23:59:60 is shown as a repeated
// 23:59:59); with STA_DEL, 23:59:59 is skipped.
func (s *Sim) applyLeap(before, after, trueStart time.Time, rate float64) {
	var at time.Time // the local reading at which the kernel acts
	var step float64
	switch s.status.Leap {
	case sample.LeapInsert:
		at, step = nextMidnight(before), -1
	case sample.LeapDelete:
		at, step = nextMidnight(before).Add(-time.Second), 1
	default:
		return
	}
	if after.Before(at) {
		return
	}
	s.errSec += step
	// The true moment the clock read at: interpolate within the substep.
	d := at.Sub(before).Seconds() / (1 + rate)
	s.leapAt = append(s.leapAt, trueStart.Add(time.Duration(d*1e9)))
	s.status.Leap = sample.LeapNone
}

func nextMidnight(t time.Time) time.Time {
	y, m, d := t.UTC().Date()
	return time.Date(y, m, d+1, 0, 0, 0, 0, time.UTC)
}

func (s *Sim) localUnrounded() time.Time {
	return s.trueNow.Add(time.Duration(s.errSec * 1e9))
}

// Now reads the clock, with read noise.
func (s *Sim) Now() time.Time {
	t := s.localUnrounded()
	if s.cfg.ReadNoise > 0 {
		t = t.Add(time.Duration(float64(s.cfg.ReadNoise) * s.rng.NormFloat64()))
	}
	return t
}

func (s *Sim) SetFrequency(freqPPM float64) error {
	if math.IsNaN(freqPPM) || math.Abs(freqPPM) > s.cfg.MaxFrequencyPPM {
		return ErrFrequencyRange
	}
	s.corr = freqPPM
	s.freqCalls++
	return nil
}

func (s *Sim) Step(offset time.Duration) error {
	s.errSec += offset.Seconds()
	s.steps++
	s.lastStep = offset
	return nil
}

func (s *Sim) SetStatus(st Status) error { s.status = st; return nil }

func (s *Sim) MaxFrequencyPPM() float64 { return s.cfg.MaxFrequencyPPM }

// Jump moves the clock by d without the engine's knowledge, as a resume
// from suspend with a wrong RTC, or another program setting the time, would.
func (s *Sim) Jump(d time.Duration) { s.errSec += d.Seconds(); s.jumps++ }

// Jumps is how many times Jump was called.
func (s *Sim) Jumps() int { return s.jumps }

// Introspection for the simulator's judgement; the engine never sees these.

// TrueNow is the simulator's true time.
func (s *Sim) TrueNow() time.Time { return s.trueNow }

// Error is the clock's current error, local minus true, without read noise.
func (s *Sim) Error() time.Duration { return time.Duration(s.errSec * 1e9) }

// ErrorSeconds is Error as float64 seconds (no rounding).
func (s *Sim) ErrorSeconds() float64 { return s.errSec }

// FrequencyErrorPPM is how fast the disciplined clock is gaining on true
// time: natural error plus wander plus the engine's correction, without
// any slew in progress being separable from it.
func (s *Sim) FrequencyErrorPPM() float64 { return s.cfg.FreqPPM + s.wander + s.corr }

// CorrectionPPM is the frequency the engine last set.
func (s *Sim) CorrectionPPM() float64 { return s.corr }

// OscillatorPPM is the uncorrected oscillator error (natural plus wander).
func (s *Sim) OscillatorPPM() float64 { return s.cfg.FreqPPM + s.wander }

// Steps is how many times Step was called, and the last step.
func (s *Sim) Steps() (int, time.Duration) { return s.steps, s.lastStep }

// LeapTimes lists the true times at which a leap second was applied.
func (s *Sim) LeapTimes() []time.Time { return s.leapAt }

// Status is what SetStatus last set (the kernel clears the leap after
// applying it).
func (s *Sim) Status() Status { return s.status }
