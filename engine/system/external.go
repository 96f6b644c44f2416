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

// External sources are sources whose measurements are made outside the
// engine, by a protocol that runs on its own: a PTP port (engine/ptp,
// driven by the daemon's port goroutine) or a PHC that PTP disciplines
// (phc2sys in one process). Like a reference clock, they hand samples in;
// unlike one, each sample brings its own delay, stratum and leap flags
// (a PTP path delay, the grandmaster's class and distance), and the
// protocol says when its master is gone (ExternalLost), so that the
// selection falls back to the other sources at once instead of after
// eight empty polls.
//
// The samples of one poll interval are reduced to one (the trimmed mean
// of refclock.Source), which goes through the same regression,
// selection and discipline as an NTP reply: see docs/accuracy.md's PTP
// section for why the regression, not engine/ptp's PI servo, steers the
// system clock.

// DefaultExternalPoll is an external source's default poll: 2 s, two
// Syncs at PTP's default rate.
const DefaultExternalPoll int8 = 1

// ExternalConfig is how an external source's samples are reduced.
type ExternalConfig struct {
	// Poll is the log2 seconds over which samples are reduced to one
	// (0..10, clamped; DefaultExternalPoll is what the daemon uses).
	Poll int8
	// Filter bounds the samples kept per poll (refclock's default 64).
	Filter int
	// Precision is the least dispersion of a sample (default 100 ns).
	Precision time.Duration
}

// ExternalSample is one measurement of an external source.
type ExternalSample struct {
	// Local is a clock reading (as the daemon maps kernel timestamps)
	// and Ref what the reference read at the same moment.
	Local time.Time
	Ref   time.Time
	// Delay is the round trip to the reference (for PTP twice the mean
	// path delay), Dispersion the measurement's own error bound.
	Delay, Dispersion time.Duration
	// RootDelay and RootDispersion are the reference's own distance
	// from its primary reference, if known.
	RootDelay, RootDispersion time.Duration
	// Stratum is the reference's stratum, as an NTP server's would be
	// (0 for a reference clock; PTPStratum maps a grandmaster).
	Stratum uint8
	Leap    sample.Leap
}

// extSource adapts a refclock.Source (the poll-interval reduction) to
// samples that carry their own delay and stratum, and to a master that
// can vanish.
type extSource struct {
	*refclock.Source
	lost      bool
	lostWhy   string
	delay     time.Duration // smallest delay of the current poll
	rootDelay time.Duration
	rootDisp  time.Duration
	stratum   uint8
	last      sample.Sample
}

var _ protocol = (*extSource)(nil)

func (e *extSource) Reach() uint8 {
	if e.lost {
		return 0
	}
	return e.Source.Reach()
}

func (e *extSource) State() ntp.SourceState {
	if e.lost {
		return ntp.StateUnreachable
	}
	return e.Source.State()
}

func (e *extSource) Last() sample.Sample { return e.last }

func (e *extSource) Filtered() (sample.Sample, bool) { return e.last, !e.last.Time.IsZero() }

func (e *extSource) LastError() error {
	if e.lost {
		return errors.New(e.lostWhy)
	}
	return e.Source.LastError()
}

// AddExternal adds an external source. Its samples come through
// ExternalSample; every poll interval they become one sample.
func (s *System) AddExternal(cfg SourceConfig, ec ExternalConfig, now Instant) ID {
	s.observe(now)
	if ec.Precision <= 0 {
		ec.Precision = s.cfg.LocalPrecision
	}
	clk := refclock.NewSource(refclock.Config{Kind: cfg.Kind, Poll: ec.Poll, Filter: ec.Filter,
		Precision: ec.Precision, RefID: cfg.RefID}, s.disc.Cook(now.Wall))
	src := &source{
		id:    s.nextID,
		cfg:   cfg,
		ext:   &extSource{Source: clk},
		stats: stats.New(64),
		state: selection.StateNone,
	}
	src.ntp = src.ext
	s.nextID++
	s.sources = append(s.sources, src)
	return src.id
}

// ErrNotExternal is ExternalSample's answer for a source that is not an
// external one.
var ErrNotExternal = errors.New("system: not an external source")

// ExternalSample hands an external source's sample to its current poll.
// The error says why it was refused (leap 3, a reference years off).
func (s *System) ExternalSample(id ID, now Instant, smp ExternalSample) error {
	s.observe(now)
	src := s.find(id)
	if src == nil {
		return fmt.Errorf("system: no source %d", id)
	}
	e := src.ext
	if e == nil {
		return ErrNotExternal
	}
	check := refclock.Config{}
	if err := check.Check(refclock.Sample{Local: smp.Local, Ref: smp.Ref, Leap: smp.Leap}); err != nil {
		e.SetError(err)
		return err
	}
	local := s.disc.Cook(smp.Local)
	if e.Pending() == 0 || smp.Delay < e.delay {
		e.delay = smp.Delay
	}
	e.rootDelay, e.rootDisp, e.stratum = smp.RootDelay, smp.RootDispersion, smp.Stratum
	e.lost, e.lostWhy = false, ""
	e.Add(local, smp.Ref.Sub(local), smp.Dispersion, smp.Leap)
	return nil
}

// ExternalLost says an external source's reference is gone (a PTP
// announce receipt timeout, the port leaving SLAVE): it stops being a
// candidate now, what it collected is dropped, and if other sources have
// estimates the selection runs again at once, so that the clock falls
// back to them. With no other source the clock goes into holdover as
// when NTP sources stop answering.
func (s *System) ExternalLost(id ID, now Instant, why string) {
	s.observe(now)
	src := s.find(id)
	if src == nil || src.ext == nil || src.ext.lost {
		return
	}
	e := src.ext
	e.lost, e.lostWhy = true, why
	e.ResetFilter()
	src.stats.Reset()
	src.hasEst = false
	if s.peer != src {
		return
	}
	for _, o := range s.sources {
		if o != src && o.stats.Len() > 0 && o.ntp.Reach() != 0 {
			s.update(now.Wall)
			return
		}
	}
}

// endExternalPoll ends an external source's poll when it is due and feeds
// the reduced sample on, as Receive does for an NTP reply.
func (s *System) endExternalPoll(src *source, cooked, raw time.Time) {
	e := src.ext
	smp, ok, due := e.EndPoll(cooked)
	if !due {
		return
	}
	if !ok || e.lost {
		if e.State() == ntp.StateUnreachable {
			src.hasEst = false
		}
		return
	}
	smp.Delay = max(e.delay, time.Nanosecond)
	smp.RootDelay, smp.RootDispersion, smp.Stratum = e.rootDelay, e.rootDisp, e.stratum
	e.last = smp
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

// PTPStratum is the stratum a PTP source is given, as an NTP server's:
// a grandmaster locked to a primary reference (clockClass 6, or 13 for an
// application-specific one) or in holdover within its specification (7,
// 14) counts as a reference clock, stratum 0, and each clock between it
// and us (stepsRemoved, 1 for a direct slave) adds one; any other
// grandmaster (degraded, 52..193, or the default 248 of a free-running
// one) counts as a local clock at chrony's default `local stratum` 10.
func PTPStratum(clockClass uint8, stepsRemoved uint16) uint8 {
	hops := int(stepsRemoved) - 1
	if hops < 0 {
		hops = 0
	}
	base := 10
	switch clockClass {
	case 6, 7, 13, 14:
		base = 0
	}
	return uint8(min(base+hops, 15))
}
