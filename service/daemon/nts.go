package daemon

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	mrand "math/rand/v2"
	"net"
	"net/netip"
	"os"
	"sync"
	"time"

	"gnomon.dev/gnomon/engine/nts"
	"gnomon.dev/gnomon/service/config"
	"gnomon.dev/gnomon/service/ntsio"
)

// Key exchange retries back off from keBackoffMin to keBackoffMax after a
// failure that needs a person (certificate, protocol). After one that only
// says the server could not be reached or did not answer (down, restarting,
// overloaded: ntsio.Transient), they back off from keTransientMin to the
// source's longest poll interval, kept within [keTransientMaxLow,
// keTransientMaxHigh]: a source whose server returns is back within about
// a poll, not an hour.
const (
	keBackoffMin       = 16 * time.Second
	keBackoffMax       = time.Hour
	keTransientMin     = 2 * time.Second
	keTransientMaxLow  = 4 * time.Second
	keTransientMaxHigh = 64 * time.Second
)

// keRetry is the wait before the next key exchange of a source with poll
// limits maxPoll (log2 s) after a failure err, the previous wait being
// prev; ±10 % of jitter keeps many clients of one server apart.
func keRetry(prev time.Duration, err error, maxPoll int) time.Duration {
	var next time.Duration
	if ntsio.Transient(err) {
		ceiling := keTransientMaxHigh
		if maxPoll >= 0 && maxPoll < 6 {
			ceiling = time.Duration(1<<maxPoll) * time.Second
		} else if maxPoll < 0 {
			ceiling = 0
		}
		ceiling = min(max(ceiling, keTransientMaxLow), keTransientMaxHigh)
		next = min(max(2*prev, keTransientMin), ceiling)
	} else {
		next = min(max(2*prev, keBackoffMin), keBackoffMax)
	}
	return next
}

// jitter spreads d by ±10 %.
func jitter(d time.Duration) time.Duration {
	return d + time.Duration((mrand.Float64()-0.5)*0.2*float64(d))
}

// startKeyExchange runs NTS-KE for sp in the background after delay, then
// resolves the NTP server it names, and hands both to the owner.
func (d *Daemon) startKeyExchange(ctx context.Context, sp *spec, delay time.Duration) {
	d.background(ctx, sp, delay, 15*time.Second, func(ctx context.Context) event {
		ev := event{kind: evResolved, spec: sp}
		res, err := ntsio.KeyExchange(ctx, ntsio.ClientConfig{Address: sp.src.Address, CAFile: sp.src.CertificateAuthority})
		if err == nil {
			ev.ke = res
			var ips []netip.Addr
			ips, err = d.lookup(ctx, res.NTPHost)
			ev.addrs = withPort(ips, res.NTPPort)
		}
		ev.err = err
		return ev
	})
}

// keyExchanged takes a finished key exchange: it re-keys the source of sp
// if there is one, or starts it.
func (d *Daemon) keyExchanged(ctx context.Context, ev event) {
	sp := ev.spec
	if ev.err != nil || len(ev.addrs) == 0 {
		err := ev.err
		if err == nil {
			err = errors.New("the NTP server it names does not resolve")
		}
		sp.lastErr = resolveErrText(sp, err)
		sp.keBackoff = keRetry(sp.keBackoff, ev.err, sp.src.PollIntervalLimits.Max)
		wait := jitter(sp.keBackoff)
		d.logLimited("ke:"+sp.src.Address, "NTS key exchange failed", "address", sp.src.Address,
			"retry_in", wait.Round(time.Millisecond), "err", err)
		d.startKeyExchange(ctx, sp, wait)
		return
	}
	sp.keBackoff = 0
	sp.lastErr = ""
	for _, ls := range d.sources {
		if ls.spec == sp && ls.session != nil {
			if ls.addr == ev.addrs[0] {
				if err := ls.session.Rekey(&ev.ke.KEResult); err == nil {
					d.log.Info("NTS re-keyed", "address", sp.src.Address, "cookies", ls.session.Cookies())
					return
				}
			}
			// The server moved us elsewhere: start afresh.
			for id, x := range d.sources {
				if x == ls {
					d.dropSource(id)
				}
			}
			break
		}
	}
	session, err := nts.NewClientSession(&ev.ke.KEResult, rand.Reader)
	if err != nil {
		d.logLimited("ke:"+sp.src.Address, "NTS session", "err", err)
		return
	}
	if err := d.addSourceAuth(ctx, sp, ev.addrs[0], session); err != nil {
		sp.lastErr = "socket: " + errText(err)
		d.logLimited("dial:"+ev.addrs[0].String(), "cannot open socket to source", "address", ev.addrs[0], "err", err)
		d.startKeyExchange(ctx, sp, keBackoffMin)
		return
	}
	d.log.Info("NTS key exchange done", "address", sp.src.Address, "ntp", ev.addrs[0], "cookies", session.Cookies())
}

