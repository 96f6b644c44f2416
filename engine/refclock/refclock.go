// Package refclock turns what reference clocks say into samples, sans-IO:
// gpsd's JSON reports, chrony's SOCK datagrams, ntpd's shared-memory
// segment (SHM) and PPS edges are decoded from bytes here, and a Source
// keeps one reference clock's poll: it collects the samples that arrive
// during a poll interval and releases their median (chrony's `filter`) as
// one stratum-0 sample when the poll ends.
//
// Nothing here reads a socket, a segment or a device: engine/system hands a
// Source its samples and the time, service/refclock does the reading.
package refclock

import (
	"errors"
	"fmt"
	"math"
	"slices"
	"time"

	"gnomon.dev/gnomon/engine/ntp"
	"gnomon.dev/gnomon/engine/sample"
)

// Kinds of reference clock.
const (
	KindGPSD = "gpsd"
	KindPPS  = "pps"
	KindSHM  = "shm"
	KindSOCK = "sock"
)

// Defaults, as chrony's refclock directive has them where it has one.
const (
	DefaultPoll      int8 = 4 // 16 s
	DefaultFilter         = 64
	DefaultDelay          = time.Nanosecond
	DefaultPrecision      = time.Microsecond
	// MaxFilter bounds the samples one poll may collect.
	MaxFilter = 1024
	// MinPoll and MaxPoll bound a reference clock's poll exponent.
	MinPoll int8 = 0
	MaxPoll int8 = 10
)

// RefID returns a reference identifier of up to four ASCII characters
// ("GPS", "PPS", "SHM0"), padded with zero bytes as RFC 5905 wants.
func RefID(s string) uint32 {
	var b [4]byte
	copy(b[:], s)
	return uint32(b[0])<<24 | uint32(b[1])<<16 | uint32(b[2])<<8 | uint32(b[3])
}

// Config is one reference clock's sampling.
type Config struct {
	Kind string
	// Poll is the interval (log2 s) at which collected samples are
	// filtered into one.
	Poll int8
	// Filter is how many samples a poll keeps at most (the newest);
	// their median is released.
	Filter int
	// Offset is added to every sample: the receiver's fixed error (an
	// NMEA sentence that arrives 120 ms after the second it names needs
	// offset = 0.120 s).
	Offset time.Duration
	// Delay is the sample's delay, as for a network source (it widens the
	// source's interval in selection by Delay/2).
	Delay time.Duration
	// Precision is the dispersion every sample has at least.
	Precision time.Duration
	// Pulse marks a source whose samples give only the phase within the
	// second (a PPS edge): the integer second comes from the Lock source,
	// or from the system's own time when it is synchronized.
	Pulse bool
	// Stratum the samples claim; 0 for a reference clock.
	Stratum uint8
	// RefID names the source as its reference identifier.
	RefID uint32
	// MaxOff rejects samples whose reference time is further than this
	// from the local clock when the local clock is plausible (after
	// MinValidTime); 0 means DefaultMaxOff.
	MaxOff time.Duration
}

// DefaultMaxOff is the largest offset a reference clock may report when
// the local clock is plausible: a receiver whose date is years off
// (a GPS week-number rollover, a firmware bug) is ignored, not followed.
const DefaultMaxOff = 365 * 24 * time.Hour

// MinValidTime is the earliest time a reference clock may report: older
// dates come from receivers that lost their week number (1024-week
// rollover) or have no fix yet.
var MinValidTime = time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)

// Sample is one measurement of a reference clock: at the local clock
// reading Local, the reference read Ref.
//
// For a pulse (Config.Pulse, or a SOCK datagram with its pulse flag) only
// Ref - Local modulo one second counts: the edge marks a second boundary
// and another source says which second.
type Sample struct {
	Local time.Time
	Ref   time.Time
	Leap  sample.Leap
	// Precision of this sample when the clock says (SHM's precision
	// field); zero means the Config's.
	Precision time.Duration
	Pulse     bool
}

// Offset is Ref - Local.
func (s Sample) Offset() time.Duration { return s.Ref.Sub(s.Local) }

// Errors a sample can be refused with.
var (
	ErrTooOld      = errors.New("refclock: reference time before 2024 (no fix, or a week-number rollover)")
	ErrTooFar      = errors.New("refclock: reference time more than a year from the local clock")
	ErrNoSecond    = errors.New("refclock: pulse without a second: the lock source has no recent sample and the system is not synchronized")
	ErrLockFar     = errors.New("refclock: pulse more than 0.4 s from the lock source's second")
	ErrNotAPacket  = errors.New("refclock: a reference clock takes samples, not packets")
	ErrLeapUnknown = errors.New("refclock: reference clock is not synchronized (leap = 3)")
)

