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
	"runtime"
	"strings"
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
	// Notify sends sd_notify states (sd.Notify in production, when
	// there is a service manager). Nil: none, and the STATUS= line is
	// not formatted on every sample.
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
	// KeySaveRetry is how often NTS master keys that could not be saved
	// are saved again (0: every 30 s). Tests shorten it.
	KeySaveRetry time.Duration
	// Observe is --observe, or the observe mode gnomond fell back to for
	// want of CAP_SYS_TIME: observe mode whatever the file says, on
	// reloads too (a reload cannot give the process the capability).
	Observe bool
	// LogLevel is the level the logger was made with; a reload sets it
	// to [log] level unless LogLevelFixed (--log-level was given).
	LogLevel      *slog.LevelVar
	LogLevelFixed bool
	// ObserveReason says why the clock mode is observe ("--observe given",
	// "the process lacks CAP_SYS_TIME"); "" in system mode. ObserveUnasked
	// marks an observe mode nobody asked for: the STATUS= line says so.
	ObserveReason  string
	ObserveUnasked bool
	// Adjtimex replaces the adjtimex system call of the system clock (for
	// tests against a fake kernel); nil is the real one.
	Adjtimex sysclock.AdjtimexFunc
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
	kern  bool      // at is the kernel's
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
	lastErr string             // the last socket error, until a reply is used
	ctr     sourceCounters     // counters.go
}

// Daemon is one running instance.
type Daemon struct {
	opts    Options
	cfg     *config.Config
	log     *slog.Logger
	clk     clock.Clock
	virtual *clock.Virtual                // observe mode only
	vmap    atomic.Pointer[clock.Mapping] // virtual's correction, for every goroutine
	// wireTrace, when GNOMON_ENGINE_TRACE is set, records each source
	// datagram's raw times (trace.go); owner goroutine only.
	wireTrace func(kind string, src system.ID, at time.Time, kernel bool, pkt []byte)
	eng       *system.System
	mono0     time.Time

	events  chan event
	sources map[system.ID]*liveSource
	snap    atomic.Pointer[system.Snapshot]
	limiter *sd.RateLimited
	wg      sync.WaitGroup
	status  string
	logged  loggedState
	// statusLive: Options.Notify was given, so STATUS= lines are sent.
	statusLive bool
	// srcState is each source's protocol state last logged.
	srcState map[system.ID]string
	steps    int  // steps logged so far
	trimmed  bool // trimMemory ran (trim.go)

	specs      []*spec
	nextSpec   int
	ntpOff     bool
	ntpOffFlag atomic.Bool
	runtime    atomic.Pointer[[]string]
	cfgServers atomic.Pointer[[]string]
	ntpsrv     ntpServerState // timesync1's lists and their precedence (ntpservers.go)
	changed    chan struct{}
	changeMu   sync.Mutex
	ctx        context.Context

	// Read by the NTP workers; replaced by start-up and reloads.
	nts atomic.Pointer[ntsServer]
	// The servers, the logging level and the running configuration's
	// parts outside the owner loop belong to whoever holds reloadMu:
	// Run while it starts and stops, Reload in between.
	reloadMu  sync.Mutex
	servers   []*serverGroup
	keServers []*keGroup
	runCtx    context.Context
	started   chan struct{} // closed once Run has started everything
	stopped   bool
	refOpen   *refclockOpen  // refclock.go
	ptp       []*ptpsvc.Port // PTP ports (ptp.go)
	ptpIDs    []system.ID    // their engine sources (ptpsys.go)
	auth      authState      // symmetric keys: auth.go
	leaps     *leapTable     // leap-seconds file: leapfile.go
	dhcp      dhcpState      // servers from DHCP: dhcp.go
	csptp     csptpState     // client-server PTP (csptp.go)
}

