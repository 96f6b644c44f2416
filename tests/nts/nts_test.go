// Package nts_test runs NTS (RFC 8915) against chronyd 4.3: our NTS-KE
// client and NTS NTP client (engine/ntp + engine/nts) against chronyd's
// NTS server, and chronyd's NTS client against our NTS-KE server and a
// small NTP responder built on engine/nts's server handler. chronyd runs
// without CAP_SYS_TIME and with -x; everything is on 127.0.0.1.
package nts_test

import (
	"context"
	"crypto/rand"
	"crypto/x509"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"gnomon.dev/gnomon/engine/ntp"
	"gnomon.dev/gnomon/engine/nts"
	"gnomon.dev/gnomon/engine/sample"
	"gnomon.dev/gnomon/service/ntsio"
	"gnomon.dev/gnomon/tests/peers"
)

// rootFor is what needs root in this package's tests.
const rootFor = "chronyd"

// chronyServer is chronyd -x as a stratum-1 NTS server on 127.0.0.1.
type chronyServer struct{ *peers.Chronyd }

func startChronyServer(t *testing.T) chronyServer {
	t.Helper()
	peers.NeedRoot(t, rootFor)
	return chronyServer{peers.StartChronydNTS(t, peers.TempDir(t, 0o777))}
}

func (s chronyServer) keConfig() ntsio.ClientConfig {
	return ntsio.ClientConfig{
		Address: "127.0.0.1:" + strconv.Itoa(s.KEPort),
		CAFile:  s.CertFile,
		RootCAs: x509.NewCertPool(), // only the test's CA
		Timeout: 10 * time.Second,
	}
}

// udpExchange sends b to 127.0.0.1:port and returns the first datagram
// that comes back within timeout.
func udpExchange(conn *net.UDPConn, port int, b []byte, timeout time.Duration) ([]byte, time.Time, error) {
	if _, err := conn.WriteToUDP(b, &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: port}); err != nil {
		return nil, time.Time{}, err
	}
	conn.SetReadDeadline(time.Now().Add(timeout))
	buf := make([]byte, 2048)
	n, _, err := conn.ReadFromUDP(buf)
	return buf[:n], time.Now(), err
}

