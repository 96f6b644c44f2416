package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"io"
	"log/slog"
	"math"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"gnomon.dev/gnomon/engine/ntp"
	"gnomon.dev/gnomon/engine/nts"
	"gnomon.dev/gnomon/service/ntsio"
	"gnomon.dev/gnomon/tests/peers"
)

// writeTestCert writes a throwaway self-signed certificate for localhost
// and 127.0.0.1 (the shared test harness's).
func writeTestCert(t testing.TB, dir, name string) (certFile, keyFile string) {
	certFile, keyFile, _ = peers.WriteCert(t, dir, name, 0o600)
	return certFile, keyFile
}

// ntsAnswer is an NTS server's answer to req, built with engine/nts.Server
// as gnomond's server builds it: the reply header (a Kiss-o'-Death NTSN
// for a NAK) and the NTS fields. ok is false when the request is dropped.
// reuse, when not nil, is the ServerReply kept from request to request (as
// gnomond's worker keeps one); nil makes a fresh one.
func ntsAnswer(srv *nts.Server, reuse *nts.ServerReply, req, out []byte) (n int, r *nts.ServerReply, ok bool) {
	var p ntp.Packet
	if ntp.Parse(req, &p) != nil {
		return 0, nil, false
	}
	var h ntp.Header
	now := time.Now()
	if !ntp.Respond(&p.Header, now, now, &serverState, &h) {
		return 0, nil, false
	}
	r = reuse
	if r == nil {
		r = new(nts.ServerReply)
	}
	err := srv.VerifyInto(r, req, &p)
	switch {
	case errors.Is(err, nts.ErrNotNTS):
		r = nil
	case err != nil:
		return 0, nil, false
	case r.NAK():
		ntp.RespondKiss(&p.Header, ntp.KissNTSN, &h)
	}
	if n, err = h.MarshalTo(out); err != nil {
		return 0, nil, false
	}
	if r != nil {
		if n, err = r.Append(out, n); err != nil {
			return 0, nil, false
		}
	}
	return n, r, true
}

// ntsTestServer is an in-process NTS server on 127.0.0.1: an NTS-KE
// server (service/ntsio) and an NTP server verifying with engine/nts,
// sharing one key ring that keeps a single master key (so Rotate makes
// every cookie handed out before it draw a NAK).
type ntsTestServer struct {
	ke      *ntsio.Server
	keAddr  netip.AddrPort
	ring    *nts.KeyRing
	caFile  string
	conn    *net.UDPConn
	handler *nts.Server

	dropEvery atomic.Uint64 // drop every n-th NTS request (0: none)
	tamper    atomic.Bool   // corrupt the authenticator of every reply

	requests     atomic.Uint64 // NTS requests received
	dropped      atomic.Uint64
	answered     atomic.Uint64 // authenticated replies sent
	naks         atomic.Uint64
	placeholders atomic.Uint64 // requests that asked for more than one cookie
	done         chan struct{}
}