// New prepares the daemon: the clock and the engine.
func New(opts Options) (*Daemon, error) {
	cfg := opts.Config
	d := &Daemon{opts: opts, cfg: cfg, log: opts.Logger, events: make(chan event, 256),
		sources: map[system.ID]*liveSource{}, mono0: time.Now(),
		limiter: sd.NewRateLimited(time.Minute, 1024), started: make(chan struct{})}
	if d.log == nil {
		d.log = slog.Default()
	}
	d.statusLive = d.opts.Notify != nil
	if d.opts.Notify == nil {
		d.opts.Notify = func(string) error { return nil }
	}
	initFreq := 0.0
	initSD := 0.0
	haveDrift := false
	if cfg.Clock.DriftFile != "" {
		f, skew, err := sysclock.ReadDrift(cfg.Clock.DriftFile)
		switch {
		case err == nil:
			initFreq, initSD, haveDrift = f, max(skew, 1), true
			d.log.Info("read drift file", "path", cfg.Clock.DriftFile, "freq_ppm", f)
		case errors.Is(err, os.ErrNotExist):
		default:
			d.log.Warn("ignoring drift file", "err", err)
		}
	}
	switch cfg.Clock.Mode {
	case config.ClockSystem:
		var sopts []sysclock.Option
		if opts.Adjtimex != nil {
			sopts = append(sopts, sysclock.WithAdjtimex(opts.Adjtimex))
		}
		sys, err := sysclock.NewSystem(sopts...)
		if err != nil {
			return nil, fmt.Errorf("system clock: %w", err)
		}
		// Take the kernel clock over from whatever disciplined it before:
		// a phase offset its PLL is still slewing out, or an adjtime()
		// slew, would otherwise keep moving the clock under the engine.
		in := sys.Initial()
		if err := sys.Reset(); err != nil {
			return nil, fmt.Errorf("system clock: %w", err)
		}
		d.log.Info("took the kernel clock over", "kernel", in.String())
		if !haveDrift {
			// No drift file: the frequency the kernel already runs at
			// (left by a previous daemon, or 0 after boot) is a better
			// start than 0, but of unknown quality.
			initFreq, initSD = in.FreqPPM, 0
			d.log.Info("no drift file: starting from the kernel's frequency", "freq_ppm", in.FreqPPM)
		}
		d.clk = &ptpStepHook{Clock: sys, d: d} // ptpsys.go
	default:
		d.virtual = clock.NewVirtual(wallReader{})
		d.clk = newPublishedVirtual(d.virtual, &d.vmap)
		initFreq, initSD = 0, 0 // observe: the virtual clock starts from nothing
	}
	if err := d.loadKeys(); err != nil {
		return nil, err
	}
	if err := d.loadLeapFile(); err != nil {
		return nil, err
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
		Leaps:       d.leaps,
		Trace:       d.engineTrace(),
	}, d.clk)
	if err != nil {
		return nil, err
	}
	d.eng = eng
	sn := eng.Snapshot(d.clk.Now())
	d.snap.Store(&sn)
	d.changed = make(chan struct{})
	d.publishConfigServers()
	d.prepareStateDir()
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
// only CAP_SYS_TIME (and not even that in observe mode). It fails closed:
// a user that cannot be switched to is an error, never a root daemon.
func (d *Daemon) dropPrivileges() error {
	if d.opts.User == "" || os.Geteuid() != 0 {
		return nil
	}
	var keep []privdrop.Cap
	if d.virtual == nil {
		keep = append(keep, privdrop.CapSysTime)
	}
	if err := privdrop.Drop(d.opts.User, keep); err != nil {
		return fmt.Errorf("cannot run as user %q: %w (create the user, or run as root on purpose with --user \"\" or [security] user = \"\")", d.opts.User, err)
	}
	d.log.Info("dropped privileges", "user", d.opts.User, "kept", fmt.Sprint(keep))
	return nil
}

