package sim

import (
	"container/heap"
	"math/rand/v2"
	"time"

	"gnomon.dev/gnomon/engine/clock"
	"gnomon.dev/gnomon/engine/ptp"
	"gnomon.dev/gnomon/engine/system"
)

// PTP as a source of the system clock: one NTP simulation (Setup: the
// system clock, its engine, NTP servers) plus a PTP segment with a
// grandmaster and the system's slave port. As in the daemon with
// software timestamps, the port timestamps with the system clock and its
// PI servo steers only a virtual clock over it; its measurements, made
// into samples of the system clock (system.PTPSample), go to the engine
// as an external source, and the port's leaving SLAVE is
// system.ExternalLost.

// PTPSystemCase is a bounded scenario of that kind.
type PTPSystemCase struct {
	Name  string
	Setup Setup // the system clock, the engine, the NTP servers
	Link  PTPLink
	// MasterDown is when the grandmaster is dead (since the start).
	MasterDown Window
	// Poll is the external source's (system.ExternalConfig.Poll).
	Poll int8
	// Judge the PTP phase from PTPFrom until the master dies, and the
	// NTP phase from NTPFrom until it comes back.
	PTPFrom, NTPFrom time.Duration
}

// PTPSystemResult is what the case measured.
type PTPSystemResult struct {
	Name string
	// The system clock's true error while PTP was the reference, and
	// while NTP was.
	PTP, NTP Stats
	// Port is the error of the port's own clock (its PI servo over the
	// system clock) in the PTP phase.
	Port PTPStats
	// PeerPTPShare is the share of the PTP phase's observations in which
	// the PTP source was the system peer; PeerNTPShare the NTP server's
	// in the NTP phase.
	PeerPTPShare, PeerNTPShare float64
	// Fallback is how long after the master died the NTP server became
	// the system peer, Back how long after it returned PTP did (-1:
	// never).
	Fallback, Back time.Duration
	Lost           int // ExternalLost calls
}

// Run simulates the case.
func (c *PTPSystemCase) Run(seed uint64) (PTPSystemResult, error) {
	res := PTPSystemResult{Name: c.Name, Fallback: -1, Back: -1}
	su := c.Setup
	su.Seed = seed
	r, err := New(su)
	if err != nil {
		return res, err
	}
	gmClock := clock.NewSim(clock.SimConfig{Start: r.Start})
	gm, err := ptp.NewClock(ptp.Config{Profile: ptp.DefaultE2E, Identity: ptp.ClockIdentity{0, 0, 0, 0xff, 0xfe, 0, 0, 1},
		Priority1: 100, Quality: &ptp.ClockQuality{Class: 6, Accuracy: 0x21, OffsetScaledLogVariance: 0x4e5d}}, gmClock.Now())
	if err != nil {
		return res, err
	}
	virt := clock.NewVirtual(r.Clock)
	sl, err := ptp.NewClock(ptp.Config{Profile: ptp.DefaultE2E, Identity: ptp.ClockIdentity{0, 0, 0, 0xff, 0xfe, 0, 0, 2},
		SlaveOnly: true, Servo: ptp.ServoConfig{Software: c.Link.TimestampNoise >= 100*time.Nanosecond}}, virt.Now())
	if err != nil {
		return res, err
	}
	id := r.Engine.AddExternal(system.SourceConfig{Name: "ptp", Address: "sim0/udp4", Kind: "ptp", RefID: system.PTPRefID},
		system.ExternalConfig{Poll: c.Poll}, r.instant())

	s := &ptpSys{c: c, r: r, gm: gm, gmClock: gmClock, sl: sl, virt: virt, id: id,
		rng: rand.New(rand.NewPCG(seed, 0x5157)), res: &res}
	s.run()
	return res, nil
}

type ptpSys struct {
	c       *PTPSystemCase
	r       *Run
	gm, sl  *ptp.Clock
	gmClock *clock.Sim
	virt    *clock.Virtual
	id      system.ID
	rng     *rand.Rand
	q       ptpHeap
	seq     int
	usable  bool
	steps   int // the system clock's steps seen
	// the engine's frequency correction of the system clock as the port
	// last followed it, and the port servo's own frequency
	baseFreqPPM, servoPPM float64
	res                   *PTPSystemResult
	// observation counts for the peer shares
	ptpObs, ptpPeer, ntpObs, ntpPeer int
}

func (s *ptpSys) masterDown() bool { return s.c.MasterDown.contains(s.r.Elapsed()) }