func startNTSServer(t *testing.T, dropEvery uint64) *ntsTestServer {
	t.Helper()
	dir := t.TempDir()
	cf, kf := writeTestCert(t, dir, "server")
	ring, err := nts.NewKeyRing(rand.Reader, time.Now(), 1, 0)
	if err != nil {
		t.Fatal(err)
	}
	conn, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	conn.SetReadBuffer(8 << 20)
	s := &ntsTestServer{ring: ring, caFile: cf, conn: conn,
		handler: &nts.Server{Keys: ring, Rand: rand.Reader}, done: make(chan struct{})}
	s.ke, err = ntsio.NewServer(ntsio.ServerConfig{CertFile: cf, KeyFile: kf, Keys: ring,
		NTPServer: "127.0.0.1", NTPPort: conn.LocalAddr().(*net.UDPAddr).AddrPort().Port(),
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
		// One load generator, one address: no per-address limits.
		MaxConnsPerAddr: -1, NewConnsPerAddr: -1})
	if err != nil {
		t.Fatal(err)
	}
	s.dropEvery.Store(dropEvery)
	ctx, cancel := context.WithCancel(context.Background())
	ln, err := ntsio.Listen(ctx, "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s.keAddr = ln.Addr().(*net.TCPAddr).AddrPort()
	keDone := make(chan error, 1)
	go func() { keDone <- s.ke.Serve(ctx, ln) }()
	go s.serve()
	t.Cleanup(func() {
		cancel()
		conn.Close()
		<-s.done
		if err := <-keDone; err != nil {
			t.Errorf("NTS-KE Serve: %v", err)
		}
	})
	return s
}

func (s *ntsTestServer) serve() {
	defer close(s.done)
	buf := make([]byte, 4096)
	out := make([]byte, 4096)
	var reply nts.ServerReply
	for {
		n, peer, err := s.conn.ReadFromUDPAddrPort(buf)
		if err != nil {
			return
		}
		k := s.requests.Add(1)
		if d := s.dropEvery.Load(); d > 0 && k%d == 0 {
			s.dropped.Add(1)
			continue
		}
		m, r, ok := ntsAnswer(s.handler, &reply, buf[:n], out)
		if !ok || r == nil {
			continue
		}
		switch {
		case r.NAK():
			s.naks.Add(1)
		default:
			s.answered.Add(1)
			if r.Cookies() > 1 {
				s.placeholders.Add(1)
			}
			if s.tamper.Load() {
				out[m-1] ^= 1 // the authenticator is the last field
			}
		}
		s.conn.WriteToUDPAddrPort(out[:m], peer)
	}
}

func (s *ntsTestServer) config(t *testing.T, sessions int) ntsConfig {
	t.Helper()
	roots, err := loadRoots(s.caFile)
	if err != nil {
		t.Fatal(err)
	}
	// Without loss no reply may come so late that its session is taken
	// over (it would count as late, not as an answer), however loaded the
	// machine: stale is far above any stall. Tests with loss lower it.
	return ntsConfig{ke: s.keAddr, roots: roots, sessions: sessions, stale: 10 * time.Second, keTimeout: 5 * time.Second}
}

// waitServed waits until the NTS-KE server has counted n key exchanges
// (it counts after its last write, which the client may see first).
func (s *ntsTestServer) waitServed(t *testing.T, n uint64) ntsio.ServerStats {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for s.ke.Stats().Served < n && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	return s.ke.Stats()
}

func TestNTSSetUp(t *testing.T) {
	tests := []struct {
		clients, sessions int
		wantKE            uint64
	}{
		{1, 1, 1},
		{2, 3, 2},   // the first key exchange serves client 0 too
		{2, 8, 2},   // 8 cookies: 8 sessions
		{3, 9, 6},   // 2 each
		{2, 17, 6},  // 3 each
		{1, 16, 2},  // exactly 2
		{4, 2, 4},   // 1 each
		{3, 24, 9},  // 3 each
		{2, 64, 16}, // 8 each
	}
	srv := startNTSServer(t, 0)
	base := netip.MustParseAddr("127.0.0.2")
	for _, tt := range tests {
		before := srv.ke.Stats().Served
		prime0 := srv.placeholders.Load()
		st, err := newNTSState(context.Background(), srv.config(t, tt.sessions), tt.clients, base)
		if err != nil {
			t.Fatalf("%d clients x %d sessions: %v", tt.clients, tt.sessions, err)
		}
		st.close()
		if got := st.keys.Load(); got != tt.wantKE {
			t.Errorf("%d clients x %d sessions: %d key exchanges, want %d", tt.clients, tt.sessions, got, tt.wantKE)
		}
		if ks := srv.waitServed(t, before+tt.wantKE); ks.Served-before != tt.wantKE || ks.Failed != 0 {
			t.Errorf("the server served %d key exchanges (%d failed), want %d", ks.Served-before, ks.Failed, tt.wantKE)
		}
		if st.ntp != srv.conn.LocalAddr().(*net.UDPAddr).AddrPort() {
			t.Errorf("NTP server %v, want the one the key exchange names", st.ntp)
		}
		if len(st.pools) != tt.clients {
			t.Fatalf("%d pools", len(st.pools))
		}
		for i, pool := range st.pools {
			if len(pool) != tt.sessions {
				t.Errorf("client %d: %d sessions, want %d", i, len(pool), tt.sessions)
			}
			for j, ss := range pool {
				// Primed: one cookie and seven placeholders in, eight
				// cookies back.
				if n := ss.s.Cookies(); n != nts.MaxCookies || ss.state.Load() != sessIdle {
					t.Errorf("client %d session %d: %d cookies, state %d", i, j, n, ss.state.Load())
				}
			}
		}
		if got, want := srv.placeholders.Load()-prime0, uint64(tt.clients*tt.sessions); got != want {
			t.Errorf("%d priming requests asked for more cookies, want %d", got, want)
		}
	}
}

func TestNTSRunLoopback(t *testing.T) {
	tests := []struct {
		name      string
		dropEvery uint64
		tamper    bool
		rotate    bool
	}{
		{"all answered", 0, false, false},
		{"every 10th dropped", 10, false, false},
		{"replies tampered with", 0, true, false},
		{"NAK after key rotation", 0, false, true},
	}
	const clients, sessions = 2, 16
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := startNTSServer(t, 0)
			base := netip.MustParseAddr("127.0.0.2")
			// A session whose request is lost is taken over after
			// stale, which frees it for the next request (a reply that
			// comes later still counts as late, not as an answer).
			ncfg := srv.config(t, sessions)
			drain := 10 * time.Second // ends when every request is answered
			if tt.dropEvery > 0 {
				ncfg.stale = 100 * time.Millisecond
				drain = time.Second // waits for the lost requests in vain
			}
			st, err := newNTSState(context.Background(), ncfg, clients, base)
			if err != nil {
				t.Fatal(err)
			}
			defer st.close()
			// Set-up is never dropped or tampered with.
			req0, ans0, ph0 := srv.requests.Load(), srv.answered.Load(), srv.placeholders.Load()
			keys0, keyFails0 := st.keys.Load(), st.keyFails.Load()
			srv.dropEvery.Store(tt.dropEvery)
			srv.tamper.Store(tt.tamper)
			if tt.rotate {
				if err := srv.ring.Rotate(time.Now()); err != nil {
					t.Fatal(err)
				}
			}
			cfg := runConfig{clients: clients, rate: 1000, duration: 300 * time.Millisecond,
				drain: drain, tick: time.Millisecond, base: base, nts: st}
			res, err := runLoad(context.Background(), cfg)
			if err != nil {
				t.Fatal(err)
			}
			s := res.stats
			received := srv.requests.Load() - req0
			if res.sent == 0 || received != res.sent {
				t.Fatalf("sent %d, the server received %d", res.sent, received)
			}
			// Requests are skipped when every session of a client
			// waits for its reply or its re-keying: after a stall of
			// the sender (its catch-up burst outruns the pool) or of
			// the server, and by design after a key rotation (each
			// session waits for its key exchange). That is the
			// generator's report, not an error; a session that is
			// never freed is, and is checked below.
			t.Logf("%d sent, %d skipped for want of a free session (sending took %v)", res.sent, res.skipped, res.elapsed)
			if s.unmatched+s.malformed+s.kod+s.unsync+s.invalid != 0 || (tt.dropEvery == 0 && s.late != 0) {
				t.Errorf("stats %+v", s)
			}
			if s.answered != s.answers()+s.nak+s.unauth+s.late {
				t.Errorf("answered %d is not answers+naks+unauth+late: %+v", s.answered, s)
			}
			if res.hist.total != s.answers() {
				t.Errorf("%d latencies for %d answers", res.hist.total, s.answers())
			}
			switch {
			case tt.tamper:
				if s.answers() != 0 || s.unauth != res.sent || res.loss() != 1 {
					t.Errorf("tampered: %d answers, %d unauthenticated of %d sent, loss %v", s.answers(), s.unauth, res.sent, res.loss())
				}
				// No reply brings cookies: the jars run dry after 8
				// requests each and the sessions are re-keyed.
				if res.sent > clients*sessions*nts.MaxCookies && res.keys == 0 {
					t.Errorf("%d requests without a cookie coming back, and no re-keying", res.sent)
				}
			case tt.rotate:
				// Every session's first request draws a NAK; it is
				// re-keyed once and answered from then on. Each
				// client's first requests go to distinct sessions, so
				// every session is used unless the sender was starved
				// for most of the run; priming does not set tx, so a
				// session with one is one this run used. The last key
				// exchanges may still run when the last reply is in:
				// wait for them (bounded).
				var used uint64
				for _, pool := range st.pools {
					for _, ss := range pool {
						if ss.tx.Load() != 0 {
							used++
						}
					}
				}
				if used != clients*sessions {
					t.Logf("only %d of %d sessions were used", used, clients*sessions)
				}
				keys := func() uint64 { return st.keys.Load() - keys0 + st.keyFails.Load() - keyFails0 }
				for deadline := time.Now().Add(10 * time.Second); keys() < s.nak && time.Now().Before(deadline); {
					time.Sleep(time.Millisecond)
				}
				if k, kf := st.keys.Load()-keys0, st.keyFails.Load()-keyFails0; s.nak != used || k != s.nak || kf != 0 {
					t.Errorf("%d NAKs and %d key exchanges (%d failed), want %d each (one per session used)", s.nak, k, kf, used)
				}
				if s.answers()+s.nak != res.sent || s.answers() == 0 {
					t.Errorf("%d answers + %d NAKs, sent %d", s.answers(), s.nak, res.sent)
				}
				if got := srv.answered.Load() - ans0; got != s.answers() {
					t.Errorf("the server authenticated %d, the generator %d", got, s.answers())
				}
			default:
				// Every request the server did not drop is answered
				// once: an answer, or late when its session was taken
				// over before the reply came (only with loss).
				dropped := srv.dropped.Load()
				if s.answers()+s.late != res.sent-dropped || s.nak+s.unauth != 0 || s.valid != s.answers() {
					t.Errorf("%d answers (%d valid, %d late), sent %d, the server dropped %d: %+v", s.answers(), s.valid, s.late, res.sent, dropped, s)
				}
				if want := float64(dropped+s.late) / float64(res.sent); math.Abs(res.loss()-want) > 1e-9 {
					t.Errorf("loss %v, want %v", res.loss(), want)
				}
				// A request after a lost one carries a placeholder
				// and refills the jar; without loss, none does.
				ph := srv.placeholders.Load() - ph0
				if (dropped > 0) != (ph > 0) {
					t.Errorf("%d requests lost, %d asked for more than one cookie", dropped, ph)
				}
				if dropped == 0 {
					for _, pool := range st.pools {
						for _, ss := range pool {
							if n := ss.s.Cookies(); n != nts.MaxCookies {
								t.Errorf("a session holds %d cookies after a run without loss", n)
							}
						}
					}
				}
			}
			// No session is left behind: after the last reply each is
			// free again, unless its last request was lost (busy until
			// taken over) or it waits for a key exchange (its jar ran
			// dry: only when no reply brings cookies back).
			var busy, rekey int
			for _, pool := range st.pools {
				for _, ss := range pool {
					switch ss.state.Load() {
					case sessBusy:
						busy++
					case sessRekey:
						rekey++
					}
				}
			}
			if uint64(busy) > srv.dropped.Load() || (rekey != 0 && !tt.tamper) {
				t.Errorf("after the run %d sessions wait for a reply (%d requests were lost), %d for a key exchange", busy, srv.dropped.Load(), rekey)
			}
			var out bytes.Buffer
			report(&out, "test", res)
			if !strings.Contains(out.String(), "test nts ") || !strings.Contains(out.String(), "naks=") {
				t.Errorf("report: %q", out.String())
			}
		})
	}
}

