package ptp

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"

	"gnomon.dev/gnomon/engine/ntp"
	eptp "gnomon.dev/gnomon/engine/ptp"
	"gnomon.dev/gnomon/engine/system"
)

// IdentityFor makes a stable clock identity for a client or server that
// has no interface of its own to take a MAC address from: a hash of the
// host name and seed, in the EUI-64 shape (ff:fe in the middle).
func IdentityFor(seed string) eptp.ClockIdentity {
	host, _ := os.Hostname()
	sum := sha256.Sum256([]byte("gnomon-csptp\x00" + host + "\x00" + seed))
	var c eptp.ClockIdentity
	copy(c[:3], sum[:3])
	c[3], c[4] = 0xff, 0xfe
	copy(c[5:], sum[3:6])
	c[0] |= 0x02 // locally administered
	return c
}

// ---------------------------------------------------------------- server

// CSPTPServerOptions configure a client-server PTP server.
type CSPTPServerOptions struct {
	Listen    netip.AddrPort
	Workers   int // SO_REUSEPORT sockets, one goroutine each (default 1)
	RateLimit ntp.RateLimitConfig
	Engine    eptp.CSPTPServerConfig
}

// CSPTPServerCounters are what the server counted.
type CSPTPServerCounters struct {
	Answered    uint64 // requests answered (two messages each)
	RateLimited uint64 // dropped by the rate limiter
	Refused     uint64 // not a CSPTP/SPTP request, wrong domain, too short, truncated
	SendErrors  uint64
	// TxFallbacks counts answers whose first message got no kernel
	// transmit timestamp (the user-space time before the send was used).
	TxFallbacks uint64
}

// CSPTPServer answers CSPTP and SPTP requests on one address with one
// worker per SO_REUSEPORT socket, like the NTP server: the kernel hashes
// a client to one socket, so each worker's rate limiter sees all of a
// client's requests.
type CSPTPServer struct {
	opts                                              CSPTPServerOptions
	socks                                             []*csptpSock
	log                                               *slog.Logger
	answered, limited, refused, sendErrs, txFallbacks atomic.Uint64
}

// ListenCSPTP binds the server's sockets (port 319 needs
// CAP_NET_BIND_SERVICE).
func ListenCSPTP(_ context.Context, o CSPTPServerOptions, log *slog.Logger) (*CSPTPServer, error) {
	if o.Workers <= 0 {
		o.Workers = 1
	}
	if !o.Listen.IsValid() {
		return nil, fmt.Errorf("csptp server: invalid address %v", o.Listen)
	}
	socks, err := listenCSPTPSocks(o.Listen, o.Workers)
	if err != nil {
		return nil, err
	}
	if log == nil {
		log = slog.Default()
	}
	return &CSPTPServer{opts: o, socks: socks, log: log}, nil
}

// Addr is the bound address (the port the kernel chose for port 0).
func (s *CSPTPServer) Addr() netip.AddrPort { return s.socks[0].local }

// Counters are the server's counters so far.
func (s *CSPTPServer) Counters() CSPTPServerCounters {
	return CSPTPServerCounters{Answered: s.answered.Load(), RateLimited: s.limited.Load(), Refused: s.refused.Load(),
		SendErrors: s.sendErrs.Load(), TxFallbacks: s.txFallbacks.Load()}
}

// Serve answers until ctx ends, then closes the sockets.
func (s *CSPTPServer) Serve(ctx context.Context) error {
	var wg sync.WaitGroup
	for _, c := range s.socks {
		wg.Add(1)
		go func() {
			defer wg.Done()
			s.work(ctx, c)
		}()
	}
	wg.Wait()
	var first error
	for _, c := range s.socks {
		if err := c.close(); err != nil && first == nil {
			first = err
		}
	}
	return first
}

func (s *CSPTPServer) work(ctx context.Context, c *csptpSock) {
	limiter := ntp.NewRateLimiter(s.opts.RateLimit)
	resp := eptp.NewCSPTPResponder(s.opts.Engine)
	out := make([]byte, eptp.MaxLen)
	var local eptp.PortAddress
	if a := c.local.Addr().Unmap(); a.Is4() {
		local = eptp.IPv4Address(a.As4())
	} else if !a.IsUnspecified() {
		local = eptp.IPv6Address(a.As16())
	}
	if c.local.Addr().IsUnspecified() {
		local = eptp.PortAddress{}
	}
	for {
		req, from, rx, truncated, err := c.recv(ctx)
		if ctx.Err() != nil {
			return
		}
		if err != nil {
			s.log.Debug("csptp server read", "err", err)
			time.Sleep(10 * time.Millisecond)
			continue
		}
		now := time.Now()
		if rx.IsZero() {
			rx = now
		}
		if truncated {
			s.refused.Add(1)
			continue
		}
		if limiter.Check(from.Addr().As16(), rx) != ntp.Answer {
			s.limited.Add(1)
			continue
		}
		n, rep, err := resp.Answer(req, rx, now, local, out)
		if err != nil {
			s.refused.Add(1)
			continue
		}
		tx, kernel, err := c.send(out[:n], from, true)
		if err != nil {
			s.sendErrs.Add(1)
			continue
		}
		if !kernel {
			s.txFallbacks.Add(1)
		}
		if n, err = resp.Second(&rep, tx, out); err != nil {
			continue
		}
		to := from
		if rep.ToGeneral {
			to = netip.AddrPortFrom(from.Addr(), GeneralPort)
		}
		if _, _, err := c.send(out[:n], to, false); err != nil {
			s.sendErrs.Add(1)
			continue
		}
		s.answered.Add(1)
	}
}

