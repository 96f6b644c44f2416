package main

import (
	"bytes"
	"context"
	"errors"
	"math/rand/v2"
	"net"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"gnomon.dev/gnomon/engine/ntp"
	"gnomon.dev/gnomon/engine/sample"
)

func TestHistogramBuckets(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	prev := -1
	for v := uint64(0); v < 1<<16; v++ {
		i := histIndex(v)
		if i < prev || i > prev+1 {
			t.Fatalf("histIndex(%d) = %d after %d: buckets must be contiguous", v, i, prev)
		}
		prev = i
	}
	for range 100000 {
		v := rng.Uint64() >> rng.IntN(64)
		i := histIndex(v)
		if i < 0 || i >= histBuckets {
			t.Fatalf("histIndex(%d) = %d, outside [0, %d)", v, i, histBuckets)
		}
		lo, hi := histBounds(i)
		if v < lo || v > hi {
			t.Fatalf("histIndex(%d) = %d with bounds [%d, %d]", v, i, lo, hi)
		}
		if v >= 64 && float64(hi-lo) > float64(lo)/histSub {
			t.Fatalf("bucket %d [%d, %d] is wider than 1/%d of its value", i, lo, hi, histSub)
		}
	}
}

func TestHistogramQuantiles(t *testing.T) {
	tests := []struct {
		name     string
		values   []time.Duration
		q        float64
		want     time.Duration
		relError float64
	}{
		{"empty", nil, 0.5, 0, 0},
		{"one", []time.Duration{10 * time.Microsecond}, 0.99, 10 * time.Microsecond, 0.04},
		{"small exact", []time.Duration{1, 2, 3, 4, 5, 6, 7, 8, 9, 10}, 0.5, 5, 0},
		{"p99 of 1..1000 µs", seq(1000, time.Microsecond), 0.99, 990 * time.Microsecond, 0.04},
		{"p50 of 1..1000 µs", seq(1000, time.Microsecond), 0.5, 500 * time.Microsecond, 0.04},
		{"p100 is the maximum", seq(1000, time.Microsecond), 1, 1000 * time.Microsecond, 0.04},
		{"outlier only at p99", append(fill(99, 50*time.Microsecond), 20*time.Millisecond), 0.99, 50 * time.Microsecond, 0.04},
		{"outlier at p99 of 98+2", append(fill(98, 50*time.Microsecond), 20*time.Millisecond, 20*time.Millisecond), 0.99, 20 * time.Millisecond, 0.04},
		{"negative counts as 0", []time.Duration{-5}, 0.5, 0, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var h histogram
			for _, v := range tt.values {
				h.add(v)
			}
			got := h.quantile(tt.q)
			diff := float64(got - tt.want)
			if diff < 0 {
				diff = -diff
			}
			if diff > tt.relError*float64(tt.want) {
				t.Errorf("quantile(%v) = %v, want %v within %.0f%%", tt.q, got, tt.want, 100*tt.relError)
			}
		})
	}
}

func TestHistogramMerge(t *testing.T) {
	var a, b histogram
	for _, v := range seq(100, time.Microsecond) {
		a.add(v)
		b.add(v + 100*time.Microsecond)
	}
	a.merge(&b)
	if a.total != 200 {
		t.Fatalf("total %d, want 200", a.total)
	}
	if got := a.quantile(0.5); got < 97*time.Microsecond || got > 103*time.Microsecond {
		t.Errorf("median of merged 1..200 µs = %v", got)
	}
}

func seq(n int, unit time.Duration) []time.Duration {
	var v []time.Duration
	for i := 1; i <= n; i++ {
		v = append(v, time.Duration(i)*unit)
	}
	return v
}

func fill(n int, d time.Duration) []time.Duration {
	v := make([]time.Duration, n)
	for i := range v {
		v[i] = d
	}
	return v
}

// serverState is a synchronized stratum-1 server's state for ntp.Respond.
var serverState = ntp.ServerState{Leap: sample.LeapNone, Stratum: 1, Precision: -20, ReferenceID: 0x7f7f0101}

