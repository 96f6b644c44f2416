// Package system is the engine's coordinator. It owns the sources, runs
// every measurement through sample → filter → regression → selection →
// discipline, says when it next needs to be woken, and produces the one
// Snapshot that every view (the NTP server, D-Bus, the CLI, logs,
// sd_notify) reads.
//
// It is single-threaded by contract: the daemon's owner loop calls it, and
// nothing else does. Every entry point is handed the time as an Instant:
// the clock's reading and a monotonic reading, from which it detects clock
// jumps made behind its back (a resume from suspend, another program).
package system

import (
	"errors"
	"fmt"
	"math"
	"time"

	"gnomon.dev/gnomon/engine/clock"
	"gnomon.dev/gnomon/engine/discipline"
	"gnomon.dev/gnomon/engine/ntp"
	"gnomon.dev/gnomon/engine/sample"
	"gnomon.dev/gnomon/engine/selection"
	"gnomon.dev/gnomon/engine/stats"
)

// Instant is a moment as the daemon sees it: what the disciplined clock
// read (Wall) and a monotonic reading (Mono, from an arbitrary origin) that
// nothing but the passing of time moves.
type Instant struct {
	Wall time.Time
	Mono time.Duration
}

// Random supplies the unpredictable numbers requests carry. The daemon
// gives a cryptographic source; the simulator a seeded one.
type Random interface{ Uint64() uint64 }

// Config is the engine's configuration.
type Config struct {
	Discipline discipline.Config
	// MinSources is how many agreeing sources are needed (default 1).
	MinSources int
	// MaxDistance excludes sources with a larger root distance (default 3 s).
	MaxDistance time.Duration
	// Accuracy is the error the user can accept: each source is polled as
	// rarely as still meets it (default 1 ms).
	Accuracy time.Duration
	// LocalPrecision is how finely the clock is read (default 100 ns).
	LocalPrecision time.Duration
	// Random, required.
	Random Random
	// Leaps, when set, is the leap-seconds file: it decides the leap
	// status while it is valid (ntp.LeapTable.Resolve).
	Leaps *ntp.LeapTable
	// RegressionOnly steers the clock by the combined regressions alone,
	// as before the joint filter (kept for the comparison in
	// docs/accuracy.md). By default, once the frequency is known, the
	// discipline is steered by a Kalman filter of offset and frequency
	// over every combined source's samples (stats.Kalman); selection, the
	// poll and the status still use each source's regression.
	RegressionOnly bool
	// Trace, when set, is told every sample and clock update (trace.go).
	Trace func(TraceEvent)
}

// kalmanFloor is what the quickest sample of a window may itself be off,
// as a fraction of the window's mean half-excess delay, for the joint
// filter's measurement noise (0.1 and 0.3 were tried; 0.3 is steadier).
const kalmanFloor = 0.3

// kalmanStartHorizon and kalmanStartSpan: the joint filter takes over
// from the regressions once the frequency's uncertainty, run over the
// horizon, is within the offset's own (FreqSD·horizon ≤ OffsetSD) and
// the combined sources' windows span, on their weighted average, at least
// kalmanStartSpan — not as soon as the discipline trusts the frequency
// (FreqKnownPPM, 1 ppm). For a regression over a window of W seconds the
// ratio of the two SDs is about √3·horizon/W whatever the noise, so the
// first condition alone holds the filter until the windows span about
// nine minutes — but only while the offset's SD is a regression's own:
// with sparse samples (30 % of the exchanges lost) the extrapolation
// from an older newest sample swells OffsetSD, and through the real
// relays of make bench-accuracy the filter started after 198–423 s from
// a frequency 0.07–0.13 ppm off (2–2.6 times its stated SD; the delays'
// tails are heavier than a regression's error assumes) and let the
// offset run up by 15–30 µs (docs/accuracy.md, "The joint filter's start
// under loss"). The span condition states the intent directly. Until then
// the regressions steer, re-fitting their intercept at every sample; a
// window that never spans that long (on a nearly noiseless path adaptPoll
// keeps it short) leaves them steering for good. Started as soon as the
// frequency was trusted, from a frequency still 0.2–0.5 ppm off, the
// filter, as confident of that frequency as the regressions said, let it
// run the offset up by 10–30 µs and took many minutes to pull it back
// (engine/sim TestRelayPathsStart). 300 s is the discipline's longest
// correction (MaxCorrTime).
const (
	kalmanStartHorizon = 300 * time.Second
	kalmanStartSpan    = 9 * time.Minute
)

