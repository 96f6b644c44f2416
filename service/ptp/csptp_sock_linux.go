package ptp

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"time"

	"golang.org/x/sys/unix"
)

// csptpSock is one CSPTP server socket: SO_REUSEPORT on the listening
// address, kernel software receive timestamps, and transmit timestamps
// read back from the error queue (what ptp4u does), so that the server's
// t1/t3 is the kernel's send time and not a user-space reading.
type csptpSock struct {
	fd       int
	local    netip.AddrPort
	buf, oob []byte
	errBuf   []byte
	errOob   []byte
	// txTimeout bounds the wait for a transmit timestamp.
	txTimeout time.Duration
}

// listenCSPTPSocks binds n sockets to addr (port 0: the kernel picks one,
// and the others share it).
func listenCSPTPSocks(addr netip.AddrPort, n int) ([]*csptpSock, error) {
	var out []*csptpSock
	closeAll := func() {
		for _, s := range out {
			unix.Close(s.fd)
		}
	}
	a := addr.Addr().Unmap()
	family := unix.AF_INET6
	if a.Is4() {
		family = unix.AF_INET
	}
	port := addr.Port()
	for i := range n {
		fd, err := unix.Socket(family, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC|unix.SOCK_NONBLOCK, 0)
		if err != nil {
			closeAll()
			return nil, fmt.Errorf("csptp server: socket: %w", err)
		}
		fail := func(what string, err error) ([]*csptpSock, error) {
			unix.Close(fd)
			closeAll()
			return nil, fmt.Errorf("csptp server: %s %v (socket %d of %d): %w", what, addr, i+1, n, err)
		}
		if n > 1 {
			if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_REUSEPORT, 1); err != nil {
				return fail("SO_REUSEPORT", err)
			}
		}
		var sa unix.Sockaddr
		if family == unix.AF_INET {
			sa = &unix.SockaddrInet4{Addr: a.As4(), Port: int(port)}
			_ = unix.SetsockoptInt(fd, unix.IPPROTO_IP, unix.IP_RECVERR, 1)
		} else {
			_ = unix.SetsockoptInt(fd, unix.IPPROTO_IPV6, unix.IPV6_V6ONLY, 1)
			sa = &unix.SockaddrInet6{Addr: a.As16(), Port: int(port)}
			_ = unix.SetsockoptInt(fd, unix.IPPROTO_IPV6, unix.IPV6_RECVERR, 1)
		}
		if err := unix.Bind(fd, sa); err != nil {
			return fail("bind", err)
		}
		if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_TIMESTAMPING, tsFlags(false)); err != nil {
			return fail("SO_TIMESTAMPING", err)
		}
		_ = unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUF, 1<<20)
		if i == 0 {
			got, err := unix.Getsockname(fd)
			if err != nil {
				return fail("getsockname", err)
			}
			switch g := got.(type) {
			case *unix.SockaddrInet4:
				port = uint16(g.Port)
			case *unix.SockaddrInet6:
				port = uint16(g.Port)
			}
		}
		out = append(out, &csptpSock{fd: fd, local: netip.AddrPortFrom(a, port), buf: make([]byte, 1500), oob: make([]byte, 512),
			errBuf: make([]byte, 1500), errOob: make([]byte, 512), txTimeout: 20 * time.Millisecond})
	}
	return out, nil
}

// recv waits (up to 100 ms, so that ctx is seen) for a datagram and
// returns it with its sender and kernel receive time (zero: none).
func (s *csptpSock) recv(ctx context.Context) (data []byte, from netip.AddrPort, rx time.Time, truncated bool, err error) {
	for {
		if err := ctx.Err(); err != nil {
			return nil, from, rx, false, err
		}
		n, oobn, flags, sa, err := unix.Recvmsg(s.fd, s.buf, s.oob, unix.MSG_DONTWAIT)
		if err == nil {
			return s.buf[:n], sockaddrPort(sa), ParseControl(s.oob[:oobn]).Software, flags&unix.MSG_TRUNC != 0, nil
		}
		if !errors.Is(err, unix.EAGAIN) && !errors.Is(err, unix.EINTR) {
			return nil, from, rx, false, err
		}
		pfd := []unix.PollFd{{Fd: int32(s.fd), Events: unix.POLLIN}}
		if _, err := unix.Poll(pfd, 100); err != nil && !errors.Is(err, unix.EINTR) {
			return nil, from, rx, false, err
		}
		if pfd[0].Revents&unix.POLLERR != 0 {
			s.drainErr()
		}
	}
}

func sockaddrPort(sa unix.Sockaddr) netip.AddrPort {
	switch a := sa.(type) {
	case *unix.SockaddrInet4:
		return netip.AddrPortFrom(netip.AddrFrom4(a.Addr), uint16(a.Port))
	case *unix.SockaddrInet6:
		return netip.AddrPortFrom(netip.AddrFrom16(a.Addr).Unmap(), uint16(a.Port))
	}
	return netip.AddrPort{}
}

func (s *csptpSock) sockaddr(to netip.AddrPort) unix.Sockaddr {
	if s.local.Addr().Is4() {
		return &unix.SockaddrInet4{Addr: to.Addr().Unmap().As4(), Port: int(to.Port())}
	}
	return &unix.SockaddrInet6{Addr: to.Addr().As16(), Port: int(to.Port())}
}

func (s *csptpSock) drainErr() {
	for range 64 {
		if _, _, _, _, err := unix.Recvmsg(s.fd, s.errBuf, s.errOob, unix.MSG_ERRQUEUE|unix.MSG_DONTWAIT); err != nil {
			return
		}
	}
}

// send sends b to to. With stamp it waits (at most txTimeout) for the
// kernel's transmit timestamp and returns it; kernel is false when it
// did not come and the user-space time before the send is returned.
func (s *csptpSock) send(b []byte, to netip.AddrPort, stamp bool) (tx time.Time, kernel bool, err error) {
	if stamp {
		s.drainErr()
	}
	before := time.Now()
	if err := unix.Sendto(s.fd, b, 0, s.sockaddr(to)); err != nil {
		return before, false, err
	}
	if !stamp {
		return before, false, nil
	}
	deadline := time.Now().Add(s.txTimeout)
	for {
		k, oobn, _, _, err := unix.Recvmsg(s.fd, s.errBuf, s.errOob, unix.MSG_ERRQUEUE|unix.MSG_DONTWAIT)
		if err == nil {
			st := ParseControl(s.errOob[:oobn])
			if st.TxReport && !st.Software.IsZero() && containsMsg(s.errBuf[:k], b) {
				return st.Software, true, nil
			}
			continue
		}
		wait := time.Until(deadline)
		if wait <= 0 {
			return before, false, nil
		}
		pfd := []unix.PollFd{{Fd: int32(s.fd), Events: unix.POLLPRI}}
		if _, err := unix.Poll(pfd, int(wait/time.Millisecond)+1); err != nil && !errors.Is(err, unix.EINTR) {
			return before, false, nil
		}
	}
}

func (s *csptpSock) close() error { return unix.Close(s.fd) }
