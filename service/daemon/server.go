package daemon

import (
	"context"
	"crypto/md5"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"runtime"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"gnomon.dev/gnomon/engine/ntp"
	"gnomon.dev/gnomon/engine/nts"
	"gnomon.dev/gnomon/engine/sample"
	"gnomon.dev/gnomon/service/config"
	"gnomon.dev/gnomon/service/netio"
)

func refID6(a netip.Addr) uint32 {
	b := a.As16()
	sum := md5.Sum(b[:])
	return binary.BigEndian.Uint32(sum[:4])
}

// precision is what our replies advertise: about 2^-24 s (60 ns), the
// resolution of a software-timestamped Linux clock read.
const precision int8 = -24

const batch = 32

// maxRequest is the largest request answered: an NTS request carrying one
// of our cookies and placeholders for seven more is under 1 KiB; nothing
// legitimate is larger.
const maxRequest = 1280

// serverGroup is one [[server]]'s sockets (or the sockets systemd passed)
// and their workers. A reload keeps a group whose listen address and
// worker count are unchanged, changing only its workers' policy; it opens
// the groups of new addresses and closes those of removed ones.
type serverGroup struct {
	listen    netip.AddrPort // the [[server]]'s; invalid for activated sockets
	workers   int            // as configured (0: one per CPU)
	activated bool
	ss        *netio.ServerSockets
	ws        []*worker
	cancel    context.CancelFunc
	wg        sync.WaitGroup
}

// activatedPolicy is the policy of sockets passed by systemd: the first
// [[server]]'s, or an open one with the default rate limit.
func activatedPolicy(cfg *config.Config) config.ServerConfig {
	if len(cfg.Servers) > 0 {
		return cfg.Servers[0]
	}
	return config.ServerConfig{RateLimit: config.RateLimit{Interval: 2 * time.Second, Burst: 16, KoD: true, TableSize: 65536}}
}

// startServers opens (or adopts from systemd, name "ntp") the NTP server
// sockets and starts one worker per socket.
func (d *Daemon) startServers(ctx context.Context) error {
	if files := d.opts.Listeners["ntp"]; len(files) > 0 {
		ss, err := netio.AdoptServer(files)
		if err != nil {
			return fmt.Errorf("socket activation (ntp): %w", err)
		}
		g := &serverGroup{activated: true, ss: ss}
		g.start(ctx, d, activatedPolicy(d.cfg), d.cfg.Synchronization.LocalStratum)
		d.servers = append(d.servers, g)
		d.log.Info("serving NTP on activated sockets", "count", len(ss.Conns))
		return nil
	}
	for _, sc := range d.cfg.Servers {
		g, err := d.openServer(ctx, sc)
		if err != nil {
			d.closeServers()
			return err
		}
		g.start(ctx, d, sc, d.cfg.Synchronization.LocalStratum)
		d.servers = append(d.servers, g)
		d.log.Info("serving NTP", "listen", sc.Listen, "workers", len(g.ss.Conns))
	}
	return nil
}

// openServer binds sc's sockets; the group serves once started.
func (d *Daemon) openServer(ctx context.Context, sc config.ServerConfig) (*serverGroup, error) {
	workers := sc.Workers
	if workers <= 0 {
		workers = runtime.NumCPU()
	}
	ss, err := netio.ListenServer(ctx, sc.Listen, workers)
	if err != nil {
		if errors.Is(err, syscall.EACCES) && sc.Listen.Port() < 1024 {
			return nil, fmt.Errorf("listen %s: %w (a port below 1024 needs CAP_NET_BIND_SERVICE: "+
				"under systemd enable gnomond.socket, which passes the socket, or add the capability in a drop-in)", sc.Listen, err)
		}
		return nil, fmt.Errorf("listen %s: %w", sc.Listen, err)
	}
	return &serverGroup{listen: sc.Listen, workers: sc.Workers, ss: ss}, nil
}

// start runs one worker per socket of g under ctx.
func (g *serverGroup) start(ctx context.Context, d *Daemon, pol config.ServerConfig, localStratum int) {
	ctx, g.cancel = context.WithCancel(ctx)
	for _, c := range g.ss.Conns {
		w := newWorker(pol, localStratum, d)
		g.ws = append(g.ws, w)
		g.wg.Add(1)
		go func() {
			defer g.wg.Done()
			w.serve(ctx, c)
		}()
	}
}