// checkSessions starts a new key exchange for every NTS source whose
// cookies ran out or whose server sent a NAK.
func (d *Daemon) checkSessions(ctx context.Context) {
	for _, ls := range d.sources {
		if ls.session != nil && ls.session.NeedsKeyExchange() && !ls.spec.resolving {
			d.startKeyExchange(ctx, ls.spec, ls.spec.keBackoff)
		}
	}
}

// ntsServer is the server side of NTS: the master keys shared by the
// key-exchange servers and the NTP workers (which read it through
// Daemon.nts, an atomic pointer).
type ntsServer struct {
	ring    *nts.KeyRing
	handler *nts.Server
}

// keGroup is one [[nts-ke-server]]: its listeners (its own, or the
// sockets systemd passed) and the ntsio.Server accepting on them. A reload
// that changes its certificate paths, timeout or the NTP port it names
// swaps the ntsio.Server on the same listeners, without closing them.
type keGroup struct {
	cfg       config.NTSKEServerConfig
	ntpPort   uint16
	activated bool
	lns       []*handoffListener
	srv       *ntsio.Server
	cancel    context.CancelFunc
	wg        sync.WaitGroup
}

// loadRing reads (or makes) the master keys. Keys that cannot be saved in
// the state directory are kept in memory: NTS goes on, loudly, and the
// saving is retried; unsaved says so.
func (d *Daemon) loadRing() (ring *nts.KeyRing, unsaved bool, err error) {
	if d.opts.StateDir == "" {
		ring, err = nts.NewKeyRing(rand.Reader, time.Now(), 0, 0)
		return ring, false, err
	}
	ring, err = ntsio.LoadKeyRing(d.opts.StateDir, time.Now(), rand.Reader, 0, 0, d.log)
	if ring != nil && errors.Is(err, ntsio.ErrNotSaved) {
		d.log.Error("NTS master keys cannot be saved in the state directory: serving NTS with keys held in memory only "+
			"(clients must re-key after a restart); retrying the save",
			"state_dir", d.opts.StateDir, "err", d.stateError(err))
		return ring, true, nil
	}
	return ring, false, err
}

// startRing makes the master keys and starts their rotation; the NTP
// workers verify NTS requests with them from then on.
func (d *Daemon) startRing(ctx context.Context, ring *nts.KeyRing, unsaved bool) {
	d.nts.Store(&ntsServer{ring: ring, handler: &nts.Server{Keys: ring, Rand: rand.Reader}})
	if d.opts.StateDir != "" {
		d.wg.Add(1)
		go func() {
			defer d.wg.Done()
			_ = ntsio.RotateKeysUnsaved(ctx, d.opts.StateDir, ring, time.Now, d.log, unsaved, d.opts.KeySaveRetry)
		}()
	}
}

// keNTPPort is the NTP port NTS-KE servers name: the first [[server]]'s.
func keNTPPort(cfg *config.Config) uint16 {
	if len(cfg.Servers) > 0 {
		return cfg.Servers[0].Listen.Port()
	}
	return 0
}

// startNTS opens the NTS-KE servers ([[nts-ke-server]], or the systemd
// socket named "nts-ke") and the master keys they and the NTP server
// share, kept in the state directory and rotated daily.
func (d *Daemon) startNTS(ctx context.Context) error {
	activated := d.opts.Listeners["nts-ke"]
	if len(d.cfg.NTSKEServers) == 0 && len(activated) == 0 {
		return nil
	}
	if len(d.cfg.NTSKEServers) == 0 {
		return errors.New("sockets named nts-ke were passed, but no [[nts-ke-server]] says which certificate to use")
	}
	ring, unsaved, err := d.loadRing()
	if err != nil {
		return fmt.Errorf("NTS master keys: %w", err)
	}
	d.startRing(ctx, ring, unsaved)
	for i, kc := range d.cfg.NTSKEServers {
		var g *keGroup
		if i == 0 && len(activated) > 0 {
			g, err = d.adoptKE(kc, activated)
		} else {
			g, err = d.openKE(ctx, kc)
		}
		if err == nil {
			err = g.newServer(d, ring, keNTPPort(d.cfg))
		}
		if err != nil {
			if g != nil {
				g.closeListeners()
			}
			d.closeKE()
			return fmt.Errorf("nts-ke-server[%d]: %w", i, err)
		}
		g.serve(ctx, d)
		d.keServers = append(d.keServers, g)
	}
	return nil
}

// openKE listens on kc.Listen.
func (d *Daemon) openKE(ctx context.Context, kc config.NTSKEServerConfig) (*keGroup, error) {
	ln, err := ntsio.Listen(ctx, kc.Listen.String())
	if err != nil {
		return nil, fmt.Errorf("listen %s: %w", kc.Listen, err)
	}
	h, err := newHandoff(ln)
	if err != nil {
		ln.Close()
		return nil, err
	}
	return &keGroup{cfg: kc, lns: []*handoffListener{h}}, nil
}

// adoptKE takes the sockets systemd passed for NTS-KE.
func (d *Daemon) adoptKE(kc config.NTSKEServerConfig, files []*os.File) (*keGroup, error) {
	g := &keGroup{cfg: kc, activated: true}
	for _, f := range files {
		ln, err := ntsio.FileListener(f)
		if err == nil {
			var h *handoffListener
			if h, err = newHandoff(ln); err == nil {
				g.lns = append(g.lns, h)
				continue
			}
			ln.Close()
		}
		g.closeListeners()
		return nil, fmt.Errorf("socket activation (nts-ke): %w", err)
	}
	return g, nil
}

