package sim

//lint:file-ignore ST1011 RMS is "root mean square", not a unit of milliseconds.

import (
	"container/heap"
	"math"
	"math/rand/v2"
	"time"

	"gnomon.dev/gnomon/engine/clock"
	"gnomon.dev/gnomon/engine/ptp"
)

// PTPLink is the shared segment between PTP nodes.
type PTPLink struct {
	// Delay is the fixed one-way delay before Asymmetry.
	Delay time.Duration
	// Jitter is the mean of the exponentially distributed extra delay of
	// each message.
	Jitter time.Duration
	// Asymmetry makes messages from node 0 to the others Asymmetry/2
	// slower and those back Asymmetry/2 faster (1588's delayAsymmetry is
	// Asymmetry/2: no slave can see it unless told).
	Asymmetry time.Duration
	// TimestampNoise is the standard deviation of every timestamp's error
	// (software timestamping: microseconds; hardware: nanoseconds).
	TimestampNoise time.Duration
	Loss           float64
}

// PTPNode is one ordinary clock on the segment.
type PTPNode struct {
	Clock  clock.SimConfig
	Config ptp.Config
	// Down lists windows (since the start) when the node is dead: it
	// neither sends nor receives.
	Down []Window
}

// PTPSetup is a PTP simulation: nodes on one segment.
type PTPSetup struct {
	Nodes    []PTPNode
	Link     PTPLink
	Seed     uint64
	Duration time.Duration
	// Observe is called once a simulated second.
	Observe func(r *PTPRun)
}

// PTPRun is a PTP simulation in progress.
type PTPRun struct {
	Setup  PTPSetup
	Start  time.Time
	Clocks []*clock.Sim
	Ports  []*ptp.Clock
	// Steps counts the steps the servo made on each node.
	Steps []int
	rng   *rand.Rand
	q     ptpHeap
	seq   int
}

type ptpFlight struct {
	at   time.Time
	seq  int // FIFO among equal times
	to   int
	data []byte
}

type ptpHeap []ptpFlight

func (h ptpHeap) Len() int { return len(h) }
func (h ptpHeap) Less(i, j int) bool {
	if h[i].at.Equal(h[j].at) {
		return h[i].seq < h[j].seq
	}
	return h[i].at.Before(h[j].at)
}
func (h ptpHeap) Swap(i, j int) { h[i], h[j] = h[j], h[i] }
func (h *ptpHeap) Push(x any)   { *h = append(*h, x.(ptpFlight)) }
func (h *ptpHeap) Pop() any {
	old := *h
	f := old[len(old)-1]
	*h = old[:len(old)-1]
	return f
}

// NewPTP prepares a PTP simulation. Every node's clock starts at the
// first node's Clock.Start.
func NewPTP(su PTPSetup) (*PTPRun, error) {
	r := &PTPRun{Setup: su, rng: rand.New(rand.NewPCG(su.Seed, 0x1588))}
	if len(su.Nodes) > 0 {
		r.Start = su.Nodes[0].Clock.Start
	}
	for i, n := range su.Nodes {
		cc := n.Clock
		cc.Start = r.Start
		if cc.Seed == 0 {
			cc.Seed = su.Seed + uint64(i)*7919
		}
		c := clock.NewSim(cc)
		p, err := ptp.NewClock(n.Config, c.Now())
		if err != nil {
			return nil, err
		}
		r.Clocks = append(r.Clocks, c)
		r.Ports = append(r.Ports, p)
		r.Steps = append(r.Steps, 0)
	}
	return r, nil
}

// Elapsed is the simulated time since the start.
func (r *PTPRun) Elapsed() time.Duration { return r.Clocks[0].TrueNow().Sub(r.Start) }

func (r *PTPRun) down(i int) bool {
	e := r.Elapsed()
	for _, w := range r.Setup.Nodes[i].Down {
		if w.contains(e) {
			return true
		}
	}
	return false
}

func (r *PTPRun) advance(t time.Time) {
	for _, c := range r.Clocks {
		c.AdvanceTo(t)
	}
}

func (r *PTPRun) stamp(i int) time.Time {
	t := r.Clocks[i].Now()
	if n := r.Setup.Link.TimestampNoise; n > 0 {
		t = t.Add(time.Duration(float64(n) * r.rng.NormFloat64()))
	}
	return t
}

