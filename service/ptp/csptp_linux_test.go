package ptp

import (
	"context"
	"net"
	"net/netip"
	"testing"
	"time"

	"gnomon.dev/gnomon/engine/ntp"
	eptp "gnomon.dev/gnomon/engine/ptp"
)

func startCSPTPServer(t *testing.T, rl ntp.RateLimitConfig) (*CSPTPServer, context.CancelFunc) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	s, err := ListenCSPTP(ctx, CSPTPServerOptions{Listen: netip.MustParseAddrPort("127.0.0.1:0"), Workers: 2, RateLimit: rl,
		Engine: eptp.CSPTPServerConfig{Identity: IdentityFor("test server"), PTPTimescale: true, Quality: eptp.ClockQuality{Class: 6}}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { s.Serve(ctx); close(done) }()
	return s, func() { cancel(); <-done }
}

func runClient(t *testing.T, ctx context.Context, addr netip.AddrPort, v eptp.CSPTPVariant) *CSPTPClient {
	t.Helper()
	c, err := NewCSPTPClient(CSPTPClientOptions{Name: string(v), Server: addr,
		Engine: eptp.CSPTPClientConfig{Variant: v, Interval: 50 * time.Millisecond}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	go c.Run(ctx)
	return c
}

func waitMeasurements(t *testing.T, c *CSPTPClient, n uint64, within time.Duration) *CSPTPClientStatus {
	t.Helper()
	deadline := time.Now().Add(within)
	for time.Now().Before(deadline) {
		if st := c.Status(); st.Counters.Measurements >= n {
			return st
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("fewer than %d measurements: %+v", n, c.Status())
	return nil
}

// A client of each layout against the server over loopback: the same
// clock on both ends, so the offset is the timestamping noise.
func TestCSPTPLoopback(t *testing.T) {
	srv, stop := startCSPTPServer(t, ntp.RateLimitConfig{})
	defer stop()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	for _, v := range []eptp.CSPTPVariant{eptp.CSPTP1588_1, eptp.CSPTPSPTP} {
		c := runClient(t, ctx, srv.Addr(), v)
		st := waitMeasurements(t, c, 10, 20*time.Second)
		if st.Offset.Abs() > time.Millisecond || st.PathDelay <= 0 || st.PathDelay > time.Millisecond {
			t.Errorf("%s: offset %v path delay %v", v, st.Offset, st.PathDelay)
		}
		if !st.PTPTimescale || st.UTCOffset != 37 || st.GMQuality.Class != 6 || st.GMIdentity != IdentityFor("test server") {
			t.Errorf("%s: status %+v", v, st)
		}
		t.Logf("%s: offset %v path delay %v, %d measurements, %d TX fallbacks", v, st.Offset, st.PathDelay, st.Counters.Measurements, st.TxFallbacks)
	}
	// the server's t1/t3 come from the kernel's transmit timestamps
	if cs := srv.Counters(); cs.Answered < 20 || cs.TxFallbacks > cs.Answered/2 {
		t.Errorf("server counters %+v: transmit timestamps missing", cs)
	}
}

// A flood from one address is rate-limited; a client on another address
// keeps getting answers.
func TestCSPTPFlood(t *testing.T) {
	srv, stop := startCSPTPServer(t, ntp.RateLimitConfig{Interval: 100 * time.Millisecond, Burst: 4, TableSize: 1024})
	defer stop()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	c := runClient(t, ctx, srv.Addr(), eptp.CSPTP1588_1)
	waitMeasurements(t, c, 2, 10*time.Second)
	flood, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 2)})
	if err != nil {
		t.Fatalf("no 127.0.0.2: %v", err)
	}
	defer flood.Close()
	fc, _ := eptp.NewCSPTPClient(eptp.CSPTPClientConfig{Identity: eptp.ClockIdentity{1}, Interval: time.Nanosecond}, time.Now())
	before := c.Status().Counters.Measurements
	dst := net.UDPAddrFromAddrPort(srv.Addr())
	const n = 5000
	start := time.Now()
	for i := range n {
		s, _ := fc.Poll(time.Now().Add(time.Duration(i)))
		if _, err := flood.WriteToUDP(s.Data, dst); err != nil {
			t.Fatal(err)
		}
		if i%500 == 0 {
			time.Sleep(20 * time.Millisecond) // ~0.2 s of flood in all
		}
	}
	elapsed := time.Since(start)
	// what the flooder got back: at most the burst plus one per interval
	// (each answer is a Sync and a Follow_Up)
	got := 0
	buf := make([]byte, 2048)
	for {
		flood.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
		k, _, err := flood.ReadFromUDP(buf)
		if err != nil {
			break
		}
		if h, err := eptp.ParseHeader(buf[:k]); err == nil && h.Type == eptp.MsgSync {
			got++
		}
	}
	allowed := 4 + int(elapsed/(100*time.Millisecond)) + 4
	st := waitMeasurements(t, c, before+3, 10*time.Second)
	cs := srv.Counters()
	t.Logf("server: %+v; flooder answered %d times in %v (allowed %d); client measurements %d -> %d", cs, got, elapsed, allowed, before, st.Counters.Measurements)
	if got > allowed || cs.RateLimited == 0 {
		t.Errorf("the flooder got %d answers in %v (rate limit: burst 4, one per 0.1 s), %d requests rate-limited", got, elapsed, cs.RateLimited)
	}
}