// SourceConfig describes one source.
type SourceConfig struct {
	Name    string // what the user configured, e.g. "ntp1.example.org"
	Address string // the resolved address, e.g. "192.0.2.1:123"
	Kind    string // "server", "pool", "nts", ...
	// Origin says where the daemon got it ("config", "runtime", "dbus").
	Origin string
	// RefID is how our NTP server names this source when it is the
	// system peer (RFC 5905: the IPv4 address, or the first four bytes
	// of the MD5 of an IPv6 address; the daemon computes it).
	RefID    uint32
	NTP      ntp.SourceConfig
	Prefer   bool
	NoSelect bool
	// Trust: assumed correct when the others disagree (chrony's trust).
	Trust bool
}

// ID names a source for its lifetime.
type ID uint64

type source struct {
	id     ID
	cfg    SourceConfig
	ntp    protocol // *ntp.Source, or *refclock.Source (refclock.go)
	ref    *refState
	ext    *extSource // external.go: samples made outside (PTP, a PHC)
	stats  *stats.Stats
	last   sample.Sample // newest released (filtered) sample
	est    stats.Estimate
	hasEst bool
	state  selection.State
	weight float64
	// poll adaptation
	sinceChange int
	buf         [1024]byte    // room for NTS extension fields
	baseDist    time.Duration // root distance without the aging of its last sample
	// reachable is the error expected at the source's minpoll (s), 0
	// before it is known
	reachable float64
	kalFed    time.Time // a reference clock's last sample given to the Kalman filter
	// the interleaved mode (modes.go): half the server's transmit
	// timestamp lead, the basic mode's bias, once measured
	leadHalf  time.Duration
	leadKnown bool
}

// System is the coordinator.
type System struct {
	cfg  Config
	clk  clock.Clock
	disc *discipline.Discipline
	kal  *stats.Kalman // nil: the combined regressions steer
	from *source       // the source whose sample is being taken

	sources []*source // in ID order
	nextID  ID

	cands   []selection.Candidate
	candSrc []*source
	sel     selection.Result

	// clock jump detection
	lastWall time.Time
	lastMono time.Duration
	jumps    int

	// state for the snapshot
	synced     bool
	everSynced bool
	peer       *source
	peerSample sample.Sample
	sysJitter  float64
	offsetSD   float64
	leap       sample.Leap
	armedLeap  sample.Leap
	panicErr   error
	lastErr    error
	lastStatus time.Time
	updateAt   time.Time // cooked time of the last clock update
}

// New returns a coordinator driving clk.
func New(cfg Config, clk clock.Clock) (*System, error) {
	if cfg.Random == nil {
		return nil, errors.New("system: Config.Random is required")
	}
	if cfg.MinSources <= 0 {
		cfg.MinSources = 1
	}
	if cfg.MaxDistance <= 0 {
		cfg.MaxDistance = 3 * time.Second
	}
	if cfg.Accuracy <= 0 {
		cfg.Accuracy = time.Millisecond
	}
	if cfg.LocalPrecision <= 0 {
		cfg.LocalPrecision = 100 * time.Nanosecond
	}
	if cfg.Discipline.WanderPPMPerSqrtS <= 0 {
		cfg.Discipline.WanderPPMPerSqrtS = 0.002
	}
	d, err := discipline.New(cfg.Discipline, clk)
	if err != nil {
		return nil, err
	}
	s := &System{cfg: cfg, clk: clk, disc: d, nextID: 1}
	if !cfg.RegressionOnly {
		s.kal = stats.NewKalman(cfg.Discipline.WanderPPMPerSqrtS * 1e-6)
	}
	return s, nil
}

