package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"gnomon.dev/gnomon/engine/ntp"
	"gnomon.dev/gnomon/engine/nts"
	"gnomon.dev/gnomon/service/ntsio"
)

// NTS mode. An nts.ClientSession answers only its latest request (it keeps
// one unique identifier outstanding), so each simulated client keeps a pool
// of sessions and seals each request with a free one: the pool bounds how
// many requests a client can have in flight. The sessions of one client
// come from key exchanges of 8 cookies each, one cookie per session; before
// the first run every session sends one request (its one cookie and seven
// placeholders) and so fills its jar to 8. From then on each request spends
// one cookie and its reply brings one back, as for a client polling
// normally; after a lost request the next carries a placeholder and refills
// the jar. A session that runs dry or draws an NTS NAK is re-keyed by a
// background key exchange and is unavailable until it is done.

// ntsConfig is how to reach the NTS server.
type ntsConfig struct {
	ke        netip.AddrPort // the NTS-KE server
	roots     *x509.CertPool // trusted: the test certificate only
	sessions  int            // per client
	stale     time.Duration  // a request unanswered this long frees its session
	keTimeout time.Duration
	replay    bool // -replay: replayTracker instead of ntsTracker
}

// clientConfig is the key exchange's configuration.
func (c *ntsConfig) clientConfig() ntsio.ClientConfig {
	return ntsio.ClientConfig{Address: c.ke.String(), RootCAs: c.roots, Timeout: c.keTimeout}
}

// loadRoots reads a PEM file of trusted certificates into an empty pool:
// the key exchanges trust these and nothing else. (ntsio.ClientConfig's
// CAFile would read and parse the file on every key exchange.)
func loadRoots(file string) (*x509.CertPool, error) {
	pem, err := os.ReadFile(file)
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("no PEM certificate in %s", file)
	}
	return pool, nil
}

// Session states.
const (
	sessIdle  uint32 = iota // free to seal the next request
	sessBusy                // a request is outstanding
	sessRekey               // waiting for a new key exchange
)

// ntsSession is one session of a client's pool.
type ntsSession struct {
	s      *nts.ClientSession
	state  atomic.Uint32
	tx     atomic.Uint64 // transmit timestamp of the outstanding request
	sentNS atomic.Int64  // when it was sent (ns since the run's start)
}

// ntsState is the NTS side of the load generator: every client's session
// pool, kept across the runs of a sweep, and the re-keying in the
// background.
type ntsState struct {
	cfg   ntsConfig
	ntp   netip.AddrPort // where the key exchange said to send NTP
	pools [][]*ntsSession

	rekeyCh chan *ntsSession
	cancel  context.CancelFunc
	wg      sync.WaitGroup

	keys, keyFails atomic.Uint64 // key exchanges done and failed (all, setup included)
	lastErr        atomic.Value  // error of the last failed key exchange
}

// rekeyWorkers is how many key exchanges re-keying runs at once.
const rekeyWorkers = 4

// newNTSState makes clients session pools of cfg.sessions sessions (key
// exchanges with the server, then one priming request per session from
// the client's own address) and starts the re-keying workers. close stops
// them.
func newNTSState(ctx context.Context, cfg ntsConfig, clients int, base netip.Addr) (*ntsState, error) {
	if cfg.sessions < 1 || clients < 1 {
		return nil, errors.New("nts: need at least one client and one session per client")
	}
	if cfg.stale <= 0 {
		cfg.stale = 250 * time.Millisecond
	}
	wctx, cancel := context.WithCancel(context.Background())
	st := &ntsState{
		cfg:     cfg,
		pools:   make([][]*ntsSession, clients),
		rekeyCh: make(chan *ntsSession, clients*cfg.sessions),
		cancel:  cancel,
	}
	for range rekeyWorkers {
		st.wg.Add(1)
		go func() { defer st.wg.Done(); st.rekeyLoop(wctx) }()
	}
	// The NTP server: from a first key exchange.
	res, err := st.keyExchange(ctx)
	if err != nil {
		st.close()
		return nil, err
	}
	if st.ntp, err = ntpAddr(res); err != nil {
		st.close()
		return nil, err
	}
	first := &res.KEResult

	var (
		wg   sync.WaitGroup
		mu   sync.Mutex
		errs []error
	)
	sem := make(chan struct{}, 8)
	for i := range clients {
		src, err := sourceAddr(base, i)
		if err != nil {
			st.close()
			return nil, err
		}
		ke := first
		first = nil
		wg.Add(1)
		go func() {
			defer wg.Done()
			sem <- struct{}{}
			defer func() { <-sem }()
			pool, err := st.newPool(ctx, src, ke)
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				errs = append(errs, fmt.Errorf("client %d on %v: %w", i, src, err))
				return
			}
			st.pools[i] = pool
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		st.close()
		return nil, err
	}
	return st, nil
}