// Check refuses a sample whose reference time cannot be right.
func (c *Config) Check(s Sample) error {
	if s.Leap == sample.LeapUnsync {
		return ErrLeapUnknown
	}
	if s.Pulse {
		return nil
	}
	if s.Ref.Before(MinValidTime) {
		return ErrTooOld
	}
	maxOff := c.MaxOff
	if maxOff <= 0 {
		maxOff = DefaultMaxOff
	}
	if !s.Local.Before(MinValidTime) {
		if off := s.Ref.Sub(s.Local); off > maxOff || off < -maxOff {
			return ErrTooFar
		}
	}
	return nil
}

// PulseOffset gives a pulse its integer second: off is Ref - Local of the
// pulse (only its phase counts), lock the offset (reference - local) some
// other source measured near the same time. It returns the pulse's offset
// closest to lock, or ErrLockFar when the two disagree by more than 0.4 s
// within the second (the pulse and the lock source are not the same time).
func PulseOffset(off, lock time.Duration) (time.Duration, error) {
	phase := wrap(off)
	n := math.Round(float64(lock-phase) / float64(time.Second))
	got := phase + time.Duration(n)*time.Second
	if d := got - lock; d > 400*time.Millisecond || d < -400*time.Millisecond {
		return 0, ErrLockFar
	}
	return got, nil
}

// wrap brings d into [-0.5 s, 0.5 s).
func wrap(d time.Duration) time.Duration {
	d %= time.Second
	switch {
	case d < -time.Second/2:
		d += time.Second
	case d >= time.Second/2:
		d -= time.Second
	}
	return d
}

type point struct {
	time   time.Time // local (engine) time
	offset time.Duration
	disp   time.Duration
	leap   sample.Leap
}

// Source is one reference clock's poll state: the samples of the current
// poll, the reachability register (a bit per poll: did a sample arrive),
// the last released sample. Its methods mirror engine/ntp.Source's so
// that engine/system drives both alike; the times it is handed are the
// engine's local times.
type Source struct {
	cfg     Config
	next    time.Time
	reach   uint8
	polls   uint64
	valid   uint64
	pending []point
	last    sample.Sample
	jitter  time.Duration
	lastErr error
	reached bool
}

// NewSource returns a source whose first poll ends one poll interval
// after now.
func NewSource(cfg Config, now time.Time) *Source {
	cfg.Poll = min(max(cfg.Poll, MinPoll), MaxPoll)
	if cfg.Filter <= 0 {
		cfg.Filter = DefaultFilter
	}
	cfg.Filter = min(cfg.Filter, MaxFilter)
	if cfg.Delay <= 0 {
		cfg.Delay = DefaultDelay
	}
	if cfg.Precision <= 0 {
		cfg.Precision = DefaultPrecision
	}
	s := &Source{cfg: cfg}
	s.next = now.Add(s.PollInterval())
	return s
}

// RefConfig is the source's configuration (with defaults filled in).
func (s *Source) RefConfig() Config { return s.cfg }

// Config describes the poll as engine/ntp does: a fixed poll.
func (s *Source) Config() ntp.SourceConfig {
	return ntp.SourceConfig{MinPoll: s.cfg.Poll, MaxPoll: s.cfg.Poll}
}

// Poll is the poll exponent.
func (s *Source) Poll() int8 { return s.cfg.Poll }

// PollInterval is 2^Poll seconds.
func (s *Source) PollInterval() time.Duration {
	return time.Duration(math.Ldexp(float64(time.Second), int(s.cfg.Poll)))
}

// SetPoll does nothing: a reference clock's poll is what was configured.
func (s *Source) SetPoll(int8) {}

// Reach is the reachability register.
func (s *Source) Reach() uint8 { return s.reach }

// SetMaxRootDistance is part of the engine's source interface; a
// reference clock has no root distance to bound (it is stratum 0 and its
// own root), so a reload of [synchronization] max-distance leaves it be.
func (s *Source) SetMaxRootDistance(time.Duration) {}

// State is "init" before the first sample, then reachable or unreachable
// by the register.
func (s *Source) State() ntp.SourceState {
	switch {
	case !s.reached:
		if s.polls >= 8 {
			return ntp.StateUnreachable
		}
		return ntp.StateInit
	case s.reach == 0:
		return ntp.StateUnreachable
	}
	return ntp.StateReachable
}

// Jitter is the spread (RMS about the median) of the last released poll.
func (s *Source) Jitter() time.Duration { return s.jitter }

// Last is the last released sample.
func (s *Source) Last() sample.Sample { return s.last }

// Filtered is the last released sample.
func (s *Source) Filtered() (sample.Sample, bool) { return s.last, !s.last.Time.IsZero() }

// LastError is why the last sample was refused, nil if it was not.
func (s *Source) LastError() error { return s.lastErr }

// SetError records why a sample was refused.
func (s *Source) SetError(err error) { s.lastErr = err }

// Counts gives the polls ended and the samples released.
func (s *Source) Counts() (polls, released uint64) { return s.polls, s.valid }

// NextPoll is when the current poll ends.
func (s *Source) NextPoll() time.Time { return s.next }

// Burst does nothing: a reference clock sends when it sends.
func (s *Source) Burst(time.Time) {}

