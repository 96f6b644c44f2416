package system

import (
	"errors"
	"fmt"
	"time"

	"gnomon.dev/gnomon/engine/ntp"
	"gnomon.dev/gnomon/engine/refclock"
	"gnomon.dev/gnomon/engine/sample"
	"gnomon.dev/gnomon/engine/selection"
	"gnomon.dev/gnomon/engine/stats"
)

// protocol is what the coordinator needs of a source's protocol state: an
// NTP association (*ntp.Source) or a reference clock's poll
// (*refclock.Source).
type protocol interface {
	Config() ntp.SourceConfig
	Poll() int8
	PollInterval() time.Duration
	SetPoll(int8)
	Reach() uint8
	State() ntp.SourceState
	Jitter() time.Duration
	Last() sample.Sample
	LastError() error
	Counts() (sent, valid uint64)
	NextPoll() time.Time
	Burst(now time.Time)
	MakeRequest(now time.Time, rnd uint64, b []byte) int
	SetTransmitTime(t time.Time)
	Receive(rx time.Time, b []byte) (sample.Sample, bool, error)
	Adjust(at time.Time, offset time.Duration, freqPPM float64)
	ResetFilter()
	LastExchange() (ntp.Exchange, bool)
	Filtered() (sample.Sample, bool)
	SetMaxRootDistance(time.Duration)
}

var (
	_ protocol = (*ntp.Source)(nil)
	_ protocol = (*refclock.Source)(nil)
)

// RefclockConfig is a reference clock's sampling, besides its
// SourceConfig.
type RefclockConfig struct {
	Clock refclock.Config
	// Lock names (SourceConfig.Name) the source that gives a pulse its
	// integer second, like chrony's lock; "" uses the system's own time
	// once it is synchronized.
	Lock string
}

// RefclockState is a reference clock as the views show it.
type RefclockState struct {
	// Receiver is what the receiver (gpsd) last said; zero for
	// the other kinds.
	Receiver refclock.Receiver
	// Rejected counts samples the engine refused (years off, no second
	// for a pulse, leap 3), besides Receiver.Ignored.
	Rejected   uint64
	LastReject string
	// Ignored is Receiver.Ignored + Rejected; LastIgnored says why the
	// newest of them was not used.
	Ignored     uint64
	LastIgnored string
	// Pending is how many samples the current poll has collected.
	Pending int
}

type refState struct {
	cfg   RefclockConfig
	clk   *refclock.Source
	state RefclockState
}

// AddRefclock adds a reference clock. Its samples come through
// RefclockSample; every poll interval their median becomes one sample.
func (s *System) AddRefclock(cfg SourceConfig, rc RefclockConfig, now Instant) ID {
	s.observe(now)
	cooked := s.disc.Cook(now.Wall)
	if rc.Clock.RefID == 0 {
		rc.Clock.RefID = cfg.RefID
	}
	clk := refclock.NewSource(rc.Clock, cooked)
	src := &source{
		id:    s.nextID,
		cfg:   cfg,
		ntp:   clk,
		ref:   &refState{cfg: rc, clk: clk},
		stats: stats.New(64),
		state: selection.StateNone,
	}
	s.nextID++
	s.sources = append(s.sources, src)
	return src.id
}

// ErrNotRefclock is RefclockSample's answer for a source that is not a
// reference clock.
var ErrNotRefclock = errors.New("system: not a reference clock")

// RefclockSample hands a reference clock's sample to its current poll.
// smp.Local is a clock reading (as the daemon maps kernel timestamps).
// The error says why the sample was refused; the daemon logs it
// (rate-limited), and it is counted in the source's RefclockState.
func (s *System) RefclockSample(id ID, now Instant, smp refclock.Sample) error {
	s.observe(now)
	src := s.find(id)
	if src == nil {
		return fmt.Errorf("system: no source %d", id)
	}
	rs := src.ref
	if rs == nil {
		return ErrNotRefclock
	}
	off, err := s.refclockOffset(src, smp)
	if err != nil {
		rs.state.Rejected++
		rs.state.LastReject = err.Error()
		rs.state.LastIgnored = err.Error()
		rs.clk.SetError(err)
		return err
	}
	rs.clk.Add(s.disc.Cook(smp.Local), off, smp.Precision, smp.Leap)
	return nil
}

func (s *System) refclockOffset(src *source, smp refclock.Sample) (time.Duration, error) {
	rs := src.ref
	if err := rs.cfg.Clock.Check(smp); err != nil {
		return 0, err
	}
	local := s.disc.Cook(smp.Local)
	off := smp.Ref.Sub(local)
	if smp.Pulse || rs.cfg.Clock.Pulse {
		lock, ok := s.lockOffset(src, local)
		if !ok {
			return 0, refclock.ErrNoSecond
		}
		var err error
		if off, err = refclock.PulseOffset(off, lock); err != nil {
			return 0, err
		}
	}
	return off + rs.cfg.Clock.Offset, nil
}

// lockOffset is the offset (reference - engine time) that gives a pulse at
// local its second: the lock source's current estimate, if it is recent,
// or zero when the system is synchronized and there is no lock source.
func (s *System) lockOffset(src *source, local time.Time) (time.Duration, bool) {
	name := src.ref.cfg.Lock
	if name == "" {
		return 0, s.synced
	}
	for _, l := range s.sources {
		if l == src || l.cfg.Name != name {
			continue
		}
		// The estimate, not the last sample: it follows the clock's
		// steps and slews.
		e, ok := l.stats.Estimate(local)
		if !ok || l.ntp.Reach() == 0 {
			return 0, false
		}
		maxAge := max(4*l.ntp.PollInterval(), 64*time.Second)
		if age := local.Sub(e.Last); age > maxAge || age < -maxAge {
			return 0, false
		}
		return time.Duration(e.Offset * 1e9), true
	}
	return 0, false
}

// SetReceiver records what a reference clock's receiver says (gpsd's fix
// mode, satellites), for the snapshot.
func (s *System) SetReceiver(id ID, r refclock.Receiver) {
	if src := s.find(id); src != nil && src.ref != nil {
		st := &src.ref.state
		if r.Ignored != st.Receiver.Ignored && r.LastIgnored != "" {
			st.LastIgnored = r.LastIgnored
		}
		st.Receiver = r
	}
}

// endRefclockPoll ends a reference clock's poll when it is due and feeds
// the filtered sample on, as Receive does for an NTP reply.
func (s *System) endRefclockPoll(src *source, cooked, raw time.Time) {
	smp, ok, due := src.ref.clk.EndPoll(cooked)
	if !due {
		return
	}
	if !ok {
		if src.ntp.State() == ntp.StateUnreachable {
			src.hasEst = false
		}
		return
	}
	src.last = smp
	src.stats.Add(stats.Point{
		Time:   smp.Time,
		Offset: smp.Offset.Seconds(),
		Delay:  smp.Delay.Seconds(),
		Disp:   smp.Dispersion.Seconds(),
	})
	s.update(raw)
	s.adaptPoll(src)
}

// refclockSnapshot is the reference clock's part of a SourceSnapshot.
func (src *source) refclockSnapshot() *RefclockState {
	if src.ref == nil {
		return nil
	}
	st := src.ref.state
	st.Pending = src.ref.clk.Pending()
	st.Ignored = st.Receiver.Ignored + st.Rejected
	return &st
}