// A run right after another with the same sessions: their state carries
// over (no new key exchange is needed).
func TestNTSRunsReuseSessions(t *testing.T) {
	srv := startNTSServer(t, 0)
	base := netip.MustParseAddr("127.0.0.2")
	st, err := newNTSState(context.Background(), srv.config(t, 4), 2, base)
	if err != nil {
		t.Fatal(err)
	}
	defer st.close()
	keys := st.keys.Load()
	for range 2 {
		res, err := runLoad(context.Background(), runConfig{clients: 2, rate: 500, duration: 100 * time.Millisecond,
			drain: time.Second, tick: time.Millisecond, base: base, nts: st})
		if err != nil {
			t.Fatal(err)
		}
		if res.sent == 0 || res.stats.answers() != res.sent {
			t.Errorf("sent %d, %d answers", res.sent, res.stats.answers())
		}
	}
	if st.keys.Load() != keys {
		t.Errorf("%d key exchanges during the runs", st.keys.Load()-keys)
	}
	// More clients than pools is refused.
	if _, err := runLoad(context.Background(), runConfig{clients: 3, rate: 100, duration: time.Millisecond,
		tick: time.Millisecond, base: base, nts: st}); err == nil {
		t.Error("runLoad accepted more clients than there are session pools")
	}
}

