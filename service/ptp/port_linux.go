package ptp

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"

	"gnomon.dev/gnomon/engine/clock"
	eptp "gnomon.dev/gnomon/engine/ptp"
)

// PortConfig is one PTP port as the daemon runs it.
type PortConfig struct {
	Name      string // for logs and views: the configured source or port
	Transport Options
	Engine    eptp.Config
	// Observe: never touch a real clock. The port disciplines a virtual
	// clock layered over the timestamping clock (the system clock for
	// software timestamps, the PHC for hardware ones), as ptp4l with
	// free_running would measure without steering.
	Observe bool
	// PHC is the hardware clock for hardware timestamping (nil for
	// software timestamps).
	PHC *PHC
	// Feed, if set, receives the port's samples for the system clock's
	// engine and the loss of its master (feed_linux.go), from Run's
	// goroutine.
	Feed func(Feed)
	// Follow, with a PHC, makes it follow the system clock while the
	// port is not a slave (phcfollow.go).
	Follow *FollowOptions
}

// Status is what views show of a running port.
type Status struct {
	Name      string
	Interface string
	Transport Kind
	Hardware  bool
	eptp.Status
	// Correction is how far the clock this port disciplines has been
	// corrected from the timestamping clock (observe mode: the system
	// clock's measured error against the grandmaster, minus the last
	// offset still to be corrected).
	Correction  time.Duration
	TxFallbacks uint64
	Updated     time.Time
	LastError   string
	// PHCFollow is the PHC's following of the system clock (nil unless
	// configured on a hardware port).
	PHCFollow *eptp.FollowStatus
}

// Port runs one engine/ptp clock over a transport. Run is its own owner
// loop (like one ptp4l); Status may be read from any goroutine.
type Port struct {
	cfg     PortConfig
	log     *slog.Logger
	tr      *Transport
	eng     *eptp.Clock
	clk     clock.Clock    // what the servo steers
	virtual *clock.Virtual // observe mode
	base    clock.Reader   // the timestamping clock
	status  atomic.Pointer[Status]
	lastLog map[string]time.Time
	lastErr string
	// feed_linux.go
	pending   Feed
	usable    bool
	lastPHC   time.Time
	baseSteps atomic.Int64
	// the engine's changes of the system clock's frequency under the
	// virtual clock (BaseFrequency), and the servo's own frequency
	baseMu      sync.Mutex
	baseChanges []baseChange
	baseFreqPPM float64
	servoPPM    float64
	// phcfollow.go, and the frequency last set on clk (ppm)
	follow *phcFollow
	clkPPM float64
}

var errNetDown = unix.ENETDOWN

type wall struct{}

func (wall) Now() time.Time { return time.Now().Round(0) }

// NewPort opens the transport and makes the engine port. The caller
// has resolved timestamping (ChooseTimestamping, EnableHardware, OpenPHC).
func NewPort(cfg PortConfig, log *slog.Logger) (*Port, error) {
	if log == nil {
		log = slog.Default()
	}
	tr, err := Open(cfg.Transport)
	if err != nil {
		return nil, err
	}
	p := &Port{cfg: cfg, log: log.With("ptp", cfg.Name), tr: tr, lastLog: map[string]time.Time{}}
	if cfg.PHC != nil {
		p.base = cfg.PHC
	} else {
		p.base = wall{}
	}
	switch {
	case cfg.Observe || cfg.PHC == nil:
		// Without a PHC the servo would steer the system clock, which
		// the NTP discipline owns: the port keeps its own virtual clock
		// over the system clock (docs/ptp.md).
		p.virtual = clock.NewVirtual(p.base)
		p.clk = p.virtual
	default:
		p.clk = cfg.PHC
	}
	if cfg.Engine.Identity == (eptp.ClockIdentity{}) {
		cfg.Engine.Identity = eptp.ClockIdentityFromMAC(tr.Interface().HardwareAddr)
		if cfg.Engine.Identity == (eptp.ClockIdentity{}) {
			tr.Close()
			return nil, fmt.Errorf("ptp: %s has no MAC address to derive the PTP clock identity from", cfg.Transport.Interface)
		}
	}
	cfg.Engine.Servo.Software = cfg.PHC == nil
	p.cfg = cfg
	eng, err := eptp.NewClock(cfg.Engine, p.clk.Now())
	if err != nil {
		tr.Close()
		return nil, err
	}
	p.eng = eng
	if cfg.PHC != nil && cfg.Follow != nil {
		p.follow = newPHCFollow(*cfg.Follow, cfg.PHC, p.clk, p.virtual, 0)
		p.follow.method = func() string { return cfg.PHC.Method }
		p.log.Info("the PHC follows the system clock while the port is not a slave", "step_threshold", cfg.Follow.StepThreshold)
	}
	p.publish()
	return p, nil
}

