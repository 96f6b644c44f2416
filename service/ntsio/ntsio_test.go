package ntsio

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	"gnomon.dev/gnomon/engine/nts"
	"gnomon.dev/gnomon/tests/peers"
)

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

// writeCert makes a self-signed P-256 certificate for localhost,
// 127.0.0.1 and ::1 in dir (the key readable by its owner only) and
// returns the file paths and the parsed certificate.
func writeCert(t testing.TB, dir, name string) (certFile, keyFile string, cert *x509.Certificate) {
	t.Helper()
	return peers.WriteCert(t, dir, name, 0o600)
}

type testServer struct {
	srv    *Server
	ring   *nts.KeyRing
	addr   string
	pool   *x509.CertPool
	cert   *x509.Certificate
	dir    string
	cancel context.CancelFunc
	done   chan error
}

func startServer(t *testing.T, mod func(*ServerConfig)) *testServer {
	t.Helper()
	dir := t.TempDir()
	cf, kf, cert := writeCert(t, dir, "server")
	ring, err := nts.NewKeyRing(rand.Reader, time.Now(), 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	cfg := ServerConfig{CertFile: cf, KeyFile: kf, Keys: ring, NTPServer: "127.0.0.1", NTPPort: 11123, Logger: quiet}
	if mod != nil {
		mod(&cfg)
	}
	srv, err := NewServer(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	ln, err := Listen(ctx, "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ts := &testServer{srv: srv, ring: ring, addr: ln.Addr().String(), pool: x509.NewCertPool(), cert: cert,
		dir: dir, cancel: cancel, done: make(chan error, 1)}
	ts.pool.AddCert(cert)
	go func() { ts.done <- srv.Serve(ctx, ln) }()
	t.Cleanup(func() {
		cancel()
		if err := <-ts.done; err != nil {
			t.Errorf("Serve: %v", err)
		}
	})
	return ts
}

func (ts *testServer) clientConfig() ClientConfig {
	return ClientConfig{Address: ts.addr, RootCAs: ts.pool, ServerName: "localhost"}
}

// TestKeyExchange: our client and server agree on keys (the cookies the
// server made carry the keys the client derived), and the negotiation
// records arrive.
func TestKeyExchange(t *testing.T) {
	ts := startServer(t, nil)
	res, err := KeyExchange(context.Background(), ts.clientConfig())
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Cookies) != nts.MaxCookies || res.NTPHost != "127.0.0.1" || res.NTPPort != 11123 ||
		res.Keys.Algorithm != nts.AEADAESSIVCMAC256 {
		t.Fatalf("result: %d cookies, %s:%d, %v", len(res.Cookies), res.NTPHost, res.NTPPort, res.Keys.Algorithm)
	}
	k, err := ts.ring.OpenCookie(res.Cookies[0])
	if err != nil || !bytes.Equal(k.C2S, res.Keys.C2S) || !bytes.Equal(k.S2C, res.Keys.S2C) || bytes.Equal(k.C2S, k.S2C) {
		t.Fatalf("server-side keys differ from the client's (err %v)", err)
	}
	// The server counts the exchange after its last write, which the
	// client may read first: wait for the count.
	deadline := time.Now().Add(5 * time.Second)
	for ts.srv.Stats().Served == 0 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	if st := ts.srv.Stats(); st.Served != 1 || st.Failed != 0 {
		t.Fatalf("stats %+v", st)
	}
}

// TestKeyExchangeDefaults: without negotiation records the client uses the
// KE host and port 123; the CA file is honoured; names are verified.
func TestKeyExchangeTrust(t *testing.T) {
	ts := startServer(t, func(c *ServerConfig) { c.NTPServer, c.NTPPort = "", 0 })
	caFile := filepath.Join(ts.dir, "server.crt")
	_, port, _ := net.SplitHostPort(ts.addr)
	tests := []struct {
		name   string
		cfg    ClientConfig
		wantOK bool
	}{
		{"CA file over an empty pool", ClientConfig{Address: ts.addr, RootCAs: x509.NewCertPool(), CAFile: caFile}, true},
		{"by name", ClientConfig{Address: "localhost:" + port, RootCAs: ts.pool}, true},
		{"untrusted", ClientConfig{Address: ts.addr, RootCAs: x509.NewCertPool()}, false},
		{"system store only", ClientConfig{Address: ts.addr}, false},
		{"wrong name", ClientConfig{Address: ts.addr, RootCAs: ts.pool, ServerName: "ntp.example.org"}, false},
		{"missing CA file", ClientConfig{Address: ts.addr, CAFile: filepath.Join(ts.dir, "nope")}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res, err := KeyExchange(context.Background(), tt.cfg)
			if tt.wantOK != (err == nil) {
				t.Fatalf("KeyExchange: %v", err)
			}
			if err == nil {
				host, _, _ := splitAddress(tt.cfg.Address, 0)
				if res.NTPHost != host || res.NTPPort != DefaultNTPPort {
					t.Fatalf("NTP server %s:%d", res.NTPHost, res.NTPPort)
				}
			}
		})
	}
}