// now is the engine's Instant: the disciplined clock's reading and the
// monotonic time since start.
func (d *Daemon) now() system.Instant {
	t := time.Now()
	return system.Instant{Wall: d.mapRaw(t.Round(0)), Mono: t.Sub(d.mono0)}
}

// mapRaw turns a CLOCK_REALTIME reading (a kernel timestamp) into the
// disciplined clock's reading: itself in system mode, the virtual clock's
// in observe mode. Safe on any goroutine.
func (d *Daemon) mapRaw(t time.Time) time.Time {
	if m := d.vmap.Load(); m != nil {
		return m.Map(t)
	}
	return t
}

// Snapshot is the latest published engine snapshot.
func (d *Daemon) Snapshot() *system.Snapshot { return d.snap.Load() }

// Run serves until ctx is cancelled.
func (d *Daemon) Run(ctx context.Context) error {
	ctx, cancel := context.WithCancel(ctx)
	// On an early return (a socket, the privilege drop) the goroutines
	// started so far are stopped before they are waited for.
	defer d.wg.Wait()
	defer cancel()
	defer d.closeSources()
	// One timer for the owner's own deadlines (wake.go): the engine's next
	// event, pool maintenance, the drift file; no ticker runs while
	// nothing of its kind is due. Made before the seccomp filter.
	wake := newWakeTimer(d.log)
	defer wake.Stop()

	d.reloadMu.Lock()
	d.runCtx = ctx
	err := d.startNTS(ctx)
	if err == nil {
		if err = d.startServers(ctx); err != nil {
			d.closeKE()
		}
	}
	if err != nil {
		d.stopped = true // a Reload waiting for the start gives up
		close(d.started)
		d.reloadMu.Unlock()
		return err
	}
	d.reloadMu.Unlock()
	defer func() {
		d.reloadMu.Lock()
		d.stopped = true
		d.closeServers()
		d.closeKE()
		d.reloadMu.Unlock()
	}()
	d.openRefclocks()
	defer d.closeRefclocks()
	if err := d.startPTP(ctx); err != nil {
		return err
	}
	if err := d.startCSPTP(ctx); err != nil {
		return err
	}
	if err := d.dropPrivileges(); err != nil {
		return err
	}
	if d.cfg.Security.Seccomp {
		// After the privilege drop: the filter refuses setuid and capset.
		if err := seccomp.Install(seccomp.Default); err != nil {
			d.log.Warn("seccomp filter not installed", "err", err)
		} else {
			d.log.Info("seccomp filter installed")
		}
	}
	d.ctx = ctx
	for _, src := range d.cfg.Sources {
		if src.Mode.NotNTP() {
			continue // ptp.go, csptp.go
		}
		d.addSpec(ctx, src, originConfig)
	}
	d.startDHCP(ctx)
	d.publish()
	_ = d.opts.Notify("READY=1\n" + sd.Status(d.statusLine()))
	d.log.Info("gnomond started", "clock", d.cfg.Clock.Mode, "sources", len(d.cfg.Sources), "servers", len(d.servers))
	close(d.started)
	// One collection once started. The Go runtime collects every two
	// minutes only after a first collection, and the first comes when
	// the heap reaches 4 MB: an idle client allocating a few kB per
	// sample took hours to get there, its RSS growing by megabytes until
	// then (make bench-long, docs/benchmarks.md). From now on its heap
	// stays near what is live.
	runtime.GC()

	var watchdog <-chan time.Time
	if iv, err := sd.WatchdogInterval(); err == nil && iv > 0 {
		t := time.NewTicker(iv / 2)
		defer t.Stop()
		watchdog = t.C
	}
	var due dueTimes
	var wakeC <-chan struct{}
	var wakeGoC <-chan time.Time

	var out []system.Transmit
	// quiet: the events just handled were transmit timestamps only, which
	// change neither the engine's schedule nor anything a view shows; the
	// timer stays as it was and no snapshot is made (one of the three
	// turns of every poll: request, its timestamp, the reply).
	quiet := false
	// timerTurn: the owner woke for its timer, not for an event;
	// replyTurn: for its sources' datagrams and timestamps only.
	timerTurn, replyTurn := false, false
	for {
		if !quiet {
			out = d.eng.Wakeup(d.now(), out[:0])
			if !d.ntpOff {
				d.transmit(out)
				d.checkSessions(ctx)
			}
			now := time.Now()
			if !d.deferPublish(timerTurn, replyTurn, len(out) > 0, now, &due) {
				d.publish()
				due.publish = time.Time{}
			}
			d.runDuties(ctx, now, &due)
			wake.Reset(d.untilWakeup(now, &due))
			wakeC, wakeGoC = wake.C()
		}
		quiet = false
		timerTurn, replyTurn = false, false
		select {
		case <-ctx.Done():
			d.writeDrift()
			_ = d.opts.Notify("STOPPING=1")
			d.log.Info("gnomond stopping")
			return nil
		case <-wakeC:
			timerTurn = true
		case <-wakeGoC:
			timerTurn = true
		case ev := <-d.events:
			quiet = d.handle(ctx, ev)
			replyTurn = fromSource(ev)
		drain:
			for {
				select {
				case ev := <-d.events:
					quiet = d.handle(ctx, ev) && quiet
					replyTurn = replyTurn && fromSource(ev)
				default:
					break drain
				}
			}
		case <-watchdog:
			_ = d.opts.Notify("WATCHDOG=1")
		}
	}
}

