package ntsio

import (
	"net"
	"net/netip"
	"testing"
	"time"
)

func tcpAddr(s string) net.Addr { return net.TCPAddrFromAddrPort(netip.MustParseAddrPort(s)) }

func TestAddrKey(t *testing.T) {
	for in, want := range map[string]string{
		"127.0.0.2:5000":              "127.0.0.2",
		"[::ffff:192.0.2.1]:1":        "192.0.2.1",
		"[2001:db8:1:2:3:4:5:6]:4460": "2001:db8:1:2::",
	} {
		if got := addrKey(tcpAddr(in)).String(); got != want {
			t.Errorf("addrKey(%s) = %s, want %s", in, got, want)
		}
	}
}

// TestLimiterPerAddress: one address gets maxPerAddr connections at once
// and its burst of new ones; another address is unaffected; the table
// forgets idle addresses.
func TestLimiterPerAddress(t *testing.T) {
	l := newLimiter(100, 2, 1, 3)
	now := time.Unix(1000, 0)
	a, b := netip.MustParseAddr("127.0.0.2"), netip.MustParseAddr("127.0.0.1")
	var slots []*slot
	for i := 0; i < 2; i++ {
		s, v, _, _ := l.admit(a, nil, now)
		if v != admitted {
			t.Fatalf("connection %d: %v", i, v)
		}
		slots = append(slots, s)
	}
	_, v, _, note := l.admit(a, nil, now)
	if v != overAddrConns || note == nil || note.addr != a {
		t.Fatalf("third at once: %v, note %+v", v, note)
	}
	if _, v, _, note := l.admit(a, nil, now); v != overAddrConns || note != nil {
		t.Fatalf("fourth: %v, note %+v (want no second log line within a minute)", v, note)
	}
	if _, v, _, _ := l.admit(b, nil, now); v != admitted {
		t.Fatalf("other address: %v", v)
	}
	l.done(slots[0])
	if s, v, _, _ := l.admit(a, nil, now); v != admitted { // third token of the burst
		t.Fatalf("after a release: %v", v)
	} else {
		l.done(s)
	}
	if _, v, _, _ := l.admit(a, nil, now); v != overAddrRate {
		t.Fatalf("burst spent: %v", v)
	}
	if s, v, _, _ := l.admit(a, nil, now.Add(1100*time.Millisecond)); v != admitted {
		t.Fatalf("a second later: %v", v)
	} else {
		l.done(s)
	}
	l.done(slots[1])
	l.sweep(now.Add(time.Hour))
	if n := l.tracked(); n != 1 { // b still holds its connection
		t.Errorf("%d addresses tracked after the sweep, want 1", n)
	}
}

// TestLimiterFairness: when the server is full, a newcomer from an address
// holding fewer takes the oldest slot of the address holding the most.
func TestLimiterFairness(t *testing.T) {
	l := newLimiter(4, 0, 0, 0)
	now := time.Unix(1000, 0)
	flood, honest := netip.MustParseAddr("127.0.0.2"), netip.MustParseAddr("127.0.0.1")
	c1, c2 := &net.TCPConn{}, &net.TCPConn{}
	var first *slot
	for i, c := range []net.Conn{c1, c2, c2, c2} {
		s, v, _, _ := l.admit(flood, c, now.Add(time.Duration(i)))
		if v != admitted {
			t.Fatal(v)
		}
		if i == 0 {
			first = s
		}
	}
	s, v, victim, _ := l.admit(honest, nil, now)
	if v != admitted || victim != c1 {
		t.Fatalf("newcomer: %v, victim %v (want the flood's oldest)", v, victim)
	}
	if !l.done(first) {
		t.Error("the evicted slot does not know it")
	}
	l.done(s)
	// Equal shares: nothing to take.
	l2 := newLimiter(2, 0, 0, 0)
	l2.admit(flood, nil, now)
	l2.admit(honest, nil, now)
	if _, v, _, note := l2.admit(honest, nil, now); v != overTotal || note == nil || note.why != overTotal {
		t.Fatalf("full with equal shares: %v, note %+v", v, note)
	}
	if _, _, _, note := l2.admit(flood, nil, now); note != nil {
		t.Fatalf("second refusal within a minute logged: %+v", note)
	}
}