func TestSplitAddress(t *testing.T) {
	tests := []struct {
		in   string
		host string
		port int
		ok   bool
	}{
		{"ntp.example.org", "ntp.example.org", 4460, true},
		{"ntp.example.org:123", "ntp.example.org", 123, true},
		{"192.0.2.1", "192.0.2.1", 4460, true},
		{"[2001:db8::1]:4461", "2001:db8::1", 4461, true},
		{"2001:db8::1", "2001:db8::1", 4460, true},
		{"[2001:db8::1]", "2001:db8::1", 4460, true},
		{"host:0", "", 0, false},
		{"host:http", "", 0, false},
		{"", "", 0, false},
	}
	for _, tt := range tests {
		h, p, err := splitAddress(tt.in, DefaultPort)
		if (err == nil) != tt.ok || h != tt.host || p != tt.port {
			t.Errorf("splitAddress(%q) = %q, %d, %v", tt.in, h, p, err)
		}
	}
}

// rawTLS opens a TLS connection with a configuration of the test's own.
func rawTLS(ts *testServer, mod func(*tls.Config)) (*tls.Conn, error) {
	cfg := &tls.Config{RootCAs: ts.pool, ServerName: "localhost", NextProtos: []string{ALPN}}
	if mod != nil {
		mod(cfg)
	}
	d := net.Dialer{Timeout: 5 * time.Second}
	c, err := tls.DialWithDialer(&d, "tcp", ts.addr, cfg)
	if err != nil {
		return nil, err
	}
	c.SetDeadline(time.Now().Add(10 * time.Second))
	return c, nil
}

// TestServerRefusesBadTLS: TLS 1.2, another ALPN, no ALPN.
func TestServerRefusesBadTLS(t *testing.T) {
	ts := startServer(t, nil)
	if _, err := rawTLS(ts, func(c *tls.Config) { c.MaxVersion = tls.VersionTLS12 }); err == nil {
		t.Error("TLS 1.2 client accepted")
	}
	if _, err := rawTLS(ts, func(c *tls.Config) { c.NextProtos = []string{"h2"} }); err == nil {
		t.Error("client with ALPN h2 accepted")
	}
	// Without ALPN the handshake completes but the server hangs up
	// without answering.
	c, err := rawTLS(ts, func(c *tls.Config) { c.NextProtos = nil })
	if err == nil {
		c.Write(nts.ClientRequest(nil))
		if b, err := io.ReadAll(c); len(b) != 0 {
			t.Errorf("client without ALPN got %d bytes (%v)", len(b), err)
		}
		c.Close()
	}
}

// TestClientRefusesNoALPN: a TLS server that does not speak ntske/1.
func TestClientRefusesNoALPN(t *testing.T) {
	dir := t.TempDir()
	cf, kf, cert := writeCert(t, dir, "plain")
	pair, err := tls.LoadX509KeyPair(cf, kf)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{Certificates: []tls.Certificate{pair}})
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			c.(*tls.Conn).Handshake()
			c.Close()
		}
	}()
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	_, err = KeyExchange(context.Background(), ClientConfig{Address: ln.Addr().String(), RootCAs: pool, ServerName: "localhost"})
	if !errors.Is(err, ErrALPN) {
		t.Fatalf("KeyExchange against a non-NTS TLS server: %v", err)
	}
}

