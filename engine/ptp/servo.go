package ptp

import (
	"math"
	"time"
)

// ServoState is the PI servo's state, as linuxptp names it (s0, s1, s2).
type ServoState uint8

// The servo states.
const (
	ServoUnlocked ServoState = iota // s0: gathering the first samples
	ServoJump                       // s1: the clock must be stepped
	ServoLocked                     // s2: tracking
)

func (s ServoState) String() string {
	return [...]string{"s0", "s1", "s2"}[s]
}

// ServoConfig configures the PI servo. The defaults are linuxptp's for
// software timestamping (pi_proportional_scale 0.1 and
// pi_integral_scale 0.001 with exponents -0.3 and 0.4, capped at 0.7/0.3
// per sync interval) when Software is set, and its hardware constants
// (0.7 and 0.3) otherwise.
type ServoConfig struct {
	// Kp and Ki, when non-zero, replace the computed constants.
	Kp, Ki float64
	// Software selects linuxptp's software-timestamping constants.
	Software bool
	// StepThreshold: a step is made whenever |offset| exceeds it (0:
	// never after the first update; linuxptp's step_threshold).
	StepThreshold time.Duration
	// FirstStepThreshold: the first update steps if |offset| exceeds it
	// (default 20 µs, linuxptp's first_step_threshold; negative: never).
	FirstStepThreshold time.Duration
	// MaxFreqPPB bounds the frequency (default 500000, linuxptp's
	// max_frequency clamped by the kernel's 500 ppm).
	MaxFreqPPB float64
}

// ServoOutput is what the servo asks of the clock after a sample: step
// it by Step (added to the clock: master minus local), then set its
// frequency to FreqPPB (an absolute adjustment, positive speeds up).
type ServoOutput struct {
	State   ServoState
	Step    time.Duration
	FreqPPB float64
}

// Servo is a PI controller with linuxptp's start-up: the first sample
// is remembered, the second (once far enough apart to measure it) gives
// the frequency error, and then the clock is stepped if the offset is
// above the first-step threshold; after that it is steered in frequency
// only, unless StepThreshold is set.
type Servo struct {
	cfg         ServoConfig
	kp, ki      float64
	count       int
	offset0     float64 // ns, local minus master
	local0      time.Time
	drift       float64 // ppb, the integral term (as linuxptp: the adjustment to apply)
	firstUpdate bool
	lastFreq    float64
	state       ServoState
}

// NewServo returns a servo for a source sampled every interval.
func NewServo(cfg ServoConfig, interval time.Duration) *Servo {
	if cfg.FirstStepThreshold == 0 {
		cfg.FirstStepThreshold = 20 * time.Microsecond
	}
	if cfg.MaxFreqPPB <= 0 {
		cfg.MaxFreqPPB = 500000
	}
	s := &Servo{cfg: cfg, firstUpdate: true}
	s.SetInterval(interval)
	return s
}

// SetInterval recomputes the constants for a new sync interval, as
// linuxptp does when the master's logSyncInterval changes.
func (s *Servo) SetInterval(interval time.Duration) {
	iv := interval.Seconds()
	if iv <= 0 {
		iv = 1
	}
	kpScale, kpExp, kpMax := 0.7, -0.3, 0.7
	kiScale, kiExp, kiMax := 0.3, 0.4, 0.3
	if s.cfg.Software {
		kpScale, kiScale = 0.1, 0.001
	}
	s.kp = math.Min(kpScale*math.Pow(iv, kpExp), kpMax/iv)
	s.ki = math.Min(kiScale*math.Pow(iv, kiExp), kiMax/iv)
	if s.cfg.Kp > 0 {
		s.kp = s.cfg.Kp
	}
	if s.cfg.Ki > 0 {
		s.ki = s.cfg.Ki
	}
}

// State is the servo's state after the last sample.
func (s *Servo) State() ServoState { return s.state }

// FreqPPB is the frequency the servo last asked for.
func (s *Servo) FreqPPB() float64 { return s.lastFreq }

// Reset forgets the samples (after a step made elsewhere, or when the
// master changes) but keeps the frequency.
func (s *Servo) Reset() {
	s.count = 0
	s.state = ServoUnlocked
	s.drift = -s.lastFreq
}

// Sample feeds one measurement: offset is master minus local (as
// sample.Sample's), at local time at.
func (s *Servo) Sample(offset time.Duration, at time.Time) ServoOutput {
	x := -float64(offset) // local minus master, ns, as linuxptp's servo sees it
	maxF := s.cfg.MaxFreqPPB
	out := ServoOutput{State: ServoUnlocked, FreqPPB: s.lastFreq}
	switch s.count {
	case 0:
		s.offset0, s.local0 = x, at
		s.count = 1
	case 1:
		dt := at.Sub(s.local0)
		if dt <= 0 {
			s.count = 0
			break
		}
		// Wait long enough to measure the frequency (0.016/ki seconds at
		// most 1000, as linuxptp), with a small margin.
		minDT := math.Min(0.016/s.ki, 1000)
		if dt.Seconds()*1.001 < minDT {
			break
		}
		s.drift += (1e9 - s.drift) * (x - s.offset0) / float64(dt)
		s.drift = math.Max(-maxF, math.Min(maxF, s.drift))
		if (s.firstUpdate && s.cfg.FirstStepThreshold > 0 && math.Abs(x) > float64(s.cfg.FirstStepThreshold)) ||
			(s.cfg.StepThreshold > 0 && math.Abs(x) > float64(s.cfg.StepThreshold)) {
			out.State = ServoJump
			out.Step = offset
		} else {
			out.State = ServoLocked
		}
		s.firstUpdate = false
		s.count = 2
		out.FreqPPB = -s.drift
	default:
		if s.cfg.StepThreshold > 0 && math.Abs(x) > float64(s.cfg.StepThreshold) {
			// Start over: the next two samples measure the frequency
			// again and the step is made then.
			s.count = 0
			break
		}
		ki := s.ki * x
		adj := s.kp*x + s.drift + ki
		switch {
		case adj < -maxF:
			adj = -maxF
		case adj > maxF:
			adj = maxF
		default:
			s.drift += ki
		}
		out.State = ServoLocked
		out.FreqPPB = -adj
	}
	s.lastFreq = out.FreqPPB
	s.state = out.State
	return out
}