// Run simulates until the setup's Duration.
func (r *PTPRun) Run() {
	end := r.Start.Add(r.Setup.Duration)
	nextObs := r.Start.Add(time.Second)
	for {
		now := r.Clocks[0].TrueNow()
		if !now.Before(end) {
			return
		}
		next := nextObs
		for i, p := range r.Ports {
			w := p.NextWakeup()
			if w.IsZero() {
				continue
			}
			tw := now.Add(w.Sub(r.Clocks[i].Now()))
			if !tw.After(now) {
				tw = now.Add(time.Microsecond)
			}
			if tw.Before(next) {
				next = tw
			}
		}
		if len(r.q) > 0 && r.q[0].at.Before(next) {
			next = r.q[0].at
		}
		if next.After(end) {
			next = end
		}
		r.advance(next)
		for len(r.q) > 0 && !r.q[0].at.After(next) {
			f := heap.Pop(&r.q).(ptpFlight)
			if r.down(f.to) {
				continue
			}
			rx := r.stamp(f.to)
			out, _ := r.Ports[f.to].Receive(r.Clocks[f.to].Now(), f.data, rx)
			r.carry(f.to, out)
		}
		for i, p := range r.Ports {
			if w := p.NextWakeup(); !w.IsZero() && !r.Clocks[i].Now().Before(w) {
				if r.down(i) {
					// a dead node's timers still run, but it says nothing
					p.Wakeup(r.Clocks[i].Now())
					continue
				}
				r.carry(i, p.Wakeup(r.Clocks[i].Now()))
			}
		}
		if !next.Before(nextObs) {
			if r.Setup.Observe != nil {
				r.Setup.Observe(r)
			}
			nextObs = nextObs.Add(time.Second)
		}
	}
}

// carry does what a port asked: adjust its clock, send to every other
// node, report transmit timestamps.
func (r *PTPRun) carry(i int, out *ptp.Output) {
	if out.Adjust != nil {
		if out.Adjust.Step != 0 {
			_ = r.Clocks[i].Step(out.Adjust.Step)
			r.Steps[i]++
		}
		_ = r.Clocks[i].SetFrequency(out.Adjust.FreqPPB / 1000)
	}
	sends := append([]ptp.Send(nil), out.Sends...)
	for _, s := range sends {
		var txAt time.Time
		if s.Event {
			txAt = r.stamp(i)
		}
		for j := range r.Ports {
			if j == i {
				continue
			}
			if l := r.Setup.Link.Loss; l > 0 && r.rng.Float64() < l {
				continue
			}
			r.seq++
			heap.Push(&r.q, ptpFlight{at: r.Clocks[0].TrueNow().Add(r.oneWay(i, j)), seq: r.seq, to: j, data: s.Data})
		}
		if s.WantTimestamp {
			r.carry(i, r.Ports[i].TxTimestamp(r.Clocks[i].Now(), s.Type, s.Seq, txAt))
		}
	}
}

func (r *PTPRun) oneWay(from, to int) time.Duration {
	l := r.Setup.Link
	d := l.Delay
	switch {
	case from == 0:
		d += l.Asymmetry / 2
	case to == 0:
		d -= l.Asymmetry / 2
	}
	if l.Jitter > 0 {
		d += time.Duration(r.rng.ExpFloat64() * float64(l.Jitter))
	}
	return max(d, 0)
}

// PTPStats is the true error of one node over a window.
type PTPStats struct {
	N        int
	sum2     float64
	MaxAbs   time.Duration
	InState  int // observations in the wanted state
	Measured []time.Duration
}

// Add records one observation of the node's true error.
func (s *PTPStats) Add(err time.Duration) {
	s.N++
	f := float64(err)
	s.sum2 += f * f
	if a := max(err, -err); a > s.MaxAbs {
		s.MaxAbs = a
	}
}

// RMS of the observations.
func (s *PTPStats) RMS() time.Duration {
	if s.N == 0 {
		return 0
	}
	return time.Duration(math.Sqrt(s.sum2 / float64(s.N)))
}

// PTPCase is a bounded PTP scenario: one grandmaster (node 0, a perfect
// clock) and one slave over a link.
type PTPCase struct {
	Name      string
	Link      PTPLink
	Slave     clock.SimConfig
	Mechanism ptp.DelayMechanism
	OneStep   bool
	// Asymmetry the slave is told (its delayAsymmetry).
	Asymmetry time.Duration
	Duration  time.Duration
	From      time.Duration // the window judged starts here
	// Bounds the test holds: the RMS and max of the slave's true error
	// over the window.
	RMSBound, MaxBound time.Duration
	Software           bool
}

// PTPResult is what a PTPCase measured.
type PTPResult struct {
	Name       string
	RMS, Max   time.Duration
	Final      ptp.PortState
	Steps      int
	ToSlave    time.Duration // when the slave reached SLAVE (-1: never)
	PathDelay  time.Duration // the slave's mean path delay at the end
	FreqErrPPB float64       // the slave's residual frequency error at the end
}

