package netio

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"sync"
	"syscall"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// MaxBatch is the most messages one ReadBatch or one sendmmsg call handles;
// ReadBatch fills at most this many of the messages it is given, WriteBatch
// sends longer slices in several calls.
const MaxBatch = 128

// initialBatch is how many message slots a ServerConn preallocates; the
// slots grow (once) up to MaxBatch when a caller passes more messages.
const initialBatch = 32

// rxCtrlSpace is the control buffer each received message gets: room for
// SCM_TIMESTAMPING (three timespecs), an IPv6 PKTINFO, and a spare message.
var rxCtrlSpace = cmsgAlign(cmsgHdrLen+3*timespecLen) + pktinfoSpace + 64

// Message is one datagram of a server batch.
type Message struct {
	Buf  []byte // caller-owned buffer (>= 1024 bytes); N valid bytes after a read
	N    int
	Peer netip.AddrPort // client address (IPv4-mapped addresses unmapped)
	// Local is the address the request was sent to (from PKTINFO); zero if
	// unknown. WriteBatch sends from it.
	Local   netip.Addr
	IfIndex int       // interface the request came in on (from PKTINFO); 0 if unknown
	RxTime  time.Time // kernel receive timestamp, or user-space fallback
	// RxKernel: RxTime came from the kernel.
	RxKernel bool
	// Truncated: the datagram was longer than Buf and was cut to N bytes.
	Truncated bool
	// TxSent and TxID, set by WriteBatch once transmit timestamps are on
	// (EnableTxTimestamps): the message was sent, and the kernel will
	// report its transmit time under TxID (ReadTxTimestamps).
	TxSent bool
	TxID   uint32
}

// ServerSockets are the sockets of one listening address; run one reader
// goroutine per conn.
type ServerSockets struct {
	Conns []*ServerConn
}

// Close closes every conn and returns the first error.
func (s *ServerSockets) Close() error {
	var first error
	for _, c := range s.Conns {
		if err := c.Close(); err != nil && first == nil {
			first = err
		}
	}
	return first
}

// ServerConn is one server UDP socket. ReadBatch is meant for one goroutine
// at a time, WriteBatch may run concurrently with it (each side has its own
// preallocated buffers and lock).
type ServerConn struct {
	udp    *net.UDPConn
	raw    syscall.RawConn
	family int
	mode   TimestampMode
	local  netip.AddrPort
	// fixedLocal: the socket is bound to one unicast address, the only
	// one its datagrams can come to and the one the kernel sends its
	// replies from, so it has no PKTINFO: reads report local as each
	// request's Local, and writes carry no source address (see
	// pktinfoNeeded).
	fixedLocal bool

	// read side, guarded by rmu
	rmu    sync.Mutex
	cancel readCanceler
	rhdr   []unix.Mmsghdr
	riov   []unix.Iovec
	rname  []unix.RawSockaddrInet6
	rctrl  []byte
	rn     int   // messages offered to recvmmsg
	rres   int   // messages received
	rerr   error // recvmmsg error
	readFn func(uintptr) bool

	// write side, guarded by wmu
	wmu     sync.Mutex
	whdr    []unix.Mmsghdr
	wiov    []unix.Iovec
	wname   []unix.RawSockaddrInet6
	wctrl   []byte
	woff    int // first header to send
	wend    int // one past the last header to send
	wres    int
	werr    error
	writeFn func(uintptr) bool
	tx      serverTx // transmit timestamps: servertx_linux.go
}