// reading is node i's clock: 0 the grandmaster, 1 the port's.
func (s *ptpSys) reading(i int) time.Time {
	if i == 0 {
		return s.gmClock.Now()
	}
	return s.virt.Now()
}

func (s *ptpSys) stamp(i int) time.Time {
	t := s.reading(i)
	if n := s.c.Link.TimestampNoise; n > 0 {
		t = t.Add(time.Duration(float64(n) * s.rng.NormFloat64()))
	}
	return t
}

func (s *ptpSys) port(i int) *ptp.Clock {
	if i == 0 {
		return s.gm
	}
	return s.sl
}

func (s *ptpSys) run() {
	r := s.r
	end := r.Start.Add(s.c.Setup.Duration)
	nextObs := r.Start.Add(time.Second)
	for {
		now := r.Clock.TrueNow()
		if !now.Before(end) {
			return
		}
		next := nextObs
		wake := r.Engine.NextWakeup()
		if !wake.IsZero() {
			tw := now.Add(wake.Sub(r.Clock.Now()))
			if !tw.After(now) {
				tw = now.Add(time.Microsecond)
			}
			next = minTime(next, tw)
		}
		if len(r.flights) > 0 {
			next = minTime(next, r.flights[0].at)
		}
		if len(s.q) > 0 {
			next = minTime(next, s.q[0].at)
		}
		for i := 0; i < 2; i++ {
			if w := s.port(i).NextWakeup(); !w.IsZero() {
				tw := now.Add(w.Sub(s.reading(i)))
				if !tw.After(now) {
					tw = now.Add(time.Microsecond)
				}
				next = minTime(next, tw)
			}
		}
		if next.After(end) {
			next = end
		}
		r.Clock.AdvanceTo(next)
		s.gmClock.AdvanceTo(next)
		for len(r.flights) > 0 && !r.flights[0].at.After(next) {
			r.deliver(heap.Pop(&r.flights).(flight))
		}
		s.followSteps()
		for len(s.q) > 0 && !s.q[0].at.After(next) {
			f := heap.Pop(&s.q).(ptpFlight)
			if f.to == 0 && s.masterDown() {
				continue
			}
			out, _ := s.port(f.to).Receive(s.reading(f.to), f.data, s.stamp(f.to))
			s.carry(f.to, out)
		}
		for i := 0; i < 2; i++ {
			if w := s.port(i).NextWakeup(); !w.IsZero() && !s.reading(i).Before(w) {
				out := s.port(i).Wakeup(s.reading(i))
				if i == 0 && s.masterDown() {
					continue // a dead master's timers run, it says nothing
				}
				s.carry(i, out)
			}
		}
		if !wake.IsZero() && !r.Clock.Now().Before(wake) {
			r.wakeup()
		}
		s.followSteps()
		s.feedState()
		if !next.Before(nextObs) {
			s.observe()
			nextObs = nextObs.Add(time.Second)
		}
	}
}

func minTime(a, b time.Time) time.Time {
	if b.Before(a) {
		return b
	}
	return a
}

// carry does what a port asked; the slave's measurements are fed to the
// engine before its servo's adjustment is applied (they were made on its
// clock as it was), as service/ptp does.
func (s *ptpSys) carry(i int, out *ptp.Output) {
	if i == 1 {
		st := s.sl.Status()
		if system.PTPUsable(st.Port.State) {
			corr := s.virt.Correction(s.r.Clock.Now())
			for _, m := range out.Measurements {
				_ = s.r.Engine.ExternalSample(s.id, s.r.instant(), system.PTPSample(m, &st, corr))
			}
		}
		if out.Adjust != nil {
			if out.Adjust.Step != 0 {
				_ = s.virt.Step(out.Adjust.Step)
			}
			s.servoPPM = out.Adjust.FreqPPB / 1000
			_ = s.virt.SetFrequency(s.servoPPM - s.baseFreqPPM)
		}
	}
	sends := append([]ptp.Send(nil), out.Sends...)
	for _, m := range sends {
		var txAt time.Time
		if m.Event {
			txAt = s.stamp(i)
		}
		if l := s.c.Link.Loss; l == 0 || s.rng.Float64() >= l {
			s.seq++
			heap.Push(&s.q, ptpFlight{at: s.r.Clock.TrueNow().Add(s.oneWay(i)), seq: s.seq, to: 1 - i, data: m.Data})
		}
		if m.WantTimestamp {
			s.carry(i, s.port(i).TxTimestamp(s.reading(i), m.Type, m.Seq, txAt))
		}
	}
}