// AddSource starts polling a source. Its first request goes out at the
// next Wakeup, spread by up to a second from the others'.
func (s *System) AddSource(cfg SourceConfig, now Instant) ID {
	s.observe(now)
	cooked := s.disc.Cook(now.Wall)
	cfg.NTP.LocalPrecision = max(cfg.NTP.LocalPrecision, s.cfg.LocalPrecision)
	if cfg.NTP.MaxRootDistance == 0 {
		cfg.NTP.MaxRootDistance = s.cfg.MaxDistance
	}
	spread := time.Duration(s.cfg.Random.Uint64() % uint64(time.Second))
	src := &source{
		id:    s.nextID,
		cfg:   cfg,
		ntp:   ntp.NewSource(cfg.NTP, cooked.Add(spread)),
		stats: stats.New(64),
		state: selection.StateNone,
	}
	s.nextID++
	s.sources = append(s.sources, src)
	return src.id
}

// RemoveSource stops a source; false if there is no such source.
func (s *System) RemoveSource(id ID) bool {
	for i, src := range s.sources {
		if src.id == id {
			s.sources = append(s.sources[:i], s.sources[i+1:]...)
			if s.peer == src {
				s.peer = nil
			}
			return true
		}
	}
	return false
}

func (s *System) find(id ID) *source {
	for _, src := range s.sources {
		if src.id == id {
			return src
		}
	}
	return nil
}

// Burst makes a source send a quick burst of requests now.
func (s *System) Burst(id ID, now Instant) bool {
	src := s.find(id)
	if src == nil {
		return false
	}
	src.ntp.Burst(s.disc.Cook(now.Wall))
	return true
}

// Transmit is a request to send: Data (valid until the next Wakeup) to
// the source's address.
type Transmit struct {
	Source ID
	Data   []byte
}

// Wakeup does everything due at now: ends slews, sends the polls that are
// due (appended to out), refreshes the kernel status. Call it whenever
// NextWakeup has passed (calling it early is harmless).
func (s *System) Wakeup(now Instant, out []Transmit) []Transmit {
	s.observe(now)
	if err := s.disc.Wakeup(now.Wall); err != nil {
		s.lastErr = err
	}
	cooked := s.disc.Cook(now.Wall)
	for _, src := range s.sources {
		if src.ref != nil {
			s.endRefclockPoll(src, cooked, now.Wall)
			continue
		}
		if src.ext != nil {
			s.endExternalPoll(src, cooked, now.Wall)
			continue
		}
		next := src.ntp.NextPoll()
		if next.IsZero() || next.After(cooked) {
			continue
		}
		// The interleaved mode's samples are a poll old: worth it only
		// once the frequency is known and while polls are short.
		if x, ok := src.ntp.(interface{ SetInterleaved(bool) }); ok {
			age := src.ntp.PollInterval().Seconds()
			x.SetInterleaved(src.ntp.Poll() <= InterleavedMaxPoll && s.disc.FrequencySD()*1e-6*age <= interleavedMaxAgeError)
		}
		n := src.ntp.MakeRequest(cooked, s.cfg.Random.Uint64(), src.buf[:])
		if n > 0 {
			out = append(out, Transmit{Source: src.id, Data: src.buf[:n]})
		}
		if src.ntp.State() == ntp.StateUnreachable && src.hasEst {
			// Nothing from it for eight polls: its old estimate no
			// longer counts.
			src.hasEst = false
		}
	}
	s.refresh(cooked)
	return out
}

// InterleavedMaxPoll is the longest poll (log2 s) at which a source
// configured for the interleaved mode asks for it, and
// interleavedMaxAgeError how far the frequency's uncertainty may move a
// sample over one poll. An interleaved sample measures the previous
// exchange, a poll old: with the frequency known to a few hundredths of a
// ppm a 16–64 s old sample is off by about a µs, less than the several µs
// of a software server's transmit-timestamp lead it removes; at 1024 s,
// or at start-up with the frequency unknown, a fresh sample tells more (in
// the simulator, the benchmark's LAN at gnomond's default polling, 10
// minutes: RMS 43 µs interleaved throughout against 8.6 µs basic).
const (
	InterleavedMaxPoll     = 6
	interleavedMaxAgeError = 2e-6 // s
)

// Sent records the kernel's transmit timestamp (a clock reading) of a
// source's last request, which is more exact than the time Wakeup was
// called.
func (s *System) Sent(id ID, at time.Time) {
	if src := s.find(id); src != nil {
		src.ntp.SetTransmitTime(s.disc.Cook(at))
	}
}

