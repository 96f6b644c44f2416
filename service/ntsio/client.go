// Package ntsio carries NTS-KE (RFC 8915 section 4) over TLS 1.3: the
// client that fetches keys and cookies for an NTS source, the server that
// hands them out, and the persistence and rotation of the server's master
// keys. The protocol itself (records, keys, cookies) is engine/nts.
package ntsio

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strconv"
	"strings"
	"syscall"
	"time"

	"gnomon.dev/gnomon/engine/nts"
)

// ALPN is the TLS application protocol of NTS-KE.
const ALPN = "ntske/1"

// DefaultPort is the NTS-KE TCP port; DefaultNTPPort is what a client uses
// when the KE server names no port.
const (
	DefaultPort    = 4460
	DefaultNTPPort = 123
)

// DefaultTimeout bounds a whole key exchange (connect, handshake,
// request, response) when the caller sets none.
const DefaultTimeout = 10 * time.Second

// ClientConfig is how to reach one NTS-KE server.
type ClientConfig struct {
	// Address is host, host:port, [v6]:port or a bare IPv6 address;
	// the port defaults to DefaultPort.
	Address string
	// ServerName is the name the certificate must match; the host of
	// Address if empty.
	ServerName string
	// CAFile, when set, is a PEM file of CA certificates trusted in
	// addition to the system's.
	CAFile string
	// RootCAs, when set, replaces the system trust store (CAFile is
	// still added to it).
	RootCAs *x509.CertPool
	// Algorithms offered, in order of preference (nts.DefaultAlgorithms
	// if empty).
	Algorithms []nts.AEADAlgorithm
	// Timeout bounds the whole exchange (DefaultTimeout if 0); a
	// deadline on the context also applies.
	Timeout time.Duration
}

// Result is a completed key exchange.
type Result struct {
	nts.KEResult
	// NTPHost and NTPPort are where to send NTS-authenticated NTP: the
	// server's negotiation records, else the KE host and port 123.
	NTPHost string
	NTPPort uint16
}

// splitAddress splits host[:port] with a default port.
func splitAddress(addr string, def int) (string, int, error) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		// No port: a name, an IPv4 address, or a (bracketed) IPv6 one.
		host = strings.TrimSuffix(strings.TrimPrefix(addr, "["), "]")
		if host == "" || strings.ContainsAny(host, "[]") {
			return "", 0, fmt.Errorf("ntsio: bad address %q", addr)
		}
		return host, def, nil
	}
	p, err := strconv.ParseUint(port, 10, 16)
	if err != nil || p == 0 {
		return "", 0, fmt.Errorf("ntsio: bad port in %q", addr)
	}
	return host, int(p), nil
}

// TLSClientConfig builds the TLS configuration of a key exchange: TLS 1.3
// only, ALPN ntske/1, the system trust store (or cfg.RootCAs) plus
// cfg.CAFile, and the server name checked.
func (cfg *ClientConfig) TLSClientConfig() (*tls.Config, error) {
	host, _, err := splitAddress(cfg.Address, DefaultPort)
	if err != nil {
		return nil, err
	}
	pool := cfg.RootCAs
	if pool == nil {
		if pool, err = x509.SystemCertPool(); err != nil {
			return nil, fmt.Errorf("ntsio: system trust store: %w", err)
		}
	} else {
		pool = pool.Clone()
	}
	if cfg.CAFile != "" {
		pem, err := os.ReadFile(cfg.CAFile)
		if err != nil {
			return nil, fmt.Errorf("ntsio: reading CA file: %w", err)
		}
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("ntsio: no certificates in CA file %s", cfg.CAFile)
		}
	}
	name := cfg.ServerName
	if name == "" {
		name = host
	}
	return &tls.Config{
		MinVersion: tls.VersionTLS13,
		NextProtos: []string{ALPN},
		ServerName: name,
		RootCAs:    pool,
	}, nil
}

// ErrALPN: the peer did not agree to speak NTS-KE.
var ErrALPN = errors.New("ntsio: TLS peer did not negotiate ALPN " + ALPN)

