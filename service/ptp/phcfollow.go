package ptp

import (
	"time"

	"gnomon.dev/gnomon/engine/clock"
	eptp "gnomon.dev/gnomon/engine/ptp"
)

// FollowOptions makes a hardware port's PHC follow the system clock
// while the port is not a slave: the other half of phc2sys (phc2sys -s
// CLOCK_REALTIME -c ethX), for a master on a host whose system clock is
// disciplined by NTP. The decisions are engine/ptp's Follower's.
type FollowOptions struct {
	// StepThreshold: see eptp.FollowConfig (0: never step after the
	// first update).
	StepThreshold time.Duration
}

// phcFollow compares the PHC with the system clock and steers the port's
// clock after it: the PHC itself, or in observe mode the virtual clock
// over it (the PHC is then never touched).
type phcFollow struct {
	cmp     sysOffsetter
	clk     clock.Clock    // what is steered
	virtual *clock.Virtual // observe mode: clk, over the PHC
	sysNow  func() time.Time
	fol     *eptp.Follower
	method  func() string
	steady  func() time.Time // a monotonic reading (time.Now; a fake in tests)
	last    time.Time        // steady time of the last comparison
}

func newPHCFollow(opt FollowOptions, cmp sysOffsetter, clk clock.Clock, v *clock.Virtual, freqPPM float64) *phcFollow {
	return &phcFollow{cmp: cmp, clk: clk, virtual: v, sysNow: func() time.Time { return time.Now().Round(0) }, steady: time.Now,
		fol: eptp.NewFollower(eptp.FollowConfig{Interval: phcInterval, StepThreshold: opt.StepThreshold,
			MaxFreqPPB: clk.MaxFrequencyPPM() * 1000}, freqPPM*1000)}
}

// clockMinusSystem is the steered clock minus the system clock.
func (f *phcFollow) clockMinusSystem() (off, unc time.Duration, err error) {
	off, unc, err = f.cmp.SysOffset(phcSamples)
	if err != nil {
		return 0, 0, err
	}
	if f.virtual != nil {
		sys := f.sysNow()
		off = f.virtual.Map(sys.Add(off)).Sub(sys)
	}
	return off, unc, nil
}

// run compares and steers once an interval has passed since the last
// time (steady is a monotonic reading). It returns the step made (the
// port's engine is told, its timers being on the PHC's time scale) and
// the frequency set, in ppm.
func (f *phcFollow) run(steady time.Time) (step time.Duration, freqPPM float64, did bool, err error) {
	if !f.last.IsZero() && steady.Sub(f.last) < f.fol.Interval() {
		return 0, 0, false, nil
	}
	f.last = steady
	off, unc, err := f.clockMinusSystem()
	if err != nil {
		return 0, 0, false, err
	}
	out := f.fol.Sample(off, unc, steady)
	if out.Step != 0 {
		if err := f.clk.Step(out.Step); err != nil {
			return 0, 0, false, err
		}
	}
	maxPPM := f.clk.MaxFrequencyPPM()
	freqPPM = max(-maxPPM, min(maxPPM, out.FreqPPB/1000))
	if err := f.clk.SetFrequency(freqPPM); err != nil {
		return out.Step, 0, true, err
	}
	return out.Step, freqPPM, true, nil
}

// status is the follower's, with the comparison's method.
func (f *phcFollow) status() *eptp.FollowStatus {
	s := f.fol.Status()
	if f.method != nil {
		s.Method = f.method()
	}
	return &s
}

// followSystem runs in the port's loop: while the port is not a slave
// (its own servo steers the PHC to the master then) the PHC follows the
// system clock.
func (p *Port) followSystem() {
	f := p.follow
	if f == nil {
		return
	}
	st := p.eng.State()
	if st == eptp.StateSlave || st == eptp.StateUncalibrated {
		if f.fol.Status().Active {
			f.fol.Pause()
			p.log.Info("the PHC follows the master now, not the system clock")
		}
		return
	}
	if !f.fol.Status().Active {
		f.fol.Resume(p.clkPPM * 1000)
		f.last = time.Time{}
		p.log.Info("the PHC follows the system clock", "state", st.String())
	}
	step, ppm, did, err := f.run(f.steady())
	if step != 0 {
		p.eng.TimescaleStepped(step)
		p.log.Info("stepped the PHC onto the system clock", "by", step)
	}
	if err != nil {
		p.logLimited("follow", "cannot steer the PHC after the system clock", "err", err)
		return
	}
	if did {
		p.clkPPM = ppm
		s := f.fol.Status()
		p.log.Debug("PHC follows the system clock", "offset_ns", int64(s.Offset), "uncertainty_ns", int64(s.Uncertainty),
			"servo", s.Servo.String(), "freq_ppb", s.FreqPPB, "steps", s.Steps)
	}
}