// close stops the re-keying workers.
func (st *ntsState) close() {
	st.cancel()
	st.wg.Wait()
}

// ntpAddr is the NTP server a key exchange names, which must be an IPv4
// loopback address.
func ntpAddr(res *ntsio.Result) (netip.AddrPort, error) {
	a, err := netip.ParseAddr(res.NTPHost)
	if err != nil || !a.Is4() || !a.IsLoopback() {
		return netip.AddrPort{}, fmt.Errorf("nts: the key exchange names NTP server %q: want an IPv4 loopback address", res.NTPHost)
	}
	return netip.AddrPortFrom(a, res.NTPPort), nil
}

// keyExchange runs one NTS-KE and counts it.
func (st *ntsState) keyExchange(ctx context.Context) (*ntsio.Result, error) {
	res, err := ntsio.KeyExchange(ctx, st.cfg.clientConfig())
	if err == nil && len(res.Cookies) == 0 {
		err = errors.New("nts: the key exchange gave no cookie")
	}
	if err != nil {
		st.keyFails.Add(1)
		st.lastErr.Store(err)
		return nil, err
	}
	st.keys.Add(1)
	return res, nil
}

// newPool makes one client's sessions, one cookie each from as many key
// exchanges as it takes (the first from ke if not nil), and primes them
// from src so that each holds a full jar.
func (st *ntsState) newPool(ctx context.Context, src netip.Addr, ke *nts.KEResult) ([]*ntsSession, error) {
	pool := make([]*ntsSession, 0, st.cfg.sessions)
	for len(pool) < st.cfg.sessions {
		if ke == nil {
			res, err := st.keyExchange(ctx)
			if err != nil {
				return nil, err
			}
			if a, err := ntpAddr(res); err != nil || a != st.ntp {
				return nil, fmt.Errorf("nts: key exchanges name different NTP servers (%v, %s:%d)", st.ntp, res.NTPHost, res.NTPPort)
			}
			ke = &res.KEResult
		}
		for _, c := range ke.Cookies {
			if len(pool) == st.cfg.sessions {
				break
			}
			s, err := nts.NewClientSession(&nts.KEResult{Keys: ke.Keys, Cookies: [][]byte{c}}, rand.Reader)
			if err != nil {
				return nil, err
			}
			pool = append(pool, &ntsSession{s: s})
		}
		ke = nil
	}
	conn, err := net.DialUDP("udp4", net.UDPAddrFromAddrPort(netip.AddrPortFrom(src, 0)), net.UDPAddrFromAddrPort(st.ntp))
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	buf := make([]byte, ntsPktLen)
	for i, ss := range pool {
		var err error
		for range 5 {
			if _, err = exchange(ctx, conn, ss.s, buf, 300*time.Millisecond); err == nil || ctx.Err() != nil {
				break
			}
		}
		if err != nil {
			return nil, fmt.Errorf("priming session %d: %w", i, err)
		}
		if n := ss.s.Cookies(); n < 2 {
			return nil, fmt.Errorf("priming session %d: the server gave %d cookies for 1 cookie and 7 placeholders", i, n)
		}
	}
	return pool, nil
}

// exchange sends one NTS request sealed by s on conn and waits up to
// timeout for its reply, which must be authenticated. It returns the
// reply (a NAK gives an error wrapping nts.ErrNAK). buf must hold a
// request and a reply (ntsPktLen).
func exchange(ctx context.Context, conn *net.UDPConn, s *nts.ClientSession, buf []byte, timeout time.Duration) (*ntp.Packet, error) {
	tx := ntp.TimestampFromTime(time.Now())
	h := ntp.Header{Version: 4, Mode: ntp.ModeClient, Poll: 6, Precision: -20, TransmitTime: tx}
	n, err := h.MarshalTo(buf)
	if err != nil {
		return nil, err
	}
	if n, err = s.Seal(buf, n); err != nil {
		return nil, err
	}
	if _, err := conn.Write(buf[:n]); err != nil {
		return nil, err
	}
	deadline := time.Now().Add(timeout)
	if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
		deadline = d
	}
	conn.SetReadDeadline(deadline)
	for {
		m, err := conn.Read(buf)
		if err != nil {
			return nil, err
		}
		var p ntp.Packet
		if ntp.Parse(buf[:m], &p) != nil || p.OriginTime != tx {
			continue // not the reply to this request
		}
		if err := s.Open(buf[:m], &p); err != nil {
			return nil, err
		}
		return &p, nil
	}
}

