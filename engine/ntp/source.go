package ntp

import (
	"errors"
	"math"
	"time"

	"gnomon.dev/gnomon/engine/sample"
)

// PHI is RFC 5905's frequency tolerance of a clock, 15 ppm: the rate at
// which an unrefreshed measurement's dispersion grows.
const PHI = 15e-6

// Poll exponents (log2 seconds) a source may use.
const (
	MinPollLimit int8 = -6
	MaxPollLimit int8 = 17
)

// BurstCount and BurstInterval shape the quick start (iburst) and an
// on-demand burst: that many requests this far apart.
const (
	BurstCount    = 4
	BurstInterval = 2 * time.Second
)

// Authenticator secures a source's exchanges (NTS, RFC 8915). The source
// calls it for every request and every reply that passed the RFC 5905
// checks; it owns the keys and cookies.
type Authenticator interface {
	// Seal appends the authentication extension fields to the request
	// b[:n] (the header is final) and returns the new length, or an error
	// when it cannot authenticate now (no cookie left: a new key exchange
	// is needed), in which case the request is not sent.
	Seal(b []byte, n int) (int, error)
	// Open verifies a reply (all of it, p parsed from it) and takes what it
	// carries (fresh cookies). An error rejects the reply.
	// A genuine NTS NAK (a KoD "NTSN" carrying the request's unique
	// identifier) is either accepted (nil: the source then sees the KoD
	// and calls Nak) or reported as an error wrapping ErrNTSNak (the
	// source calls Nak too); a forged one is any other error.
	Open(reply []byte, p *Packet) error
	// Nak tells it the server answered with an NTS NAK (KoD "NTSN"): its
	// keys or cookies are no longer good.
	Nak()
}

// SourceConfig is how one NTP server is polled.
type SourceConfig struct {
	MinPoll, MaxPoll int8 // log2 s
	IBurst           bool
	Version          uint8 // 4 unless set
	// MaxRootDistance rejects replies whose root delay/2 + root dispersion
	// is larger (0 = no limit).
	MaxRootDistance time.Duration
	// LocalPrecision is how finely this machine reads its clock.
	LocalPrecision time.Duration
	// Auth, when set, authenticates every exchange (NTS or a symmetric key).
	Auth Authenticator
	// Interleaved asks the server for the interleaved mode (xleave.go).
	Interleaved bool
	// Leaps, when set, checks the server's leap announcements against
	// the leap-seconds file (leapfile.go).
	Leaps *LeapTable
}

// SourceState is a source's protocol condition (selection has its own).
type SourceState uint8

const (
	StateInit        SourceState = iota // no reply yet
	StateReachable                      // at least one of the last 8 polls answered
	StateUnreachable                    // none of the last 8 polls answered
	StateDenied                         // the server sent DENY or RSTR: polling stopped
)

func (s SourceState) String() string {
	switch s {
	case StateInit:
		return "init"
	case StateReachable:
		return "reachable"
	case StateUnreachable:
		return "unreachable"
	case StateDenied:
		return "denied"
	}
	return "?"
}

// filterLen is RFC 5905's clock filter depth.
const filterLen = 8

type filterEntry struct {
	time   time.Time // local time of the measurement (midpoint)
	offset time.Duration
	delay  time.Duration
	disp   time.Duration // at the time of the measurement
	valid  bool
}

// Source is the client side of one NTP association, sans-IO: it makes
// requests when asked, checks replies, keeps the 8-bit reachability
// register and RFC 5905's clock filter (the minimum-delay sample of the
// last eight), and releases a sample when the filter picks a new one.
// Times it is handed are the engine's local time.
type Source struct {
	cfg   SourceConfig
	poll  int8
	reach uint8
	state SourceState
	burst int
	next  time.Time

	pending     bool
	xmt         Timestamp // random value we put in our transmit field
	t1          time.Time // when we actually sent it
	txSet       bool      // t1 is the kernel's (SetTransmitTime came)
	xlOff       bool      // SetInterleaved(false): basic requests for now
	sentPolls   uint64
	validReplys uint64

	filter       [filterLen]filterEntry
	lastReleased time.Time
	jitter       time.Duration
	last         sample.Sample // newest valid measurement (raw, unfiltered)
	exchange     Exchange      // the newest valid reply, as it came
	lastErr      error
	kissBackoff  int8
	xl           xleaveState // interleaved mode: xleave.go
}

