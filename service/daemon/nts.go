package daemon

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	mrand "math/rand/v2"
	"net"
	"net/netip"
	"time"

	"gnomon.dev/gnomon/engine/nts"
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
		sp.keBackoff = keRetry(sp.keBackoff, ev.err, sp.src.PollIntervalLimits.Max)
		wait := jitter(sp.keBackoff)
		d.logLimited("ke:"+sp.src.Address, "NTS key exchange failed", "address", sp.src.Address,
			"retry_in", wait.Round(time.Millisecond), "err", err)
		d.startKeyExchange(ctx, sp, wait)
		return
	}
	sp.keBackoff = 0
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
// key-exchange servers and the NTP workers.
type ntsServer struct {
	ring    *nts.KeyRing
	ke      []*ntsio.Server
	handler *nts.Server
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
	var ring *nts.KeyRing
	var err error
	if d.opts.StateDir != "" {
		ring, err = ntsio.LoadKeyRing(d.opts.StateDir, time.Now(), rand.Reader, 0, 0, d.log)
	} else {
		ring, err = nts.NewKeyRing(rand.Reader, time.Now(), 0, 0)
	}
	if err != nil {
		return fmt.Errorf("NTS master keys: %w", err)
	}
	d.nts = &ntsServer{ring: ring, handler: &nts.Server{Keys: ring, Rand: rand.Reader}}
	if d.opts.StateDir != "" {
		d.wg.Add(1)
		go func() {
			defer d.wg.Done()
			_ = ntsio.RotateKeys(ctx, d.opts.StateDir, ring, time.Now, d.log)
		}()
	}
	var ntpPort uint16
	if len(d.cfg.Servers) > 0 {
		ntpPort = d.cfg.Servers[0].Listen.Port()
	}
	for i, kc := range d.cfg.NTSKEServers {
		srv, err := ntsio.NewServer(ntsio.ServerConfig{
			CertFile: kc.CertificateChainPath, KeyFile: kc.PrivateKeyPath, Keys: ring,
			NTPPort: ntpPort, Timeout: kc.KeyExchangeTimeout, Logger: d.log,
			MaxConnsPerAddr: noLimit(kc.MaxConnectionsPerAddress), NewConnsPerAddr: float64(noLimit(kc.ConnectionRatePerAddress)),
		})
		if err != nil {
			return fmt.Errorf("nts-ke-server[%d]: %w", i, err)
		}
		var lns []net.Listener
		if i == 0 && len(activated) > 0 {
			for _, f := range activated {
				ln, err := ntsio.FileListener(f)
				if err != nil {
					return fmt.Errorf("socket activation (nts-ke): %w", err)
				}
				lns = append(lns, ln)
			}
		} else {
			ln, err := ntsio.Listen(ctx, kc.Listen.String())
			if err != nil {
				return fmt.Errorf("nts-ke-server[%d]: listen %s: %w", i, kc.Listen, err)
			}
			lns = append(lns, ln)
		}
		for _, ln := range lns {
			d.wg.Add(1)
			go func() {
				defer d.wg.Done()
				if err := srv.Serve(ctx, ln); err != nil && ctx.Err() == nil {
					d.log.Error("NTS-KE server stopped", "listen", ln.Addr(), "err", err)
				}
				d.log.Info("NTS-KE server counters", "listen", ln.Addr(), "stats", srv.Stats().String())
			}()
			d.log.Info("serving NTS-KE", "listen", ln.Addr())
		}
		d.nts.ke = append(d.nts.ke, srv)
	}
	return nil
}

// NTSKEStats are the counters of each NTS-KE server, in configuration
// order (none when there is no NTS-KE server).
func (d *Daemon) NTSKEStats() []ntsio.ServerStats {
	if d.nts == nil {
		return nil
	}
	out := make([]ntsio.ServerStats, len(d.nts.ke))
	for i, s := range d.nts.ke {
		out[i] = s.Stats()
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

// reloadCertificates re-reads every NTS-KE server's certificate; clients
// in the middle of an exchange keep the old one.
func (d *Daemon) reloadCertificates() error {
	if d.nts == nil {
		return nil
	}
	var errs []error
	for _, s := range d.nts.ke {
		errs = append(errs, s.Reload())
	}
	return errors.Join(errs...)
}