// Receive handles a datagram from a source's address that arrived when
// the clock read rx. It returns why the datagram was not used, if it was
// not; the daemon logs that (rate-limited).
func (s *System) Receive(id ID, now Instant, rx time.Time, data []byte) error {
	s.observe(now)
	src := s.find(id)
	if src == nil {
		return fmt.Errorf("system: no source %d", id)
	}
	xl0 := interleavedCount(src)
	_, _, err := src.ntp.Receive(s.disc.Cook(rx), data)
	interleaved := interleavedCount(src) > xl0
	if errors.Is(err, ntp.ErrNoSample) {
		if interleaved {
			s.learnLead(src, data)
		}
		return nil // valid, reachable, but nothing new to measure
	}
	if err != nil {
		return err
	}
	smp := src.ntp.Last()
	if !interleaved && src.leadKnown {
		smp.Offset += src.leadHalf // onto the interleaved mode's scale
	}
	src.last = smp
	src.stats.Add(stats.Point{
		Time:   smp.Time,
		Offset: smp.Offset.Seconds(),
		Delay:  smp.Delay.Seconds(),
		Disp:   smp.Dispersion.Seconds(),
	})
	if s.cfg.Trace != nil {
		s.trace(TraceEvent{Kind: "sample", At: smp.Time, Source: src.cfg.Address, Offset: smp.Offset,
			Delay: smp.Delay, Interleaved: interleaved, LeadHalf: src.leadHalf})
	}
	s.from = src
	s.update(now.Wall)
	s.from = nil
	s.adaptPoll(src)
	return nil
}

// observe detects a clock jump: the clock moved further than the monotonic
// clock (corrected for our own frequency) allows. Everything measured
// before it is then forgotten, and the discipline may step once more.
func (s *System) observe(now Instant) {
	if s.lastWall.IsZero() {
		s.lastWall, s.lastMono = now.Wall, now.Mono
		return
	}
	dMono := now.Mono - s.lastMono
	dWall := now.Wall.Sub(s.lastWall)
	s.lastWall, s.lastMono = now.Wall, now.Mono
	if dMono < 0 {
		return
	}
	expected := clock.Scale(dMono, s.disc.FrequencyPPM())
	jump := dWall - expected
	tolerance := 100*time.Millisecond + time.Duration(float64(dMono)*1e-3)
	if jump > -tolerance && jump < tolerance {
		return
	}
	if s.armedLeap != sample.LeapNone {
		// The kernel inserted (-1 s) or deleted (+1 s) the leap second
		// we armed.
		leapStep := -time.Second
		if s.armedLeap == sample.LeapDelete {
			leapStep = time.Second
		}
		if d := jump - leapStep; d > -tolerance && d < tolerance {
			s.armedLeap = sample.LeapNone
			return
		}
	}
	s.jumps++
	s.disc.ClockJumped(jump)
	at := s.disc.Cook(now.Wall)
	for _, src := range s.sources {
		src.ntp.Adjust(at.Add(-jump), jump, 0)
		src.ntp.ResetFilter()
		src.stats.Reset()
		src.hasEst = false
	}
	if s.kal != nil {
		s.kal.Reset()
	}
	s.disc.AllowStep()
}

// candidates gathers the sources with a usable estimate at cooked time now.
func (s *System) candidates(now time.Time) {
	s.cands = s.cands[:0]
	s.candSrc = s.candSrc[:0]
	for _, src := range s.sources {
		src.state = selection.StateNone
		src.weight = 0
		if src.stats.Len() == 0 || src.ntp.Reach() == 0 {
			src.hasEst = false
			continue
		}
		e, ok := src.stats.Estimate(now)
		if !ok {
			continue
		}
		src.est, src.hasEst = e, true
		l := src.last
		if l.Leap == sample.LeapUnsync || l.Stratum >= 16 {
			continue
		}
		age := math.Max(0, now.Sub(e.Last).Seconds())
		base := (l.RootDelay.Seconds()+e.MinDelay)/2 + l.RootDispersion.Seconds() + e.Disp + e.Jitter
		src.baseDist = time.Duration(base * 1e9)
		dist := base + ntp.PHI*age
		s.cands = append(s.cands, selection.Candidate{
			ID:           int(src.id),
			Offset:       time.Duration(e.Offset * 1e9),
			RootDistance: time.Duration(dist * 1e9),
			Jitter:       time.Duration(e.Jitter * 1e9),
			Stratum:      l.Stratum,
			Prefer:       src.cfg.Prefer,
			NoSelect:     src.cfg.NoSelect,
			Trust:        src.cfg.Trust,
		})
		s.candSrc = append(s.candSrc, src)
	}
}

