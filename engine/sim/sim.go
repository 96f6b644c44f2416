// Package sim is a deterministic simulator for the engine, the Go kin of
// chrony's clknetsim: a simulated oscillator (engine/clock.Sim), simulated
// NTP servers that answer through the engine's own server code, and a
// network with delay, exponential jitter, asymmetry and loss, all driven by
// one seeded random source, so the same scenario gives the same figures.
// True time is known to the simulator, so scenarios judge the TRUE error
// of the disciplined clock, not what the engine believes.
//
// It runs far faster than real time: a simulated day of four sources takes
// well under a second (BenchmarkDay).
package sim

import (
	"container/heap"
	"math"
	"math/rand/v2"
	"time"

	"gnomon.dev/gnomon/engine/clock"
	"gnomon.dev/gnomon/engine/ntp"
	"gnomon.dev/gnomon/engine/sample"
	"gnomon.dev/gnomon/engine/system"
)

// Path is the network between the client and one server.
type Path struct {
	// RoundTrip is the fixed part of the round-trip delay, split evenly
	// between the directions before Asymmetry.
	RoundTrip time.Duration
	// Jitter is the mean of the exponentially distributed extra delay
	// added to each direction independently.
	Jitter time.Duration
	// Asymmetry is how much longer the way to the server is than the way
	// back (it shifts the measured offset by Asymmetry/2, which no client
	// can see).
	Asymmetry time.Duration
	// Loss is the probability that an exchange is lost: the request, or
	// (with an interleaved server, half the time) the reply, which the
	// server then remembers as sent — the next interleaved request names
	// a receive timestamp it no longer has, so it answers in basic mode.
	Loss float64
	// Measured, when set, replaces RoundTrip, Jitter and Asymmetry: each
	// exchange draws one of these (way out, way back) pairs at random, as
	// measured on a real path (LoadPaths; the relays of make
	// bench-accuracy: heavier tails than an exponential, docs/accuracy.md).
	Measured [][2]time.Duration
	// Stall is the probability that one direction of an exchange is held
	// up by an extra delay drawn uniformly up to StallMax (a host that
	// stops the path now and then: the VM bench's emulated guest on a
	// loaded machine). 0: never (and no random draw).
	Stall    float64
	StallMax time.Duration
}

// Server is a simulated NTP server.
type Server struct {
	Name string
	// Offset is the server's error against true UTC (a liar's is large).
	Offset  time.Duration
	Stratum uint8 // default 1
	// RootDelay and RootDispersion it reports.
	RootDelay, RootDispersion time.Duration
	Path                      Path
	// LeapAt, if set, is a true UTC midnight at which a leap second is
	// inserted; the server announces it during that UTC month (as ntpd
	// does) when AnnounceLeap is true.
	AnnounceLeap bool
	// Down lists true-time windows (from the start) when it does not answer.
	Down []Window
	// TxStampLead is how long before its reply actually leaves the server
	// takes the reply's transmit timestamp: a software server (chronyd
	// in basic mode, ntpd) reads its clock before the send system call,
	// which on this project's test machine took about 8 µs to reach the
	// wire. A client with kernel timestamps of its own sees the way back
	// that much longer than the way out: its offset is biased by half of
	// it (docs/accuracy.md, "Real time").
	TxStampLead time.Duration
	// Interleaved: the server answers interleaved requests (as chronyd
	// does) with the true transmit time of its previous reply to the
	// client.
	Interleaved bool
}

// Window is an interval of simulated time since the start.
type Window struct{ From, Until time.Duration }

func (w Window) contains(d time.Duration) bool { return d >= w.From && d < w.Until }

// Event is something a scenario does at a time since the start.
type Event struct {
	At time.Duration
	Do func(r *Run)
}

// Setup is one simulation.
type Setup struct {
	Clock   clock.SimConfig
	Servers []Server
	Engine  system.Config
	Source  ntp.SourceConfig
	// LeapAt is a true UTC time (a midnight) at which UTC gets a leap
	// second inserted; zero for none.
	LeapAt time.Time
	Events []Event
	Seed   uint64
	// Duration of the run.
	Duration time.Duration
	// Observe is called once a simulated second, after the engine ran.
	Observe func(r *Run)
}

// Run is a simulation in progress.
type Run struct {
	Setup  Setup
	Clock  *clock.Sim
	Engine *system.System
	Start  time.Time
	IDs    []system.ID

	rng     *rand.Rand
	flights flightHeap
	events  []Event
	sent    int
	out     []system.Transmit
	ilv     []interleave // per server
}

// interleave is what an interleaved server keeps of its last reply: its
// receive timestamp as sent, and when the reply truly left (server time).
type interleave struct {
	rx ntp.Timestamp
	tx time.Time
}

type flight struct {
	at       time.Time // true arrival time
	toServer bool
	server   int
	n        int
	data     [ntp.HeaderLen]byte
	// a reply's timestamps are computed at the server on arrival
	replyLost bool          // the server answers, the answer is lost
	back      time.Duration // a request's way back, drawn with its way out (Path.Measured); 0: drawn on reply
}

type flightHeap []flight