// ListenServer binds addr (use port 0 for a kernel-chosen port) with
// `workers` sockets; with more than one, they share the port the first one
// got with SO_REUSEPORT, and a BPF program spreads clients over them by
// address and port. They share it with no other process: if another holds
// addr, the error wraps ErrAddrInUse, and a socket of another process that
// joins later gets no datagram (reuseport_linux.go). Each socket asks for PKTINFO (so that a reply can leave from the
// address the request came to, even on a wildcard bind) and kernel receive
// timestamps. An IPv6 address binds IPv6 only (IPV6_V6ONLY), so "0.0.0.0" and
// "[::]" can be bound side by side on one port.
func ListenServer(ctx context.Context, addr netip.AddrPort, workers int) (*ServerSockets, error) {
	if !addr.IsValid() {
		return nil, fmt.Errorf("netio: listen: invalid address %v", addr)
	}
	if workers < 1 {
		workers = 1
	}
	network := "udp6"
	if addr.Addr().Unmap().Is4() {
		network = "udp4"
		addr = netip.AddrPortFrom(addr.Addr().Unmap(), addr.Port())
	}
	// The first socket binds alone (see reuseport_linux.go); the others
	// join it with SO_REUSEPORT.
	first, rest := net.ListenConfig{}, net.ListenConfig{}
	rest.Control = func(_, _ string, rc syscall.RawConn) error {
		return control(rc, func(fd int) error {
			if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_REUSEPORT, 1); err != nil {
				return fmt.Errorf("netio: SO_REUSEPORT: %w", err)
			}
			return nil
		})
	}
	ss := &ServerSockets{}
	for i := range workers {
		lc := &rest
		if i == 0 {
			lc = &first
		}
		pc, err := lc.ListenPacket(ctx, network, addr.String())
		if err != nil {
			ss.Close()
			if i == 0 && inUse(err) {
				return nil, fmt.Errorf("netio: listen %v: %w (is chronyd, ntpd or another gnomond serving it?)", addr, ErrAddrInUse)
			}
			return nil, fmt.Errorf("netio: listen %v (socket %d of %d): %w", addr, i+1, workers, err)
		}
		udp := pc.(*net.UDPConn) // ListenPacket on udp* always gives one
		sc, err := newServerConn(udp)
		if err != nil {
			udp.Close()
			ss.Close()
			return nil, err
		}
		ss.Conns = append(ss.Conns, sc)
		if i == 0 {
			addr = netip.AddrPortFrom(addr.Addr(), sc.local.Port())
			if workers > 1 {
				if err := control(sc.raw, func(fd int) error {
					return unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_REUSEPORT, 1)
				}); err != nil {
					ss.Close()
					return nil, fmt.Errorf("netio: SO_REUSEPORT: %w", err)
				}
			}
		}
	}
	if workers > 1 {
		// Only our workers are ever chosen, whoever joins later.
		if err := control(ss.Conns[0].raw, func(fd int) error {
			return attachSteering(fd, network == "udp4", workers)
		}); err != nil {
			ss.Close()
			return nil, err
		}
	}
	slog.Debug("netio: server sockets", "addr", addr, "workers", workers, "timestamping", ss.Conns[0].mode.String())
	return ss, nil
}

// AdoptServer wraps already-bound UDP sockets, such as those systemd passes
// (go-systemd activation.Files). Each file's descriptor is duplicated: the
// caller still owns and may close the files. The sockets get PKTINFO and
// kernel receive timestamps like those ListenServer opens. A dual-stack IPv6
// socket serves IPv4 clients too (their addresses come back unmapped).
func AdoptServer(files []*os.File) (*ServerSockets, error) {
	ss := &ServerSockets{}
	for _, f := range files {
		pc, err := net.FilePacketConn(f)
		if err != nil {
			ss.Close()
			return nil, fmt.Errorf("netio: adopt %s: %w", f.Name(), err)
		}
		udp, ok := pc.(*net.UDPConn)
		if !ok {
			pc.Close()
			ss.Close()
			return nil, fmt.Errorf("netio: adopt %s: %T is not a UDP socket", f.Name(), pc)
		}
		sc, err := newServerConn(udp)
		if err != nil {
			udp.Close()
			ss.Close()
			return nil, fmt.Errorf("netio: adopt %s: %w", f.Name(), err)
		}
		ss.Conns = append(ss.Conns, sc)
	}
	return ss, nil
}