// update runs selection and, if the sources agree, the discipline.
func (s *System) update(raw time.Time) {
	now := s.disc.Cook(raw)
	s.candidates(now)
	selection.Select(s.cands, selection.Params{
		MinSources:  s.cfg.MinSources,
		MaxDistance: s.cfg.MaxDistance,
	}, &s.sel)
	s.keepPeer()
	for i, src := range s.candSrc {
		src.state = s.sel.States[i]
		src.weight = s.sel.Weights[i]
	}
	if !s.sel.Synchronized {
		s.setUnsynced()
		return
	}
	if !s.everSynced && !s.startSettled() {
		// Until every source has answered or missed its first polls, a
		// minority that answered first must not move the clock.
		return
	}
	peer := s.candSrc[s.sel.SystemPeer]

	// Combine: offsets with the selection's weights, frequencies by their
	// inverse variances, leap by majority of the combined sources.
	var off, offVar, fNum, fDen, jit2 float64
	var leapIns, leapDel, voters int
	weights := s.sel.Weights
	for i, src := range s.candSrc {
		w := weights[i]
		if w == 0 {
			continue
		}
		off += w * src.est.Offset
		offVar += w * w * src.est.OffsetSD * src.est.OffsetSD
		jit2 += w * src.est.Jitter * src.est.Jitter / float64(max(src.est.N, 1))
		if !math.IsInf(src.est.FreqSD, 0) && src.est.FreqSD > 0 {
			// A slope's standard error from a few residuals may be far
			// too small (three jittery samples can fall on a line):
			// widen it as Student's t is wider than the normal.
			sd := src.est.FreqSD * stats.TWiden(src.est.N-2)
			v := sd * sd
			fNum += src.est.FreqPPM / v
			fDen += 1 / v
		}
	}
	// Leap: a majority of the truechimers (every source the intersection
	// kept, combined or not) must announce it.
	for i, src := range s.candSrc {
		switch s.sel.States[i] {
		case selection.StateSelected, selection.StateCombined, selection.StateCandidate, selection.StateOutlier:
		default:
			continue
		}
		voters++
		switch src.last.Leap {
		case sample.LeapInsert:
			leapIns++
		case sample.LeapDelete:
			leapDel++
		}
	}
	e := discipline.Estimate{
		Offset:   off,
		OffsetSD: math.Sqrt(offVar),
		FreqPPM:  0,
		FreqSD:   math.Inf(1),
		Jitter:   math.Sqrt(jit2),
		Interval: peer.ntp.PollInterval(),
	}
	if fDen > 0 {
		e.FreqPPM = fNum / fDen
		e.FreqSD = math.Sqrt(1 / fDen)
	}
	if s.kal != nil {
		s.kalman(now, weights, &e)
	}
	if !s.updateAt.IsZero() {
		e.Since = max(now.Sub(s.updateAt), 0)
	}
	change, err := s.disc.Update(raw, e)
	if err != nil {
		if errors.Is(err, discipline.ErrPanic) {
			s.panicErr = err
		} else {
			s.lastErr = err
		}
		if !change.At.IsZero() {
			// The clock failed half-way: account for what was done, so
			// that it never reads as someone else's jump.
			s.account(change)
		}
		s.setUnsynced()
		return
	}
	s.panicErr = nil
	s.account(change)
	if s.cfg.Trace != nil {
		s.traceUpdate(raw, now, e)
	}
	s.updateAt = change.At.Add(change.Offset)
	s.synced = true
	s.everSynced = true
	s.peer = peer
	s.peerSample = peer.last
	s.sysJitter = s.sel.Jitter.Seconds()
	s.offsetSD = e.OffsetSD
	switch {
	case 2*leapIns > voters:
		s.leap = sample.LeapInsert
	case 2*leapDel > voters:
		s.leap = sample.LeapDelete
	default:
		s.leap = sample.LeapNone
	}
	s.leap = s.cfg.Leaps.Resolve(s.leap, s.updateAt)
	s.pushStatus(s.updateAt)
}