// With one session per client and a server that answers nothing, the
// sessions stay busy and the schedule's requests are skipped, not queued.
func TestNTSNoFreeSession(t *testing.T) {
	srv := startNTSServer(t, 0)
	base := netip.MustParseAddr("127.0.0.2")
	cfg := srv.config(t, 1)
	cfg.stale = time.Hour
	st, err := newNTSState(context.Background(), cfg, 1, base)
	if err != nil {
		t.Fatal(err)
	}
	defer st.close()
	srv.dropEvery.Store(1)
	res, err := runLoad(context.Background(), runConfig{clients: 1, rate: 1000, duration: 100 * time.Millisecond,
		drain: 10 * time.Millisecond, tick: time.Millisecond, base: base, nts: st})
	if err != nil {
		t.Fatal(err)
	}
	if res.sent != 1 || res.skipped == 0 || !res.generatorLimited() || res.loss() != 1 {
		t.Errorf("sent %d, skipped %d, loss %v: want 1 sent, the rest skipped", res.sent, res.skipped, res.loss())
	}
}

func TestWaitNTS(t *testing.T) {
	srv := startNTSServer(t, 0)
	base := netip.MustParseAddr("127.0.0.2")
	if err := waitNTS(context.Background(), srv.config(t, 1), base, 5*time.Second); err != nil {
		t.Fatal(err)
	}
	// A server whose replies do not authenticate is not valid.
	srv.tamper.Store(true)
	if err := waitNTS(context.Background(), srv.config(t, 1), base, 300*time.Millisecond); err == nil {
		t.Fatal("waitNTS accepted unauthenticated replies")
	}
	// Nothing listens: it gives up.
	cfg := srv.config(t, 1)
	ln, err := net.ListenTCP("tcp4", &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	cfg.ke = ln.Addr().(*net.TCPAddr).AddrPort()
	ln.Close()
	if err := waitNTS(context.Background(), cfg, base, 300*time.Millisecond); err == nil {
		t.Fatal("waitNTS succeeded with nothing listening")
	}
}

func TestRunKE(t *testing.T) {
	srv := startNTSServer(t, 0)
	t.Run("trusted", func(t *testing.T) {
		before := srv.ke.Stats()
		cfg := keConfig{ntsConfig: srv.config(t, 1), concurrency: 3, duration: 200 * time.Millisecond}
		r, err := runKE(context.Background(), cfg)
		if err != nil {
			t.Fatal(err)
		}
		if r.ok == 0 || r.failed != 0 || r.firstErr != nil {
			t.Fatalf("%d ok, %d failed (%v)", r.ok, r.failed, r.firstErr)
		}
		if r.hist.total != r.ok || r.cookies != r.ok*nts.MaxCookies || r.hist.quantile(0.99) <= 0 {
			t.Errorf("%d latencies, %d cookies for %d exchanges", r.hist.total, r.cookies, r.ok)
		}
		if st := srv.waitServed(t, before.Served+r.ok); st.Served-before.Served != r.ok || st.Failed != before.Failed {
			t.Errorf("the server served %d (failed %d), the generator counted %d", st.Served-before.Served, st.Failed-before.Failed, r.ok)
		}
		var out bytes.Buffer
		reportKE(&out, "test", r)
		if !strings.Contains(out.String(), "handshakes/s=") || strings.Contains(out.String(), "first-error") {
			t.Errorf("report: %q", out.String())
		}
		desc, err := probeKE(context.Background(), cfg.ntsConfig)
		if err != nil || !strings.Contains(desc, "TLS 1.3") || !strings.Contains(desc, `"ntske/1"`) {
			t.Errorf("probe: %q, %v", desc, err)
		}
	})
	t.Run("untrusted", func(t *testing.T) {
		other, _ := writeTestCert(t, t.TempDir(), "other")
		cfg := keConfig{ntsConfig: srv.config(t, 1), concurrency: 2, duration: 100 * time.Millisecond}
		var err error
		if cfg.roots, err = loadRoots(other); err != nil {
			t.Fatal(err)
		}
		r, err := runKE(context.Background(), cfg)
		if err != nil {
			t.Fatal(err)
		}
		if r.ok != 0 || r.failed == 0 || r.firstErr == nil || !strings.Contains(r.firstErr.Error(), "certificate") {
			t.Errorf("%d ok, %d failed, first error %v", r.ok, r.failed, r.firstErr)
		}
		if _, err := probeKE(context.Background(), cfg.ntsConfig); err == nil {
			t.Error("probe trusted an unknown certificate")
		}
	})
	t.Run("not loopback", func(t *testing.T) {
		cfg := keConfig{ntsConfig: ntsConfig{ke: netip.MustParseAddrPort("192.0.2.1:4460")}, concurrency: 1, duration: time.Millisecond}
		if _, err := runKE(context.Background(), cfg); err == nil {
			t.Error("runKE accepted a non-loopback server")
		}
	})
}

func TestParseFlagsNTS(t *testing.T) {
	dir := t.TempDir()
	ca, _ := writeTestCert(t, dir, "ca")
	notPEM := filepath.Join(dir, "x")
	os.WriteFile(notPEM, []byte("hello"), 0o644)
	tests := []struct {
		args    []string
		wantErr string
	}{
		{[]string{"-nts", "127.0.0.1:4460", "-ca", ca}, ""},
		{[]string{"-nts", "127.0.0.1:4460", "-ca", ca, "-sweep", "-sessions", "8"}, ""},
		{[]string{"-ke", "127.0.0.1:4460", "-ca", ca, "-concurrency", "32"}, ""},
		{[]string{"-nts", "127.0.0.1:4460"}, "-ca"},
		{[]string{"-nts", "192.0.2.1:4460", "-ca", ca}, "loopback"},
		{[]string{"-nts", "localhost:4460", "-ca", ca}, "loopback"},
		{[]string{"-ke", "[::1]:4460", "-ca", ca}, "loopback"},
		{[]string{"-ke", "127.0.0.1", "-ca", ca}, "port"},
		{[]string{"-ke", "127.0.0.1:0", "-ca", ca}, "port"},
		{[]string{"-nts", "127.0.0.1:1", "-ke", "127.0.0.1:1", "-ca", ca}, "choose one"},
		{[]string{"-ke", "127.0.0.1:1", "-ca", ca, "-sweep"}, "sweep"},
		{[]string{"-ke", "127.0.0.1:1", "-ca", ca, "-concurrency", "0"}, "concurrency"},
		{[]string{"-nts", "127.0.0.1:1", "-ca", ca, "-sessions", "0"}, "sessions"},
		{[]string{"-nts", "127.0.0.1:1", "-ca", filepath.Join(dir, "missing")}, "-ca"},
		{[]string{"-nts", "127.0.0.1:1", "-ca", notPEM}, "no PEM"},
	}
	for _, tt := range tests {
		o, err := parseFlags(tt.args, &bytes.Buffer{})
		switch {
		case tt.wantErr == "" && err != nil:
			t.Errorf("%v: %v", tt.args, err)
		case tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)):
			t.Errorf("%v: error %v, want one about %q", tt.args, err, tt.wantErr)
		case err == nil && (o.nts.roots == nil || !o.nts.ke.Addr().IsLoopback()):
			t.Errorf("%v: options %+v", tt.args, o.nts)
		}
	}
}