// NewSource returns a source that polls first at now (plus nothing: the
// caller spreads sources apart by choosing now).
func NewSource(cfg SourceConfig, now time.Time) *Source {
	if cfg.Version == 0 {
		cfg.Version = 4
	}
	cfg.MinPoll = clampPoll(cfg.MinPoll)
	cfg.MaxPoll = clampPoll(cfg.MaxPoll)
	if cfg.MaxPoll < cfg.MinPoll {
		cfg.MaxPoll = cfg.MinPoll
	}
	s := &Source{cfg: cfg, poll: cfg.MinPoll, next: now}
	if cfg.IBurst {
		s.burst = BurstCount
	}
	return s
}

func clampPoll(p int8) int8 {
	return max(MinPollLimit, min(MaxPollLimit, p))
}

// Config is the source's configuration.
func (s *Source) Config() SourceConfig { return s.cfg }

// Poll is the current poll exponent.
func (s *Source) Poll() int8 { return s.poll }

// PollInterval is 2^Poll as a duration.
func (s *Source) PollInterval() time.Duration { return pollDuration(s.poll) }

func pollDuration(p int8) time.Duration {
	if p >= 0 {
		return time.Second << uint(p)
	}
	return time.Second >> uint(-p)
}

// SetPoll sets the poll exponent within the configured limits (the
// system picks it from the accuracy target).
func (s *Source) SetPoll(p int8) {
	p = max(s.cfg.MinPoll+s.kissBackoff, min(s.cfg.MaxPoll, p))
	p = min(p, s.cfg.MaxPoll)
	if p == s.poll {
		return
	}
	// Keep the already scheduled time when shortening would not bring it
	// closer than the new interval from the last send.
	if !s.t1.IsZero() && s.burst == 0 {
		s.next = s.t1.Add(pollDuration(p))
	}
	s.poll = p
}

// Reach is the reachability register: bit 0 is the newest poll.
func (s *Source) Reach() uint8 { return s.reach }

// State is the protocol condition.
func (s *Source) State() SourceState { return s.state }

// Jitter is the clock filter's jitter (RMS of the held offsets about the
// chosen one).
func (s *Source) Jitter() time.Duration { return s.jitter }

// Last is the newest valid measurement, before filtering.
func (s *Source) Last() sample.Sample { return s.last }

// LastError is why the newest reply was rejected, or nil.
func (s *Source) LastError() error { return s.lastErr }

// Counts returns how many requests were sent and valid replies received.
func (s *Source) Counts() (sent, valid uint64) { return s.sentPolls, s.validReplys }

// NextPoll is when the source next wants to send.
func (s *Source) NextPoll() time.Time {
	if s.state == StateDenied {
		return time.Time{}
	}
	return s.next
}

// Burst schedules BurstCount quick requests starting now.
func (s *Source) Burst(now time.Time) {
	if s.state == StateDenied {
		return
	}
	s.burst = BurstCount
	s.next = now
}

