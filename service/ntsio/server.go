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
}

// Server serves NTS-KE over TLS 1.3 with ALPN ntske/1. Its certificate
// can be reloaded while it serves: handshakes in progress keep the old one.
type Server struct {
	cfg  ServerConfig
	ke   *nts.KEServer
	cert atomic.Pointer[tls.Certificate]
	tls  *tls.Config
	log  *slog.Logger
	sem  chan struct{}

	accepted, refused, failed, served atomic.Uint64
}

// ServerStats counts connections since the server was made.
type ServerStats struct {
	Accepted uint64 // TCP connections accepted
	Refused  uint64 // closed at once: over MaxConns
	Failed   uint64 // handshake, ALPN, timeout, bad request
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
	s := &Server{
		cfg: cfg,
		ke: &nts.KEServer{Keys: cfg.Keys, Algorithms: cfg.Algorithms,
			Server: cfg.NTPServer, Port: cfg.NTPPort},
		log: cfg.Logger,
		sem: make(chan struct{}, cfg.MaxConns),
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
		Failed: s.failed.Load(), Served: s.served.Load()}
}

// Listen opens a TCP listener on addr (host:port) for Serve.
func Listen(ctx context.Context, addr string) (net.Listener, error) {
	var lc net.ListenConfig
	return lc.Listen(ctx, "tcp", addr)
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
		select {
		case s.sem <- struct{}{}:
		default:
			s.refused.Add(1)
			c.Close()
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-s.sem }()
			if err := s.handle(ctx, c); err != nil {
				s.failed.Add(1)
				s.log.Debug("NTS-KE connection failed", "peer", c.RemoteAddr().String(), "err", err)
			} else {
				s.served.Add(1)
			}
		}()
	}
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
	if err := conn.HandshakeContext(ctx); err != nil {
		return fmt.Errorf("TLS handshake: %w", err)
	}
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