// newServer makes g's ntsio.Server (loading its certificate) for ring and
// the NTP port to name; it serves once g.serve is called.
func (g *keGroup) newServer(d *Daemon, ring *nts.KeyRing, ntpPort uint16) error {
	srv, err := ntsio.NewServer(ntsio.ServerConfig{
		CertFile: g.cfg.CertificateChainPath, KeyFile: g.cfg.PrivateKeyPath, Keys: ring,
		NTPPort: ntpPort, Timeout: g.cfg.KeyExchangeTimeout, Logger: d.log,
		MaxConnsPerAddr: noLimit(g.cfg.MaxConnectionsPerAddress),
		NewConnsPerAddr: float64(noLimit(g.cfg.ConnectionRatePerAddress)),
	})
	if err != nil {
		return err
	}
	g.srv, g.ntpPort = srv, ntpPort
	return nil
}

// serve runs g.srv on every listener of g.
func (g *keGroup) serve(ctx context.Context, d *Daemon) {
	ctx, g.cancel = context.WithCancel(ctx)
	srv := g.srv
	for _, h := range g.lns {
		h.reset()
		g.wg.Add(1)
		go func() {
			defer g.wg.Done()
			if err := srv.Serve(ctx, h); err != nil && ctx.Err() == nil {
				d.log.Error("NTS-KE server stopped", "listen", h.Addr(), "err", err)
			}
			d.log.Info("NTS-KE server counters", "listen", h.Addr(), "stats", srv.Stats().String())
		}()
		d.log.Info("serving NTS-KE", "listen", h.Addr())
	}
}

// stopAccepting makes g's server stop accepting and returns once every
// listener is free for another server; exchanges in progress finish on
// their own.
func (g *keGroup) stopAccepting() {
	if g.cancel != nil {
		g.cancel()
	}
	for _, h := range g.lns {
		h.waitStopped()
	}
}

func (g *keGroup) closeListeners() {
	for _, h := range g.lns {
		h.ln.Close()
	}
}

// close stops g and closes its listeners.
func (g *keGroup) close() {
	g.stopAccepting()
	g.closeListeners()
	g.wg.Wait()
}

func (d *Daemon) closeKE() {
	for _, g := range d.keServers {
		g.close()
	}
	d.keServers = nil
}

// handoffListener lets one listening socket pass from one ntsio.Server to
// the next: Serve "closes" it when its context ends, which here only
// makes Accept return (a deadline in the past) and leaves the socket open
// for the next Serve.
type handoffListener struct {
	ln       net.Listener
	deadline interface{ SetDeadline(time.Time) error }

	mu       sync.Mutex
	stopping bool
	stopped  chan struct{} // closed once Accept returned after Close
}

func newHandoff(ln net.Listener) (*handoffListener, error) {
	dl, ok := ln.(interface{ SetDeadline(time.Time) error })
	if !ok {
		return nil, fmt.Errorf("listener %T has no deadline", ln)
	}
	return &handoffListener{ln: ln, deadline: dl, stopped: make(chan struct{})}, nil
}

// reset readies h for the next Serve.
func (h *handoffListener) reset() {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.stopping = false
	h.stopped = make(chan struct{})
	_ = h.deadline.SetDeadline(time.Time{})
}

func (h *handoffListener) Accept() (net.Conn, error) {
	c, err := h.ln.Accept()
	if err != nil {
		h.mu.Lock()
		if h.stopping {
			select {
			case <-h.stopped:
			default:
				close(h.stopped)
			}
		}
		h.mu.Unlock()
	}
	return c, err
}

// Close ends the current Serve's accepting, not the socket.
func (h *handoffListener) Close() error {
	h.mu.Lock()
	h.stopping = true
	h.mu.Unlock()
	return h.deadline.SetDeadline(time.Unix(1, 0))
}

func (h *handoffListener) Addr() net.Addr { return h.ln.Addr() }

// waitStopped waits until the current Serve has stopped accepting (it was
// told to: its context ended), for at most a few seconds.
func (h *handoffListener) waitStopped() {
	h.mu.Lock()
	ch := h.stopped
	h.mu.Unlock()
	select {
	case <-ch:
	case <-time.After(5 * time.Second):
	}
}

// NTSKEStats are the counters of each NTS-KE server, in configuration
// order (none when there is no NTS-KE server). The owner's: call it on
// the owner loop or after Run.
func (d *Daemon) NTSKEStats() []ntsio.ServerStats {
	out := make([]ntsio.ServerStats, 0, len(d.keServers))
	for _, g := range d.keServers {
		if g.srv != nil {
			out = append(out, g.srv.Stats())
		}
	}
	return out
}

// noLimit maps the configuration's 0 ("no limit") to ntsio's negative.
func noLimit[T int | float64](v T) T {
	if v == 0 {
		return -1
	}
	return v
}