// reselectDistance and reselectRatio say how much better another source
// must be before it replaces the current system peer (like chrony's
// reselectdist): sources that are equally good must not take turns, which
// would only churn the stratum, reference ID and status at every update.
// The comparison leaves out the 15 ppm by which a root distance grows
// with the age of the source's last sample: otherwise whichever source
// answered last would look best for a moment.
const (
	reselectDistance = 100 * time.Microsecond
	reselectRatio    = 1.5
)

// keepPeer keeps the previous system peer while it is still a truechimer
// (combined, or left out only by clustering or the combine limit), of no
// higher stratum, and not clearly worse than the new one.
func (s *System) keepPeer() {
	if s.peer == nil || !s.sel.Synchronized || s.sel.SystemPeer < 0 {
		return
	}
	best := s.sel.SystemPeer
	for i, src := range s.candSrc {
		if src != s.peer || i == best {
			continue
		}
		st := s.sel.States[i]
		survivor := st == selection.StateCombined || st == selection.StateOutlier || st == selection.StateCandidate
		if survivor && s.cands[i].Stratum <= s.cands[best].Stratum &&
			float64(src.baseDist) <= reselectRatio*float64(s.candSrc[best].baseDist)+float64(reselectDistance) {
			s.sel.States[best] = selection.StateCombined
			s.sel.States[i] = selection.StateSelected
			s.sel.SystemPeer = i
			if st != selection.StateCombined {
				// Clustering dropped it this round only because one of
				// four equal sources always goes, or its last sample aged
				// past the combine limit: it stays the peer, in the place
				// (and with the weight) of the one that took over.
				s.sel.Weights[i], s.sel.Weights[best] = s.sel.Weights[best], s.sel.Weights[i]
				s.sel.States[best] = st
			}
		}
		return
	}
}

// startSettled says whether every source has had its say at start: it
// answered, or two polls went unanswered.
func (s *System) startSettled() bool {
	for _, src := range s.sources {
		if src.cfg.NoSelect || src.ntp.State() == ntp.StateDenied {
			continue
		}
		sent, valid := src.ntp.Counts()
		if valid == 0 && sent < 2 {
			return false
		}
	}
	return true
}

// account takes in a change the discipline made to the clock.
func (s *System) account(change discipline.Change) {
	if change.Stepped {
		// Our own step is no jump.
		s.lastWall = s.lastWall.Add(change.Step)
	}
	s.applyChange(change)
}

// applyChange corrects every stored timestamp for what the discipline did.
func (s *System) applyChange(c discipline.Change) {
	if c.Offset == 0 && c.FreqPPM == 0 {
		return
	}
	for _, src := range s.sources {
		src.ntp.Adjust(c.At, c.Offset, c.FreqPPM)
		src.stats.Adjust(c.At, c.Offset.Seconds(), c.FreqPPM)
	}
	if s.kal != nil {
		s.kal.Adjust(c.At, c.Offset.Seconds(), c.FreqPPM)
	}
}