// Status is the newest published status.
func (p *Port) Status() *Status { return p.status.Load() }

func (p *Port) mapTime(raw time.Time) time.Time {
	if raw.IsZero() {
		return raw
	}
	if p.virtual != nil {
		return p.virtual.Map(raw)
	}
	return raw
}

// Run serves until ctx is done, then closes the transport.
func (p *Port) Run(ctx context.Context) error {
	defer p.tr.Close()
	hw := p.cfg.PHC != nil
	var pkts []Packet
	for ctx.Err() == nil {
		p.followBaseSteps()
		wait := 100 * time.Millisecond
		if next := p.eng.NextWakeup(); !next.IsZero() {
			wait = min(max(next.Sub(p.clk.Now()), 0), wait)
		}
		var err error
		pkts, err = p.tr.Receive(wait, pkts[:0])
		if err != nil {
			p.fail(err)
			return err
		}
		for _, pk := range pkts {
			rx := p.mapTime(pk.Stamps.Pick(hw))
			if pk.Event && rx.IsZero() {
				p.logLimited("nots", "event message without a kernel timestamp: using the time it was read")
			}
			if pk.From != nil {
				p.local(pk)
				continue
			}
			out, err := p.eng.Receive(p.clk.Now(), pk.Data, rx)
			if err != nil {
				p.logLimited("rx", "PTP message ignored", "err", err)
			}
			p.carry(out)
		}
		if next := p.eng.NextWakeup(); !next.IsZero() && !p.clk.Now().Before(next) {
			p.carry(p.eng.Wakeup(p.clk.Now()))
		}
		if p.cfg.PHC != nil {
			p.feedPHC(time.Now(), p.cfg.PHC)
			p.followSystem() // phcfollow.go
		}
		p.feedState()
		p.publish()
	}
	return nil
}

func (p *Port) fail(err error) {
	p.lastErr = err.Error()
	p.publish()
}

func (p *Port) logLimited(key, msg string, args ...any) {
	now := time.Now()
	if t, ok := p.lastLog[key]; ok && now.Sub(t) < time.Minute {
		return
	}
	p.lastLog[key] = now
	p.log.Warn(msg, args...)
}