// rekeyLoop re-keys the sessions sent to rekeyCh, one key exchange each,
// retrying every 100 ms, until ctx ends.
func (st *ntsState) rekeyLoop(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case ss := <-st.rekeyCh:
			for {
				res, err := st.keyExchange(ctx)
				if err == nil {
					err = ss.s.Rekey(&res.KEResult)
				}
				if err == nil {
					ss.state.Store(sessIdle)
					break
				}
				select {
				case <-ctx.Done():
					return
				case <-time.After(100 * time.Millisecond):
				}
			}
		}
	}
}

// rekey hands ss to the re-keying workers, once.
func (st *ntsState) rekey(ss *ntsSession) {
	if ss.state.Swap(sessRekey) != sessRekey {
		st.rekeyCh <- ss // never blocks: it holds every session
	}
}

// tracker starts a run for client i: its sessions whose requests were
// still outstanding at the end of the last run are free again.
func (st *ntsState) tracker(i int, tr *tracker) *ntsTracker {
	for _, ss := range st.pools[i] {
		ss.state.CompareAndSwap(sessBusy, sessIdle)
	}
	return &ntsTracker{tracker: tr, st: st, pool: st.pools[i], stale: int64(st.cfg.stale)}
}

// ntsTracker is one client's protocol in NTS mode: the plain tracker's
// request header and matching by origin timestamp, sealed and opened by
// the client's sessions.
type ntsTracker struct {
	*tracker
	st    *ntsState
	pool  []*ntsSession
	next  int // sender side: where to look for a free session first
	stale int64
}

// request seals the next request with a free session; 0 if none is free.
func (t *ntsTracker) request(b []byte, wall time.Time, sentNS int64) int {
	for k := range len(t.pool) {
		j := (t.next + k) % len(t.pool)
		ss := t.pool[j]
		switch ss.state.Load() {
		case sessIdle:
			if !ss.state.CompareAndSwap(sessIdle, sessBusy) {
				continue
			}
		case sessBusy:
			// Its request is lost (or very late): take the session
			// over; a reply to the old request now counts as late.
			if sentNS-ss.sentNS.Load() <= t.stale {
				continue
			}
		default:
			continue
		}
		n, tx := t.requestFor(b, wall, sentNS, int32(j))
		m, err := ss.s.Seal(b, n)
		if err != nil {
			// No cookie left or NAKed: re-key in the background.
			t.st.rekey(ss)
			continue
		}
		ss.tx.Store(uint64(tx))
		ss.sentNS.Store(sentNS)
		t.next = j + 1
		return m
	}
	return 0
}

// reply matches the datagram to its request by the origin timestamp, then
// lets the request's session open it: only an authenticated answer counts
// as an answer and has its latency recorded.
func (t *ntsTracker) reply(b []byte, rxNS int64) {
	var p ntp.Packet
	if ntp.Parse(b, &p) != nil {
		t.malformed++
		return
	}
	origin := p.OriginTime
	sent, j, ok := t.match(origin)
	if !ok {
		return
	}
	t.answered++
	if j < 0 || int(j) >= len(t.pool) {
		t.unauth++ // not sealed by a session (cannot happen)
		return
	}
	ss := t.pool[j]
	if ss.tx.Load() != uint64(origin) {
		// The session sealed a newer request since: it can no
		// longer open this reply.
		t.late++
		return
	}
	switch err := ss.s.Open(b, &p); {
	case err == nil:
		t.classify(&p.Header, time.Duration(rxNS-sent))
		if ss.s.NeedsKeyExchange() {
			t.st.rekey(ss)
		} else {
			ss.state.CompareAndSwap(sessBusy, sessIdle)
		}
	case errors.Is(err, nts.ErrNAK):
		t.nak++
		t.st.rekey(ss)
	default:
		// Not authenticated, or without our unique identifier.
		t.unauth++
		ss.state.CompareAndSwap(sessBusy, sessIdle)
	}
}