// MakeRequest writes a client request into b, to be sent at now, and
// schedules the next poll. rnd must be unpredictable to anyone on the path
// (it becomes our transmit timestamp, which the reply must echo, so the
// real send time is never revealed and off-path replies are rejected).
// It returns the request's length, or 0 if b is too small or the source
// is denied.
func (s *Source) MakeRequest(now time.Time, rnd uint64, b []byte) int {
	if len(b) < HeaderLen || s.state == StateDenied {
		return 0
	}
	if s.pending {
		s.lost()
	}
	s.reach <<= 1
	if s.reach == 0 && s.sentPolls >= filterLen {
		s.state = StateUnreachable
	}
	h := Header{
		Leap:    sample.LeapUnsync,
		Version: s.cfg.Version,
		Mode:    ModeClient,
		Poll:    s.poll,
		// Everything else zero: a client request reveals nothing about
		// our clock (draft-ietf-ntp-data-minimization).
		TransmitTime: Timestamp(rnd),
	}
	if h.TransmitTime.IsZero() {
		h.TransmitTime = 1
	}
	s.xl.xrcv = 0
	if s.cfg.Interleaved && !s.xlOff && s.xl.valid {
		h.OriginTime = s.xl.t2raw
		h.ReceiveTime = interleavedReceiveField(rnd)
		s.xl.xrcv = h.ReceiveTime
	}
	n, err := h.MarshalTo(b)
	if err != nil {
		return 0
	}
	if s.cfg.Auth != nil {
		if n, err = s.cfg.Auth.Seal(b, n); err != nil {
			s.lastErr = err
			s.next = now.Add(pollDuration(s.poll))
			return 0
		}
	}
	s.pending = true
	s.txSet = false
	s.xmt = h.TransmitTime
	s.t1 = now
	s.sentPolls++
	if s.burst > 0 {
		s.burst--
	}
	if s.burst > 0 {
		s.next = now.Add(BurstInterval)
	} else {
		s.next = now.Add(pollDuration(s.poll))
	}
	return n
}

// lost is called when a request went unanswered.
func (s *Source) lost() {
	s.pending = false
	// Unanswered polls age the filter's dispersion (RFC 5905 clock_filter
	// is called with a dummy sample); we simply let the held entries age
	// through the dispersion growth applied when they are used.
}

// SetTransmitTime replaces the recorded send time of the pending request
// by a better one (the kernel's transmit timestamp).
func (s *Source) SetTransmitTime(t time.Time) {
	if s.pending {
		s.t1 = t
	} else if s.xl.valid && !s.txSet {
		// The reply came before the kernel's timestamp of our request.
		s.xl.t1, s.t1 = t, t
	}
	s.txSet = true
}

// Errors of Receive beyond CheckReply's.
var (
	// ErrNTSNak is wrapped by an Authenticator's Open for a genuine NTS
	// NAK; the source then calls Nak.
	ErrNTSNak        = errors.New("ntp: NTS NAK: the server no longer accepts our cookies")
	ErrNotPending    = errors.New("ntp: reply without a pending request (duplicate or late)")
	ErrNegativeDelay = errors.New("ntp: negative round-trip delay (the clock moved during the exchange)")
	// ErrNoSample: a valid reply (it counts for reachability) that gives
	// no new sample in the interleaved mode (see Receive); not a fault.
	ErrNoSample = errors.New("ntp: valid reply without a new sample (interleaved mode)")
)