// ---------------------------------------------------------------- client

// CSPTPClientOptions configure a client of one server.
type CSPTPClientOptions struct {
	Name   string
	Server netip.AddrPort
	Engine eptp.CSPTPClientConfig
	// TxTimeout bounds the wait for a request's transmit timestamp
	// (default 20 ms); after it the user-space send time is used.
	TxTimeout time.Duration
	// Feed, if set, receives each measurement as a sample of the system
	// clock for the engine (csptp_feed_linux.go), from Run's goroutine.
	Feed func(Feed)
}

// CSPTPClientStatus is what views show of a client.
type CSPTPClientStatus struct {
	Name   string
	Server netip.AddrPort
	eptp.CSPTPStatus
	TxFallbacks uint64
	LastError   string
}

// CSPTPClient runs an engine client over an unconnected UDP socket on an
// ephemeral port (SPTP servers may answer the Announce from their general
// port, so the socket takes datagrams from the server's address on any
// port).
type CSPTPClient struct {
	opts        CSPTPClientOptions
	fd          int
	eng         *eptp.CSPTPClient
	log         *slog.Logger
	status      atomic.Pointer[CSPTPClientStatus]
	buf, oob    []byte
	errBuf      []byte
	txFallbacks uint64
	lastErr     string
}

// NewCSPTPClient opens the socket and makes the engine client.
func NewCSPTPClient(o CSPTPClientOptions, log *slog.Logger) (*CSPTPClient, error) {
	if log == nil {
		log = slog.Default()
	}
	if o.TxTimeout <= 0 {
		o.TxTimeout = 20 * time.Millisecond
	}
	if o.Engine.Identity == (eptp.ClockIdentity{}) {
		o.Engine.Identity = IdentityFor("client " + o.Name)
	}
	eng, err := eptp.NewCSPTPClient(o.Engine, time.Now())
	if err != nil {
		return nil, err
	}
	o.Server = netip.AddrPortFrom(o.Server.Addr().Unmap(), o.Server.Port())
	family := unix.AF_INET6
	var sa unix.Sockaddr = &unix.SockaddrInet6{}
	if o.Server.Addr().Is4() {
		family, sa = unix.AF_INET, &unix.SockaddrInet4{}
	}
	fd, err := unix.Socket(family, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC|unix.SOCK_NONBLOCK, 0)
	if err != nil {
		return nil, fmt.Errorf("csptp client: socket: %w", err)
	}
	if err := unix.Bind(fd, sa); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("csptp client: bind: %w", err)
	}
	if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_TIMESTAMPING, tsFlags(false)); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("csptp client: SO_TIMESTAMPING: %w", err)
	}
	if family == unix.AF_INET {
		_ = unix.SetsockoptInt(fd, unix.IPPROTO_IP, unix.IP_RECVERR, 1)
	} else {
		_ = unix.SetsockoptInt(fd, unix.IPPROTO_IPV6, unix.IPV6_RECVERR, 1)
	}
	c := &CSPTPClient{opts: o, fd: fd, eng: eng, log: log, buf: make([]byte, 2048), oob: make([]byte, 512), errBuf: make([]byte, 2048)}
	c.publish()
	return c, nil
}

// Status is the newest published status.
func (c *CSPTPClient) Status() *CSPTPClientStatus { return c.status.Load() }

func (c *CSPTPClient) publish() {
	st := &CSPTPClientStatus{Name: c.opts.Name, Server: c.opts.Server, CSPTPStatus: c.eng.Status(), TxFallbacks: c.txFallbacks, LastError: c.lastErr}
	c.status.Store(st)
}

func (c *CSPTPClient) sockaddr() unix.Sockaddr {
	a := c.opts.Server
	if a.Addr().Is4() {
		return &unix.SockaddrInet4{Addr: a.Addr().As4(), Port: int(a.Port())}
	}
	return &unix.SockaddrInet6{Addr: a.Addr().As16(), Port: int(a.Port())}
}