func (s *ptpSys) oneWay(from int) time.Duration {
	l := s.c.Link
	d := l.Delay
	if from == 0 {
		d += l.Asymmetry / 2
	} else {
		d -= l.Asymmetry / 2
	}
	if l.Jitter > 0 {
		d += time.Duration(s.rng.ExpFloat64() * float64(l.Jitter))
	}
	return max(d, 0)
}

// followSteps keeps the port's clock independent of the engine's
// corrections of the system clock under it, as the daemon does
// (Port.BaseStepped, Port.BaseFrequency): steps are taken back out, and
// frequency changes (the discipline's slews and frequency corrections)
// are subtracted from the virtual clock's frequency.
func (s *ptpSys) followSteps() {
	if n, d := s.r.Clock.Steps(); n != s.steps {
		s.steps = n
		_ = s.virt.Step(-d)
	}
	if f := s.r.Clock.CorrectionPPM(); f != s.baseFreqPPM {
		s.baseFreqPPM = f
		_ = s.virt.SetFrequency(s.servoPPM - f)
	}
}

// feedState tells the engine when the port stops measuring the master.
func (s *ptpSys) feedState() {
	u := system.PTPUsable(s.sl.State())
	if s.usable && !u {
		s.r.Engine.ExternalLost(s.id, s.r.instant(), "PTP port "+s.sl.State().String())
		s.res.Lost++
	}
	s.usable = u
}

func (s *ptpSys) observe() {
	r, c, res := s.r, s.c, s.res
	e := r.Elapsed()
	sn := r.Engine.Snapshot(r.Clock.Now())
	errS := r.TrueError()
	freq := r.FrequencyError(&sn)
	onPTP := sn.Synchronized && sn.SystemPeer == s.id
	onNTP := sn.Synchronized && sn.SystemPeer != s.id && sn.SystemPeer != 0
	switch {
	case e >= c.PTPFrom && e < c.MasterDown.From:
		res.PTP.Add(errS, freq)
		res.Port.Add(s.virt.Now().Sub(r.Clock.TrueNow()))
		s.ptpObs++
		if onPTP {
			s.ptpPeer++
		}
	case e >= c.NTPFrom && e < c.MasterDown.Until:
		res.NTP.Add(errS, freq)
		s.ntpObs++
		if onNTP {
			s.ntpPeer++
		}
	}
	if e >= c.MasterDown.From && res.Fallback < 0 && onNTP {
		res.Fallback = e - c.MasterDown.From
	}
	if e >= c.MasterDown.Until && res.Back < 0 && onPTP {
		res.Back = e - c.MasterDown.Until
	}
	if s.ptpObs > 0 {
		res.PeerPTPShare = float64(s.ptpPeer) / float64(s.ptpObs)
	}
	if s.ntpObs > 0 {
		res.PeerNTPShare = float64(s.ntpPeer) / float64(s.ntpObs)
	}
}

// PTPSystemCases are the bounded scenarios of docs/accuracy.md: the
// oscillator and links of PTPCases, an NTP server on a LAN, and a
// grandmaster that dies at minute 20 and is back at minute 30.
func PTPSystemCases() []*PTPSystemCase {
	osc := clock.SimConfig{Start: ptpStart, Offset: 3 * time.Millisecond, FreqPPM: 25, WanderPPMPerSqrtS: 0.002}
	lan := Server{Name: "ntp", Stratum: 1, Path: Path{RoundTrip: 300 * time.Microsecond, Jitter: 50 * time.Microsecond}}
	setup := Setup{Clock: osc, Servers: []Server{lan}, Duration: 40 * time.Minute}
	setup.Source.MinPoll, setup.Source.MaxPoll = 4, 6
	hw := PTPLink{Delay: 500 * time.Nanosecond, Jitter: 20 * time.Nanosecond, TimestampNoise: 8 * time.Nanosecond}
	sw := PTPLink{Delay: 20 * time.Microsecond, Jitter: 3 * time.Microsecond, TimestampNoise: 1 * time.Microsecond}
	down := Window{From: 20 * time.Minute, Until: 30 * time.Minute}
	mk := func(name string, l PTPLink, poll int8) *PTPSystemCase {
		return &PTPSystemCase{Name: name, Setup: setup, Link: l, MasterDown: down, Poll: poll, PTPFrom: 5 * time.Minute, NTPFrom: 22 * time.Minute}
	}
	return []*PTPSystemCase{
		mk("hardware-like timestamps, poll 1 (2 s)", hw, 1),
		mk("software-like timestamps, poll 1 (2 s)", sw, 1),
		mk("software-like timestamps, poll 0 (1 s)", sw, 0),
		mk("software-like timestamps, poll 3 (8 s)", sw, 3),
	}
}