// ServerReceiveBuffer is the receive buffer a server socket asks for. The
// kernel's default (net.core.rmem_default, 208 KiB here) holds a few
// milliseconds of requests at high rates, so a server off the CPU for that
// long drops them; 4 MiB rides out such stalls. SO_RCVBUF is capped by
// net.core.rmem_max; SO_RCVBUFFORCE passes the cap where the process may
// (CAP_NET_ADMIN); under systemd, gnomond.socket's ReceiveBuffer= does it.
const ServerReceiveBuffer = 4 << 20

// growReceiveBuffer enlarges fd's receive buffer to ServerReceiveBuffer,
// as far as it is allowed; it never shrinks one (systemd may have set a
// larger one) and failure is not an error.
func growReceiveBuffer(fd int) {
	if cur, err := unix.GetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUF); err == nil && cur >= ServerReceiveBuffer {
		return
	}
	if unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, ServerReceiveBuffer) != nil {
		_ = unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUF, ServerReceiveBuffer)
	}
}

func newServerConn(udp *net.UDPConn) (*ServerConn, error) {
	raw, err := udp.SyscallConn()
	if err != nil {
		return nil, fmt.Errorf("netio: %w", err)
	}
	s := &ServerConn{udp: udp, raw: raw}
	if la, ok := udp.LocalAddr().(*net.UDPAddr); ok {
		ap := la.AddrPort()
		s.local = netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())
	}
	s.fixedLocal = !pktinfoNeeded(s.local.Addr())
	if err := control(raw, func(fd int) error {
		fam, err := socketFamily(fd)
		if err != nil {
			return err
		}
		s.family = fam
		if !s.fixedLocal {
			if fam == unix.AF_INET {
				err = unix.SetsockoptInt(fd, unix.SOL_IP, unix.IP_PKTINFO, 1)
			} else {
				err = unix.SetsockoptInt(fd, unix.SOL_IPV6, unix.IPV6_RECVPKTINFO, 1)
			}
			if err != nil {
				return fmt.Errorf("netio: PKTINFO: %w", err)
			}
		}
		s.mode = enableTimestamps(fd, false)
		growReceiveBuffer(fd)
		return nil
	}); err != nil {
		return nil, err
	}
	s.cancel.conn = udp
	s.readFn = s.doRead
	s.writeFn = s.doWrite
	s.growRead(initialBatch)
	s.growWrite(initialBatch)
	return s, nil
}

// pktinfoNeeded reports whether a server socket bound to a needs PKTINFO:
// to learn where each request came to and to send the reply from there.
// A socket bound to one unicast address does not: the kernel delivers it
// only datagrams for that address and sends from it. Wildcard, multicast
// and IPv6 link-local binds (whose replies need the interface) keep it.
// Leaving it off saves the kernel a control message on every datagram in
// and out (about 0.2 µs per answer here: docs/benchmarks.md, "The NTS
// answer at overload (2026-12-08)").
func pktinfoNeeded(a netip.Addr) bool {
	return !a.IsValid() || a.IsUnspecified() || a.IsMulticast() || (a.IsLinkLocalUnicast() && a.Is6())
}

// LocalAddr is the address the socket is bound to.
func (s *ServerConn) LocalAddr() netip.AddrPort { return s.local }

// Timestamping reports which kernel timestamps the socket got (RX only).
func (s *ServerConn) Timestamping() TimestampMode { return s.mode }

func (s *ServerConn) growRead(n int) {
	if n <= len(s.rhdr) {
		return
	}
	s.rhdr = make([]unix.Mmsghdr, n)
	s.riov = make([]unix.Iovec, n)
	s.rname = make([]unix.RawSockaddrInet6, n)
	s.rctrl = make([]byte, n*rxCtrlSpace)
}

func (s *ServerConn) growWrite(n int) {
	if n <= len(s.whdr) {
		return
	}
	s.whdr = make([]unix.Mmsghdr, n)
	s.wiov = make([]unix.Iovec, n)
	s.wname = make([]unix.RawSockaddrInet6, n)
	s.wctrl = make([]byte, n*pktinfoSpace)
}