// Receive handles a datagram that arrived at local time rx. It returns the
// filtered sample when the clock filter releases a new one (ok), and an
// error saying why a reply was rejected. A bogus reply (wrong origin) does
// not cancel the pending request: the genuine one may still arrive.
func (s *Source) Receive(rx time.Time, b []byte) (smp sample.Sample, ok bool, err error) {
	var p Packet
	if err := Parse(b, &p); err != nil {
		return smp, false, err
	}
	if !s.pending {
		return smp, false, ErrNotPending
	}
	interleaved := !s.xl.xrcv.IsZero() && p.OriginTime == s.xl.xrcv
	if p.OriginTime != s.xmt && !interleaved {
		return smp, false, ErrOriginMismatch
	}
	if s.cfg.Auth != nil {
		// An authenticated source believes nothing before the
		// authenticator has: a forged KoD or a forged "unsynchronized"
		// must neither stop the source nor end the exchange (RFC 8915
		// 5.7; chrony does the same). Only a genuine NTS NAK, whose
		// unique identifier the authenticator checks, is unauthenticated.
		if err := s.cfg.Auth.Open(b, &p); err != nil {
			if errors.Is(err, ErrNTSNak) {
				s.pending = false
				s.cfg.Auth.Nak()
			}
			s.lastErr = err
			return smp, false, err
		}
	}
	if err := CheckReply(&p.Header, p.OriginTime, s.cfg.MaxRootDistance); err != nil {
		var kiss *KissError
		if errors.As(err, &kiss) {
			s.kiss(kiss.Code, rx)
		}
		s.pending = false
		s.lastErr = err
		return smp, false, err
	}
	s.pending = false
	h := &p.Header
	t1 := s.t1
	t2 := h.ReceiveTime.Time(t1)
	t3 := h.TransmitTime.Time(t1)
	t4 := rx
	prev := s.xl
	if interleaved {
		// The reply completes the previous exchange (xleave.go).
		t1, t2, t4 = prev.t1, prev.t2, prev.t4
		t3 = h.TransmitTime.Time(t1)
		s.xl.count++
	}
	// One sample per exchange, and none from a transmit timestamp taken
	// before sending when the true one is coming: an interleaved reply
	// for an exchange already measured from its basic reply is not used
	// again (chrony does the same), and a basic reply from a server that
	// answered the previous request interleaved (the reply in between was
	// lost, so it no longer knew our origin) is held back: the next
	// interleaved reply measures that exchange exactly.
	asked := !prev.xrcv.IsZero() // this request asked for the mode
	use := !(interleaved && prev.used) &&
		!(!interleaved && asked && prev.valid && prev.interleaved)
	s.xl = xleaveState{valid: true, t1: s.t1, t2raw: h.ReceiveTime, t2: h.ReceiveTime.Time(s.t1), t4: rx,
		count: s.xl.count, held: prev.held, interleaved: interleaved, used: use && !interleaved}
	offset := (t2.Sub(t1) + t3.Sub(t4)) / 2
	delay := t4.Sub(t1) - t3.Sub(t2)
	prec := s.cfg.LocalPrecision + precisionDuration(h.Precision)
	if use && delay < -prec {
		s.lastErr = ErrNegativeDelay
		return smp, false, ErrNegativeDelay
	}
	delay = max(delay, prec)
	disp := prec + time.Duration(PHI*float64(t4.Sub(t1)))
	s.reach |= 1
	s.state = StateReachable
	s.validReplys++
	s.lastErr = nil
	if s.kissBackoff > 0 {
		s.kissBackoff--
	}
	if !use {
		s.xl.held++
		return smp, false, ErrNoSample
	}
	s.exchange = Exchange{Header: *h, T1: t1, T2: t2, T3: t3, T4: t4}
	mid := t1.Add(t4.Sub(t1) / 2)
	s.last = sample.Sample{
		Time:           mid,
		Offset:         offset,
		Delay:          delay,
		Dispersion:     disp,
		RootDelay:      h.RootDelay.Duration(),
		RootDispersion: h.RootDispersion.Duration(),
		Leap:           s.cfg.Leaps.Check(h.Leap, t4),
		Stratum:        h.Stratum,
		RefID:          h.ReferenceID,
	}
	return s.addToFilter(s.last)
}

// precisionDuration is 2^p seconds; a server claiming a precision coarser
// than a second is taken at one second.
func precisionDuration(p int8) time.Duration {
	return time.Duration(math.Ldexp(1e9, int(min(p, 0))))
}

// kiss reacts to a Kiss-o'-Death: RATE doubles the poll interval (and
// keeps it up for a while), DENY and RSTR stop polling for good (RFC 5905
// 7.4). Other codes are only logged by the caller.
func (s *Source) kiss(code uint32, now time.Time) {
	switch code {
	case KissRate:
		s.burst = 0
		s.kissBackoff = min(s.kissBackoff+1, s.cfg.MaxPoll-s.cfg.MinPoll)
		s.poll = min(s.cfg.MaxPoll, max(s.poll+1, s.cfg.MinPoll+s.kissBackoff))
		s.next = now.Add(pollDuration(s.poll))
	case KissDeny, KissRstr:
		s.state = StateDenied
		s.burst = 0
	case KissNTSN:
		// Reached only when the authenticator accepted the NAK.
		if s.cfg.Auth != nil {
			s.cfg.Auth.Nak()
		}
	}
}

