// Package daemon is gnomond's owner loop: it turns the configuration into
// an engine, resolves and polls sources over real sockets, serves NTP from
// the engine's snapshot, and talks to systemd. One goroutine, the owner,
// holds the engine; socket readers, resolvers and server workers only send
// it events or read the snapshot it publishes.
package daemon

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"gnomon.dev/gnomon/engine/clock"
	"gnomon.dev/gnomon/engine/discipline"
	"gnomon.dev/gnomon/engine/nts"
	"gnomon.dev/gnomon/engine/system"
	"gnomon.dev/gnomon/service/config"
	"gnomon.dev/gnomon/service/netio"
	"gnomon.dev/gnomon/service/ntsio"
	"gnomon.dev/gnomon/service/privdrop"
	ptpsvc "gnomon.dev/gnomon/service/ptp"
	"gnomon.dev/gnomon/service/sd"
	"gnomon.dev/gnomon/service/seccomp"
	"gnomon.dev/gnomon/service/sysclock"
)

// Options is what main hands the daemon.
type Options struct {
	Config *config.Config
	Logger *slog.Logger
	// Listeners are sockets passed by systemd, by FileDescriptorName.
	Listeners map[string][]*os.File
	// Notify sends sd_notify states (sd.Notify in production).
	Notify func(state string) error
	// Resolver resolves source names (net.DefaultResolver when nil).
	Resolver *net.Resolver
	// User is who to become after binding, when started as root without
	// systemd's User= (the packaged user is "gnomon"); "" stays as is.
	User string
	// StateDir keeps state across restarts (the SetNTP setting); "" keeps
	// nothing.
	StateDir string
	// PoolReplaceAfter is how long a pool member may stay unreachable or a
	// falseticker before it is replaced; zero is the default, 8 minutes.
	// Pools are checked every quarter of it, and at least once a minute.
	// Tests shorten it; there is no configuration key.
	PoolReplaceAfter time.Duration
}

// cryptoRand is the engine's source of unpredictable request cookies.
type cryptoRand struct{}

func (cryptoRand) Uint64() uint64 {
	var b [8]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic("gnomond: no randomness: " + err.Error())
	}
	return binary.LittleEndian.Uint64(b[:])
}

// wallReader reads CLOCK_REALTIME without Go's monotonic reading, so the
// engine's arithmetic is on wall time only.
type wallReader struct{}

func (wallReader) Now() time.Time { return time.Now().Round(0) }

// event is what goroutines send the owner.
type event struct {
	kind  int
	src   system.ID
	data  []byte
	at    time.Time // kernel or user-space timestamp, a CLOCK_REALTIME reading
	err   error
	spec  *spec
	addrs []netip.AddrPort
	txID  uint32
	call  func()
	ke    *ntsio.Result // NTS key exchange results, with evResolved
}

const (
	evPacket = iota
	evTxStamp
	evReadErr
	evResolved
	evCall
)

type liveSource struct {
	spec    *spec
	addr    netip.AddrPort
	conn    *netio.ClientConn
	cancel  context.CancelFunc
	lastID  uint32
	added   time.Time
	session *nts.ClientSession // NTS sources only
}

// Daemon is one running instance.
type Daemon struct {
	opts    Options
	cfg     *config.Config
	log     *slog.Logger
	clk     clock.Clock
	virtual *clock.Virtual // observe mode only
	eng     *system.System
	mono0   time.Time

	events  chan event
	sources map[system.ID]*liveSource
	snap    atomic.Pointer[system.Snapshot]
	limiter *sd.RateLimited
	wg      sync.WaitGroup
	status  string
	logged  string

	specs      []*spec
	nextSpec   int
	ntpOff     bool
	ntpOffFlag atomic.Bool
	runtime    atomic.Pointer[[]string]
	cfgServers atomic.Pointer[[]string]
	changed    chan struct{}
	changeMu   sync.Mutex
	ctx        context.Context
	nts        *ntsServer
	ptp        []*ptpsvc.Port // PTP ports (ptp.go)
	csptp      csptpState     // client-server PTP (csptp.go)
}

