package daemon

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"time"

	"gnomon.dev/gnomon/engine/nts"
	"gnomon.dev/gnomon/service/ntsio"
)

// Key exchange retries back off from keBackoffMin to keBackoffMax.
const (
	keBackoffMin = 16 * time.Second
	keBackoffMax = time.Hour
)

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
		sp.keBackoff = min(max(2*sp.keBackoff, keBackoffMin), keBackoffMax)
		err := ev.err
		if err == nil {
			err = errors.New("the NTP server it names does not resolve")
		}
		d.logLimited("ke:"+sp.src.Address, "NTS key exchange failed", "address", sp.src.Address,
			"retry_in", sp.keBackoff, "err", err)
		d.startKeyExchange(ctx, sp, sp.keBackoff)
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
	ns := &ntsServer{ring: ring, handler: &nts.Server{Keys: ring, Rand: rand.Reader}}
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
			}()
			d.log.Info("serving NTS-KE", "listen", ln.Addr())
		}
		ns.ke = append(ns.ke, srv)
	}
	// Published complete: Reload may read it from another goroutine.
	d.nts.Store(ns)
	return nil
}

// reloadCertificates re-reads every NTS-KE server's certificate; clients
// in the middle of an exchange keep the old one.
func (d *Daemon) reloadCertificates() error {
	ns := d.nts.Load()
	if ns == nil {
		return nil
	}
	var errs []error
	for _, s := range ns.ke {
		errs = append(errs, s.Reload())
	}
	return errors.Join(errs...)
}