// carry does what the engine asked, depth-first: transmit timestamps
// produce Follow_Ups, which are sent before the next message.
func (p *Port) carry(out *eptp.Output) {
	p.feedMeasurements(out)
	if out.Adjust != nil {
		a := *out.Adjust
		if a.Step != 0 {
			if err := p.clk.Step(a.Step); err != nil {
				p.logLimited("step", "cannot step the PTP clock", "err", err)
			} else {
				p.log.Info("stepped the PTP clock", "by", a.Step)
			}
		}
		ppm := max(-p.clk.MaxFrequencyPPM(), min(p.clk.MaxFrequencyPPM(), a.FreqPPB/1000))
		if p.cfg.PHC == nil && p.virtual != nil {
			p.servoPPM = ppm
			p.setVirtualFrequency() // feed_linux.go
		} else if err := p.clk.SetFrequency(ppm); err != nil {
			p.logLimited("freq", "cannot set the PTP clock's frequency", "err", err)
		} else {
			p.clkPPM = ppm
		}
	}
	for _, m := range out.Measurements {
		st := p.eng.Status()
		// The system clock's (or PHC's) own offset from the master, as
		// ptp4l with free_running reports it: the offset of the clock the
		// servo steers plus that clock's correction.
		var corr time.Duration
		if p.virtual != nil {
			corr = p.virtual.Correction(p.base.Now())
		}
		p.log.Debug("PTP measurement", "offset_ns", int64(m.Offset), "raw_offset_ns", int64(m.Offset+corr), "path_delay_ns", int64(m.PathDelay),
			"state", st.Port.State.String(), "servo", st.Servo.String(), "freq_ppb", st.FreqPPB,
			"grandmaster", st.Parent.GMIdentity.String(), "malformed", st.Counters.Malformed,
			"wrong_version", st.Counters.WrongVersion, "foreign_dropped", st.Counters.ForeignDropped,
			"rx_announce", st.Counters.Rx[eptp.MsgAnnounce], "foreign", st.ForeignMasters)
		if st.Default.SdoID>>8 == 1 { // gPTP and automotive (engine/ptp/gptp.go)
			l := st.GPTP
			p.log.Debug("gPTP link", "as_capable", l.AsCapable, "not_capable", l.NotCapable, "neighbor_rate_ratio", l.NeighborRateRatio,
				"neighbor_prop_delay_ns", int64(l.NeighborPropDelay), "rate_ratio", l.RateRatio, "lost_responses", l.LostTotal,
				"multiple_responses", l.MultipleResponses, "gm_time_base_indicator", l.GMTimeBaseIndicator,
				"sync_interval", st.Port.LogSyncInterval, "pdelay_interval", st.Port.LogMinPdelayReqInterval,
				"interval_requests_sent", l.IntervalRequestsSent)
		}
	}
	if out.StateChanged {
		st := p.eng.Status()
		p.log.Info("PTP port state", "state", st.Port.State.String(), "decision", st.Decision.String(), "grandmaster", st.Parent.GMIdentity.String())
	}
	sends := append([]eptp.Send(nil), out.Sends...)
	for _, s := range sends {
		tx, fallback, err := p.tr.Send(s.Data, s.Event, s.Peer, s.WantTimestamp)
		if err != nil {
			p.logLimited("tx", "cannot send", "type", s.Type.String(), "err", err)
			if errors.Is(err, errNetDown) {
				p.carry(p.eng.Fault(p.clk.Now()))
			}
			continue
		}
		if fallback {
			p.logLimited("txts", "no transmit timestamp from the kernel: using the send time", "type", s.Type.String())
		}
		if s.WantTimestamp {
			p.carry(p.eng.TxTimestamp(p.clk.Now(), s.Type, s.Seq, p.mapTime(tx.Pick(p.cfg.PHC != nil))))
		}
	}
}

func (p *Port) publish() {
	st := &Status{Name: p.cfg.Name, Interface: p.cfg.Transport.Interface, Transport: p.cfg.Transport.Kind,
		Hardware: p.cfg.PHC != nil, Status: p.eng.Status(), TxFallbacks: p.tr.TxFallbacks, Updated: time.Now(), LastError: p.lastErr}
	if p.virtual != nil {
		st.Correction = p.virtual.Correction(p.base.Now())
	}
	if p.follow != nil {
		st.PHCFollow = p.follow.status()
	}
	p.status.Store(st)
}

// local answers a management request from the local socket: only
// management messages, answered to the sender, never sent on the network.
func (p *Port) local(pk Packet) {
	h, err := eptp.ParseHeader(pk.Data)
	if err != nil || h.Type != eptp.MsgManagement {
		p.logLimited("uds", "not a management message on the management socket", "err", err)
		return
	}
	out, err := p.eng.Receive(p.clk.Now(), pk.Data, time.Time{})
	if err != nil {
		p.logLimited("uds", "management request ignored", "err", err)
		return
	}
	for _, s := range out.Sends {
		if s.Type != eptp.MsgManagement {
			continue
		}
		if err := p.tr.Reply(pk.From, s.Data); err != nil {
			p.logLimited("udsreply", "cannot answer on the management socket", "err", err)
		}
	}
}