// replayTracker is one client's protocol with -replay: each of the
// client's sessions seals one request when the run starts, and the sender
// sends these again and again in turn, as fast as the rate allows, without
// waiting for replies (open loop, as in plain NTP). The server does the
// whole work of an NTS answer for every copy: an RFC 8915 server keeps no
// state per request (it opens the cookie, checks the authenticator, seals
// a fresh cookie and the reply each time), so this measures its cost at
// overload without the closed loop, in which the generator's own NTS work
// (a seal and an open per request) keeps the server short of overload on
// a small machine. A reply counts as an answer when it is a mode-4 reply
// carrying an NTS authenticator field; it is not opened (the generator's
// time goes to sending), and its latency is not recorded. NTS NAKs count
// as naks.
type replayTracker struct {
	*tracker
	reqs [][]byte
	next int // sender side
}

// replayTracker seals client i's requests for a -replay run (nil if no
// session could seal one).
func (st *ntsState) replayTracker(i int, tr *tracker) *replayTracker {
	t := &replayTracker{tracker: tr}
	buf := make([]byte, ntsPktLen)
	for _, ss := range st.pools[i] {
		if ss.state.Load() != sessIdle {
			continue
		}
		n, _ := tr.requestFor(buf, time.Now(), 0, -1)
		m, err := ss.s.Seal(buf, n)
		if err != nil {
			st.rekey(ss)
			continue
		}
		t.reqs = append(t.reqs, bytes.Clone(buf[:m]))
	}
	if len(t.reqs) == 0 {
		return nil
	}
	return t
}

func (t *replayTracker) request(b []byte, _ time.Time, _ int64) int {
	r := t.reqs[t.next]
	t.next = (t.next + 1) % len(t.reqs)
	return copy(b, r)
}

func (t *replayTracker) reply(b []byte, _ int64) {
	var p ntp.Packet
	if ntp.Parse(b, &p) != nil {
		t.malformed++
		return
	}
	t.answered++
	if p.Mode != ntp.ModeServer {
		t.invalid++
		return
	}
	if p.Stratum == 0 && p.ReferenceID == ntp.KissNTSN {
		t.nak++
		return
	}
	it := p.ExtensionFields()
	for ef, ok := it.Next(); ok; ef, ok = it.Next() {
		if ef.Type == nts.EFAuthenticator {
			t.valid++
			return
		}
	}
	t.unauth++
}

// waitNTS does key exchanges and sends one NTS request every 100 ms from
// base until a reply is authenticated and passes the client checks (the
// server is up and synchronized), or fails after timeout.
func waitNTS(ctx context.Context, cfg ntsConfig, base netip.Addr, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	buf := make([]byte, ntsPktLen)
	var (
		s    *nts.ClientSession
		conn *net.UDPConn
		last error
	)
	defer func() {
		if conn != nil {
			conn.Close()
		}
	}()
	for ctx.Err() == nil {
		if s == nil || s.NeedsKeyExchange() {
			kc := cfg
			kc.keTimeout = min(max(kc.keTimeout, time.Second), time.Until(deadlineOf(ctx)))
			res, err := ntsio.KeyExchange(ctx, kc.clientConfig())
			if err != nil {
				last = err
				sleepCtx(ctx, 200*time.Millisecond)
				continue
			}
			addr, err := ntpAddr(res)
			if err != nil {
				return err
			}
			if s, err = nts.NewClientSession(&res.KEResult, rand.Reader); err != nil {
				return err
			}
			if conn != nil {
				conn.Close()
			}
			if conn, err = net.DialUDP("udp4", net.UDPAddrFromAddrPort(netip.AddrPortFrom(base, 0)), net.UDPAddrFromAddrPort(addr)); err != nil {
				return err
			}
		}
		p, err := exchange(ctx, conn, s, buf, 100*time.Millisecond)
		if err == nil {
			if err = ntp.CheckReply(&p.Header, p.OriginTime, 0); err == nil {
				return nil
			}
		}
		last = err
		sleepCtx(ctx, 100*time.Millisecond)
	}
	return fmt.Errorf("NTS-KE %v gave no valid NTS answer within %v (last: %v)", cfg.ke, timeout, last)
}

func deadlineOf(ctx context.Context) time.Time {
	d, ok := ctx.Deadline()
	if !ok {
		return time.Now().Add(time.Hour)
	}
	return d
}

func sleepCtx(ctx context.Context, d time.Duration) {
	select {
	case <-ctx.Done():
	case <-time.After(d):
	}
}