var ptpStart = time.Date(2026, 6, 1, 0, 0, 0, 0, time.UTC)

// Run simulates the case.
func (c *PTPCase) Run(seed uint64) (PTPResult, error) {
	prof := ptp.DefaultE2E
	if c.Mechanism == ptp.DelayP2P {
		prof = ptp.DefaultP2P
	}
	gm := ptp.Config{Profile: prof, Identity: ptp.ClockIdentity{0, 0, 0, 0xff, 0xfe, 0, 0, 1}, Priority1: 100,
		OneStep: c.OneStep, Quality: &ptp.ClockQuality{Class: 6, Accuracy: 0x21, OffsetScaledLogVariance: 0x4e5d}}
	sl := ptp.Config{Profile: prof, Identity: ptp.ClockIdentity{0, 0, 0, 0xff, 0xfe, 0, 0, 2}, SlaveOnly: true,
		Asymmetry: c.Asymmetry, Servo: ptp.ServoConfig{Software: c.Software}}
	sc := c.Slave
	sc.Start = ptpStart
	res := PTPResult{Name: c.Name, ToSlave: -1}
	var st PTPStats
	run, err := NewPTP(PTPSetup{
		Nodes:    []PTPNode{{Clock: clock.SimConfig{Start: ptpStart}, Config: gm}, {Clock: sc, Config: sl}},
		Link:     c.Link,
		Seed:     seed,
		Duration: c.Duration,
		Observe: func(r *PTPRun) {
			if res.ToSlave < 0 && r.Ports[1].State() == ptp.StateSlave {
				res.ToSlave = r.Elapsed()
			}
			if r.Elapsed() >= c.From {
				st.Add(r.Clocks[1].Error() - r.Clocks[0].Error())
			}
		},
	})
	if err != nil {
		return res, err
	}
	run.Run()
	res.RMS, res.Max = st.RMS(), st.MaxAbs
	res.Final = run.Ports[1].State()
	res.Steps = run.Steps[1]
	res.PathDelay = run.Ports[1].Status().MeanPathDelay
	res.FreqErrPPB = run.Clocks[1].FrequencyErrorPPM() * 1000
	return res, nil
}

// PTPCases are the bounded PTP scenarios (docs/accuracy.md).
func PTPCases() []*PTPCase {
	osc := clock.SimConfig{Offset: 3 * time.Millisecond, FreqPPM: 25, WanderPPMPerSqrtS: 0.002}
	hw := PTPLink{Delay: 500 * time.Nanosecond, Jitter: 20 * time.Nanosecond, TimestampNoise: 8 * time.Nanosecond}
	sw := PTPLink{Delay: 20 * time.Microsecond, Jitter: 3 * time.Microsecond, TimestampNoise: 1 * time.Microsecond}
	asym := hw
	asym.Delay = 3 * time.Microsecond
	asym.Asymmetry = 2 * time.Microsecond
	return []*PTPCase{
		{Name: "E2E, hardware-like timestamps", Link: hw, Slave: osc, Mechanism: ptp.DelayE2E,
			Duration: 10 * time.Minute, From: 2 * time.Minute, RMSBound: 100 * time.Nanosecond, MaxBound: 400 * time.Nanosecond},
		{Name: "P2P, hardware-like timestamps", Link: hw, Slave: osc, Mechanism: ptp.DelayP2P,
			Duration: 10 * time.Minute, From: 2 * time.Minute, RMSBound: 100 * time.Nanosecond, MaxBound: 400 * time.Nanosecond},
		{Name: "E2E one-step", Link: hw, Slave: osc, Mechanism: ptp.DelayE2E, OneStep: true,
			Duration: 10 * time.Minute, From: 2 * time.Minute, RMSBound: 100 * time.Nanosecond, MaxBound: 400 * time.Nanosecond},
		{Name: "E2E, software-like timestamps", Link: sw, Slave: osc, Mechanism: ptp.DelayE2E, Software: true,
			Duration: 20 * time.Minute, From: 5 * time.Minute, RMSBound: 3 * time.Microsecond, MaxBound: 12 * time.Microsecond},
		{Name: "1 µs asymmetry, not configured", Link: asym, Slave: osc, Mechanism: ptp.DelayE2E,
			Duration: 10 * time.Minute, From: 2 * time.Minute, RMSBound: 1100 * time.Nanosecond, MaxBound: 1500 * time.Nanosecond},
		{Name: "1 µs asymmetry, configured", Link: asym, Slave: osc, Mechanism: ptp.DelayE2E, Asymmetry: time.Microsecond,
			Duration: 10 * time.Minute, From: 2 * time.Minute, RMSBound: 100 * time.Nanosecond, MaxBound: 400 * time.Nanosecond},
	}
}