// KeyExchange runs NTS-KE against cfg.Address and returns the keys, the
// cookies and the NTP server to use. It honours ctx (cancellation and
// deadline) and cfg.Timeout.
func KeyExchange(ctx context.Context, cfg ClientConfig) (*Result, error) {
	timeout := cfg.Timeout
	if timeout <= 0 {
		timeout = DefaultTimeout
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	host, port, err := splitAddress(cfg.Address, DefaultPort)
	if err != nil {
		return nil, err
	}
	tcfg, err := cfg.TLSClientConfig()
	if err != nil {
		return nil, err
	}
	var d net.Dialer
	raw, err := d.DialContext(ctx, "tcp", net.JoinHostPort(host, strconv.Itoa(port)))
	if err != nil {
		return nil, fmt.Errorf("ntsio: connecting to %s: %w", cfg.Address, err)
	}
	conn := tls.Client(raw, tcfg)
	defer conn.Close()
	dl, _ := ctx.Deadline()
	conn.SetDeadline(dl)
	// Closing the connection unblocks reads and writes on cancellation.
	stop := context.AfterFunc(ctx, func() { raw.SetDeadline(time.Unix(1, 0)) })
	defer stop()

	if err := conn.HandshakeContext(ctx); err != nil {
		return nil, fmt.Errorf("ntsio: TLS handshake with %s: %w", cfg.Address, err)
	}
	cs := conn.ConnectionState()
	if cs.NegotiatedProtocol != ALPN {
		return nil, ErrALPN
	}
	if _, err := conn.Write(nts.ClientRequest(cfg.Algorithms)); err != nil {
		return nil, fmt.Errorf("ntsio: sending the NTS-KE request: %w", err)
	}
	msg, err := readMessage(conn)
	if err != nil {
		if ctx.Err() != nil {
			err = fmt.Errorf("%w (%w)", err, ctx.Err())
		}
		return nil, fmt.Errorf("ntsio: NTS-KE response from %s: %w", cfg.Address, err)
	}
	ke, err := nts.ParseKEResponse(msg, cfg.Algorithms, cs.ExportKeyingMaterial)
	if err != nil {
		return nil, err
	}
	res := &Result{KEResult: *ke, NTPHost: ke.Server, NTPPort: ke.Port}
	if res.NTPHost == "" {
		res.NTPHost = host
	}
	if res.NTPPort == 0 {
		res.NTPPort = DefaultNTPPort
	}
	return res, nil
}

// readMessage reads one whole NTS-KE message (up to End of Message) from
// r, refusing more than nts.MaxMessageLen bytes.
func readMessage(r io.Reader) ([]byte, error) {
	buf := make([]byte, 0, 1024)
	for {
		if len(buf) == cap(buf) {
			buf = append(buf, 0)[:len(buf)]
		}
		n, err := r.Read(buf[len(buf):min(cap(buf), nts.MaxMessageLen+1)])
		buf = buf[:len(buf)+n]
		l, done, merr := nts.MessageLen(buf)
		if merr != nil {
			return nil, merr
		}
		if done {
			return buf[:l], nil
		}
		if err != nil {
			if err == io.EOF {
				err = io.ErrUnexpectedEOF
			}
			return nil, err
		}
	}
}

// Transient reports whether a key exchange failed in a way that says
// nothing about the server's configuration: it could not be reached,
// reset or closed the connection, or did not answer in time (down,
// restarting, overloaded). Such failures are worth retrying at the pace
// of the source's polls; the others (certificate, ALPN, protocol) need a
// person, and long backoff.
func Transient(err error) bool {
	if err == nil {
		return false
	}
	var cve *tls.CertificateVerificationError
	var alert tls.AlertError
	if errors.As(err, &cve) || errors.As(err, &alert) || errors.Is(err, ErrALPN) {
		return false
	}
	var ne net.Error
	var dnsErr *net.DNSError
	var opErr *net.OpError
	switch {
	case errors.As(err, &ne) && ne.Timeout(),
		errors.As(err, &dnsErr),
		errors.As(err, &opErr),
		errors.Is(err, context.DeadlineExceeded),
		errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF),
		errors.Is(err, syscall.ECONNREFUSED), errors.Is(err, syscall.ECONNRESET),
		errors.Is(err, syscall.ECONNABORTED), errors.Is(err, syscall.EPIPE),
		errors.Is(err, syscall.EHOSTUNREACH), errors.Is(err, syscall.ENETUNREACH),
		errors.Is(err, syscall.ETIMEDOUT):
		return true
	}
	return false
}
