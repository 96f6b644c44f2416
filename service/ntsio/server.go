package ntsio

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"gnomon.dev/gnomon/engine/nts"
)

// Server defaults.
const (
	// DefaultMaxConns is how many NTS-KE connections are served at once;
	// more are closed at once.
	DefaultMaxConns = 128
	// DefaultConnTimeout bounds one connection from accept to close
	// (handshake, request, response): a slow client is cut off.
	DefaultConnTimeout = 5 * time.Second
)

// ServerConfig configures an NTS-KE server.
type ServerConfig struct {
	// CertFile is the PEM certificate chain (leaf first), KeyFile its
	// private key (ntpd-rs's certificate-chain-path, private-key-path).
	CertFile, KeyFile string
	// Keys seals the cookies; the NTP server opens them with the same ring.
	Keys *nts.KeyRing
	// NTPServer and NTPPort are sent to clients when set (else clients
	// use this host and port 123).
	NTPServer string
	NTPPort   uint16
	// Algorithms accepted, in order of preference (nts.DefaultAlgorithms
	// if empty).
	Algorithms []nts.AEADAlgorithm
	MaxConns   int           // DefaultMaxConns if 0
	Timeout    time.Duration // DefaultConnTimeout if 0
	Logger     *slog.Logger  // slog.Default() if nil

	// MaxConnsPerAddr is how many connections one client address (IPv6:
	// its /64) may have at once: DefaultMaxConnsPerAddr if 0, no limit if
	// negative.
	MaxConnsPerAddr int
	// NewConnsPerAddr is how many new connections a second one address may
	// open on average, NewConnsBurst at once: DefaultNewConnsPerAddr and
	// DefaultNewConnsBurst if 0, no limit if negative.
	NewConnsPerAddr float64
	NewConnsBurst   int
	// HandshakeTimeout bounds the TLS handshake (DefaultHandshakeTimeout
	// if 0; never more than Timeout).
	HandshakeTimeout time.Duration
}

// Server serves NTS-KE over TLS 1.3 with ALPN ntske/1. Its certificate
// can be reloaded while it serves: handshakes in progress keep the old one.
type Server struct {
	cfg  ServerConfig
	ke   *nts.KEServer
	cert atomic.Pointer[tls.Certificate]
	tls  *tls.Config
	log  *slog.Logger
	lim  *limiter

	accepted, refused, limitedConns, limitedRate, evicted atomic.Uint64
	failed, timeouts, served                              atomic.Uint64
}

// ServerStats counts connections since the server was made.
type ServerStats struct {
	Accepted uint64 // TCP connections accepted
	Refused  uint64 // closed at once: over MaxConns, nothing to evict
	// LimitedConns and LimitedRate were closed at once, before TLS: their
	// address was over MaxConnsPerAddr, or over NewConnsPerAddr.
	LimitedConns, LimitedRate uint64
	// Evicted gave up their slot to a newcomer from an address holding
	// fewer (the server was full).
	Evicted  uint64
	Failed   uint64 // handshake, ALPN, timeout, bad request (evictions included)
	Timeouts uint64 // of Failed: cut off by HandshakeTimeout or Timeout
	Served   uint64 // key exchanges completed with cookies
}

