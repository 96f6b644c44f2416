package ntsio

import (
	"net"
	"net/netip"
	"sync"
	"time"
)

// Fairness of the NTS-KE server. A key exchange costs the server a TLS
// handshake (an ECDHE and a signature) and, while it lasts, one of MaxConns
// slots, so one address must not be able to take the slots or the CPU from
// everyone else. Each client address (IPv6: its /64) gets at most
// MaxConnsPerAddr connections at once and NewConnsPerAddr new ones a second
// (with a burst); what is over is closed at once, before any TLS. When all
// MaxConns slots are taken, a newcomer takes the oldest slot of the address
// holding the most, as long as that address holds more than the newcomer's.
// So a flood from one address only ever competes with itself.

// Per-address defaults.
const (
	// DefaultMaxConnsPerAddr is how many connections one address may have
	// open at once.
	DefaultMaxConnsPerAddr = 8
	// DefaultNewConnsPerAddr is how many new connections a second one
	// address may open on average; DefaultNewConnsBurst more at once.
	DefaultNewConnsPerAddr = 4
	DefaultNewConnsBurst   = 32
	// DefaultHandshakeTimeout bounds the TLS handshake, from accept, within
	// the connection's Timeout.
	DefaultHandshakeTimeout = 2 * time.Second

	// maxTracked bounds the address table; addresses with no connection
	// and a full bucket are dropped from it first.
	maxTracked = 1 << 16
	// warnEvery is how often one address is named in the log.
	warnEvery = time.Minute
	// warnBurst is how many addresses may be named in the log per warnEvery.
	warnBurst = 16
)

// verdict is what admit decided about a new connection.
type verdict int

const (
	admitted verdict = iota
	overAddrConns
	overAddrRate
	overTotal
)

func (v verdict) String() string {
	switch v {
	case overAddrConns:
		return "too many connections at once from this address"
	case overAddrRate:
		return "too many new connections a second from this address"
	case overTotal:
		return "the server is full"
	}
	return "admitted"
}

// peer is one client address's state.
type peer struct {
	active  int
	tokens  float64
	refill  time.Time // when tokens were last topped up
	conns   []*slot   // open connections, oldest first
	dropped uint64    // connections refused since the address was last logged
	logged  time.Time // when it was last logged
}

// slot is one admitted connection.
type slot struct {
	key      netip.Addr
	conn     net.Conn
	start    time.Time
	released bool
	evicted  bool
}

// limiter keeps the per-address and total counts.
type limiter struct {
	maxTotal, maxPerAddr int     // 0: no per-address limit
	rate, burst          float64 // rate 0: no rate limit

	mu       sync.Mutex
	peers    map[netip.Addr]*peer
	total    int
	warnWin  time.Time // start of the current log window
	warnLeft int       // addresses that may still be logged in it
	swept    time.Time // last sweep

	fullLogged  time.Time // when "server full" was last logged
	fullDropped uint64    // refused as overTotal since
}

func newLimiter(maxTotal, maxPerAddr int, rate float64, burst int) *limiter {
	return &limiter{maxTotal: maxTotal, maxPerAddr: maxPerAddr, rate: rate, burst: float64(burst),
		peers: make(map[netip.Addr]*peer)}
}

// addrKey is how clients are told apart: an IPv4 address, or an IPv6
// address's /64 (one subscriber's network).
func addrKey(a net.Addr) netip.Addr {
	var ap netip.AddrPort
	if ta, ok := a.(*net.TCPAddr); ok {
		ap = ta.AddrPort()
	} else if p, err := netip.ParseAddrPort(a.String()); err == nil {
		ap = p
	}
	ip := ap.Addr().Unmap()
	if ip.Is6() {
		if p, err := ip.Prefix(64); err == nil {
			return p.Addr()
		}
	}
	return ip
}

// logNote is a log line admit asks the caller to write (outside the lock).
type logNote struct {
	addr    netip.Addr
	why     verdict
	dropped uint64
	active  int
}

// admit decides about a new connection c from key at now. On admitted it
// returns the connection's slot (release it when done) and, when a slot
// had to be taken from another address, the connection to close.
func (l *limiter) admit(key netip.Addr, c net.Conn, now time.Time) (s *slot, v verdict, victim net.Conn, note *logNote) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if now.Sub(l.swept) >= warnEvery {
		l.sweep(now)
	}
	p := l.peers[key]
	if p == nil {
		if len(l.peers) >= maxTracked {
			l.sweep(now)
		}
		p = &peer{tokens: l.burst, refill: now}
		l.peers[key] = p
	}
	if l.rate > 0 {
		p.tokens = min(l.burst, p.tokens+l.rate*now.Sub(p.refill).Seconds())
		p.refill = now
	}
	switch {
	case l.maxPerAddr > 0 && p.active >= l.maxPerAddr:
		v = overAddrConns
	case l.rate > 0 && p.tokens < 1:
		v = overAddrRate
	case l.total >= l.maxTotal:
		// Full: take the oldest slot of the address holding the most, if
		// it holds more than this one would after admission.
		var big *peer
		for _, q := range l.peers {
			if q.active > 0 && (big == nil || q.active > big.active) {
				big = q
			}
		}
		if big == nil || big.active <= p.active+1 {
			v = overTotal
			break
		}
		old := big.conns[0]
		old.evicted = true
		victim = old.conn
		l.release(old)
	}
	if v != admitted {
		p.dropped++
		if now.Sub(l.warnWin) >= warnEvery {
			l.warnWin, l.warnLeft = now, warnBurst
		}
		switch {
		case v == overTotal:
			l.fullDropped++
			if now.Sub(l.fullLogged) >= warnEvery {
				note = &logNote{addr: key, why: v, dropped: l.fullDropped, active: l.total}
				l.fullDropped, l.fullLogged = 0, now
			}
		case now.Sub(p.logged) >= warnEvery && l.warnLeft > 0:
			l.warnLeft--
			note = &logNote{addr: key, why: v, dropped: p.dropped, active: p.active}
			p.dropped, p.logged = 0, now
		}
		return nil, v, nil, note
	}
	if l.rate > 0 {
		p.tokens--
	}
	p.active++
	l.total++
	s = &slot{key: key, conn: c, start: now}
	p.conns = append(p.conns, s)
	return s, admitted, victim, nil
}

// done releases s when its connection ends; it reports whether the slot
// had been taken away (evicted).
func (l *limiter) done(s *slot) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.release(s)
	return s.evicted
}

func (l *limiter) release(s *slot) {
	if s.released {
		return
	}
	s.released = true
	l.total--
	p := l.peers[s.key]
	if p == nil {
		return
	}
	p.active--
	for i, x := range p.conns {
		if x == s {
			p.conns = append(p.conns[:i], p.conns[i+1:]...)
			break
		}
	}
}

// sweep drops the addresses that have no connection and whose bucket is
// full again; if that is not enough, every idle address.
func (l *limiter) sweep(now time.Time) {
	l.swept = now
	for k, p := range l.peers {
		full := l.rate == 0 || p.tokens+l.rate*now.Sub(p.refill).Seconds() >= l.burst
		if p.active == 0 && full && now.Sub(p.logged) >= warnEvery {
			delete(l.peers, k)
		}
	}
	if len(l.peers) < maxTracked {
		return
	}
	for k, p := range l.peers {
		if p.active == 0 {
			delete(l.peers, k)
		}
	}
}

// tracked is how many addresses the table holds (for tests).
func (l *limiter) tracked() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.peers)
}