// ReadBatch fills up to len(msgs) (at most MaxBatch) messages with one
// recvmmsg, blocking until at least one datagram arrives or ctx ends. It
// returns how many messages it filled; msgs beyond that are untouched.
func (s *ServerConn) ReadBatch(ctx context.Context, msgs []Message) (int, error) {
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	if len(msgs) == 0 {
		return 0, nil
	}
	s.rmu.Lock()
	defer s.rmu.Unlock()
	s.cancel.arm(ctx)
	n := min(len(msgs), MaxBatch)
	s.growRead(n)
	for i := range n {
		buf := msgs[i].Buf
		s.riov[i] = unix.Iovec{}
		if len(buf) > 0 {
			s.riov[i].Base = &buf[0]
			s.riov[i].SetLen(len(buf))
		}
		h := &s.rhdr[i].Hdr
		*h = unix.Msghdr{
			Name:    (*byte)(unsafe.Pointer(&s.rname[i])),
			Namelen: unix.SizeofSockaddrInet6,
			Iov:     &s.riov[i],
			Iovlen:  1,
			Control: &s.rctrl[i*rxCtrlSpace],
		}
		h.SetControllen(rxCtrlSpace)
		s.rhdr[i].Len = 0
	}
	s.rn = n
	err := s.raw.Read(s.readFn)
	for i := range n {
		s.riov[i].Base = nil // do not keep the caller's buffers alive
	}
	if err != nil {
		return 0, readErr(ctx, err)
	}
	if s.rerr != nil {
		return 0, s.rerr
	}
	var now time.Time
	for i := range s.rres {
		h := &s.rhdr[i].Hdr
		m := &msgs[i]
		m.N = int(s.rhdr[i].Len)
		m.Truncated = h.Flags&unix.MSG_TRUNC != 0
		name := unsafe.Slice((*byte)(unsafe.Pointer(&s.rname[i])), unix.SizeofSockaddrInet6)
		m.Peer, _ = parseSockaddr(name[:clampLen(uint64(h.Namelen), len(name))])
		ctrl := s.rctrl[i*rxCtrlSpace : (i+1)*rxCtrlSpace]
		rc := parseRxControl(ctrl[:clampLen(uint64(h.Controllen), len(ctrl))])
		m.Local, m.IfIndex = rc.Local, rc.IfIndex
		if s.fixedLocal {
			m.Local = s.local.Addr()
		}
		m.RxTime, m.RxKernel = rc.Time, rc.Kernel
		if !rc.Kernel {
			if now.IsZero() {
				now = time.Now()
			}
			m.RxTime = now
		}
	}
	return s.rres, nil
}

func (s *ServerConn) doRead(fd uintptr) bool {
	for {
		// Raw: the socket is non-blocking, so the call never waits, and the
		// scheduler bookkeeping of a blocking syscall buys nothing (a
		// fifth of the server's CPU in a profile).
		r, _, e := unix.RawSyscall6(unix.SYS_RECVMMSG, fd, uintptr(unsafe.Pointer(&s.rhdr[0])), uintptr(s.rn), 0, 0, 0)
		switch e {
		case 0:
			s.rres, s.rerr = int(r), nil
			return true
		case unix.EINTR:
			continue
		case unix.EAGAIN:
			return false
		default:
			s.rres, s.rerr = 0, os.NewSyscallError("recvmmsg", e)
			return true
		}
	}
}