// kalman feeds the joint filter the sample that just came in, if its
// source is combined, and puts the filter's offset and frequency in e.
// The filter starts from the combined regressions' estimate.
func (s *System) kalman(now time.Time, weights []float64, e *discipline.Estimate) {
	if !s.disc.FrequencyKnown() {
		// until then the regressions, with the discipline's guard
		s.kal.Reset()
		return
	}
	if s.kal.Len() == 0 {
		var span float64
		for i, src := range s.candSrc {
			span += weights[i] * src.est.Span.Seconds()
		}
		if span < kalmanStartSpan.Seconds() || !(e.FreqSD*1e-6*kalmanStartHorizon.Seconds() <= e.OffsetSD) {
			return // the regressions steer until their frequency is precise enough
		}
		// From the regressions' estimate; without a frequency from them
		// (just after a clock jump reset every source), from the
		// discipline's: the oscillator did not change.
		y, sdy := e.FreqPPM, e.FreqSD
		if math.IsInf(sdy, 0) || math.IsNaN(sdy) {
			y, sdy = 0, s.disc.FrequencySD()
		}
		s.kal.Start(now, e.Offset, e.OffsetSD*e.OffsetSD, y*1e-6, sdy*sdy*1e-12)
	} else {
		for i, src := range s.candSrc {
			// the NTP source that just answered, or a reference clock
			// or an external source (PTP) with a sample not yet taken
			fresh := src == s.from || (s.from == nil && (src.ref != nil || src.ext != nil) && src.last.Time.After(src.kalFed))
			if fresh && weights[i] > 0 {
				src.kalFed = src.last.Time
				r := src.stats.NewestDelayVar(kalmanFloor*src.stats.ExcessFloor() + s.cfg.LocalPrecision.Seconds())
				if src.ref != nil || src.ext != nil {
					// A reference clock has no round trip to say how far
					// a sample may be off (a PTP sample's is averaged
					// away): its scatter about the fit does.
					r = math.Max(r, src.est.Jitter*src.est.Jitter)
				}
				s.kal.Update(src.last.Time, src.last.Offset.Seconds(), r)
				break
			}
		}
	}
	x, sdx, y, sdy := s.kal.Estimate(now)
	e.Offset, e.OffsetSD = x, sdx
	e.FreqPPM, e.FreqSD = y*1e6, sdy*1e6
}

func (s *System) setUnsynced() {
	if s.synced || s.lastStatus.IsZero() {
		s.synced = false
		s.peer = nil
		s.leap = sample.LeapNone
		if err := s.clk.SetStatus(clock.Status{Synchronized: false, MaxError: 16 * time.Second, EstError: 16 * time.Second}); err != nil {
			s.lastErr = err
		}
	}
	s.synced = false
}

// refresh handles holdover: with no selectable source left the clock runs
// on at its last frequency; the error bound grows and, past MaxDistance,
// the system declares itself unsynchronized.
func (s *System) refresh(now time.Time) {
	if !s.synced {
		return
	}
	selectable := false
	for _, src := range s.sources {
		if src.hasEst && src.ntp.Reach() != 0 && (src.state == selection.StateSelected || src.state == selection.StateCombined) {
			selectable = true
		}
	}
	if !selectable && s.rootDistance(now) > s.cfg.MaxDistance {
		s.setUnsynced()
		return
	}
	if now.Sub(s.lastStatus) >= 64*time.Second {
		s.pushStatus(now)
	}
}

func (s *System) rootDistance(now time.Time) time.Duration {
	rd, rdisp := s.rootDelayDisp(now)
	return rd/2 + rdisp
}

func (s *System) rootDelayDisp(now time.Time) (time.Duration, time.Duration) {
	if s.peer == nil && s.peerSample.Time.IsZero() {
		return 0, 0
	}
	p := s.peerSample
	age := math.Max(0, now.Sub(s.updateAt).Seconds())
	disp := p.RootDispersion.Seconds() + p.Dispersion.Seconds() + s.sysJitter +
		math.Abs(s.disc.LastOffset()) + (ntp.PHI+s.disc.FrequencySD()*1e-6)*age
	return p.RootDelay + p.Delay, time.Duration(disp * 1e9)
}

func (s *System) pushStatus(now time.Time) {
	rd, rdisp := s.rootDelayDisp(now)
	st := clock.Status{
		Synchronized: true,
		Leap:         discipline.LeapArm(s.leap, now),
		MaxError:     rd/2 + rdisp,
		EstError:     time.Duration(math.Hypot(s.offsetSD, s.sysJitter) * 1e9),
	}
	if err := s.clk.SetStatus(st); err != nil {
		s.lastErr = err
	}
	s.armedLeap = st.Leap
	s.lastStatus = now
}

