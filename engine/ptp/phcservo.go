package ptp

import (
	"math"
	"time"
)

// The other half of phc2sys: a PHC that follows the system clock
// (phc2sys -s CLOCK_REALTIME -c ethX), for a port that is master (or not
// yet anything) on a host whose system clock is disciplined by NTP. The
// service compares the PHC with the system clock (PTP_SYS_OFFSET*) and
// feeds the comparison here; the follower says how to steer the PHC.

// FollowConfig configures a Follower.
type FollowConfig struct {
	// Interval is how often the PHC is compared (default 1 s, phc2sys's
	// -R 1).
	Interval time.Duration
	// StepThreshold: after the first update, a difference above it is stepped out
	// at once (the system clock was stepped, or another program stepped
	// the PHC), keeping the frequency. 0 never steps after the first
	// update (phc2sys's default step_threshold); slewing then follows a
	// step at the PHC's largest frequency.
	StepThreshold time.Duration
	// FirstStepThreshold: the first update steps when the difference is
	// above it (default 20 µs, phc2sys's -F).
	FirstStepThreshold time.Duration
	// MaxFreqPPB bounds the PHC's frequency (default 500000).
	MaxFreqPPB float64
}

// DefaultFollowStepThreshold is the default StepThreshold of a PHC that
// follows the system clock: above what the servo's transient is when the
// system clock's frequency changes by the kernel's largest slew (500 ppm
// over a 1 s interval: 0.5 ms), so slews are followed by slewing and
// steps by stepping.
const DefaultFollowStepThreshold = time.Millisecond

// Follower is the sans-IO decision logic of a PHC following the system
// clock: linuxptp's PI servo with the hardware constants (kp 0.7,
// ki 0.3 at 1 Hz) and its first step, plus a step rule that keeps the
// frequency: a system clock stepped by NTP is followed by one PHC step,
// not by a new frequency estimate.
type Follower struct {
	cfg    FollowConfig
	servo  *Servo
	status FollowStatus
}

// FollowStatus is what views show of a following PHC.
type FollowStatus struct {
	// Active: the PHC follows the system clock now (the port is not a
	// slave, whose servo steers the PHC to the master instead).
	Active bool
	// Offset is the PHC minus the system clock at the last comparison,
	// Uncertainty that comparison's half width.
	Offset, Uncertainty time.Duration
	Servo               ServoState
	FreqPPB             float64
	Samples             uint64
	// Steps counts the PHC's steps (the first one included), LastStep
	// is the newest (added to the PHC).
	Steps    uint64
	LastStep time.Duration
	// Method is the ioctl the comparisons use (service's, for views).
	Method  string
	Updated time.Time
}

// FollowOutput is what the follower asks of the PHC after a comparison:
// step it by Step, then set its frequency to FreqPPB (absolute).
type FollowOutput struct {
	Step    time.Duration
	FreqPPB float64
	State   ServoState
}

// NewFollower makes a follower whose PHC runs at freqPPB now.
func NewFollower(cfg FollowConfig, freqPPB float64) *Follower {
	if cfg.Interval <= 0 {
		cfg.Interval = time.Second
	}
	if cfg.MaxFreqPPB <= 0 {
		cfg.MaxFreqPPB = 500000
	}
	f := &Follower{cfg: cfg, servo: NewServo(ServoConfig{FirstStepThreshold: cfg.FirstStepThreshold, MaxFreqPPB: cfg.MaxFreqPPB}, cfg.Interval)}
	f.Resume(freqPPB)
	return f
}

// Interval is how often Sample wants a comparison.
func (f *Follower) Interval() time.Duration { return f.cfg.Interval }

// Resume starts following again (after the port was a slave, whose servo
// steered the PHC): the samples are forgotten, the PHC's current
// frequency is the starting point.
func (f *Follower) Resume(freqPPB float64) {
	f.servo.lastFreq = freqPPB
	f.servo.Reset()
	f.status.Active = true
	f.status.Servo = ServoUnlocked
	f.status.FreqPPB = freqPPB
}

// Pause stops following (the port's own servo steers the PHC now).
func (f *Follower) Pause() {
	f.status.Active = false
}

// Status is the follower's state after the last comparison.
func (f *Follower) Status() FollowStatus { return f.status }

// Sample feeds one comparison: phcMinusSys is the PHC minus the system
// clock, unc the comparison's uncertainty, at the time it was made
// (a steady local time: the servo measures frequency against it).
func (f *Follower) Sample(phcMinusSys, unc time.Duration, at time.Time) FollowOutput {
	f.status.Offset, f.status.Uncertainty, f.status.Updated = phcMinusSys, unc, at
	f.status.Samples++
	var out FollowOutput
	if !f.servo.firstUpdate && f.cfg.StepThreshold > 0 && absDur(phcMinusSys) > f.cfg.StepThreshold {
		// The system clock (or the PHC) jumped: step the PHC back onto
		// it and keep the frequency, which a step does not change.
		out = FollowOutput{Step: -phcMinusSys, FreqPPB: f.servo.FreqPPB(), State: ServoJump}
		f.servo.count = 0 // the next two samples re-anchor the servo (its frequency is kept)
		f.servo.drift = -f.servo.lastFreq
		f.servo.firstUpdate = false
	} else {
		// the servo's offset is master (the system clock) minus local (the PHC)
		so := f.servo.Sample(-phcMinusSys, at)
		out = FollowOutput{Step: so.Step, FreqPPB: so.FreqPPB, State: so.State}
	}
	out.FreqPPB = math.Max(-f.cfg.MaxFreqPPB, math.Min(f.cfg.MaxFreqPPB, out.FreqPPB))
	if out.Step != 0 {
		f.status.Steps++
		f.status.LastStep = out.Step
	}
	f.status.Servo, f.status.FreqPPB = out.State, out.FreqPPB
	return out
}

func absDur(d time.Duration) time.Duration {
	if d < 0 {
		return -d
	}
	return d
}

// TimescaleStepped tells the clock that the clock it timestamps with
// (its PHC) was stepped by d outside its own servo (by a Follower): its
// timers, kept on that clock's time scale, move with it (a backward step
// would otherwise hold every Announce and Sync back by as much), and the
// exchanges in flight, measured on the old scale, are dropped.
func (c *Clock) TimescaleStepped(d time.Duration) {
	if d == 0 {
		return
	}
	for _, t := range []*time.Time{&c.announceTimeout, &c.qualifyAt, &c.nextAnnounce, &c.nextSync,
		&c.nextDelayReq, &c.nextPdelay, &c.nextBMCA, &c.faultUntil} {
		if !t.IsZero() {
			*t = t.Add(d)
		}
	}
	for _, f := range c.foreign {
		for i := range f.times {
			f.times[i] = f.times[i].Add(d)
		}
		if !f.last.IsZero() {
			f.last = f.last.Add(d)
		}
	}
	c.sync, c.lastSync, c.delayReq, c.pdelay = syncState{}, syncState{}, exchange{}, exchange{}
}