// addToFilter shifts a measurement into the clock filter and releases the
// minimum-delay entry if it is newer than the last one released.
func (s *Source) addToFilter(m sample.Sample) (sample.Sample, bool, error) {
	copy(s.filter[1:], s.filter[:filterLen-1])
	s.filter[0] = filterEntry{time: m.Time, offset: m.Offset, delay: m.Delay, disp: m.Dispersion, valid: true}

	best := -1
	for i, e := range s.filter {
		if !e.valid {
			continue
		}
		if best < 0 || e.delay < s.filter[best].delay {
			best = i
		}
	}
	b := s.filter[best]
	// Jitter: RMS of the held offsets about the chosen one.
	var sum float64
	var n int
	for _, e := range s.filter {
		if e.valid {
			d := float64(e.offset - b.offset)
			sum += d * d
			n++
		}
	}
	if n > 1 {
		s.jitter = time.Duration(math.Sqrt(sum / float64(n-1)))
	} else {
		s.jitter = 0
	}
	if !b.time.After(s.lastReleased) {
		return sample.Sample{}, false, nil
	}
	s.lastReleased = b.time
	out := m
	out.Time = b.time
	out.Offset = b.offset
	out.Delay = b.delay
	out.Dispersion = b.disp + time.Duration(PHI*float64(m.Time.Sub(b.time)))
	return out, true, nil
}

// Adjust corrects every stored local time for a change of the local clock
// at time at: its reading jumped by offset and its frequency changed by
// freqPPM. See engine/stats.Stats.Adjust.
func (s *Source) Adjust(at time.Time, offset time.Duration, freqPPM float64) {
	shift := func(t time.Time) time.Duration {
		return offset + time.Duration(freqPPM*1e-6*float64(t.Sub(at)))
	}
	if s.pending {
		s.t1 = s.t1.Add(shift(s.t1))
	}
	if s.xl.valid {
		s.xl.t1 = s.xl.t1.Add(shift(s.xl.t1))
		s.xl.t4 = s.xl.t4.Add(shift(s.xl.t4))
	}
	for i := range s.filter {
		e := &s.filter[i]
		if e.valid {
			d := shift(e.time)
			e.offset -= d
			e.time = e.time.Add(d)
		}
	}
	if !s.lastReleased.IsZero() {
		s.lastReleased = s.lastReleased.Add(shift(s.lastReleased))
	}
	if !s.next.IsZero() {
		s.next = s.next.Add(shift(s.next))
	}
}

// ResetFilter forgets the clock filter and any pending request (after a
// clock jump nothing measured before it can be trusted).
func (s *Source) ResetFilter() {
	s.filter = [filterLen]filterEntry{}
	s.lastReleased = time.Time{}
	s.pending = false
	s.jitter = 0
	s.xl = xleaveState{count: s.xl.count, held: s.xl.held}
}

// Exchange is one valid request/reply as it happened: the reply's header
// and the four timestamps (T1, T4 the engine's local times, T2, T3 the
// server's). Views that show the last packet (timesync1's NTPMessage) use
// it; the engine does not.
type Exchange struct {
	Header         Header
	T1, T2, T3, T4 time.Time
}

// LastExchange is the newest valid exchange; ok is false before one.
func (s *Source) LastExchange() (Exchange, bool) {
	return s.exchange, !s.exchange.T1.IsZero()
}

// Filtered is the clock filter's pick: the minimum-delay measurement of
// the last eight, with its dispersion aged to the newest one. ok is false
// before any valid reply.
func (s *Source) Filtered() (smp sample.Sample, ok bool) {
	best := -1
	for i, e := range s.filter {
		if e.valid && (best < 0 || e.delay < s.filter[best].delay) {
			best = i
		}
	}
	if best < 0 {
		return smp, false
	}
	b := s.filter[best]
	smp = s.last
	smp.Time, smp.Offset, smp.Delay = b.time, b.offset, b.delay
	smp.Dispersion = b.disp + time.Duration(PHI*float64(s.last.Time.Sub(b.time)))
	return smp, true
}