// adaptPoll picks the source's regression window and poll interval.
//
// The window: with measurement noise sigma per sample, poll interval tau
// and an oscillator whose frequency random-walks at q per sqrt(s), a window
// of length T averages the noise down to about 2*sigma/sqrt(T/tau) at its
// newest end, while the wander bends the true offset away from a straight
// line by about q*T^1.5/sqrt(3). The two balance at T = sqrt(sigma*sqrt(tau)/q)
// (a few minutes on a LAN); a longer window lags behind the oscillator, a
// shorter one passes on noise.
//
// The poll interval: the longest within the source's limits at which that
// balanced error still meets the accuracy target. Hysteresis keeps it from
// flapping: it lengthens only when the next longer interval would still
// leave room, after a few replies at the current one.
func (s *System) adaptPoll(src *source) {
	src.sinceChange++
	e, ok := src.stats.Estimate(src.last.Time)
	if !ok {
		return
	}
	q := s.cfg.Discipline.WanderPPMPerSqrtS * 1e-6
	sigma := math.Max(e.Jitter, s.cfg.LocalPrecision.Seconds())
	window := func(tau float64) float64 {
		return math.Sqrt(sigma * math.Sqrt(tau) / q)
	}
	expect := func(p int8) float64 {
		tau := pollSeconds(p)
		T := math.Max(window(tau), float64(stats.MinRegression)*tau)
		n := T / tau
		return math.Sqrt(4*sigma*sigma/n + q*q*T*T*T/3)
	}
	p := src.ntp.Poll()
	tau := pollSeconds(p)
	src.stats.SetMaxAge(time.Duration(math.Max(window(tau), 4*tau) * 1e9))
	target := s.cfg.Accuracy.Seconds()
	if e.N < stats.MinRegression {
		return
	}
	// When the target is out of reach even at minpoll (10 µs over a
	// jittery WAN path), polling at minpoll buys little (the error falls
	// only as the square root of the packets sent): poll as for a target
	// of OutOfReachFactor times what is reachable, which backs off towards
	// maxpoll, and say so in the snapshot.
	src.reachable = expect(src.ntp.Config().MinPoll)
	if src.reachable > outOfReach*target {
		target = OutOfReachFactor * src.reachable
	}
	switch {
	case expect(p) > 1.25*target && p > src.ntp.Config().MinPoll:
		src.ntp.SetPoll(p - 1)
		src.sinceChange = 0
	case src.sinceChange >= 4 && expect(p+1) < 0.8*target:
		src.ntp.SetPoll(p + 1)
		src.sinceChange = 0
	}
}

// outOfReach: a target is out of reach on a source when the error
// expected at its minpoll is more than this many times the target (with
// room for the estimate's own noise, so a LAN near its target does not
// flap); OutOfReachFactor: how much worse than the reachable error such a
// source is then allowed to become, to save packets.
const (
	outOfReach       = 2.0
	OutOfReachFactor = 3.0
)

// reachable is the smallest error expected at minpoll over the sources
// that count, and whether the accuracy target is out of reach on all.
func (s *System) reachable() (time.Duration, bool) {
	best := math.Inf(1)
	for _, src := range s.sources {
		if src.reachable > 0 && src.hasEst && (src.state == selection.StateSelected || src.state == selection.StateCombined) {
			best = math.Min(best, src.reachable)
		}
	}
	if math.IsInf(best, 1) {
		return 0, false
	}
	return time.Duration(best * 1e9), best > outOfReach*s.cfg.Accuracy.Seconds()
}

func pollSeconds(p int8) float64 { return math.Ldexp(1, int(p)) }

// NextWakeup is the clock reading at which Wakeup must next be called.
func (s *System) NextWakeup() time.Time {
	var next time.Time
	for _, src := range s.sources {
		if t := src.ntp.NextPoll(); !t.IsZero() && (next.IsZero() || t.Before(next)) {
			next = t
		}
	}
	if t := s.disc.NextWakeup(); !t.IsZero() {
		// already a raw reading; convert the others below
		rt := t
		if next.IsZero() {
			return rt
		}
		if n := s.toRaw(next); rt.Before(n) {
			return rt
		}
		return s.toRaw(next)
	}
	if next.IsZero() {
		return next
	}
	return s.toRaw(next)
}

// toRaw converts an engine time back to a clock reading.
func (s *System) toRaw(cooked time.Time) time.Time {
	return cooked.Add(-time.Duration(s.disc.Remaining(cooked) * 1e9))
}