// answer builds the reply a server gives to req (a marshalled request).
func answer(t testing.TB, req []byte, st *ntp.ServerState, kiss uint32) []byte {
	t.Helper()
	var p ntp.Packet
	if err := ntp.Parse(req, &p); err != nil {
		t.Fatal(err)
	}
	var h ntp.Header
	now := time.Now()
	if !ntp.Respond(&p.Header, now, now, st, &h) {
		t.Fatal("Respond refused our request")
	}
	if kiss != 0 {
		ntp.RespondKiss(&p.Header, kiss, &h)
	}
	b := make([]byte, ntp.HeaderLen)
	if _, err := h.MarshalTo(b); err != nil {
		t.Fatal(err)
	}
	return b
}

func TestTracker(t *testing.T) {
	unsync := serverState
	unsync.Leap = sample.LeapUnsync
	tests := []struct {
		name  string
		reply func(t *testing.T, req []byte) [][]byte // what comes back for req
		want  stats
	}{
		{"valid", func(t *testing.T, req []byte) [][]byte { return [][]byte{answer(t, req, &serverState, 0)} },
			stats{answered: 1, valid: 1}},
		{"duplicate", func(t *testing.T, req []byte) [][]byte {
			r := answer(t, req, &serverState, 0)
			return [][]byte{r, r}
		}, stats{answered: 1, valid: 1, unmatched: 1}},
		{"kiss RATE", func(t *testing.T, req []byte) [][]byte { return [][]byte{answer(t, req, &serverState, ntp.KissRate)} },
			stats{answered: 1, kod: 1}},
		{"unsynchronized", func(t *testing.T, req []byte) [][]byte { return [][]byte{answer(t, req, &unsync, 0)} },
			stats{answered: 1, unsync: 1}},
		{"forged origin", func(t *testing.T, req []byte) [][]byte {
			r := answer(t, req, &serverState, 0)
			r[28] ^= 0x10 // origin is bytes 24..31: a sequence number never sent
			return [][]byte{r}
		}, stats{unmatched: 1}},
		{"origin from another era of seconds", func(t *testing.T, req []byte) [][]byte {
			r := answer(t, req, &serverState, 0)
			r[24] ^= 0x80 // same sequence number, other seconds
			return [][]byte{r}
		}, stats{unmatched: 1}},
		{"echoed request (mode 3)", func(t *testing.T, req []byte) [][]byte { return [][]byte{req} },
			stats{unmatched: 1}},
		{"short", func(t *testing.T, req []byte) [][]byte { return [][]byte{req[:20]} },
			stats{malformed: 1}},
		{"nothing", func(t *testing.T, req []byte) [][]byte { return nil }, stats{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tr := newTracker(0xfffffffe) // wraps through 0
			var last []byte
			for range 3 {
				req := make([]byte, pktLen)
				n := tr.request(req, time.Now(), 1000)
				last = req[:n]
			}
			for _, r := range tt.reply(t, last) {
				tr.reply(r, 1500)
			}
			if tr.stats != tt.want {
				t.Errorf("stats %+v, want %+v", tr.stats, tt.want)
			}
			if tr.hist.total != tt.want.answered {
				t.Errorf("%d latencies recorded, want %d", tr.hist.total, tt.want.answered)
			}
			if got := tr.hist.quantile(1); tt.want.answered > 0 && (got < 485 || got > 515) {
				t.Errorf("latency %v, want 500ns within 3%%", got)
			}
		})
	}
}

// A reply to a request whose slot was since reused by a newer request is
// not matched: the ring forgets the oldest.
func TestTrackerRingReuse(t *testing.T) {
	tr := newTracker(0)
	req := make([]byte, pktLen)
	n := tr.request(req, time.Now(), 0)
	old := answer(t, req[:n], &serverState, 0)
	for range ringSize {
		tr.request(make([]byte, pktLen), time.Now(), 0)
	}
	tr.reply(old, 1)
	if tr.answered != 0 || tr.unmatched != 1 {
		t.Errorf("stats %+v, want the old reply unmatched", tr.stats)
	}
}