// exchange sends raw bytes after the handshake and returns the parsed
// answer (nil if the server sent nothing).
func exchange(t *testing.T, ts *testServer, req []byte) *nts.Message {
	t.Helper()
	c, err := rawTLS(ts, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.Write(req)
	b, _ := io.ReadAll(c)
	if len(b) == 0 {
		return nil
	}
	m, err := nts.ParseMessage(b)
	if err != nil {
		t.Fatalf("server answer does not parse: %v (%x)", err, b)
	}
	return m
}

// TestServerBadRequests: unknown critical records, oversized and truncated
// requests get an Error record.
func TestServerBadRequests(t *testing.T) {
	ts := startServer(t, nil)
	rec := func(crit bool, typ uint16, body []byte) []byte {
		b, _ := nts.AppendRecord(nil, nts.Record{Critical: crit, Type: nts.RecordType(typ), Body: body})
		return b
	}
	np := rec(true, 1, []byte{0, 0})
	eom := rec(true, 0, nil)
	huge := bytes.Repeat(rec(false, 0x1000, make([]byte, 1000)), 20)
	tests := []struct {
		name string
		req  []byte
		code uint16
	}{
		{"unknown critical", bytes.Join([][]byte{np, rec(true, 4, []byte{0, 15}), rec(true, 0x3333, nil), eom}, nil), nts.ErrorUnrecognizedCritical},
		{"oversized", huge, nts.ErrorBadRequest},
		{"record too long", rec(false, 5, make([]byte, 4000)), nts.ErrorBadRequest},
		{"no aead", append(np, eom...), nts.ErrorBadRequest},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := exchange(t, ts, tt.req)
			if m == nil || len(m.Errors) != 1 || m.Errors[0] != tt.code || len(m.Cookies) != 0 {
				t.Fatalf("answer %+v, want error %d", m, tt.code)
			}
		})
	}
	// A truncated request (the client half-closes before End of
	// Message) gets no cookies.
	c, err := rawTLS(ts, nil)
	if err != nil {
		t.Fatal(err)
	}
	c.Write(np)
	c.CloseWrite()
	b, _ := io.ReadAll(c)
	c.Close()
	if m, err := nts.ParseMessage(b); len(b) != 0 && (err != nil || len(m.Cookies) != 0) {
		t.Fatalf("truncated request answered with %x", b)
	}
}

// TestServerSlowClient: a client that connects and sends nothing is cut
// off at the server's timeout, and counted as failed.
func TestServerSlowClient(t *testing.T) {
	ts := startServer(t, func(c *ServerConfig) { c.Timeout = 200 * time.Millisecond })
	tests := []struct {
		name string
		tls  bool
	}{{"silent TCP", false}, {"silent after handshake", true}}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var c net.Conn
			var err error
			if tt.tls {
				c, err = rawTLS(ts, nil)
			} else {
				c, err = net.Dial("tcp", ts.addr)
			}
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			c.SetDeadline(time.Now().Add(30 * time.Second)) // a hang fails, not blocks
			_, err = io.ReadAll(c)
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				t.Fatal("server never hung up on a silent client")
			}
			waitFor(t, func() bool { return ts.srv.Stats().Failed == uint64(i+1) })
		})
	}
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(20 * time.Second); !cond(); time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("condition not reached")
		}
	}
}

// TestServerConnLimit: beyond MaxConns a connection is closed at once;
// when a slot frees, service resumes.
func TestServerConnLimit(t *testing.T) {
	ts := startServer(t, func(c *ServerConfig) { c.MaxConns = 1; c.Timeout = 20 * time.Second })
	hold, err := net.Dial("tcp", ts.addr)
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, func() bool { return ts.srv.Stats().Accepted == 1 })
	if _, err := KeyExchange(context.Background(), ts.clientConfig()); err == nil {
		t.Fatal("key exchange over the connection limit succeeded")
	}
	if st := ts.srv.Stats(); st.Refused != 1 {
		t.Fatalf("stats %+v", st)
	}
	hold.Close()
	waitFor(t, func() bool { return ts.srv.Stats().Failed == 1 })
	if _, err := KeyExchange(context.Background(), ts.clientConfig()); err != nil {
		t.Fatalf("after the slot freed: %v", err)
	}
}