// New prepares the daemon: the clock and the engine.
func New(opts Options) (*Daemon, error) {
	cfg := opts.Config
	d := &Daemon{opts: opts, cfg: cfg, log: opts.Logger, events: make(chan event, 256),
		sources: map[system.ID]*liveSource{}, mono0: time.Now(),
		limiter: sd.NewRateLimited(time.Minute, 1024)}
	if d.log == nil {
		d.log = slog.Default()
	}
	if d.opts.Notify == nil {
		d.opts.Notify = func(string) error { return nil }
	}
	initFreq := 0.0
	initSD := 0.0
	if cfg.Clock.DriftFile != "" {
		f, skew, err := sysclock.ReadDrift(cfg.Clock.DriftFile)
		switch {
		case err == nil:
			initFreq, initSD = f, max(skew, 1)
			d.log.Info("read drift file", "path", cfg.Clock.DriftFile, "freq_ppm", f)
		case errors.Is(err, os.ErrNotExist):
		default:
			d.log.Warn("ignoring drift file", "err", err)
		}
	}
	switch cfg.Clock.Mode {
	case config.ClockSystem:
		sys, err := sysclock.NewSystem()
		if err != nil {
			return nil, fmt.Errorf("system clock: %w", err)
		}
		d.clk = sys
	default:
		d.virtual = clock.NewVirtual(wallReader{})
		d.clk = d.virtual
		initFreq, initSD = 0, 0 // observe: the virtual clock starts from nothing
	}
	eng, err := system.New(system.Config{
		Discipline: discipline.Config{
			StepThreshold:  cfg.Clock.StepThreshold,
			StepLimit:      cfg.Clock.StepLimit,
			PanicThreshold: cfg.Clock.PanicThreshold,
			MaxFreqPPM:     cfg.Clock.MaxFrequencyPPM,
			InitialFreqPPM: initFreq,
			InitialFreqSD:  initSD,
		},
		MinSources:  cfg.Synchronization.MinimumAgreeingSources,
		MaxDistance: cfg.Synchronization.MaxDistance,
		Accuracy:    cfg.Synchronization.Accuracy,
		Random:      cryptoRand{},
	}, d.clk)
	if err != nil {
		return nil, err
	}
	d.eng = eng
	sn := eng.Snapshot(d.clk.Now())
	d.snap.Store(&sn)
	d.changed = make(chan struct{})
	d.publishConfigServers()
	if f := d.ntpStateFile(); f != "" {
		if _, err := os.Stat(f); err == nil {
			d.ntpOff = true
			d.ntpOffFlag.Store(true)
			d.log.Info("time synchronization is disabled (SetNTP)", "state", f)
		}
	}
	return d, nil
}

// dropPrivileges becomes d.opts.User once every socket is bound, keeping
// only CAP_SYS_TIME (and not even that in observe mode).
func (d *Daemon) dropPrivileges() {
	if d.opts.User == "" || os.Geteuid() != 0 {
		return
	}
	var keep []privdrop.Cap
	if d.virtual == nil {
		keep = append(keep, privdrop.CapSysTime)
	}
	if err := privdrop.Drop(d.opts.User, keep); err != nil {
		d.log.Warn("still running as root: cannot drop privileges", "user", d.opts.User, "err", err)
		return
	}
	d.log.Info("dropped privileges", "user", d.opts.User, "kept", fmt.Sprint(keep))
}

// now is the engine's Instant: the disciplined clock's reading and the
// monotonic time since start.
func (d *Daemon) now() system.Instant {
	t := time.Now()
	return system.Instant{Wall: d.mapRaw(t.Round(0)), Mono: t.Sub(d.mono0)}
}

// mapRaw turns a CLOCK_REALTIME reading (a kernel timestamp) into the
// disciplined clock's reading: itself in system mode, the virtual clock's
// in observe mode.
func (d *Daemon) mapRaw(t time.Time) time.Time {
	if d.virtual != nil {
		return d.virtual.Map(t)
	}
	return t
}