// publishLag is how long a snapshot may wait for the replies to the
// requests just sent (deferPublish).
const publishLag = time.Second

// deferPublish reports whether the snapshot of this turn can wait, and
// if so sets due.publish: a turn the timer woke that sent requests (the
// first of the three owner turns of every poll: request, its transmit
// timestamp, reply) changed little a view shows (a sent counter, the
// reach register), and the reply, usually a few milliseconds later,
// publishes anyway. Each snapshot copies every source and, with the
// status line and the views' notification, was a fifth of an idle
// client's CPU time per poll; half of them were these. When no reply
// comes, the snapshot is made at due.publish, publishLag after the
// first deferred turn, so a view is never older than that.
//
// A reply's turn (replyTurn: source datagrams only) defers too when the
// owner wakes anyway before that deadline (the engine's next event, most
// often another source's poll: sources with one poll interval poll within
// a second of each other), so a burst of polls publishes once, at the
// last reply, instead of once per source; a view lags a sample by up to
// publishLag. A reply followed by nothing soon publishes at once: no
// wake-up is added for a deferred snapshot.
func (d *Daemon) deferPublish(timerTurn, replyTurn, sent bool, now time.Time, due *dueTimes) bool {
	if d.ntpOff {
		return false
	}
	deadline := due.publish
	if deadline.IsZero() {
		deadline = now.Add(publishLag)
	}
	switch {
	case timerTurn && sent:
	case replyTurn && !timerTurn:
		next := d.eng.NextWakeup()
		if next.IsZero() || !now.Add(next.Sub(d.clk.Now())).Before(deadline) {
			return false
		}
	default:
		return false
	}
	if !now.Before(deadline) {
		return false
	}
	due.publish = deadline
	return true
}

// fromSource: ev is a source socket's datagram or transmit timestamp.
func fromSource(ev event) bool { return ev.kind == evPacket || ev.kind == evTxStamp }

// runDuties runs the owner's own periodic work whose time has come, and
// (re)schedules or cancels it: pool maintenance only while a pool is
// configured, the drift file only while one is written (system mode, a
// drift file configured). Deadlines are on the monotonic clock.
func (d *Daemon) runDuties(ctx context.Context, now time.Time, due *dueTimes) {
	switch {
	case !d.havePools():
		due.maint = time.Time{}
	case due.maint.IsZero():
		due.maint = now.Add(d.maintenanceEvery())
	case !now.Before(due.maint):
		d.maintainPools(ctx)
		due.maint = now.Add(d.maintenanceEvery())
	}
	switch {
	case !d.writesDrift():
		due.drift = time.Time{}
	case due.drift.IsZero():
		due.drift = now.Add(driftInterval)
	case !now.Before(due.drift):
		d.writeDrift()
		due.drift = now.Add(driftInterval)
	}
}

