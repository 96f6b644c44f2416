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

// EventKind tells what a ClientConn.Read returned.
type EventKind uint8

const (
	// EventPacket: a datagram from the server was copied into the buffer.
	EventPacket EventKind = iota + 1
	// EventTxTimestamp: the kernel reported when a datagram left.
	EventTxTimestamp
)

func (k EventKind) String() string {
	switch k {
	case EventPacket:
		return "packet"
	case EventTxTimestamp:
		return "tx-timestamp"
	}
	return fmt.Sprintf("EventKind(%d)", uint8(k))
}

// Event is one thing ClientConn.Read returns.
type Event struct {
	Kind EventKind // EventPacket or EventTxTimestamp
	N    int       // bytes of the packet copied into buf (EventPacket)
	// Truncated: the datagram was longer than buf and was cut to N bytes.
	Truncated bool
	// Time is the kernel receive time of the packet (or the user-space time
	// just after the read when the kernel gave none), or the kernel transmit
	// time (EventTxTimestamp).
	Time   time.Time
	Kernel bool   // Time came from the kernel
	ID     uint32 // which Send a TX timestamp belongs to (EventTxTimestamp)
}

// ClientConn is one connected UDP socket to one server. Send may be called
// concurrently with Read; Read is meant for one goroutine at a time (calls
// are serialised).
type ClientConn struct {
	udp    *net.UDPConn
	raw    syscall.RawConn
	mode   TimestampMode
	local  netip.AddrPort
	remote netip.AddrPort

	// send side, guarded by smu
	smu    sync.Mutex
	nextID uint32    // OPT_ID key the kernel gives the next datagram
	sbuf   []byte    // datagram being sent
	sres   int       // write result
	serr   error     // write error
	stime  time.Time // time just before the write
	sendFn func(uintptr) bool

	// read side, guarded by rmu
	rmu    sync.Mutex
	cancel readCanceler
	rbuf   []byte
	ev     Event
	rerr   error
	hdr    unix.Msghdr
	iov    unix.Iovec
	ctrl   []byte
	ehdr   unix.Msghdr // error-queue read
	eiov   unix.Iovec
	ectrl  []byte
	escr   []byte // payload scratch for error-queue reads
	readFn func(uintptr) bool
}

// Dial opens one connected UDP socket to server with a fresh random local
// port (the kernel picks an ephemeral port; never a fixed source port) and
// enables kernel software receive timestamps (SO_TIMESTAMPING, else
// SO_TIMESTAMPNS) and, where the kernel allows, software transmit timestamps
// with IDs read back from the error queue. It falls back quietly where a mode
// is not available; Timestamping reports what it got.
//
// network is "udp", "udp4" or "udp6".
func Dial(ctx context.Context, network string, server netip.AddrPort) (*ClientConn, error) {
	switch network {
	case "udp", "udp4", "udp6":
	default:
		return nil, fmt.Errorf("netio: dial: unsupported network %q", network)
	}
	if !server.IsValid() || server.Port() == 0 {
		return nil, fmt.Errorf("netio: dial: invalid server address %v", server)
	}
	var d net.Dialer
	c, err := d.DialContext(ctx, network, server.String())
	if err != nil {
		return nil, fmt.Errorf("netio: dial: %w", err)
	}
	udp, ok := c.(*net.UDPConn)
	if !ok {
		c.Close()
		return nil, fmt.Errorf("netio: dial: %T is not a UDP connection", c)
	}
	cc, err := newClientConn(udp)
	if err != nil {
		udp.Close()
		return nil, err
	}
	slog.Debug("netio: client socket", "local", cc.local, "server", cc.remote, "timestamping", cc.mode.String())
	return cc, nil
}

func newClientConn(udp *net.UDPConn) (*ClientConn, error) {
	raw, err := udp.SyscallConn()
	if err != nil {
		return nil, fmt.Errorf("netio: %w", err)
	}
	c := &ClientConn{
		udp:   udp,
		raw:   raw,
		ctrl:  make([]byte, 256),
		ectrl: make([]byte, 256),
		escr:  make([]byte, 64),
	}
	if err := control(raw, func(fd int) error {
		if _, err := socketFamily(fd); err != nil {
			return err
		}
		c.mode = enableTimestamps(fd, true)
		return nil
	}); err != nil {
		return nil, err
	}
	if la, ok := udp.LocalAddr().(*net.UDPAddr); ok {
		ap := la.AddrPort()
		c.local = netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())
	}
	if ra, ok := udp.RemoteAddr().(*net.UDPAddr); ok {
		ap := ra.AddrPort()
		c.remote = netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())
	}
	c.cancel.conn = udp
	c.sendFn = c.doSend
	c.readFn = c.doRead
	return c, nil
}

// LocalAddr is the socket's local address and (kernel-chosen) port.
func (c *ClientConn) LocalAddr() netip.AddrPort { return c.local }

// RemoteAddr is the server the socket is connected to.
func (c *ClientConn) RemoteAddr() netip.AddrPort { return c.remote }

// Timestamping reports which kernel timestamps the socket got.
func (c *ClientConn) Timestamping() TimestampMode { return c.mode }

