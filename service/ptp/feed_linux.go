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

// BaseFrequency tells the port that at the system clock reading at the
// system clock's frequency was changed by deltaPPM (by the engine: a
// slew or a frequency correction). A port with software timestamps
// subtracts it from its virtual clock's frequency, from that moment on,
// so that its own clock and servo do not chase the engine's corrections
// (the virtual clock then rides on the oscillator as in observe mode).
// Safe from any goroutine.
func (p *Port) BaseFrequency(at time.Time, deltaPPM float64) {
	if p.cfg.PHC != nil || p.virtual == nil || deltaPPM == 0 {
		return
	}
	p.baseMu.Lock()
	p.baseChanges = append(p.baseChanges, baseChange{at: at, deltaPPM: deltaPPM})
	p.baseMu.Unlock()
}

type baseChange struct {
	at       time.Time
	deltaPPM float64
}

// followBaseSteps applies what BaseStepped and BaseFrequency collected,
// on the port's goroutine.
func (p *Port) followBaseSteps() {
	if d := time.Duration(p.baseSteps.Swap(0)); d != 0 {
		if err := p.virtual.Step(-d); err != nil {
			p.logLimited("basestep", "cannot follow the system clock's step", "err", err)
		}
	}
	p.baseMu.Lock()
	changes := p.baseChanges
	p.baseChanges = nil
	p.baseMu.Unlock()
	if len(changes) == 0 {
		return
	}
	now := p.base.Now()
	for _, c := range changes {
		// Since c.at the virtual clock has run deltaPPM too fast (to
		// first order): take that back, then change its frequency.
		if since := now.Sub(c.at); since > 0 {
			_ = p.virtual.Step(-time.Duration(float64(since) * c.deltaPPM / 1e6))
		}
		p.baseFreqPPM += c.deltaPPM
	}
	p.setVirtualFrequency()
}

// setVirtualFrequency is the servo's frequency less what the engine has
// added to the base under it.
func (p *Port) setVirtualFrequency() {
	maxPPM := p.virtual.MaxFrequencyPPM()
	ppm := max(-maxPPM, min(maxPPM, p.servoPPM-p.baseFreqPPM))
	if err := p.virtual.SetFrequency(ppm); err != nil {
		p.logLimited("freq", "cannot set the PTP clock's frequency", "err", err)
	}
}