// Snapshot is the latest published engine snapshot.
func (d *Daemon) Snapshot() *system.Snapshot { return d.snap.Load() }

// Run serves until ctx is cancelled.
func (d *Daemon) Run(ctx context.Context) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	defer d.wg.Wait()
	defer d.closeSources()

	if err := d.startNTS(ctx); err != nil {
		return err
	}
	servers, err := d.startServers(ctx)
	if err != nil {
		return err
	}
	defer func() {
		for _, s := range servers {
			s.Close()
		}
	}()
	if err := d.startPTP(ctx); err != nil {
		return err
	}
	if err := d.startCSPTP(ctx); err != nil {
		return err
	}
	d.dropPrivileges()
	if d.cfg.Security.Seccomp {
		// After the privilege drop: the filter refuses setuid and capset.
		if err := seccomp.Install(seccomp.Default); err != nil {
			d.log.Warn("seccomp filter not installed", "err", err)
		} else {
			d.log.Debug("seccomp filter installed")
		}
	}
	d.ctx = ctx
	for _, src := range d.cfg.Sources {
		if src.Mode.NotNTP() {
			continue // ptp.go, csptp.go
		}
		d.addSpec(ctx, src, originConfig)
	}
	d.publish()
	_ = d.opts.Notify("READY=1\n" + sd.Status(d.statusLine()))
	d.log.Info("gnomond started", "clock", d.cfg.Clock.Mode, "sources", len(d.cfg.Sources), "servers", len(servers))

	var watchdog <-chan time.Time
	if iv, err := sd.WatchdogInterval(); err == nil && iv > 0 {
		t := time.NewTicker(iv / 2)
		defer t.Stop()
		watchdog = t.C
	}
	driftTick := time.NewTicker(time.Hour)
	defer driftTick.Stop()
	maint := time.NewTicker(d.maintenanceEvery())
	defer maint.Stop()

	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	var out []system.Transmit
	for {
		out = d.eng.Wakeup(d.now(), out[:0])
		if !d.ntpOff {
			d.transmit(out)
			d.checkSessions(ctx)
		}
		d.publish()
		timer.Reset(d.untilWakeup())
		select {
		case <-ctx.Done():
			d.writeDrift()
			_ = d.opts.Notify("STOPPING=1")
			d.log.Info("gnomond stopping")
			return nil
		case <-timer.C:
		case ev := <-d.events:
			d.handle(ctx, ev)
		drain:
			for {
				select {
				case ev := <-d.events:
					d.handle(ctx, ev)
				default:
					break drain
				}
			}
		case <-watchdog:
			_ = d.opts.Notify("WATCHDOG=1")
		case <-driftTick.C:
			d.writeDrift()
		case <-maint.C:
			d.maintainPools(ctx)
		}
	}
}

func (d *Daemon) untilWakeup() time.Duration {
	next := d.eng.NextWakeup()
	if next.IsZero() {
		return time.Minute
	}
	wait := next.Sub(d.clk.Now())
	return min(max(wait, time.Millisecond), time.Minute)
}

func (d *Daemon) transmit(out []system.Transmit) {
	for _, tx := range out {
		ls := d.sources[tx.Source]
		if ls == nil || ls.conn == nil {
			continue
		}
		sent, id, err := ls.conn.Send(tx.Data)
		if err != nil {
			d.logLimited("send:"+ls.addr.String(), "cannot send to source", "source", ls.addr, "err", err)
			continue
		}
		ls.lastID = id
		d.eng.Sent(tx.Source, d.mapRaw(sent.Round(0)))
	}
}