// setPolicy gives g's workers a new policy; a worker keeps its rate
// limiter (and what it knows of its clients) when the limit is unchanged.
func (g *serverGroup) setPolicy(pol config.ServerConfig, localStratum int) {
	for _, w := range g.ws {
		w.setPolicy(pol, localStratum)
	}
}

// close stops g's workers and closes its sockets.
func (g *serverGroup) close() {
	if g.cancel != nil {
		g.cancel()
	}
	g.ss.Close()
	g.wg.Wait()
}

// closeServers closes every server group.
func (d *Daemon) closeServers() {
	for _, g := range d.servers {
		g.close()
	}
	d.servers = nil
}

// worker answers on one socket. The kernel hashes a client to one
// SO_REUSEPORT socket, so each worker's rate limiter sees all of a
// client's requests.
type worker struct {
	d       *Daemon
	pol     atomic.Pointer[workerPolicy]
	in, out []netio.Message
	// The rest is the worker goroutine's own.
	cur *workerPolicy // the policy of the batch being answered
	xl  *xleaveWorker // interleaved mode: xleave.go
	// leap smear: smear.go
	smear       *ntp.Smear
	smearWindow time.Duration
	smearing    bool
	smearCorr   time.Duration
	ctr         serverCounters  // counters.go
	nts         nts.ServerReply // reused by every NTS answer: no allocation per request
}

// workerPolicy is what a worker answers by; a reload swaps it whole.
type workerPolicy struct {
	cfg          config.ServerConfig
	limiter      *ntp.RateLimiter // nil: no rate limit; used by its worker only
	localStratum int
}

func newWorker(pol config.ServerConfig, localStratum int, d *Daemon) *worker {
	w := &worker{d: d}
	w.setPolicy(pol, localStratum)
	w.in = make([]netio.Message, batch)
	w.out = make([]netio.Message, batch)
	for i := range w.in {
		w.in[i].Buf = make([]byte, 2048) // NTS requests carry cookies and placeholders
		w.out[i].Buf = make([]byte, 2048)
	}
	return w
}

func (w *worker) setPolicy(pol config.ServerConfig, localStratum int) {
	np := &workerPolicy{cfg: pol, localStratum: localStratum}
	if old := w.pol.Load(); old != nil && old.cfg.RateLimit == pol.RateLimit {
		np.limiter = old.limiter
	} else if pol.RateLimit.Enabled() {
		kodEvery := 0
		if pol.RateLimit.KoD {
			kodEvery = 4
		}
		np.limiter = ntp.NewRateLimiter(ntp.RateLimitConfig{
			Interval:  pol.RateLimit.Interval,
			Burst:     pol.RateLimit.Burst,
			KoDEvery:  kodEvery,
			TableSize: pol.RateLimit.TableSize,
		})
	}
	w.pol.Store(np)
}

func (w *worker) serve(ctx context.Context, c *netio.ServerConn) {
	w.cur = w.pol.Load()
	w.initXleave(c)
	for {
		n, err := c.ReadBatch(ctx, w.in)
		w.drainTx(c)
		if ctx.Err() != nil {
			return
		}
		if err != nil {
			if errors.Is(err, context.Canceled) || errors.Is(err, net.ErrClosed) {
				return
			}
			w.d.logLimited("server-read", "server socket read error", "err", err)
			time.Sleep(10 * time.Millisecond)
			continue
		}
		pol := w.pol.Load()
		w.cur = pol
		if pol.cfg.LeapSmear != w.smearWindow {
			// At start, and when a reload changed leap-smear.
			w.smear, w.smearWindow, w.smearing = newSmear(pol.cfg.LeapSmear), pol.cfg.LeapSmear, false
		}
		w.ctr.requests.Add(uint64(n))
		m := 0
		for i := 0; i < n; i++ {
			if w.answer(pol, &w.in[i], &w.out[m]) {
				w.answered(m)
				m++
			}
		}
		if m > 0 {
			if sent, err := c.WriteBatch(w.out[:m]); err != nil {
				w.ctr.sendErrors.Add(uint64(m - sent))
				w.d.logLimited("server-write", "server socket write error", "err", err)
			}
			w.afterWrite(c, w.out[:m])
		}
	}
}