// SetTransmitTime does nothing (there is no request).
func (s *Source) SetTransmitTime(time.Time) {}

// MakeRequest sends nothing; a reference clock's polls end in EndPoll.
func (s *Source) MakeRequest(time.Time, uint64, []byte) int { return 0 }

// Receive refuses packets.
func (s *Source) Receive(time.Time, []byte) (sample.Sample, bool, error) {
	return sample.Sample{}, false, ErrNotAPacket
}

// LastExchange: a reference clock has no NTP exchange.
func (s *Source) LastExchange() (ntp.Exchange, bool) { return ntp.Exchange{}, false }

// Add collects a sample of the current poll: at engine time local the
// reference was off (reference - local, Config.Offset already added)
// ahead, with dispersion disp (at least Config.Precision). The newest
// Config.Filter samples are kept.
func (s *Source) Add(local time.Time, off, disp time.Duration, leap sample.Leap) {
	disp = max(disp, s.cfg.Precision)
	if len(s.pending) >= s.cfg.Filter {
		s.pending = slices.Delete(s.pending, 0, len(s.pending)-s.cfg.Filter+1)
	}
	s.pending = append(s.pending, point{time: local, offset: off, disp: disp, leap: leap})
	s.lastErr = nil
}

// Pending is how many samples the current poll has collected.
func (s *Source) Pending() int { return len(s.pending) }

// EndPoll ends the poll if it is due at now: it shifts the reachability
// register and, if samples arrived, releases their filtered sample
// (ok true). due is false when the poll has not ended yet.
func (s *Source) EndPoll(now time.Time) (smp sample.Sample, ok, due bool) {
	if s.next.IsZero() || now.Before(s.next) {
		return smp, false, false
	}
	s.polls++
	// The next boundary: one interval on, or from now after a long gap.
	s.next = s.next.Add(s.PollInterval())
	if !s.next.After(now) {
		s.next = now.Add(s.PollInterval())
	}
	s.reach <<= 1
	if len(s.pending) == 0 {
		return smp, false, true
	}
	smp, s.jitter = s.filter()
	s.pending = s.pending[:0]
	s.reach |= 1
	s.reached = true
	s.valid++
	s.last = smp
	return smp, true, true
}

// filter is chrony's median filter: sort by offset, drop the highest and
// lowest fifth, and average the rest; the time is the newest sample's, with
// the average offset carried to it at zero frequency error. The
// dispersion is the largest of the kept samples' plus their spread.
func (s *Source) filter() (sample.Sample, time.Duration) {
	ps := slices.Clone(s.pending)
	slices.SortFunc(ps, func(a, b point) int {
		switch {
		case a.offset < b.offset:
			return -1
		case a.offset > b.offset:
			return 1
		}
		return a.time.Compare(b.time)
	})
	n := len(ps)
	lo := n / 5
	keep := n - 2*lo
	kept := ps[lo : lo+keep]
	var sum, disp float64
	var newest time.Time
	leap := s.pending[len(s.pending)-1].leap
	for _, p := range kept {
		sum += float64(p.offset)
		disp = math.Max(disp, float64(p.disp))
		if p.time.After(newest) {
			newest = p.time
		}
	}
	mean := sum / float64(keep)
	var v float64
	for _, p := range kept {
		d := float64(p.offset) - mean
		v += d * d
	}
	jitter := time.Duration(math.Sqrt(v / float64(keep)))
	// Standard error of the mean on top of the worst precision.
	disp += math.Sqrt(v/float64(keep)) / math.Sqrt(float64(keep))
	return sample.Sample{
		Time:       newest,
		Offset:     time.Duration(mean),
		Delay:      s.cfg.Delay,
		Dispersion: time.Duration(disp),
		Leap:       leap,
		Stratum:    s.cfg.Stratum,
		RefID:      s.cfg.RefID,
	}, jitter
}

// Adjust corrects the collected samples for a change of the local clock
// (see engine/ntp.Source.Adjust).
func (s *Source) Adjust(at time.Time, offset time.Duration, freqPPM float64) {
	shift := func(t time.Time) time.Duration {
		return offset + time.Duration(freqPPM*1e-6*float64(t.Sub(at)))
	}
	for i := range s.pending {
		p := &s.pending[i]
		d := shift(p.time)
		p.offset -= d
		p.time = p.time.Add(d)
	}
	if !s.next.IsZero() {
		s.next = s.next.Add(shift(s.next))
	}
}

// ResetFilter forgets the samples of the current poll.
func (s *Source) ResetFilter() { s.pending = s.pending[:0] }

// String names the kind and reference id.
func (c Config) String() string {
	return fmt.Sprintf("%s refid %s poll %d", c.Kind, RefIDString(c.RefID), c.Poll)
}

// RefIDString is the reference id as text ("GPS").
func RefIDString(id uint32) string {
	b := []byte{byte(id >> 24), byte(id >> 16), byte(id >> 8), byte(id)}
	n := 0
	for n < 4 && b[n] != 0 {
		n++
	}
	return string(b[:n])
}