// NewServer loads the certificate and makes a server.
func NewServer(cfg ServerConfig) (*Server, error) {
	if cfg.Keys == nil {
		return nil, errors.New("ntsio: server needs a key ring")
	}
	if cfg.MaxConns <= 0 {
		cfg.MaxConns = DefaultMaxConns
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = DefaultConnTimeout
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.MaxConnsPerAddr == 0 {
		cfg.MaxConnsPerAddr = DefaultMaxConnsPerAddr
	}
	if cfg.NewConnsPerAddr == 0 {
		cfg.NewConnsPerAddr = DefaultNewConnsPerAddr
	}
	if cfg.NewConnsBurst <= 0 {
		cfg.NewConnsBurst = max(DefaultNewConnsBurst, int(4*cfg.NewConnsPerAddr))
	}
	if cfg.HandshakeTimeout <= 0 {
		cfg.HandshakeTimeout = DefaultHandshakeTimeout
	}
	cfg.HandshakeTimeout = min(cfg.HandshakeTimeout, cfg.Timeout)
	s := &Server{
		cfg: cfg,
		ke: &nts.KEServer{Keys: cfg.Keys, Algorithms: cfg.Algorithms,
			Server: cfg.NTPServer, Port: cfg.NTPPort},
		log: cfg.Logger,
		lim: newLimiter(cfg.MaxConns, max(cfg.MaxConnsPerAddr, 0), max(cfg.NewConnsPerAddr, 0), cfg.NewConnsBurst),
	}
	if err := s.Reload(); err != nil {
		return nil, err
	}
	s.tls = &tls.Config{
		MinVersion: tls.VersionTLS13,
		NextProtos: []string{ALPN},
		GetCertificate: func(*tls.ClientHelloInfo) (*tls.Certificate, error) {
			return s.cert.Load(), nil
		},
	}
	return s, nil
}

// Reload reads the certificate chain and key again; on error the current
// ones stay. Connections in progress are not disturbed.
func (s *Server) Reload() error {
	cert, err := tls.LoadX509KeyPair(s.cfg.CertFile, s.cfg.KeyFile)
	if err != nil {
		return fmt.Errorf("ntsio: loading the NTS-KE certificate: %w", err)
	}
	s.cert.Store(&cert)
	return nil
}

// Stats returns the connection counters.
func (s *Server) Stats() ServerStats {
	return ServerStats{Accepted: s.accepted.Load(), Refused: s.refused.Load(),
		LimitedConns: s.limitedConns.Load(), LimitedRate: s.limitedRate.Load(), Evicted: s.evicted.Load(),
		Failed: s.failed.Load(), Timeouts: s.timeouts.Load(), Served: s.served.Load()}
}

// Listen opens a TCP listener on addr (host:port) for Serve.
func Listen(ctx context.Context, addr string) (net.Listener, error) {
	var lc net.ListenConfig
	ln, err := lc.Listen(ctx, "tcp", addr)
	if errors.Is(err, syscall.EADDRINUSE) {
		return nil, fmt.Errorf("%w: address in use by another process (is chronyd, ntpd or another gnomond serving NTS-KE on it?)", err)
	}
	return ln, err
}

// FileListener adopts a socket-activated listening socket (the file is
// duplicated; the caller may close f).
func FileListener(f *os.File) (net.Listener, error) {
	return net.FileListener(f)
}

// Serve accepts connections on ln until ctx ends (then it closes ln, waits
// for the connections in progress, and returns nil) or Accept fails.
func (s *Server) Serve(ctx context.Context, ln net.Listener) error {
	var wg sync.WaitGroup
	defer wg.Wait()
	stop := context.AfterFunc(ctx, func() { ln.Close() })
	defer stop()
	var tempDelay time.Duration
	for {
		c, err := ln.Accept()
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() || errors.Is(err, syscall.EMFILE) || errors.Is(err, syscall.ENFILE) {
				tempDelay = min(max(2*tempDelay, 5*time.Millisecond), time.Second)
				select {
				case <-time.After(tempDelay):
					continue
				case <-ctx.Done():
					return nil
				}
			}
			return fmt.Errorf("ntsio: accept: %w", err)
		}
		tempDelay = 0
		s.accepted.Add(1)
		key := addrKey(c.RemoteAddr())
		sl, v, victim, note := s.lim.admit(key, c, time.Now())
		switch {
		case note != nil && note.why == overTotal:
			s.log.Warn("NTS-KE: server full, refusing connections", "open", note.active, "refused", note.dropped,
				"latest", note.addr.String(), "stats", s.Stats().String())
		case note != nil:
			s.log.Warn("NTS-KE: refusing connections from an address", "address", note.addr.String(),
				"reason", note.why.String(), "refused", note.dropped, "open", note.active, "stats", s.Stats().String())
		}
		if v != admitted {
			switch v {
			case overAddrConns:
				s.limitedConns.Add(1)
			case overAddrRate:
				s.limitedRate.Add(1)
			default:
				s.refused.Add(1)
			}
			// Close at once: no TLS, no goroutine. SetLinger(0) sends a
			// reset and keeps no TIME_WAIT state for it.
			if tc, ok := c.(*net.TCPConn); ok {
				_ = tc.SetLinger(0)
			}
			c.Close()
			continue
		}
		if victim != nil {
			s.evicted.Add(1)
			victim.Close() // its handler fails and releases nothing twice
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			err := s.handle(ctx, c)
			evicted := s.lim.done(sl)
			switch {
			case err == nil:
				s.served.Add(1)
			default:
				s.failed.Add(1)
				var ne net.Error
				if !evicted && (errors.As(err, &ne) && ne.Timeout() || errors.Is(err, context.DeadlineExceeded)) {
					s.timeouts.Add(1)
				}
				s.log.Debug("NTS-KE connection failed", "peer", c.RemoteAddr().String(), "evicted", evicted, "err", err)
			}
		}()
	}
}

// String is the counters as one log value.
func (st ServerStats) String() string {
	return fmt.Sprintf("accepted=%d served=%d failed=%d timeouts=%d limited_conns=%d limited_rate=%d evicted=%d refused=%d",
		st.Accepted, st.Served, st.Failed, st.Timeouts, st.LimitedConns, st.LimitedRate, st.Evicted, st.Refused)
}

// handle serves one connection within the configured timeout.
func (s *Server) handle(ctx context.Context, c net.Conn) error {
	ctx, cancel := context.WithTimeout(ctx, s.cfg.Timeout)
	defer cancel()
	defer c.Close()
	dl, _ := ctx.Deadline()
	c.SetDeadline(dl)
	stop := context.AfterFunc(ctx, func() { c.SetDeadline(time.Unix(1, 0)) })
	defer stop()

	conn := tls.Server(c, s.tls)
	defer conn.Close()
	// The handshake has its own, shorter deadline: a client that connects
	// and sends nothing holds its slot for HandshakeTimeout at most.
	if hd := time.Now().Add(s.cfg.HandshakeTimeout); hd.Before(dl) {
		c.SetDeadline(hd)
	}
	hctx, hcancel := context.WithTimeout(ctx, s.cfg.HandshakeTimeout)
	err := conn.HandshakeContext(hctx)
	hcancel()
	if err != nil {
		return fmt.Errorf("TLS handshake: %w", err)
	}
	c.SetDeadline(dl)
	cs := conn.ConnectionState()
	if cs.NegotiatedProtocol != ALPN {
		return ErrALPN
	}
	req, err := readMessage(conn)
	if errors.Is(err, nts.ErrMalformed) {
		// Oversized or broken framing: say so, then hang up.
		resp, _ := s.ke.Respond(nil, cs.ExportKeyingMaterial)
		conn.Write(resp)
		return fmt.Errorf("reading the request: %w", err)
	}
	if err != nil {
		return fmt.Errorf("reading the request: %w", err)
	}
	resp, kerr := s.ke.Respond(req, cs.ExportKeyingMaterial)
	if _, err := conn.Write(resp); err != nil {
		return fmt.Errorf("writing the response: %w", err)
	}
	return kerr
}