func (h flightHeap) Len() int           { return len(h) }
func (h flightHeap) Less(i, j int) bool { return h[i].at.Before(h[j].at) }
func (h flightHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *flightHeap) Push(x any)        { *h = append(*h, x.(flight)) }
func (h *flightHeap) Pop() any {
	old := *h
	f := old[len(old)-1]
	*h = old[:len(old)-1]
	return f
}

type seeded struct{ r *rand.Rand }

func (s seeded) Uint64() uint64 { return s.r.Uint64() }

// New prepares a run: the clock, the engine, and one source per server.
func New(su Setup) (*Run, error) {
	if su.Clock.Start.IsZero() {
		su.Clock.Start = time.Date(2026, 6, 1, 0, 0, 0, 0, time.UTC)
	}
	if su.Clock.Seed == 0 {
		su.Clock.Seed = su.Seed ^ 0x5eed
	}
	r := &Run{
		Setup: su,
		Clock: clock.NewSim(su.Clock),
		Start: su.Clock.Start,
		rng:   rand.New(rand.NewPCG(su.Seed, 0xc0ffee)),
	}
	cfg := su.Engine
	cfg.Random = seeded{rand.New(rand.NewPCG(su.Seed, 0xbeef))}
	sys, err := system.New(cfg, r.Clock)
	if err != nil {
		return nil, err
	}
	r.Engine = sys
	for i, s := range su.Servers {
		name := s.Name
		if name == "" {
			name = "server" + string(rune('A'+i))
		}
		id := sys.AddSource(system.SourceConfig{
			Name: name, Address: name + ":123", Kind: "server",
			RefID: 0x0a000001 + uint32(i), NTP: su.Source,
		}, r.instant())
		r.IDs = append(r.IDs, id)
	}
	r.events = append(r.events, su.Events...)
	r.ilv = make([]interleave, len(su.Servers))
	return r, nil
}

func (r *Run) instant() system.Instant {
	now := r.Clock.TrueNow()
	return system.Instant{Wall: r.Clock.Now(), Mono: now.Sub(r.Start)}
}

// Elapsed is simulated time since the start.
func (r *Run) Elapsed() time.Duration { return r.Clock.TrueNow().Sub(r.Start) }

// Sent is how many requests the engine sent.
func (r *Run) Sent() int { return r.sent }

// leapsBefore is how many leap seconds UTC has inserted by true time t.
func (r *Run) leapsBefore(t time.Time) time.Duration {
	if !r.Setup.LeapAt.IsZero() && !t.Before(r.Setup.LeapAt) {
		return time.Second
	}
	return 0
}

// utc is true UTC at true (continuous) time t.
func (r *Run) utc(t time.Time) time.Time { return t.Add(-r.leapsBefore(t)) }

// TrueError is the clock's error against UTC (local minus UTC), in seconds.
func (r *Run) TrueError() float64 {
	return r.Clock.ErrorSeconds() + r.leapsBefore(r.Clock.TrueNow()).Seconds()
}

// Run simulates until the setup's Duration.
func (r *Run) Run() {
	end := r.Start.Add(r.Setup.Duration)
	nextObs := r.Start.Add(time.Second)
	for {
		now := r.Clock.TrueNow()
		if !now.Before(end) {
			return
		}
		// The next thing to happen, in true time.
		next := nextObs
		wake := r.Engine.NextWakeup()
		if !wake.IsZero() {
			local := r.Clock.Now()
			tw := now.Add(wake.Sub(local))
			if !tw.After(now) {
				tw = now.Add(time.Microsecond)
			}
			if tw.Before(next) {
				next = tw
			}
		}
		if len(r.flights) > 0 && r.flights[0].at.Before(next) {
			next = r.flights[0].at
		}
		for _, e := range r.events {
			if t := r.Start.Add(e.At); t.After(now) && t.Before(next) {
				next = t
			}
		}
		if next.After(end) {
			next = end
		}
		r.Clock.AdvanceTo(next)

		for i := 0; i < len(r.events); i++ {
			if e := r.events[i]; !r.Start.Add(e.At).After(next) {
				e.Do(r)
				r.events = append(r.events[:i], r.events[i+1:]...)
				i--
			}
		}
		for len(r.flights) > 0 && !r.flights[0].at.After(next) {
			f := heap.Pop(&r.flights).(flight)
			r.deliver(f)
		}
		if !wake.IsZero() && !r.Clock.Now().Before(wake) {
			r.wakeup()
		}
		if !next.Before(nextObs) {
			if r.Setup.Observe != nil {
				r.Setup.Observe(r)
			}
			nextObs = nextObs.Add(time.Second)
		}
	}
}