func TestRequestIsAValidClientRequest(t *testing.T) {
	tr := newTracker(41)
	b := make([]byte, pktLen)
	wall := time.Date(2026, 11, 25, 22, 0, 0, 0, time.UTC)
	n := tr.request(b, wall, 0)
	var p ntp.Packet
	if err := ntp.Parse(b[:n], &p); err != nil {
		t.Fatal(err)
	}
	if n != ntp.HeaderLen || p.Mode != ntp.ModeClient || p.Version != 4 {
		t.Errorf("request: %d bytes, mode %v, version %d", n, p.Mode, p.Version)
	}
	if got := p.TransmitTime.Seconds(); got != ntp.TimestampFromTime(wall).Seconds() {
		t.Errorf("transmit seconds %d, want those of %v", got, wall)
	}
	if p.TransmitTime.Fraction() != 42 {
		t.Errorf("transmit fraction %d, want the sequence number 42", p.TransmitTime.Fraction())
	}
}

func TestSourceAddr(t *testing.T) {
	base := netip.MustParseAddr("127.0.0.2")
	tests := []struct {
		base    netip.Addr
		i       int
		want    string
		wantErr bool
	}{
		{base, 0, "127.0.0.2", false},
		{base, 253, "127.0.0.255", false},
		{base, 254, "127.0.1.0", false},
		{base, 1000, "127.0.3.234", false},
		{netip.MustParseAddr("127.255.255.250"), 4, "127.255.255.254", false},
		{netip.MustParseAddr("127.255.255.250"), 5, "", true}, // broadcast
		{netip.MustParseAddr("127.255.255.250"), 6, "", true}, // 128.0.0.0
	}
	for _, tt := range tests {
		got, err := sourceAddr(tt.base, tt.i)
		if (err != nil) != tt.wantErr {
			t.Errorf("sourceAddr(%v, %d): error %v, want error %v", tt.base, tt.i, err, tt.wantErr)
			continue
		}
		if err == nil && got.String() != tt.want {
			t.Errorf("sourceAddr(%v, %d) = %v, want %s", tt.base, tt.i, got, tt.want)
		}
	}
}

func TestParseUDPDrops(t *testing.T) {
	const proc = `   sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode ref pointer drops
  100: 0100007F:5A53 00000000:0000 07 00000000:00000000 00:00000000 00000000     0        0 123 2 0000000000000000 17
  101: 0100007F:5A53 00000000:0000 07 00000000:00000000 00:00000000 00000000     0        0 124 2 0000000000000000 3
  102: 0200007F:C350 0100007F:5A53 01 00000000:00000000 00:00000000 00000000     0        0 125 2 0000000000000000 5
  103: 0300007F:C351 0100007F:5A53 01 00000000:00000000 00:00000000 00000000     0        0 126 2 0000000000000000 0
  104: 0400007F:C352 0100007F:5A53 01 00000000:00000000 00:00000000 00000000     0        0 127 2 0000000000000000 1000
  105: garbage
`
	ours := map[netip.AddrPort]bool{
		netip.MustParseAddrPort("127.0.0.2:50000"): true,
		netip.MustParseAddrPort("127.0.0.3:50001"): true,
	}
	d, err := parseUDPDrops(strings.NewReader(proc), ours, 0x5A53)
	if err != nil {
		t.Fatal(err)
	}
	if d.server != 20 || d.client != 5 {
		t.Errorf("drops %+v, want server 20 (two SO_REUSEPORT sockets), client 5", d)
	}
}