func (d *Daemon) handle(ctx context.Context, ev event) {
	switch ev.kind {
	case evPacket:
		if err := d.eng.Receive(ev.src, d.now(), d.mapRaw(ev.at), ev.data); err != nil {
			if ls := d.sources[ev.src]; ls != nil {
				d.logLimited("rx:"+ls.addr.String(), "reply not used", "source", ls.addr, "err", err)
			}
		}
	case evTxStamp:
		if ls := d.sources[ev.src]; ls != nil && ls.lastID == ev.txID {
			d.eng.Sent(ev.src, d.mapRaw(ev.at))
		}
	case evReadErr:
		if ls := d.sources[ev.src]; ls != nil {
			d.logLimited("rxerr:"+ls.addr.String(), "source socket error", "source", ls.addr, "err", ev.err)
		}
	case evResolved:
		d.addResolved(ctx, ev)
	case evCall:
		ev.call()
	}
}

func (d *Daemon) logLimited(key, msg string, args ...any) {
	d.limiter.Log(context.Background(), d.log, time.Now(), slog.LevelWarn, key, msg, args...)
}

// publish stores a fresh snapshot for the server workers and views, and
// updates systemd's status line when it changed.
func (d *Daemon) publish() {
	sn := d.eng.Snapshot(d.clk.Now())
	d.addPTPViews(&sn)
	d.addCSPTPViews(&sn)
	d.snap.Store(&sn)
	d.changeMu.Lock()
	close(d.changed)
	d.changed = make(chan struct{})
	d.changeMu.Unlock()
	line := d.statusLine()
	if line != d.status {
		d.status = line
		_ = d.opts.Notify(sd.Status(line))
	}
	// The log gets state changes only, not every new offset.
	key := string(sn.State) + "/" + sn.PeerName
	for _, s := range sn.Sources {
		if s.ID == sn.SystemPeer {
			key += "/" + s.Address
		}
	}
	if key != d.logged {
		d.logged = key
		d.log.Info(line, "state", sn.State)
	}
}

// statusLine is the one human line of STATUS=.
func (d *Daemon) statusLine() string {
	sn := d.snap.Load()
	switch sn.State {
	case system.StateSynchronized, system.StateHoldover:
		name := sn.PeerName
		for _, s := range sn.Sources {
			if s.ID == sn.SystemPeer {
				name = s.Address
			}
		}
		hold := ""
		if sn.State == system.StateHoldover {
			hold = " (holdover)"
		}
		line := fmt.Sprintf("synchronized to %s, stratum %d, offset %s%s", name, sn.Stratum, fmtOffset(sn.LastOffset), hold)
		if d.virtual != nil {
			// Observe mode: what matters is how far the untouched system
			// clock is from the time the engine keeps.
			c := d.virtual.Correction(time.Now().Round(0))
			dir := "behind"
			if c < 0 {
				dir, c = "ahead", -c
			}
			line += fmt.Sprintf("; system clock %s %s (observe mode)", fmtOffset(c)[1:], dir)
		}
		return line
	case system.StatePanic:
		return "not synchronized: " + sn.Panic
	}
	return fmt.Sprintf("not synchronized (%d sources)", len(sn.Sources))
}

func fmtOffset(d time.Duration) string {
	sign := "+"
	if d < 0 {
		sign, d = "-", -d
	}
	switch {
	case d < time.Millisecond:
		return fmt.Sprintf("%s%d µs", sign, d.Microseconds())
	case d < time.Second:
		return fmt.Sprintf("%s%.3f ms", sign, float64(d)/1e6)
	}
	return fmt.Sprintf("%s%.3f s", sign, d.Seconds())
}

func (d *Daemon) writeDrift() {
	if d.cfg.Clock.DriftFile == "" || d.virtual != nil {
		return
	}
	sn := d.snap.Load()
	if !sn.Synchronized {
		return
	}
	if err := sysclock.WriteDrift(d.cfg.Clock.DriftFile, sn.FreqPPM, sn.FreqSDPPM); err != nil {
		d.logLimited("drift", "cannot write drift file", "err", err)
	}
}

// RefID is how our server names a source (RFC 5905 7.3): the IPv4 address,
// or for IPv6 the first four bytes of the MD5 of the address.
func RefID(a netip.Addr) uint32 {
	if a.Is4() {
		b := a.As4()
		return binary.BigEndian.Uint32(b[:])
	}
	return refID6(a)
}