// TestRunNTSCommand runs the command end to end in both modes.
func TestRunNTSCommand(t *testing.T) {
	srv := startNTSServer(t, 0)
	tests := []struct {
		args []string
		want []string
	}{
		{[]string{"-nts", srv.keAddr.String(), "-ca", srv.caFile, "-clients", "2", "-sessions", "2",
			"-rate", "400", "-duration", "100ms", "-wait", "5s"}, []string{"nts: 2 clients x 2 sessions", "loss=0.000%", "naks=0"}},
		{[]string{"-ke", srv.keAddr.String(), "-ca", srv.caFile, "-concurrency", "2", "-duration", "100ms", "-wait", "5s", "-label", "k"},
			[]string{"k ke: TLS 1.3", "failures=0", "RESULT label=k proto=ke"}},
	}
	for _, tt := range tests {
		var out, errOut bytes.Buffer
		if rc := run(tt.args, &out, &errOut); rc != 0 {
			t.Errorf("%v: exit %d: %s", tt.args, rc, errOut.String())
		}
		for _, w := range tt.want {
			if !strings.Contains(out.String(), w) {
				t.Errorf("%v: output lacks %q:\n%s", tt.args, w, out.String())
			}
		}
	}
}

func TestParseProcStat(t *testing.T) {
	tests := []struct {
		in      string
		want    time.Duration
		wantErr bool
	}{
		{"1234 (chronyd) S 1 1234 1234 0 -1 4194560 300 0 0 0 150 25 0 0 20 0 1 0 100 1000 200", 1750 * time.Millisecond, false},
		{"99 (a) b (c)) R 1 1 1 0 -1 0 0 0 0 0 7 3 0 0 20 0 1 0 1 1 1", 100 * time.Millisecond, false},
		{"99 (gnomond) S 1 1 1 0 -1 0 0 0 0 0 0", 0, true}, // short
		{"99 gnomond S 1 1 1 0 -1 0 0 0 0 0 1 2 0 0", 0, true},
		{"99 (x) S 1 1 1 0 -1 0 0 0 0 0 -1 2 0 0", 0, true},
		{"", 0, true},
	}
	for _, tt := range tests {
		got, err := parseProcStat([]byte(tt.in))
		if (err != nil) != tt.wantErr || got != tt.want {
			t.Errorf("parseProcStat(%q) = %v, %v; want %v, error %v", tt.in, got, err, tt.want, tt.wantErr)
		}
	}
	if _, err := procCPU([]int{os.Getpid(), os.Getpid()}); err != nil {
		t.Errorf("procCPU of this process: %v", err)
	}
	pids, err := parsePIDs(" 12, 34,,")
	if err != nil || len(pids) != 2 || pids[0] != 12 || pids[1] != 34 {
		t.Errorf("parsePIDs: %v, %v", pids, err)
	}
	for _, bad := range []string{"x", "0", "-3", "1,2a"} {
		if _, err := parsePIDs(bad); err == nil {
			t.Errorf("parsePIDs(%q) accepted", bad)
		}
	}
}

