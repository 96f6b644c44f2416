package ptp

import (
	"fmt"
	"time"

	"gnomon.dev/gnomon/engine/clock"
	eptp "gnomon.dev/gnomon/engine/ptp"
	"gnomon.dev/gnomon/engine/system"
)

// Feed is what a port hands the system clock's engine: samples of the
// clock that timestamps against the master, or, when the port stops
// measuring the master (announce receipt timeout, a better clock of our
// own, a fault), why. The daemon passes it to system.ExternalSample and
// system.ExternalLost on its owner loop.
type Feed struct {
	Samples []system.ExternalSample
	Lost    string
}

// phcInterval is how often a hardware port compares its PHC with the
// system clock (phc2sys's default rate).
const phcInterval = time.Second

// phcSamples is how many readings each PTP_SYS_OFFSET* asks for
// (phc2sys's -N default is 5).
const phcSamples = 5

// feedMeasurements turns the measurements of out into samples. It runs
// before out's Adjust is applied: the measurements were made on the
// port's clock as it was. With hardware timestamps the measurements are
// of the PHC; the system clock is fed from the PHC instead (feedPHC).
func (p *Port) feedMeasurements(out *eptp.Output) {
	if p.cfg.Feed == nil || p.cfg.PHC != nil || len(out.Measurements) == 0 {
		return
	}
	st := p.eng.Status()
	if !system.PTPUsable(st.Port.State) {
		return
	}
	var corr time.Duration
	if p.virtual != nil {
		corr = p.virtual.Correction(p.base.Now())
	}
	for _, m := range out.Measurements {
		p.pending.Samples = append(p.pending.Samples, system.PTPSample(m, &st, corr))
	}
}

// feedPHC is phc2sys in the port's loop: once a second while the port is
// SLAVE (its servo has locked the PHC to the master), the PHC is compared
// with the system clock, and the comparison is a sample of the system
// clock against the master. In observe mode the port's clock is a
// virtual clock over the PHC, and the comparison goes through it.
func (p *Port) feedPHC(now time.Time, phc sysOffsetter) {
	if p.cfg.Feed == nil || phc == nil || p.eng.State() != eptp.StateSlave || now.Sub(p.lastPHC) < phcInterval {
		return
	}
	p.lastPHC = now
	st := p.eng.Status()
	smp, err := phcSample(phc, p.virtual, &st)
	if err != nil {
		p.logLimited("sysoffset", "cannot compare the PHC with the system clock", "err", err)
		return
	}
	p.pending.Samples = append(p.pending.Samples, smp)
}

// phcSample compares the PHC with the system clock. With v (observe
// mode) the port's clock is a virtual clock over the PHC, and the
// comparison goes through it.
func phcSample(phc sysOffsetter, v *clock.Virtual, st *eptp.Status) (system.ExternalSample, error) {
	off, unc, err := phc.SysOffset(phcSamples)
	sys := time.Now().Round(0)
	if err != nil {
		return system.ExternalSample{}, err
	}
	if v != nil {
		phcRaw := sys.Add(off)
		off = v.Map(phcRaw).Sub(sys)
	}
	return system.PHCSample(sys, off, unc, st), nil
}

// sysOffsetter is the part of *PHC feedPHC uses (a fake in tests).
type sysOffsetter interface {
	SysOffset(samples int) (offset, uncertainty time.Duration, err error)
}

// feedState notices the port leaving the states in which it measures the
// master, then hands what is pending to the daemon.
func (p *Port) feedState() {
	if p.cfg.Feed == nil {
		return
	}
	st := p.eng.State()
	usable := system.PTPUsable(st)
	if p.usable && !usable {
		why := fmt.Sprintf("PTP port %s, no master", st)
		if st == eptp.StateMaster || st == eptp.StatePreMaster || st == eptp.StatePassive {
			why = fmt.Sprintf("PTP port %s: it is the best clock itself", st)
		}
		p.pending.Lost = why
		p.pending.Samples = p.pending.Samples[:0]
	}
	p.usable = usable
	if len(p.pending.Samples) == 0 && p.pending.Lost == "" {
		return
	}
	p.cfg.Feed(p.pending)
	p.pending = Feed{}
}

// BaseStepped tells the port that the system clock was stepped by
// offset under it (by the engine, which the daemon knows of). A port
// with software timestamps keeps a virtual clock over the system clock:
// the step is taken back out of it on the port's goroutine, so that the
// port's own clock (and its servo) sees no jump. A port on a PHC is not
// affected. Safe from any goroutine.
func (p *Port) BaseStepped(offset time.Duration) {
	if p.cfg.PHC == nil && p.virtual != nil {
		p.baseSteps.Add(int64(offset))
	}
}

// followBaseSteps applies what BaseStepped collected.
func (p *Port) followBaseSteps() {
	if d := time.Duration(p.baseSteps.Swap(0)); d != 0 {
		if err := p.virtual.Step(-d); err != nil {
			p.logLimited("basestep", "cannot follow the system clock's step", "err", err)
		}
	}
}