// TestServerReload: a new certificate is served to new connections; a
// connection that shook hands before the reload still completes.
func TestServerReload(t *testing.T) {
	ts := startServer(t, nil)
	early, err := rawTLS(ts, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer early.Close()
	// Replace the files with another certificate and reload.
	cf, kf, cert2 := writeCert(t, t.TempDir(), "next")
	for _, p := range [][2]string{{cf, ts.srv.cfg.CertFile}, {kf, ts.srv.cfg.KeyFile}} {
		b, _ := os.ReadFile(p[0])
		os.WriteFile(p[1], b, 0o600)
	}
	if err := ts.srv.Reload(); err != nil {
		t.Fatal(err)
	}
	early.Write(nts.ClientRequest(nil))
	b, _ := io.ReadAll(early)
	if m, err := nts.ParseMessage(b); err != nil || len(m.Cookies) != nts.MaxCookies {
		t.Fatalf("connection from before the reload: %v", err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(cert2)
	late, err := rawTLS(ts, func(c *tls.Config) { c.RootCAs = pool })
	if err != nil {
		t.Fatalf("new certificate not served: %v", err)
	}
	late.Close()
	if _, err := KeyExchange(context.Background(), ts.clientConfig()); err == nil {
		t.Fatal("old certificate still served after the reload")
	}
	// A bad reload keeps the current certificate.
	os.WriteFile(ts.srv.cfg.CertFile, []byte("garbage"), 0o600)
	if err := ts.srv.Reload(); err == nil {
		t.Fatal("Reload accepted garbage")
	}
	if c, err := rawTLS(ts, func(c *tls.Config) { c.RootCAs = pool }); err != nil {
		t.Fatalf("certificate lost after a failed reload: %v", err)
	} else {
		c.Close()
	}
}

// TestKeyExchangeCancel: a server that accepts and never answers does not
// hang the client past its context.
func TestKeyExchangeCancel(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			defer c.Close()
		}
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	_, err = KeyExchange(ctx, ClientConfig{Address: ln.Addr().String(), RootCAs: x509.NewCertPool()})
	if !errors.Is(err, context.DeadlineExceeded) && !isTimeout(err) {
		t.Fatalf("KeyExchange against a mute server: %v", err)
	}
	// Also the configured timeout alone.
	_, err = KeyExchange(context.Background(), ClientConfig{Address: ln.Addr().String(), RootCAs: x509.NewCertPool(), Timeout: 100 * time.Millisecond})
	if err == nil {
		t.Fatal("no error from a mute server")
	}
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

func TestKeyPersistence(t *testing.T) {
	dir := t.TempDir()
	now := time.Date(2026, 11, 25, 0, 0, 0, 0, time.UTC)
	ring, err := LoadKeyRing(dir, now, rand.Reader, 0, 0, quiet)
	if err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(filepath.Join(dir, KeyFileName))
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("key file: %v, mode %v", err, fi.Mode())
	}
	c, _ := ring.SealCookie(nts.Keys{Algorithm: 15, C2S: make([]byte, 32), S2C: make([]byte, 32)})
	// Reloaded an hour later: same keys.
	again, err := LoadKeyRing(dir, now.Add(time.Hour), rand.Reader, 0, 0, quiet)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := again.OpenCookie(c); err != nil || len(again.KeyIDs()) != 1 {
		t.Fatalf("reloaded ring: %v, %d keys", err, len(again.KeyIDs()))
	}
	// Reloaded two days later: rotated on load and saved; the old key
	// still opens its cookie.
	later, err := LoadKeyRing(dir, now.Add(49*time.Hour), rand.Reader, 0, 0, quiet)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := later.OpenCookie(c); err != nil || len(later.KeyIDs()) != 2 {
		t.Fatalf("ring after two days: %v, %d keys", err, len(later.KeyIDs()))
	}
	onDisk, _ := LoadKeyRing(dir, now.Add(50*time.Hour), rand.Reader, 0, 0, quiet)
	if onDisk.KeyIDs()[0] != later.KeyIDs()[0] {
		t.Fatal("rotation on load was not saved")
	}
	// A corrupt file is moved aside and replaced.
	os.WriteFile(filepath.Join(dir, KeyFileName), []byte("junk"), 0o600)
	fresh, err := LoadKeyRing(dir, now, rand.Reader, 0, 0, quiet)
	if err != nil || len(fresh.KeyIDs()) != 1 {
		t.Fatalf("corrupt file: %v", err)
	}
	if b, err := os.ReadFile(filepath.Join(dir, KeyFileName+".corrupt")); err != nil || string(b) != "junk" {
		t.Fatalf("corrupt file not kept aside: %v", err)
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 2 {
		t.Fatalf("directory holds %d files (temporary files left?)", len(entries))
	}
}

func TestRotateKeys(t *testing.T) {
	dir := t.TempDir()
	start := time.Date(2026, 11, 25, 0, 0, 0, 0, time.UTC)
	ring, err := LoadKeyRing(dir, start, rand.Reader, 2, time.Hour, quiet)
	if err != nil {
		t.Fatal(err)
	}
	first := ring.KeyIDs()[0]
	// A clock already past the rotation: RotateKeys rotates after its
	// minimum wait and saves.
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() {
		done <- RotateKeys(ctx, dir, ring, func() time.Time { return start.Add(90 * time.Minute) }, quiet)
	}()
	waitFor(t, func() bool {
		b, _ := os.ReadFile(filepath.Join(dir, KeyFileName))
		r, err := nts.UnmarshalKeyRing(b, rand.Reader)
		return err == nil && len(r.KeyIDs()) == 2 && r.KeyIDs()[1] == first
	})
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}