// periodicDuty reports whether something outside the engine's own schedule
// reads its time-dependent state between polls, so that the owner must
// look at the engine at least every dutyInterval: the system clock (the
// engine refreshes the kernel's error bounds every 64 s and arms leap
// seconds on the day) and our NTP server (its answers carry the published
// root dispersion, which grows with time). An observing client has
// neither: it sleeps from one poll to the next, as chronyd does.
func (d *Daemon) periodicDuty() bool {
	return d.virtual == nil || len(d.cfg.Servers) > 0 || len(d.opts.Listeners["ntp"]) > 0
}

// untilWakeup is how long the owner may sleep after now (and false when
// nothing at all is due: until an event).
func (d *Daemon) untilWakeup(now time.Time, due *dueTimes) (time.Duration, bool) {
	var engine time.Duration
	next := d.eng.NextWakeup()
	if !next.IsZero() {
		engine = next.Sub(d.clk.Now())
	}
	cap := time.Duration(0)
	if d.periodicDuty() {
		cap = dutyInterval
	}
	return wakeIn(now, engine, !next.IsZero(), cap, due.maint, due.drift, due.publish)
}

func (d *Daemon) transmit(out []system.Transmit) {
	for _, tx := range out {
		ls := d.sources[tx.Source]
		if ls == nil || ls.conn == nil {
			continue
		}
		sent, id, err := ls.conn.Send(tx.Data)
		if err != nil {
			ls.ctr.socketErrors++
			ls.lastErr = "sending: " + err.Error()
			d.logLimited("send:"+ls.addr.String(), "cannot send to source", "source", ls.addr, "err", err)
			continue
		}
		ls.lastID = id
		ls.ctr.sent++
		if d.wireTrace != nil {
			d.wireTrace("tx", tx.Source, sent, false, tx.Data)
		}
		d.eng.Sent(tx.Source, d.mapRaw(sent.Round(0)))
	}
}

// handle applies one event; it reports whether the event was a transmit
// timestamp, which the owner need not follow with a wake-up and a snapshot
// (Run's quiet).
func (d *Daemon) handle(ctx context.Context, ev event) (txStampOnly bool) {
	switch ev.kind {
	case evPacket:
		if d.wireTrace != nil {
			d.wireTrace("rx", ev.src, ev.at, ev.kern, ev.data)
		}
		err := d.eng.Receive(ev.src, d.now(), d.mapRaw(ev.at), ev.data)
		if ls := d.sources[ev.src]; ls != nil {
			ls.ctr.received++
			if err != nil {
				ls.ctr.reject(err)
				d.logLimited("rx:"+ls.addr.String(), "reply not used", "source", ls.addr, "err", err)
			} else {
				ls.lastErr = ""
			}
		}
	case evTxStamp:
		if ls := d.sources[ev.src]; ls != nil && ls.lastID == ev.txID {
			if d.wireTrace != nil {
				d.wireTrace("txk", ev.src, ev.at, true, nil)
			}
			d.eng.Sent(ev.src, d.mapRaw(ev.at))
		} else if d.wireTrace != nil {
			d.wireTrace("txk-stale", ev.src, ev.at, true, nil)
		}
		return true
	case evReadErr:
		if ls := d.sources[ev.src]; ls != nil {
			ls.ctr.socketErrors++
			ls.lastErr = errText(ev.err)
			d.logLimited("rxerr:"+ls.addr.String(), "source socket error", "source", ls.addr, "err", ev.err)
		}
	case evResolved:
		d.addResolved(ctx, ev)
	case evCall:
		ev.call()
	}
	return false
}