func fromAddr(sa unix.Sockaddr) netip.Addr {
	switch a := sa.(type) {
	case *unix.SockaddrInet4:
		return netip.AddrFrom4(a.Addr)
	case *unix.SockaddrInet6:
		return netip.AddrFrom16(a.Addr).Unmap()
	}
	return netip.Addr{}
}

// Run serves until ctx ends, then closes the socket.
func (c *CSPTPClient) Run(ctx context.Context) error {
	defer unix.Close(c.fd)
	for ctx.Err() == nil {
		now := time.Now()
		if s, ok := c.eng.Poll(now); ok {
			c.send(s)
		}
		wait := time.Until(c.eng.NextWake())
		wait = max(min(wait, 100*time.Millisecond), time.Millisecond)
		pfd := []unix.PollFd{{Fd: int32(c.fd), Events: unix.POLLIN}}
		n, err := unix.Poll(pfd, int(wait/time.Millisecond))
		if err != nil && !errors.Is(err, unix.EINTR) {
			return fmt.Errorf("csptp client: poll: %w", err)
		}
		if n > 0 && pfd[0].Revents&unix.POLLERR != 0 {
			c.drainErr()
		}
		if n > 0 && pfd[0].Revents&unix.POLLIN != 0 {
			c.receive()
		}
		c.publish()
	}
	return nil
}

func (c *CSPTPClient) drainErr() {
	for range 64 {
		if _, _, _, _, err := unix.Recvmsg(c.fd, c.errBuf, c.oob, unix.MSG_ERRQUEUE|unix.MSG_DONTWAIT); err != nil {
			return
		}
	}
}

func (c *CSPTPClient) send(s eptp.Send) {
	c.drainErr()
	msg := append([]byte(nil), s.Data...)
	if err := unix.Sendto(c.fd, msg, 0, c.sockaddr()); err != nil {
		c.lastErr = err.Error()
		c.log.Debug("csptp client send", "source", c.opts.Name, "err", err)
		return
	}
	after := time.Now()
	deadline := after.Add(c.opts.TxTimeout)
	for {
		wait := time.Until(deadline)
		if wait <= 0 {
			c.txFallbacks++
			c.measured(c.eng.TxTimestamp(s.Seq, after))
			return
		}
		pfd := []unix.PollFd{{Fd: int32(c.fd), Events: unix.POLLPRI}}
		n, err := unix.Poll(pfd, int(wait/time.Millisecond)+1)
		if err != nil && !errors.Is(err, unix.EINTR) {
			return
		}
		if n == 0 || pfd[0].Revents&unix.POLLERR == 0 {
			continue
		}
		for {
			k, oobn, _, _, err := unix.Recvmsg(c.fd, c.errBuf, c.oob, unix.MSG_ERRQUEUE|unix.MSG_DONTWAIT)
			if err != nil {
				break
			}
			st := ParseControl(c.oob[:oobn])
			if st.TxReport && !st.Software.IsZero() && containsMsg(c.errBuf[:k], msg) {
				c.measured(c.eng.TxTimestamp(s.Seq, st.Software))
				return
			}
		}
	}
}

func containsMsg(b, msg []byte) bool {
	// the error queue returns the datagram with its IP and UDP headers
	for i := 0; i+len(msg) <= len(b); i++ {
		if string(b[i:i+len(msg)]) == string(msg) {
			return true
		}
	}
	return false
}

func (c *CSPTPClient) receive() {
	for range 64 {
		n, oobn, flags, from, err := unix.Recvmsg(c.fd, c.buf, c.oob, unix.MSG_DONTWAIT)
		if err != nil {
			return
		}
		if flags&unix.MSG_TRUNC != 0 || fromAddr(from) != c.opts.Server.Addr() {
			continue
		}
		now := time.Now()
		rx := ParseControl(c.oob[:oobn]).Software
		m, ok, err := c.eng.Receive(now, c.buf[:n], rx)
		if err != nil {
			c.lastErr = err.Error()
			continue
		}
		if ok {
			c.measured(m, true)
		}
	}
}

func (c *CSPTPClient) measured(m *eptp.Measurement, ok bool) {
	if !ok || m == nil {
		return
	}
	c.lastErr = ""
	st := c.eng.Status()
	if c.opts.Feed != nil {
		c.opts.Feed(Feed{Samples: []system.ExternalSample{csptpSample(m, &st)}}) // csptp_feed_linux.go
	}
	c.log.Debug("csptp measurement", "source", c.opts.Name, "server", c.opts.Server.String(), "variant", string(st.Variant),
		"offset_ns", m.Offset.Nanoseconds(), "path_delay_ns", m.PathDelay.Nanoseconds(),
		"grandmaster", st.GMIdentity.String(), "clock_class", st.GMQuality.Class, "tx_fallbacks", c.txFallbacks)
}