// Send writes one datagram and returns the user-space time just before the
// write and the id a later EventTxTimestamp for this datagram will carry. The
// id is meaningful only when Timestamping().TX().
//
// A pending ICMP error from an earlier datagram (port unreachable) may be
// reported here instead of by Read: errors.Is(err, syscall.ECONNREFUSED).
// The conn stays usable.
func (c *ClientConn) Send(b []byte) (sent time.Time, id uint32, err error) {
	c.smu.Lock()
	defer c.smu.Unlock()
	c.sbuf = b
	werr := c.raw.Write(c.sendFn)
	c.sbuf = nil
	if werr == nil {
		werr = c.serr
	}
	if werr != nil {
		return c.stime, 0, sendErr(werr)
	}
	if c.sres != len(b) {
		return c.stime, 0, fmt.Errorf("netio: send: short write %d of %d bytes", c.sres, len(b))
	}
	id = c.nextID
	// The kernel counts every datagram that asked for a timestamp (all of
	// them, once SOF_TIMESTAMPING_TX_SOFTWARE is set), starting at 0 when
	// OPT_ID was enabled; a failed send does not consume a key.
	c.nextID++
	return c.stime, id, nil
}

func sendErr(err error) error {
	var errno syscall.Errno
	if errors.As(err, &errno) {
		return os.NewSyscallError("send", errno)
	}
	return fmt.Errorf("netio: send: %w", err)
}

func (c *ClientConn) doSend(fd uintptr) bool {
	for {
		c.stime = time.Now()
		var p unsafe.Pointer
		if len(c.sbuf) > 0 {
			p = unsafe.Pointer(&c.sbuf[0])
		}
		// Raw, as in the server: the socket is non-blocking, so the call
		// never waits, and a blocking syscall's scheduler bookkeeping
		// wakes the runtime's sysmon thread from its sleep each time: for
		// an idle client most of its wake-ups (docs/benchmarks.md).
		r, _, e := unix.RawSyscall6(unix.SYS_SENDTO, fd, uintptr(p), uintptr(len(c.sbuf)), 0, 0, 0)
		switch e {
		case 0:
			c.sres, c.serr = int(r), nil
			return true
		case unix.EINTR:
			continue
		case unix.EAGAIN:
			return false
		default:
			c.sres, c.serr = 0, e
			return true
		}
	}
}

// Read blocks until a datagram from the server or a transmit timestamp
// arrives, or ctx ends. Datagrams from any other address never reach a
// connected socket. An ICMP error for an earlier datagram (port unreachable)
// is returned as an error that satisfies errors.Is(err,
// syscall.ECONNREFUSED); the conn stays usable.
func (c *ClientConn) Read(ctx context.Context, buf []byte) (Event, error) {
	if err := ctx.Err(); err != nil {
		return Event{}, err
	}
	c.rmu.Lock()
	defer c.rmu.Unlock()
	c.cancel.arm(ctx)
	c.rbuf = buf
	err := c.raw.Read(c.readFn)
	c.rbuf = nil
	c.iov.Base = nil
	if err != nil {
		return Event{}, readErr(ctx, err)
	}
	if c.rerr != nil {
		return Event{}, c.rerr
	}
	return c.ev, nil
}

func (c *ClientConn) doRead(fd uintptr) bool {
	for {
		if c.mode&TimestampTX != 0 {
			c.eiov = unix.Iovec{Base: &c.escr[0]}
			c.eiov.SetLen(len(c.escr))
			c.ehdr = unix.Msghdr{Iov: &c.eiov, Iovlen: 1, Control: &c.ectrl[0]}
			c.ehdr.SetControllen(len(c.ectrl))
			_, _, e := unix.RawSyscall(unix.SYS_RECVMSG, fd, uintptr(unsafe.Pointer(&c.ehdr)), unix.MSG_ERRQUEUE|unix.MSG_DONTWAIT)
			switch e {
			case 0:
				tc := parseErrQueueControl(c.ectrl[:clampLen(uint64(c.ehdr.Controllen), len(c.ectrl))])
				if !tc.IsTimestamp {
					continue // not a transmit timestamp: drop it, look again
				}
				c.ev = Event{Kind: EventTxTimestamp, Time: tc.Time, Kernel: true, ID: tc.ID}
				c.rerr = nil
				return true
			case unix.EINTR:
				continue
			case unix.EAGAIN:
				// error queue empty: try the data queue
			default:
				c.rerr = os.NewSyscallError("recvmsg", e)
				return true
			}
		}
		c.iov = unix.Iovec{}
		if len(c.rbuf) > 0 {
			c.iov.Base = &c.rbuf[0]
			c.iov.SetLen(len(c.rbuf))
		}
		c.hdr = unix.Msghdr{Iov: &c.iov, Iovlen: 1, Control: &c.ctrl[0]}
		c.hdr.SetControllen(len(c.ctrl))
		r, _, e := unix.RawSyscall(unix.SYS_RECVMSG, fd, uintptr(unsafe.Pointer(&c.hdr)), unix.MSG_DONTWAIT)
		switch e {
		case 0:
		case unix.EINTR:
			continue
		case unix.EAGAIN:
			return false
		default:
			// ECONNREFUSED and friends: the pending socket error is
			// consumed by this read, the socket stays open.
			c.rerr = os.NewSyscallError("recvmsg", e)
			return true
		}
		rc := parseRxControl(c.ctrl[:clampLen(uint64(c.hdr.Controllen), len(c.ctrl))])
		c.ev = Event{
			Kind:      EventPacket,
			N:         int(r),
			Truncated: c.hdr.Flags&unix.MSG_TRUNC != 0,
			Time:      rc.Time,
			Kernel:    rc.Kernel,
		}
		if !rc.Kernel {
			c.ev.Time = time.Now()
		}
		c.rerr = nil
		return true
	}
}

// Close closes the socket; a blocked Read returns an error satisfying
// errors.Is(err, net.ErrClosed).
func (c *ClientConn) Close() error {
	err := c.udp.Close()
	c.rmu.Lock()
	c.cancel.release()
	c.rmu.Unlock()
	return err
}