// logLimited logs a warning that may repeat (retries, a peer's bad
// packets) at most once a minute per key, except that a new error (the
// value of an "err" argument) is always logged: the limiter hides
// repetitions, never changes. At debug level nothing is hidden.
func (d *Daemon) logLimited(key, msg string, args ...any) {
	state := ""
	for i := 0; i+1 < len(args); i += 2 {
		if k, ok := args[i].(string); ok && k == "err" {
			// The error's last words ("connection refused", "no such
			// host"): the addresses and ports before them may vary
			// from one retry to the next without anything changing.
			msg := fmt.Sprint(args[i+1])
			if j := strings.LastIndex(msg, ": "); j >= 0 {
				msg = msg[j+2:]
			}
			state = msg
		}
	}
	d.limiter.LogState(context.Background(), d.log, time.Now(), slog.LevelWarn, key, state, msg, args...)
}

// publish stores a fresh snapshot for the server workers and views, and
// updates systemd's status line when it changed.
func (d *Daemon) publish() {
	sn := d.eng.Snapshot(d.clk.Now())
	d.addPending(&sn)
	d.logSourceChanges(&sn)
	d.addPTPViews(&sn)
	d.addCSPTPViews(&sn)
	d.snap.Store(&sn)
	d.changeMu.Lock()
	close(d.changed)
	d.changed = make(chan struct{})
	d.changeMu.Unlock()
	// The log gets state changes only, not every new offset: compared
	// field by field, no string built for it on every snapshot.
	key := loggedState{state: sn.State, peer: sn.PeerName}
	for _, s := range sn.Sources {
		if s.ID == sn.SystemPeer {
			key.addr = s.Address
		}
	}
	// The status line is formatted only for a service manager that
	// reads it and for the log: publish runs twice per poll, and an
	// unread Sprintf was a tenth of an idle client's CPU time.
	if logIt := key != d.logged; d.statusLive || logIt {
		line := d.statusLine()
		if d.statusLive && line != d.status {
			d.status = line
			_ = d.opts.Notify(sd.Status(line))
		}
		if logIt {
			d.logged = key
			d.log.Info(line, "state", sn.State)
		}
	}
	if sn.Synchronized && !d.trimmed {
		// Start-up is over: give its memory back, once (trim.go); a
		// gnomond that serves nothing or plain NTP only its binary's
		// pages too.
		d.trimmed = true
		if n, err := trimMemory(lowGC(d.cfg, d.opts.Listeners, os.Getenv)); err != nil {
			d.log.Debug("memory not trimmed", "err", err)
		} else {
			d.log.Debug("trimmed start-up memory", "advised_bytes", n)
		}
		d.applyGCPolicy() // gcpolicy.go
	}
	if sn.Steps > d.steps {
		// A step is rare and visible to every program: always logged.
		d.steps = sn.Steps
		d.log.Info("stepped the clock", "offset", sn.LastOffset, "steps", sn.Steps)
	}
}

// loggedState is what publish last logged: the state, the system peer's
// name and its address.
type loggedState struct {
	state      system.State
	peer, addr string
}

// statusLine is the one human line of STATUS=.
func (d *Daemon) statusLine() string {
	line := d.syncStatusLine()
	if d.virtual != nil && d.opts.ObserveUnasked {
		line = "OBSERVE MODE, clock not disciplined: " + d.opts.ObserveReason + "; " + line
	}
	return line
}

func (d *Daemon) syncStatusLine() string {
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

// writesDrift reports whether the drift file is written: a file is
// configured and the engine disciplines the system clock.
func (d *Daemon) writesDrift() bool {
	return d.cfg.Clock.DriftFile != "" && d.virtual == nil
}

func (d *Daemon) writeDrift() {
	if !d.writesDrift() {
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