// WriteBatch sends msgs[i].Buf[:msgs[i].N] to msgs[i].Peer from
// msgs[i].Local (via PKTINFO; a zero, unspecified, multicast or broadcast
// Local lets the kernel choose the source) with sendmmsg. A message that
// cannot be sent (bad address, unreachable) is skipped and the rest are
// still sent; WriteBatch returns how many were sent and the first error.
//
// IfIndex is used only where an address needs a scope (IPv6 link-local);
// otherwise the routing table picks the outgoing interface.
func (s *ServerConn) WriteBatch(msgs []Message) (int, error) {
	s.wmu.Lock()
	defer s.wmu.Unlock()
	sent := 0
	var first error
	for len(msgs) > 0 {
		n := min(len(msgs), MaxBatch)
		s.growWrite(n)
		s.tx.reset(msgs[:n])
		k := 0
		for i := range n {
			m := &msgs[i]
			if m.N < 0 || m.N > len(m.Buf) {
				if first == nil {
					first = fmt.Errorf("netio: write: N=%d outside a buffer of %d bytes", m.N, len(m.Buf))
				}
				continue
			}
			namelen := putSockaddr(&s.wname[k], s.family, m.Peer, m.IfIndex)
			if namelen == 0 {
				if first == nil {
					first = fmt.Errorf("netio: write: cannot send to %v from this socket (family %d): %w",
						m.Peer, s.family, unix.EAFNOSUPPORT)
				}
				continue
			}
			s.wiov[k] = unix.Iovec{}
			if m.N > 0 {
				s.wiov[k].Base = &m.Buf[0]
				s.wiov[k].SetLen(m.N)
			}
			h := &s.whdr[k].Hdr
			*h = unix.Msghdr{
				Name:    (*byte)(unsafe.Pointer(&s.wname[k])),
				Namelen: namelen,
				Iov:     &s.wiov[k],
				Iovlen:  1,
			}
			// On a fixedLocal socket the kernel sends from the bound
			// address anyway: no PKTINFO unless Local is another one.
			if !s.fixedLocal || m.Local.IsValid() && m.Local.Unmap() != s.local.Addr() {
				ctrl := s.wctrl[k*pktinfoSpace : (k+1)*pktinfoSpace]
				if cl := putPktinfo(ctrl, s.family, m.Local, m.IfIndex); cl > 0 {
					h.Control = &ctrl[0]
					h.SetControllen(cl)
				}
			}
			s.whdr[k].Len = 0
			s.tx.index(k, i)
			k++
		}
		s.woff, s.wend = 0, k
		for s.woff < s.wend {
			if err := s.raw.Write(s.writeFn); err != nil {
				s.clearWrite(k)
				if first == nil {
					first = err
				}
				return sent, first
			}
			if s.werr != nil {
				// sendmmsg failed on message woff: skip it.
				if first == nil {
					first = s.werr
				}
				s.woff++
				continue
			}
			s.tx.sent(msgs, s.woff, s.wres)
			sent += s.wres
			s.woff += s.wres
		}
		s.clearWrite(k)
		msgs = msgs[n:]
	}
	return sent, first
}

func (s *ServerConn) clearWrite(k int) {
	for i := range k {
		s.wiov[i].Base = nil
	}
}

func (s *ServerConn) doWrite(fd uintptr) bool {
	for {
		// Raw, as in doRead: non-blocking, never waits.
		r, _, e := unix.RawSyscall6(unix.SYS_SENDMMSG, fd, uintptr(unsafe.Pointer(&s.whdr[s.woff])), uintptr(s.wend-s.woff), 0, 0, 0)
		switch e {
		case 0:
			s.wres, s.werr = int(r), nil
			if r == 0 {
				// Should not happen for a non-empty vector; treat as a
				// failure of the first message so the loop advances.
				s.werr = errors.New("netio: sendmmsg sent nothing")
			}
			return true
		case unix.EINTR:
			continue
		case unix.EAGAIN:
			return false
		default:
			s.wres, s.werr = 0, os.NewSyscallError("sendmmsg", e)
			return true
		}
	}
}

// Close closes the socket; a blocked ReadBatch returns an error satisfying
// errors.Is(err, net.ErrClosed).
func (s *ServerConn) Close() error {
	err := s.udp.Close()
	s.rmu.Lock()
	s.cancel.release()
	s.rmu.Unlock()
	return err
}
