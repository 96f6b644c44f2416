package daemon

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"reflect"
	"strings"

	"golang.org/x/sys/unix"

	"gnomon.dev/gnomon/engine/nts"
	"gnomon.dev/gnomon/engine/system"
	"gnomon.dev/gnomon/service/config"
	"gnomon.dev/gnomon/service/ntsio"
)

// ErrNeedsRestart is wrapped by Reload's error when the file changes a
// key that only a restart can apply; nothing was changed.
var ErrNeedsRestart = errors.New("needs a restart")

// monotonicUSec is CLOCK_MONOTONIC in µs, for sd_notify's MONOTONIC_USEC.
func monotonicUSec() int64 {
	var ts unix.Timespec
	if err := unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts); err != nil {
		return 0
	}
	return ts.Nano() / 1e3
}

// Reload re-reads the configuration file and applies it whole, or not at
// all: the sources, the [[server]] sockets (opened and closed) and their
// allow/deny lists and rate limits, the [[nts-ke-server]]s (opened,
// closed, certificates re-read), the clock's step and panic limits, the
// [synchronization] thresholds, the drift file and the log level. A file
// that does not load, or that changes a key only a restart can apply
// (clock.mode, clock.max-frequency, log.format, security.seccomp, a kept
// server's workers), is refused, naming the key, with nothing changed; so
// is a reload whose new sockets cannot be opened or whose certificates
// cannot be loaded. It returns one line per change. systemd hears
// RELOADING=1 (with MONOTONIC_USEC) first and READY=1 at the end.
func (d *Daemon) Reload(ctx context.Context) ([]string, error) {
	select {
	case <-d.started:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	d.reloadMu.Lock()
	defer d.reloadMu.Unlock()
	if d.stopped {
		return nil, ErrNotRunning
	}
	_ = d.opts.Notify(fmt.Sprintf("RELOADING=1\nMONOTONIC_USEC=%d", monotonicUSec()))
	changes, err := d.reload(ctx)
	_ = d.opts.Notify("READY=1")
	if err != nil {
		d.log.Warn("reload refused: the running configuration is unchanged", "err", err)
		return nil, err
	}
	if len(changes) == 0 {
		changes = []string{"no changes"}
	}
	d.log.Info("configuration reloaded", "path", d.cfg.Path, "changes", strings.Join(changes, "; "))
	return changes, nil
}

// reload is Reload under reloadMu.
func (d *Daemon) reload(ctx context.Context) ([]string, error) {
	old := d.cfg
	if old.Path == "" {
		return nil, errors.New("running on the embedded default configuration: there is no file to re-read")
	}
	cfg, err := config.Load(old.Path, config.Options{CanSetClock: d.virtual == nil})
	if err != nil {
		return nil, err
	}
	if d.opts.Observe {
		cfg.Clock.Mode = config.ClockObserve
	}
	if err := d.needsRestart(old, cfg); err != nil {
		return nil, err
	}
	p, err := d.prepare(ctx, cfg)
	if err != nil {
		p.rollback()
		return nil, err
	}
	changes := p.commit(d)
	if len(d.opts.Listeners["ntp"]) > 0 && !reflect.DeepEqual(listens(old), listens(cfg)) {
		changes = append(changes, "server listen: not applied, the NTP sockets come from systemd (edit gnomond.socket)")
	}
	// The owner loop's part: sources, engine limits, the configuration.
	var own []string
	if err := d.call(d.runCtx, func() error {
		own = d.applyOwned(old, cfg)
		return nil
	}); err != nil {
		return nil, err
	}
	changes = append(changes, own...)
	changes = append(changes, d.applyLogLevel(old, cfg)...)
	return changes, nil
}

// needsRestart refuses a file that changes what only a restart applies.
func (d *Daemon) needsRestart(old, cfg *config.Config) error {
	var keys []string
	if cfg.Clock.Mode != old.Clock.Mode {
		keys = append(keys, fmt.Sprintf("clock.mode (%s → %s)", old.Clock.Mode, cfg.Clock.Mode))
	}
	if cfg.Clock.MaxFrequencyPPM != old.Clock.MaxFrequencyPPM {
		keys = append(keys, "clock.max-frequency")
	}
	if cfg.Log.Format != old.Log.Format {
		keys = append(keys, "log.format")
	}
	if cfg.Security.Seccomp != old.Security.Seccomp {
		keys = append(keys, "security.seccomp")
	}
	if len(d.opts.Listeners["ntp"]) == 0 {
		for _, sc := range cfg.Servers {
			if g := d.serverAt(sc); g != nil && g.workers != sc.Workers {
				keys = append(keys, fmt.Sprintf("server.workers (listen = %q)", sc.Listen))
			}
		}
	}
	if len(d.opts.Listeners["nts-ke"]) > 0 && len(cfg.NTSKEServers) == 0 {
		keys = append(keys, "nts-ke-server (removing the last one while systemd passes NTS-KE sockets; disable gnomond-nts-ke.socket first)")
	}
	if !reflect.DeepEqual(ptpSources(old), ptpSources(cfg)) || !reflect.DeepEqual(old.PTPPorts, cfg.PTPPorts) ||
		!reflect.DeepEqual(old.CSPTPServers, cfg.CSPTPServers) {
		keys = append(keys, `PTP ports and CSPTP (source mode = "ptp" or "csptp", [[ptp-port]], [[csptp-server]])`)
	}
	if len(keys) == 0 {
		return nil
	}
	return fmt.Errorf("%s: %s cannot change while gnomond runs: %w (systemctl restart gnomond); nothing was changed",
		cfg.Path, strings.Join(keys, ", "), ErrNeedsRestart)
}

// ptpSources are cfg's PTP and CSPTP sources, which start and stop with
// gnomond.
func ptpSources(cfg *config.Config) []config.SourceConfig {
	var out []config.SourceConfig
	for _, s := range cfg.Sources {
		if s.Mode.NotNTP() {
			out = append(out, s)
		}
	}
	return out
}

// listens is every [[server]]'s listen address.
func listens(cfg *config.Config) []string {
	var out []string
	for _, sc := range cfg.Servers {
		out = append(out, sc.Listen.String())
	}
	return out
}

// serverAt is the running group of sc's listen address, if any.
func (d *Daemon) serverAt(sc config.ServerConfig) *serverGroup {
	for _, g := range d.servers {
		if !g.activated && g.listen == sc.Listen {
			return g
		}
	}
	return nil
}

// plan is a prepared reload: everything that could fail is done (sockets
// bound, certificates loaded), nothing is in use yet.
type plan struct {
	cfg *config.Config
	// NTP servers
	keep    map[*serverGroup]config.ServerConfig
	opened  []*serverGroup
	openPol []config.ServerConfig
	closed  []*serverGroup
	// NTS
	newRing    *nts.KeyRing
	ringUnsave bool
	ntpPort    uint16
	keReread   []*keGroup
	keSwap     []keSwap
	keOpened   []*keGroup
	keClosed   []*keGroup
	keOrder    []*keGroup // the groups after the reload, in configuration order
}

type keSwap struct {
	g   *keGroup
	cfg config.NTSKEServerConfig
	srv *ntsio.Server
}

func (p *plan) rollback() {
	if p == nil {
		return
	}
	for _, g := range p.opened {
		g.ss.Close()
	}
	for _, g := range p.keOpened {
		g.closeListeners()
	}
}

// prepare opens what the new configuration adds and loads what it names,
// without using any of it yet.
func (d *Daemon) prepare(ctx context.Context, cfg *config.Config) (*plan, error) {
	p := &plan{cfg: cfg, keep: map[*serverGroup]config.ServerConfig{}}
	if len(d.opts.Listeners["ntp"]) > 0 {
		for _, g := range d.servers {
			p.keep[g] = activatedPolicy(cfg)
		}
	} else {
		for _, sc := range cfg.Servers {
			if g := d.serverAt(sc); g != nil {
				p.keep[g] = sc
				continue
			}
			g, err := d.openServer(ctx, sc)
			if err != nil {
				return p, fmt.Errorf("server listen = %q: %w", sc.Listen, err)
			}
			p.opened = append(p.opened, g)
			p.openPol = append(p.openPol, sc)
		}
		for _, g := range d.servers {
			if _, ok := p.keep[g]; !ok {
				p.closed = append(p.closed, g)
			}
		}
	}

	p.ntpPort = keNTPPort(cfg)
	var ring *nts.KeyRing
	if ns := d.nts.Load(); ns != nil {
		ring = ns.ring
	} else if len(cfg.NTSKEServers) > 0 {
		var err error
		ring, p.ringUnsave, err = d.loadRing()
		if err != nil {
			return p, fmt.Errorf("NTS master keys: %w", err)
		}
		p.newRing = ring
	}
	matched := map[*keGroup]bool{}
	for i, kc := range cfg.NTSKEServers {
		var g *keGroup
		for _, x := range d.keServers {
			if matched[x] {
				continue
			}
			if (i == 0 && x.activated) || (!x.activated && x.cfg.Listen == kc.Listen) {
				g = x
				break
			}
		}
		if g != nil {
			matched[g] = true
			p.keOrder = append(p.keOrder, g)
			if g.cfg == kc && g.ntpPort == p.ntpPort {
				// The same paths: read the files again (renewed
				// certificates), checking them before anything changes.
				if _, err := tls.LoadX509KeyPair(kc.CertificateChainPath, kc.PrivateKeyPath); err != nil {
					return p, fmt.Errorf("nts-ke-server[%d]: loading the certificate: %w", i, err)
				}
				p.keReread = append(p.keReread, g)
				continue
			}
			ng := &keGroup{cfg: kc}
			if err := ng.newServer(d, ring, p.ntpPort); err != nil {
				return p, fmt.Errorf("nts-ke-server[%d]: %w", i, err)
			}
			p.keSwap = append(p.keSwap, keSwap{g: g, cfg: kc, srv: ng.srv})
			continue
		}
		ng, err := d.openKE(ctx, kc)
		if err != nil {
			return p, fmt.Errorf("nts-ke-server[%d]: %w", i, err)
		}
		p.keOpened = append(p.keOpened, ng)
		if err := ng.newServer(d, ring, p.ntpPort); err != nil {
			return p, fmt.Errorf("nts-ke-server[%d]: %w", i, err)
		}
		p.keOrder = append(p.keOrder, ng)
	}
	for _, g := range d.keServers {
		if !matched[g] {
			p.keClosed = append(p.keClosed, g)
		}
	}
	return p, nil
}

// commit puts a prepared plan in service; nothing in it can fail.
func (p *plan) commit(d *Daemon) []string {
	var changes []string
	ls := p.cfg.Synchronization.LocalStratum
	// New sockets serve before old ones close.
	for i, g := range p.opened {
		g.start(d.runCtx, d, p.openPol[i], ls)
		d.log.Info("serving NTP", "listen", g.listen, "workers", len(g.ss.Conns))
		changes = append(changes, fmt.Sprintf("server %s: opened", g.listen))
	}
	for _, g := range d.servers {
		sc, ok := p.keep[g]
		if !ok {
			continue
		}
		if w := g.ws; len(w) > 0 {
			if prev := w[0].pol.Load(); prev != nil {
				name := "server " + g.listen.String()
				if g.activated {
					name = "server (systemd sockets)"
				}
				changes = append(changes, policyChanges(name, prev.cfg, sc)...)
				if prev.localStratum != ls {
					changes = append(changes, fmt.Sprintf("%s: local-stratum %d → %d", name, prev.localStratum, ls))
				}
			}
		}
		g.setPolicy(sc, ls)
	}
	for _, g := range p.closed {
		g.close()
		d.log.Info("stopped serving NTP", "listen", g.listen)
		changes = append(changes, fmt.Sprintf("server %s: closed", g.listen))
	}
	var kept []*serverGroup
	for _, g := range d.servers {
		if _, ok := p.keep[g]; ok {
			kept = append(kept, g)
		}
	}
	d.servers = append(kept, p.opened...)

	if p.newRing != nil {
		d.startRing(d.runCtx, p.newRing, p.ringUnsave)
		changes = append(changes, "NTS master keys: in use")
	}
	for _, g := range p.keReread {
		if err := g.srv.Reload(); err != nil {
			d.log.Warn("NTS-KE certificate not re-read", "listen", g.cfg.Listen, "err", err)
			continue
		}
		changes = append(changes, fmt.Sprintf("nts-ke-server %s: certificate re-read", keName(g)))
	}
	for _, s := range p.keSwap {
		s.g.stopAccepting()
		s.g.cfg, s.g.srv, s.g.ntpPort = s.cfg, s.srv, p.ntpPort
		s.g.serve(d.runCtx, d)
		changes = append(changes, fmt.Sprintf("nts-ke-server %s: certificate, timeout or NTP port changed", keName(s.g)))
	}
	for _, g := range p.keOpened {
		g.serve(d.runCtx, d)
		changes = append(changes, fmt.Sprintf("nts-ke-server %s: opened", keName(g)))
	}
	for _, g := range p.keClosed {
		g.close()
		d.log.Info("stopped serving NTS-KE", "listen", g.cfg.Listen)
		changes = append(changes, fmt.Sprintf("nts-ke-server %s: closed", keName(g)))
	}
	d.keServers = p.keOrder
	return changes
}

func keName(g *keGroup) string {
	if g.activated {
		return "(systemd sockets)"
	}
	return g.cfg.Listen.String()
}

// policyChanges names what changed in a kept server's policy.
func policyChanges(name string, a, b config.ServerConfig) []string {
	var out []string
	if !reflect.DeepEqual(a.Allowlist, b.Allowlist) {
		out = append(out, name+": allowlist changed")
	}
	if !reflect.DeepEqual(a.Denylist, b.Denylist) {
		out = append(out, name+": denylist changed")
	}
	if a.RateLimit != b.RateLimit {
		out = append(out, name+": rate-limit changed")
	}
	return out
}

// applyOwned applies, on the owner loop, what the owner holds: the
// sources, the engine's limits, the drift file and the configuration.
func (d *Daemon) applyOwned(old, cfg *config.Config) []string {
	var changes []string
	prev := map[string]*spec{}
	for _, sp := range d.specs {
		if sp.origin == originConfig {
			prev[specKey(sp.src)] = sp
		}
	}
	for _, src := range cfg.Sources {
		if src.Mode.NotNTP() {
			continue // PTP ports and CSPTP clients: needsRestart refused any change to them
		}
		k := specKey(src)
		if _, ok := prev[k]; ok {
			delete(prev, k)
			continue
		}
		d.addSpec(d.ctx, src, originConfig)
		changes = append(changes, fmt.Sprintf("source %s %s: added", src.Mode, src.Address))
	}
	for _, sp := range d.specs {
		if _, gone := prev[specKey(sp.src)]; gone && sp.origin == originConfig {
			changes = append(changes, fmt.Sprintf("source %s %s: removed", sp.src.Mode, sp.src.Address))
		}
	}
	for _, sp := range prev {
		d.removeSpec(sp)
	}
	oc, nc := old.Clock, cfg.Clock
	osy, nsy := old.Synchronization, cfg.Synchronization
	diff := func(key string, a, b any) {
		if a != b {
			changes = append(changes, fmt.Sprintf("%s: %v → %v", key, a, b))
		}
	}
	diff("clock.step-threshold", oc.StepThreshold, nc.StepThreshold)
	diff("clock.step-limit", oc.StepLimit, nc.StepLimit)
	diff("clock.panic-threshold", oc.PanicThreshold, nc.PanicThreshold)
	diff("clock.drift-file", oc.DriftFile, nc.DriftFile)
	diff("synchronization.minimum-agreeing-sources", osy.MinimumAgreeingSources, nsy.MinimumAgreeingSources)
	diff("synchronization.max-distance", osy.MaxDistance, nsy.MaxDistance)
	diff("synchronization.accuracy", osy.Accuracy, nsy.Accuracy)
	diff("synchronization.local-stratum", osy.LocalStratum, nsy.LocalStratum)
	if !reflect.DeepEqual(old.SourceDefaults, cfg.SourceDefaults) {
		changes = append(changes, "source-defaults changed (for sources added from now on)")
	}
	d.eng.SetLimits(system.Limits{
		StepThreshold:  nc.StepThreshold,
		StepLimit:      nc.StepLimit,
		PanicThreshold: nc.PanicThreshold,
		MinSources:     nsy.MinimumAgreeingSources,
		MaxDistance:    nsy.MaxDistance,
		Accuracy:       nsy.Accuracy,
	})
	d.cfg = cfg
	if d.trimmed {
		d.applyGCPolicy() // an NTS-KE, PTP or CSPTP server added or removed (gcpolicy.go)
	}
	d.publishConfigServers()
	return changes
}

// applyLogLevel sets the logger's level to [log] level, unless
// --log-level fixed it.
func (d *Daemon) applyLogLevel(old, cfg *config.Config) []string {
	if old.Log.Level == cfg.Log.Level {
		return nil
	}
	if d.opts.LogLevel == nil || d.opts.LogLevelFixed {
		return []string{fmt.Sprintf("log.level: %s (not applied: --log-level was given)", cfg.Log.Level)}
	}
	d.opts.LogLevel.Set(cfg.Log.Level.Level())
	return []string{fmt.Sprintf("log.level: %s → %s", old.Log.Level, cfg.Log.Level)}
}