// TestClientAgainstChronyd: our NTS-KE client gets keys, 8 cookies and
// the NTP port from chronyd 4.3; then NTS-authenticated NTP through
// engine/ntp's Source and our ClientSession gets samples from chronyd,
// whose replies authenticate and refill the cookie jar. A tampered reply
// is refused, and a forged cookie gets chronyd's NTS NAK, after which
// the session needs (and gets) a new key exchange.
func TestClientAgainstChronyd(t *testing.T) {
	srv := startChronyServer(t)
	ctx := context.Background()
	res, err := ntsio.KeyExchange(ctx, srv.keConfig())
	if err != nil {
		t.Fatalf("NTS-KE with chronyd: %v", err)
	}
	if len(res.Cookies) != nts.MaxCookies || res.Keys.Algorithm != nts.AEADAESSIVCMAC256 ||
		res.NTPPort != uint16(srv.Port) || res.NTPHost != "127.0.0.1" {
		t.Fatalf("KE result: %d cookies, %v, NTP %s:%d (chronyd NTP port %d)",
			len(res.Cookies), res.Keys.Algorithm, res.NTPHost, res.NTPPort, srv.Port)
	}
	t.Logf("chronyd NTS-KE: %d cookies of %d bytes, NTP port %d", len(res.Cookies), len(res.Cookies[0]), res.NTPPort)

	sess, err := nts.NewClientSession(&res.KEResult, rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	conn, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()

	// A raw exchange first: a tampered copy of chronyd's reply is
	// refused, the genuine one accepted, once.
	req := make([]byte, 1500)
	h := ntp.Header{Leap: sample.LeapUnsync, Version: 4, Mode: ntp.ModeClient, TransmitTime: ntp.Timestamp(randU64())}
	n, _ := h.MarshalTo(req)
	n, err = sess.Seal(req, n)
	if err != nil {
		t.Fatal(err)
	}
	reply, _, err := udpExchange(conn, srv.Port, req[:n], 5*time.Second)
	if err != nil {
		t.Fatalf("no NTS reply from chronyd: %v", err)
	}
	var p ntp.Packet
	if err := ntp.Parse(reply, &p); err != nil || !nts.IsNTS(&p) {
		t.Fatalf("chronyd's reply: %v, NTS %v", err, nts.IsNTS(&p))
	}
	bad := append([]byte(nil), reply...)
	bad[40] ^= 1 // the transmit timestamp
	var bp ntp.Packet
	ntp.Parse(bad, &bp)
	if err := sess.Open(bad, &bp); err == nil {
		t.Fatal("tampered reply accepted")
	}
	if err := sess.Open(reply, &p); err != nil {
		t.Fatalf("chronyd's NTS reply not accepted: %v", err)
	}
	if err := sess.Open(reply, &p); !errors.Is(err, nts.ErrUnexpectedReply) {
		t.Fatalf("replayed reply: %v", err)
	}
	if sess.Cookies() != nts.MaxCookies {
		t.Fatalf("%d cookies after chronyd's reply, want %d", sess.Cookies(), nts.MaxCookies)
	}

	// Then through engine/ntp's Source until a sample comes out (chronyd
	// needs a moment to call itself synchronized).
	src := ntp.NewSource(ntp.SourceConfig{MinPoll: 0, MaxPoll: 0, Auth: sess}, time.Now())
	samples := 0
	var lastErr error
	for i := 0; i < 20 && samples < 3; i++ {
		b := make([]byte, 1500)
		n := src.MakeRequest(time.Now(), randU64(), b)
		if n == 0 {
			t.Fatalf("no request: %v", src.LastError())
		}
		reply, rx, err := udpExchange(conn, srv.Port, b[:n], 3*time.Second)
		if err != nil {
			lastErr = err
			continue
		}
		smp, ok, err := src.Receive(rx, reply)
		if err != nil {
			lastErr = err
			time.Sleep(500 * time.Millisecond)
			continue
		}
		if ok {
			samples++
			if smp.Offset.Abs() > 50*time.Millisecond || smp.Stratum != 1 {
				t.Fatalf("sample from chronyd over loopback: %+v", smp)
			}
		}
		if sess.Cookies() != nts.MaxCookies {
			t.Fatalf("%d cookies after an accepted reply", sess.Cookies())
		}
	}
	if samples == 0 {
		t.Fatalf("no NTS sample from chronyd (last error %v)", lastErr)
	}

	// A forged cookie: chronyd answers with an NTS NAK; the session
	// then needs a key exchange, and a new one works.
	forged := res.KEResult
	forged.Cookies = [][]byte{append([]byte(nil), res.Cookies[0]...)}
	forged.Cookies[0][len(forged.Cookies[0])-1] ^= 0xff
	if err := sess.Rekey(&forged); err != nil {
		t.Fatal(err)
	}
	b := make([]byte, 1500)
	n = src.MakeRequest(time.Now(), randU64(), b)
	reply, rx, err := udpExchange(conn, srv.Port, b[:n], 3*time.Second)
	if err != nil {
		t.Fatalf("no answer to a forged cookie: %v", err)
	}
	if _, _, err = src.Receive(rx, reply); !errors.Is(err, ntp.ErrNTSNak) {
		t.Fatalf("forged cookie: %v, want an NTS NAK", err)
	}
	if !sess.NeedsKeyExchange() {
		t.Fatal("session does not need a key exchange after a NAK")
	}
	res2, err := ntsio.KeyExchange(ctx, srv.keConfig())
	if err != nil {
		t.Fatal(err)
	}
	if err := sess.Rekey(&res2.KEResult); err != nil {
		t.Fatal(err)
	}
	n = src.MakeRequest(time.Now(), randU64(), b)
	if reply, rx, err = udpExchange(conn, srv.Port, b[:n], 3*time.Second); err != nil {
		t.Fatal(err)
	}
	if _, _, err := src.Receive(rx, reply); err != nil {
		t.Fatalf("after re-keying: %v", err)
	}
}

// TestClientChronydUntrusted: without the test CA, the handshake with
// chronyd fails (the certificate is verified).
func TestClientChronydUntrusted(t *testing.T) {
	srv := startChronyServer(t)
	cfg := srv.keConfig()
	cfg.CAFile = ""
	if _, err := ntsio.KeyExchange(context.Background(), cfg); err == nil {
		t.Fatal("key exchange with an untrusted certificate succeeded")
	}
}

func randU64() uint64 {
	var b [8]byte
	rand.Read(b[:])
	return binary.BigEndian.Uint64(b[:])
}

// responder is a minimal NTS NTP server: engine/ntp answers, engine/nts
// authenticates.
type responder struct {
	conn          *net.UDPConn
	nts           *nts.Server
	authenticated atomic.Int64
	naks          atomic.Int64
}

func (r *responder) serve() {
	buf := make([]byte, 2048)
	out := make([]byte, 2048)
	for {
		n, from, err := r.conn.ReadFromUDP(buf)
		if err != nil {
			return
		}
		rx := time.Now()
		req := buf[:n]
		var p ntp.Packet
		if ntp.Parse(req, &p) != nil {
			continue
		}
		reply, err := r.nts.Verify(req, &p)
		if err != nil {
			continue // plain NTP is not served here; malformed is dropped
		}
		var h ntp.Header
		if reply.NAK() {
			ntp.RespondKiss(&p.Header, ntp.KissNTSN, &h)
			r.naks.Add(1)
		} else {
			st := ntp.ServerState{Stratum: 1, ReferenceID: 0x474e4d4e, Precision: -20,
				ReferenceTime: rx.Add(-time.Second), RootDispersion: time.Millisecond}
			if !ntp.Respond(&p.Header, rx, time.Now(), &st, &h) {
				continue
			}
		}
		m, _ := h.MarshalTo(out)
		m, err = reply.Append(out, m)
		if err != nil {
			continue
		}
		if !reply.NAK() {
			r.authenticated.Add(1)
		}
		r.conn.WriteToUDP(out[:m], from)
	}
}

// TestChronydClientAgainstUs: chronyd 4.3's NTS client (chronyd -Q -x,
// trusting the test's certificate) completes NTS-KE with our KE server,
// learns the NTP port from it, and gets a measurement from our NTP
// responder, which authenticated its requests.
func TestChronydClientAgainstUs(t *testing.T) {
	peers.NeedRoot(t, rootFor)
	bin := peers.NeedTool(t, "chronyd")
	dir := peers.TempDir(t, 0o777)
	us := startUs(t, dir)
	kePort, ntpPort, cert, ke, resp := us.kePort, us.ntpPort, us.cert, us.ke, us.resp

	// No "port" in the server line: chronyd must take it from our KE.
	cctx, ccancel := context.WithTimeout(context.Background(), 40*time.Second)
	defer ccancel()
	argv := peers.Safe(t, bin, "-Q", "-x", "-t", "20", "-f", "/dev/null",
		fmt.Sprintf("server 127.0.0.1 iburst nts ntsport %d maxsamples 1", kePort),
		"ntstrustedcerts "+cert)
	cmd := exec.CommandContext(cctx, argv[0], argv[1:]...)
	out, err := cmd.CombinedOutput()
	t.Logf("chronyd -Q: %s", strings.TrimSpace(string(out)))
	if err != nil || !strings.Contains(string(out), "System clock wrong by") {
		t.Fatalf("chronyd's NTS client got no measurement from us: %v (KE stats %+v, authenticated NTP %d, NAKs %d)",
			err, ke.Stats(), resp.authenticated.Load(), resp.naks.Load())
	}
	if !strings.Contains(string(out), fmt.Sprintf("changed port to %d", ntpPort)) {
		t.Errorf("chronyd did not take the NTP port %d from our NTS-KE", ntpPort)
	}
	if st := ke.Stats(); st.Served < 1 || resp.authenticated.Load() < 1 {
		t.Fatalf("KE stats %+v, authenticated NTP replies %d", st, resp.authenticated.Load())
	}
}

// usServer is our NTS-KE server and NTP responder sharing one key ring.
type usServer struct {
	ring    *nts.KeyRing
	ke      *ntsio.Server
	resp    *responder
	kePort  int
	ntpPort int
	cert    string
}

func startUs(t *testing.T, dir string) *usServer {
	t.Helper()
	cert, key, _ := peers.WriteCert(t, dir, "nts", 0o644)
	ring, err := nts.NewKeyRing(rand.Reader, time.Now(), 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	udp, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { udp.Close() })
	resp := &responder{conn: udp, nts: &nts.Server{Keys: ring, Rand: rand.Reader}}
	go resp.serve()
	ntpPort := udp.LocalAddr().(*net.UDPAddr).Port
	ke, err := ntsio.NewServer(ntsio.ServerConfig{CertFile: cert, KeyFile: key, Keys: ring, NTPPort: uint16(ntpPort)})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	ln, err := ntsio.Listen(ctx, "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- ke.Serve(ctx, ln) }()
	t.Cleanup(func() {
		cancel()
		if err := <-served; err != nil {
			t.Errorf("Serve: %v", err)
		}
	})
	return &usServer{ring: ring, ke: ke, resp: resp, kePort: ln.Addr().(*net.TCPAddr).Port, ntpPort: ntpPort, cert: cert}
}

// eventually waits up to 30 s for cond.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	peers.Eventually(t, 30*time.Second, what, func() error {
		if !cond() {
			return errors.New("not yet")
		}
		return nil
	})
}