// answer decides about one request and fills the reply; false means
// nothing is sent.
func (w *worker) answer(pol *workerPolicy, req, resp *netio.Message) bool {
	if req.Truncated || req.N > maxRequest {
		w.ctr.malformed.Add(1)
		return false
	}
	var p ntp.Packet
	if ntp.Parse(req.Buf[:req.N], &p) != nil {
		w.ctr.malformed.Add(1)
		return false
	}
	client := req.Peer.Addr()
	var h ntp.Header
	deny := false
	if al := pol.cfg.Allowlist; al != nil && !al.Contains(client) {
		if al.Action != config.FilterDeny {
			w.ctr.filtered.Add(1)
			return false
		}
		deny = true
	}
	if dl := pol.cfg.Denylist; dl != nil && dl.Contains(client) {
		if dl.Action != config.FilterDeny {
			w.ctr.filtered.Add(1)
			return false
		}
		deny = true
	}
	sn := w.d.snap.Load()
	st := sn.ServerState(precision)
	if !sn.Synchronized && pol.localStratum < 16 {
		// [synchronization] local-stratum: serve the local clock when
		// nothing better is selected (chrony's "local stratum N").
		st.Leap, st.Stratum = sample.LeapNone, uint8(pol.localStratum)
		st.ReferenceID = 0x4c4f434c // "LOCL"
		st.RootDelay, st.RootDispersion = 0, 0
	}
	st.MinPoll = minPollFor(pol.cfg.RateLimit.Interval)
	corr := time.Duration(0)
	if st.Leap != sample.LeapUnsync {
		corr, st.Leap = w.smearCorrection(st.Leap)
	}
	rx := w.d.mapRaw(req.RxTime.Round(0)).Add(corr)
	// Decide with Respond first: it refuses everything that is not a
	// client request (mode 6/7 included), before any KoD is sent.
	if !ntp.Respond(&p.Header, rx, rx, &st, &h) {
		w.ctr.ignored.Add(1)
		return false
	}
	signKey, answer := w.checkRequestAuth(req.Buf[:req.N], &p) // auth.go
	if !answer {
		return false
	}
	kissed := false // h is a Kiss-o'-Death
	switch {
	case deny:
		ntp.RespondKiss(&p.Header, ntp.KissDeny, &h)
		kissed = true
	case pol.limiter != nil:
		// The limiter runs on monotonic time: a clock step must not
		// change its decisions.
		// When the request arrived, not when this batch got to it: a
		// burst read in one batch must not look like one instant.
		arrived := time.Since(w.d.mono0) - max(time.Since(req.RxTime), 0)
		switch pol.limiter.Check(client.As16(), time.Time{}.Add(arrived)) {
		case ntp.Drop:
			w.ctr.rateLimited.Add(1)
			return false
		case ntp.Kiss:
			ntp.RespondKiss(&p.Header, ntp.KissRate, &h)
			kissed = true
		}
	}
	// NTS (RFC 8915): verify the request and add fresh cookies, or NAK.
	var ntsReply *nts.ServerReply
	if ns := w.d.nts.Load(); ns != nil && !kissed {
		r := &w.nts
		err := ns.handler.VerifyInto(r, req.Buf[:req.N], &p)
		switch {
		case errors.Is(err, nts.ErrNotNTS):
		case err != nil:
			w.ctr.malformed.Add(1)
			return false
		case r.NAK():
			ntp.RespondKiss(&p.Header, ntp.KissNTSN, &h)
			kissed = true
			ntsReply = r
		default:
			ntsReply = r
		}
	}
	if !kissed {
		// The transmit timestamp as late as we can take it.
		h.TransmitTime = ntp.TimestampFromTime(w.d.mapRaw(time.Now().Round(0)).Add(corr))
	}
	w.interleave(&p.Header, &h, client.As16(), kissed)
	n, err := h.MarshalTo(resp.Buf)
	if err != nil {
		return false
	}
	if ntsReply != nil {
		if n, err = ntsReply.Append(resp.Buf, n); err != nil {
			return false
		}
	}
	if signKey != nil {
		if n, err = signKey.AppendMAC(resp.Buf, n); err != nil {
			return false
		}
	}
	resp.N = n
	resp.Peer = req.Peer
	resp.Local = req.Local
	resp.IfIndex = req.IfIndex
	w.ctr.countReply(&h, ntsReply)
	return true
}

func minPollFor(iv time.Duration) int8 {
	p := int8(0)
	for iv > time.Second<<uint(p) && p < 17 {
		p++
	}
	return p
}