func (r *Run) wakeup() {
	r.out = r.Engine.Wakeup(r.instant(), r.out[:0])
	for _, tx := range r.out {
		r.sent++
		i := r.serverIndex(tx.Source)
		s := &r.Setup.Servers[i]
		replyLost := false
		if s.Path.Loss > 0 && r.rng.Float64() < s.Path.Loss {
			if !s.Interleaved || r.rng.Float64() < 0.5 {
				continue
			}
			replyLost = true
		}
		f := flight{toServer: true, server: i, n: len(tx.Data), replyLost: replyLost}
		copy(f.data[:], tx.Data)
		out := time.Duration(0)
		if m := s.Path.Measured; len(m) > 0 {
			pair := m[r.rng.IntN(len(m))]
			out, f.back = pair[0], max(pair[1], 1)
		} else {
			out = r.oneWay(&s.Path, true)
		}
		f.at = r.Clock.TrueNow().Add(out)
		heap.Push(&r.flights, f)
	}
}

func (r *Run) serverIndex(id system.ID) int {
	for i, x := range r.IDs {
		if x == id {
			return i
		}
	}
	panic("sim: unknown source")
}

func (r *Run) oneWay(p *Path, out bool) time.Duration {
	d := p.RoundTrip / 2
	if out {
		d += p.Asymmetry / 2
	} else {
		d -= p.Asymmetry / 2
	}
	if p.Jitter > 0 {
		d += time.Duration(r.rng.ExpFloat64() * float64(p.Jitter))
	}
	if p.Stall > 0 && r.rng.Float64() < p.Stall {
		d += time.Duration(r.rng.Float64() * float64(p.StallMax))
	}
	return max(d, 0)
}

func (r *Run) deliver(f flight) {
	now := r.Clock.TrueNow()
	s := &r.Setup.Servers[f.server]
	if !f.toServer {
		_ = r.Engine.Receive(r.IDs[f.server], r.instant(), r.Clock.Now(), f.data[:f.n])
		return
	}
	for _, w := range s.Down {
		if w.contains(now.Sub(r.Start)) {
			return
		}
	}
	var req ntp.Packet
	if ntp.Parse(f.data[:f.n], &req) != nil {
		return
	}
	serverNow := r.utc(now).Add(s.Offset)
	st := ntp.ServerState{
		Leap:           sample.LeapNone,
		Stratum:        max(s.Stratum, 1),
		Precision:      -24,
		RootDelay:      s.RootDelay,
		RootDispersion: s.RootDispersion,
		ReferenceID:    0x47505300, // "GPS"
		ReferenceTime:  serverNow.Add(-time.Second),
	}
	if s.AnnounceLeap && !r.Setup.LeapAt.IsZero() {
		u := r.utc(now)
		if u.Before(r.Setup.LeapAt) && r.Setup.LeapAt.Sub(u) < 31*24*time.Hour {
			st.Leap = sample.LeapInsert
		}
	}
	var resp ntp.Header
	if !ntp.Respond(&req.Header, serverNow, serverNow, &st, &resp) {
		return
	}
	if s.Interleaved {
		il := &r.ilv[f.server]
		if req.Version == 4 && !req.OriginTime.IsZero() && req.OriginTime == il.rx &&
			req.ReceiveTime != req.TransmitTime && !il.tx.IsZero() {
			resp.OriginTime = req.ReceiveTime
			resp.TransmitTime = ntp.TimestampFromTime(il.tx)
		}
		il.rx = resp.ReceiveTime
		il.tx = serverNow.Add(s.TxStampLead)
	}
	if f.replyLost {
		return
	}
	back := flight{toServer: false, server: f.server}
	n, err := resp.MarshalTo(back.data[:])
	if err != nil {
		return
	}
	back.n = n
	way := f.back
	if way == 0 {
		way = r.oneWay(&s.Path, false)
	}
	back.at = now.Add(s.TxStampLead + way)
	heap.Push(&r.flights, back)
}

// Stats accumulates the error over a window.
type Stats struct {
	N            int
	sum          float64
	sum2, max    float64
	fsum2        float64
	fN           int
	SyncedAt     time.Duration // first time synchronized with |error| < SyncBound; -1 if never
	SyncBound    float64
	WasSynced    bool
	MaxAbsSecond float64
}

// RMS is the root-mean-square error (s).
func (s *Stats) RMS() float64 {
	if s.N == 0 {
		return math.NaN()
	}
	return math.Sqrt(s.sum2 / float64(s.N))
}

// Mean is the mean error (s): a bias.
func (s *Stats) Mean() float64 {
	if s.N == 0 {
		return math.NaN()
	}
	return s.sum / float64(s.N)
}

// Max is the largest |error| (s).
func (s *Stats) Max() float64 { return s.max }

// FreqRMS is the RMS frequency error (ppm).
func (s *Stats) FreqRMS() float64 {
	if s.fN == 0 {
		return math.NaN()
	}
	return math.Sqrt(s.fsum2 / float64(s.fN))
}

// Add records one error (s) and frequency error (ppm).
func (s *Stats) Add(errS, freqPPM float64) {
	s.N++
	s.sum += errS
	s.sum2 += errS * errS
	s.max = math.Max(s.max, math.Abs(errS))
	s.fN++
	s.fsum2 += freqPPM * freqPPM
}

// FrequencyError is the disciplined clock's frequency error apart from any
// slew in progress: the oscillator's error plus the engine's correction.
func (r *Run) FrequencyError(sn *system.Snapshot) float64 {
	return r.Clock.OscillatorPPM() + sn.FreqPPM
}