// TestChronydClientKeyRotation: a long-running chronyd NTS client polling
// us every 250 ms keeps being served after one rotation of our master keys
// (its cookies are from the previous key); after the keys it holds cookies
// for are all rotated away, it gets an NTS NAK, runs NTS-KE again, and is
// served again.
func TestChronydClientKeyRotation(t *testing.T) {
	peers.NeedRoot(t, rootFor)
	bin := peers.NeedTool(t, "chronyd")
	dir := peers.TempDir(t, 0o777)
	us := startUs(t, dir)
	conf := fmt.Sprintf(`server 127.0.0.1 iburst nts ntsport %d minpoll -2 maxpoll -2
ntstrustedcerts %s
port 0
cmdport 0
pidfile %s
`, us.kePort, us.cert, filepath.Join(dir, "client.pid"))
	confFile := filepath.Join(dir, "client.conf")
	if err := os.WriteFile(confFile, []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	peers.Start(t, dir, "chronyd-client", nil, peers.Safe(t, bin, "-x", "-d", "-f", confFile)...)

	eventually(t, "chronyd authenticated twice", func() bool { return us.resp.authenticated.Load() >= 2 })
	if us.ke.Stats().Served != 1 {
		t.Fatalf("KE stats %+v before any rotation", us.ke.Stats())
	}

	// One rotation: the previous key still opens chronyd's cookies.
	if err := us.ring.Rotate(time.Now()); err != nil {
		t.Fatal(err)
	}
	before := us.resp.authenticated.Load()
	eventually(t, "served after one rotation", func() bool { return us.resp.authenticated.Load() >= before+3 })
	if n, st := us.resp.naks.Load(), us.ke.Stats(); n != 0 || st.Served != 1 {
		t.Fatalf("after one rotation: %d NAKs, KE stats %+v", n, st)
	}

	// Rotate every key chronyd's cookies could be under out of the ring.
	for range nts.DefaultKeep {
		if err := us.ring.Rotate(time.Now()); err != nil {
			t.Fatal(err)
		}
	}
	eventually(t, "an NTS NAK", func() bool { return us.resp.naks.Load() >= 1 })
	eventually(t, "a second key exchange", func() bool { return us.ke.Stats().Served >= 2 })
	after := us.resp.authenticated.Load()
	eventually(t, "served after re-keying", func() bool { return us.resp.authenticated.Load() >= after+2 })
	t.Logf("NAKs %d, KE %+v, authenticated replies %d", us.resp.naks.Load(), us.ke.Stats(), us.resp.authenticated.Load())
}