func TestParseFlags(t *testing.T) {
	tests := []struct {
		args    []string
		wantErr string
	}{
		{[]string{"-target", "127.0.0.1:12345"}, ""},
		{[]string{"-target", "192.0.2.1:123"}, "loopback"},
		{[]string{"-target", "[::1]:123"}, "loopback"},
		{[]string{"-target", "127.0.0.1:1", "-base", "10.0.0.1"}, "loopback"},
		{[]string{"-target", "127.0.0.1:1", "-clients", "0"}, "clients"},
		{[]string{"-target", "127.0.0.1:1", "-clients", "20000000"}, "outside loopback"},
		{[]string{"-target", "127.0.0.1:1", "-duration", "0s"}, "duration"},
		{[]string{"-target", "127.0.0.1:1", "-sweep", "-step", "1"}, "step"},
		{[]string{"-target", "127.0.0.1:1", "-max-loss", "0"}, "max-loss"},
		{[]string{"-target", "127.0.0.1:1", "extra"}, "unexpected"},
	}
	for _, tt := range tests {
		_, err := parseFlags(tt.args, &bytes.Buffer{})
		switch {
		case tt.wantErr == "" && err != nil:
			t.Errorf("%v: %v", tt.args, err)
		case tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)):
			t.Errorf("%v: error %v, want one about %q", tt.args, err, tt.wantErr)
		}
	}
}

// responder is a tiny in-process NTP server on 127.0.0.1 built on
// ntp.Respond; it drops every dropEvery-th request (0: none) and remembers
// which source addresses it saw.
type responder struct {
	conn      *net.UDPConn
	dropEvery uint64
	n         atomic.Uint64
	dropped   atomic.Uint64
	mu        sync.Mutex
	peers     map[netip.Addr]bool
	done      chan struct{}
}

func startResponder(t *testing.T, dropEvery uint64) *responder {
	t.Helper()
	conn, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	conn.SetReadBuffer(8 << 20)
	r := &responder{conn: conn, dropEvery: dropEvery, peers: map[netip.Addr]bool{}, done: make(chan struct{})}
	go r.serve()
	t.Cleanup(func() { conn.Close(); <-r.done })
	return r
}

func (r *responder) addr() netip.AddrPort { return r.conn.LocalAddr().(*net.UDPAddr).AddrPort() }

func (r *responder) serve() {
	defer close(r.done)
	buf := make([]byte, 1024)
	out := make([]byte, ntp.HeaderLen)
	for {
		n, peer, err := r.conn.ReadFromUDPAddrPort(buf)
		if err != nil {
			return
		}
		r.mu.Lock()
		r.peers[peer.Addr()] = true
		r.mu.Unlock()
		if k := r.n.Add(1); r.dropEvery > 0 && k%r.dropEvery == 0 {
			r.dropped.Add(1)
			continue
		}
		var p ntp.Packet
		if ntp.Parse(buf[:n], &p) != nil {
			continue
		}
		var h ntp.Header
		now := time.Now()
		if !ntp.Respond(&p.Header, now, now, &serverState, &h) {
			continue
		}
		h.MarshalTo(out)
		r.conn.WriteToUDPAddrPort(out, peer)
	}
}