// BenchmarkNTSServerAnswer is the server's NTS work for one request, as
// gnomond's NTP worker does it (service/daemon/server.go (*worker).answer:
// ntp.Parse, ntp.Respond, nts.Server.Verify, marshal, ServerReply.Append),
// for a steady-state client request (one cookie, no placeholder) and for
// one with seven placeholders. -benchmem shows the allocations; compare
// with BenchmarkPlainAnswer for the NTS share.
func BenchmarkNTSServerAnswer(b *testing.B) {
	for _, tt := range []struct {
		name    string
		cookies int // in the client's jar when it seals
	}{{"1 cookie", nts.MaxCookies}, {"7 placeholders", 1}} {
		b.Run(tt.name, func(b *testing.B) {
			ring, err := nts.NewKeyRing(rand.Reader, time.Now(), 0, 0)
			if err != nil {
				b.Fatal(err)
			}
			keys := nts.Keys{Algorithm: nts.AEADAESSIVCMAC256, C2S: make([]byte, 32), S2C: make([]byte, 32)}
			rand.Read(keys.C2S)
			rand.Read(keys.S2C)
			var cookies [][]byte
			for range tt.cookies {
				c, err := ring.SealCookie(keys)
				if err != nil {
					b.Fatal(err)
				}
				cookies = append(cookies, c)
			}
			s, err := nts.NewClientSession(&nts.KEResult{Keys: keys, Cookies: cookies}, rand.Reader)
			if err != nil {
				b.Fatal(err)
			}
			req := make([]byte, ntsPktLen)
			n := newTracker(1).request(req, time.Now(), 0)
			if n, err = s.Seal(req, n); err != nil {
				b.Fatal(err)
			}
			req = req[:n]
			srv := &nts.Server{Keys: ring, Rand: rand.Reader}
			out := make([]byte, ntsPktLen)
			b.SetBytes(int64(n))
			b.ReportAllocs()
			var reply nts.ServerReply
			for b.Loop() {
				if _, r, ok := ntsAnswer(srv, &reply, req, out); !ok || r == nil || r.NAK() {
					b.Fatal("not answered")
				}
			}
		})
	}
}