func TestRunLoadLoopback(t *testing.T) {
	tests := []struct {
		name      string
		dropEvery uint64
		rate      float64
	}{
		{"all answered", 0, 2000},
		{"every 10th dropped", 10, 2000},
		{"as fast as possible", 0, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := startResponder(t, tt.dropEvery)
			cfg := runConfig{
				target: srv.addr(), clients: 4, rate: tt.rate,
				duration: 300 * time.Millisecond, drain: time.Second, tick: time.Millisecond,
				base: netip.MustParseAddr("127.0.0.2"),
			}
			if tt.rate == 0 {
				cfg.duration = 100 * time.Millisecond
			}
			res, err := runLoad(context.Background(), cfg)
			if err != nil {
				t.Fatal(err)
			}
			if res.sent == 0 {
				t.Fatal("nothing sent")
			}
			received := srv.n.Load()
			dropped := srv.dropped.Load()
			lostInKernel := res.sent - received // the responder is slower than a burst
			if tt.rate > 0 && lostInKernel != 0 {
				t.Errorf("sent %d, the responder received %d", res.sent, received)
			}
			if want := received - dropped; res.stats.answered != want {
				t.Errorf("answered %d, want %d (sent %d, responder dropped %d)", res.stats.answered, want, res.sent, dropped)
			}
			if res.stats.valid != res.stats.answered || res.stats.unmatched+res.stats.malformed+res.stats.kod != 0 {
				t.Errorf("stats %+v: every answer should be valid and matched", res.stats)
			}
			if res.hist.total != res.stats.answered || res.hist.quantile(0.99) <= 0 {
				t.Errorf("%d latencies, p99 %v", res.hist.total, res.hist.quantile(0.99))
			}
			if tt.rate > 0 {
				wantLoss := float64(dropped) / float64(res.sent)
				if d := res.loss() - wantLoss; d > 1e-9 || d < -1e-9 {
					t.Errorf("loss %v, want %v", res.loss(), wantLoss)
				}
				// Open loop at 2000/s for 0.3 s: never more than the
				// schedule's 600 (150 per client). (Fewer is possible on a
				// busy machine, so that is not checked.)
				if res.sent > 600 {
					t.Errorf("sent %d requests at %v/s for %v: more than the schedule allows", res.sent, tt.rate, cfg.duration)
				}
			}
			// Each client sends from its own address. As fast as
			// possible, the kernel may drop all of one client's
			// requests at the responder's full socket (or a client
			// starved of the CPU sends none): then only no stranger
			// may be seen.
			srv.mu.Lock()
			defer srv.mu.Unlock()
			if len(res.clientSent) != cfg.clients {
				t.Fatalf("%d per-client counts for %d clients", len(res.clientSent), cfg.clients)
			}
			ours := map[netip.Addr]bool{}
			for i := range cfg.clients {
				a, _ := sourceAddr(cfg.base, i)
				ours[a] = true
				if !srv.peers[a] && res.clientSent[i] > 0 && lostInKernel == 0 {
					t.Errorf("client %d sent %d, but no request came from %v (saw %v)", i, res.clientSent[i], a, srv.peers)
				}
			}
			for a := range srv.peers {
				if !ours[a] {
					t.Errorf("a request came from %v, no client's address", a)
				}
			}
			var out bytes.Buffer
			report(&out, "test", res)
			if !strings.Contains(out.String(), "answers/s=") {
				t.Errorf("report: %q", out.String())
			}
		})
	}
}

func TestWaitValid(t *testing.T) {
	srv := startResponder(t, 0)
	if err := waitValid(context.Background(), srv.addr(), netip.MustParseAddr("127.0.0.2"), 5*time.Second); err != nil {
		t.Fatal(err)
	}
	// Nothing listens on a closed port: it must give up.
	c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	dead := c.LocalAddr().(*net.UDPAddr).AddrPort()
	c.Close()
	if err := waitValid(context.Background(), dead, netip.MustParseAddr("127.0.0.2"), 300*time.Millisecond); err == nil {
		t.Fatal("waitValid succeeded with nothing listening")
	}
}

func TestRunRefusesNonLoopback(t *testing.T) {
	_, err := runLoad(context.Background(), runConfig{target: netip.MustParseAddrPort("192.0.2.1:123"), clients: 1})
	if err == nil {
		t.Fatal("runLoad accepted a non-loopback target")
	}
	if errors.Is(err, context.Canceled) {
		t.Fatal(err)
	}
}

// TestPaddedRequest: -pad makes plain requests of that length, which parse
// as NTP with one extension field (what ntpfloor -echo sends back).
func TestPaddedRequest(t *testing.T) {
	tr := newTracker(1)
	tr.pad = 228
	b := make([]byte, pktLen)
	n := tr.request(b, time.Now(), 0)
	if n != 228 {
		t.Fatalf("padded request is %d bytes, want 228", n)
	}
	var p ntp.Packet
	if err := ntp.Parse(b[:n], &p); err != nil {
		t.Fatalf("padded request does not parse: %v", err)
	}
	it := p.ExtensionFields()
	ef, ok := it.Next()
	if !ok || ef.Type != padType || len(ef.Value) != 228-48-4 {
		t.Fatalf("extension field %v %d bytes, ok %v", ef.Type, len(ef.Value), ok)
	}
	if _, ok := it.Next(); ok {
		t.Fatal("more than one extension field")
	}
	var out, errOut bytes.Buffer
	if rc := run([]string{"-pad", "230"}, &out, &errOut); rc == 0 || !strings.Contains(errOut.String(), "-pad 230") {
		t.Errorf("-pad 230 accepted: %d %s", rc, errOut.String())
	}
}