// BenchmarkPlainAnswer is the same without NTS: parse, respond, marshal.
func BenchmarkPlainAnswer(b *testing.B) {
	req := make([]byte, pktLen)
	n := newTracker(1).request(req, time.Now(), 0)
	srv := &nts.Server{}
	out := make([]byte, ntsPktLen)
	var reply nts.ServerReply
	b.ReportAllocs()
	for b.Loop() {
		if _, r, ok := ntsAnswer(srv, &reply, req[:n], out); !ok || r != nil {
			b.Fatal("not answered as plain NTP")
		}
	}
}

// TestReplayTrackerReply: with -replay a reply counts as an answer when it
// is a mode-4 reply with an NTS authenticator; a NAK, a reply without an
// authenticator, a request and garbage are told apart.
func TestReplayTrackerReply(t *testing.T) {
	mk := func(mode ntp.Mode, stratum uint8, refID uint32, auth bool) []byte {
		h := ntp.Header{Version: 4, Mode: mode, Stratum: stratum, ReferenceID: refID}
		b := make([]byte, 256)
		n, err := h.MarshalTo(b)
		if err != nil {
			t.Fatal(err)
		}
		typ := uint16(0xf0f0)
		if auth {
			typ = nts.EFAuthenticator
		}
		return ntp.AppendExtension(b[:n], typ, make([]byte, 40), 0)
	}
	rt := &replayTracker{tracker: newTracker(1), reqs: [][]byte{{1}, {2}}}
	rt.reply(mk(ntp.ModeServer, 2, 0, true), 0)
	rt.reply(mk(ntp.ModeServer, 0, 0x4e54534e, false), 0) // NAK
	rt.reply(mk(ntp.ModeServer, 2, 0, false), 0)
	rt.reply(mk(ntp.ModeClient, 2, 0, true), 0)
	rt.reply([]byte{1, 2, 3}, 0)
	st, _ := rt.counts()
	if st.valid != 1 || st.nak != 1 || st.unauth != 1 || st.invalid != 1 || st.malformed != 1 || st.answered != 4 {
		t.Errorf("counts %+v", *st)
	}
	if st.answers() != 2 {
		t.Errorf("answers %d, want 2 (the authenticated reply and the request counted invalid)", st.answers())
	}
	b := make([]byte, 8)
	if n := rt.request(b, time.Now(), 0); n != 1 || b[0] != 1 {
		t.Errorf("first request %d %v", n, b[:n])
	}
	if n := rt.request(b, time.Now(), 0); n != 1 || b[0] != 2 {
		t.Errorf("second request %d %v", n, b[:n])
	}
	if n := rt.request(b, time.Now(), 0); n != 1 || b[0] != 1 {
		t.Errorf("third request %d %v (want the first again)", n, b[:n])
	}
}
