package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"sync/atomic"
	"syscall"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// maxBatch is the most datagrams one sendmmsg or recvmmsg call moves.
const maxBatch = 64

// pktLen is the size of each buffer: an NTP reply without extensions is 48
// bytes; anything larger than this is counted as malformed (truncated).
const pktLen = 256

// ntsPktLen is the buffer size in NTS mode: a request with one cookie and
// seven placeholders, and its reply with eight cookies, are about 1 KB.
const ntsPktLen = 2048

// client is one simulated NTP client: a UDP socket bound to its own
// loopback address and connected to the target, a sender and a receiver.
type client struct {
	conn  *net.UDPConn
	raw   syscall.RawConn
	local netip.AddrPort
	p     protocol
	blen  int // buffer size: longer datagrams count as malformed
	sent  atomic.Uint64
	// skipped counts requests due by the schedule that could not be
	// sent because the protocol had nothing to send (NTS: no free session).
	skipped atomic.Uint64
	// answered mirrors the protocol's answered count for other
	// goroutines (the drain).
	answered atomic.Uint64
	// sendErrs counts send failures (ECONNREFUSED when nothing listens).
	sendErrs atomic.Uint64
	lastErr  atomic.Value // error

	// sender state (sender goroutine only)
	shdr []unix.Mmsghdr
	siov []unix.Iovec
	sbuf [][]byte
	sn   int
	sres int
	serr error

	// receiver state (receiver goroutine only)
	rhdr []unix.Mmsghdr
	riov []unix.Iovec
	rbuf [][]byte
	rres int
	rerr error
}

// sourceAddr is the loopback address of client i: 127.0.0.2, 127.0.0.3, ...
// counting up through 127.0.1.0 and beyond, skipping the last address of
// 127.0.0.0/8 (its broadcast address).
func sourceAddr(base netip.Addr, i int) (netip.Addr, error) {
	b := base.As4()
	v := uint32(b[0])<<24 | uint32(b[1])<<16 | uint32(b[2])<<8 | uint32(b[3])
	v += uint32(i)
	a := netip.AddrFrom4([4]byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)})
	if !netip.MustParsePrefix("127.0.0.0/8").Contains(a) || a == netip.MustParseAddr("127.255.255.255") {
		return netip.Addr{}, fmt.Errorf("client %d would use %v, outside loopback 127.0.0.0/8", i, a)
	}
	return a, nil
}

// newClient makes a client on src sending p's requests to target, with
// buffers of blen bytes.
func newClient(src netip.Addr, target netip.AddrPort, p protocol, blen int) (*client, error) {
	conn, err := net.DialUDP("udp4", net.UDPAddrFromAddrPort(netip.AddrPortFrom(src, 0)), net.UDPAddrFromAddrPort(target))
	if err != nil {
		return nil, err
	}
	// Large buffers, so that loss happens at the server, not here. As root
	// the FORCE variants pass net.core.rmem_max; otherwise the kernel caps.
	raw, err := conn.SyscallConn()
	if err != nil {
		conn.Close()
		return nil, err
	}
	raw.Control(func(fd uintptr) {
		if unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, 8<<20) != nil {
			conn.SetReadBuffer(8 << 20)
		}
		if unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_SNDBUFFORCE, 4<<20) != nil {
			conn.SetWriteBuffer(4 << 20)
		}
	})
	c := &client{conn: conn, raw: raw, local: conn.LocalAddr().(*net.UDPAddr).AddrPort(), p: p, blen: blen}
	c.shdr = make([]unix.Mmsghdr, maxBatch)
	c.siov = make([]unix.Iovec, maxBatch)
	c.rhdr = make([]unix.Mmsghdr, maxBatch)
	c.riov = make([]unix.Iovec, maxBatch)
	for i := range maxBatch {
		c.sbuf = append(c.sbuf, make([]byte, blen))
		c.rbuf = append(c.rbuf, make([]byte, blen))
		c.siov[i].Base = &c.sbuf[i][0]
		c.riov[i].Base = &c.rbuf[i][0]
		c.riov[i].SetLen(blen)
		c.shdr[i].Hdr.Iov = &c.siov[i]
		c.shdr[i].Hdr.Iovlen = 1
		c.rhdr[i].Hdr.Iov = &c.riov[i]
		c.rhdr[i].Hdr.Iovlen = 1
	}
	return c, nil
}

// send builds up to n requests (n <= maxBatch) stamped with now and sends
// them with sendmmsg. It returns how many it tried to send and how many it
// skipped because the protocol had nothing to send.
func (c *client) send(n int, start time.Time) (done, skipped int) {
	now := time.Now()
	sentNS := int64(now.Sub(start))
	built := 0
	for built < n {
		l := c.p.request(c.sbuf[built], now, sentNS)
		if l == 0 {
			skipped = n - built
			n = built
			break
		}
		c.siov[built].SetLen(l)
		c.shdr[built].Len = 0
		built++
	}
	for done < n {
		c.sn = n - done
		off := done
		err := c.raw.Write(func(fd uintptr) bool {
			r, _, e := unix.Syscall6(unix.SYS_SENDMMSG, fd, uintptr(unsafe.Pointer(&c.shdr[off])), uintptr(c.sn), 0, 0, 0)
			switch e {
			case 0:
				c.sres, c.serr = int(r), nil
				return true
			case unix.EAGAIN:
				return false
			case unix.EINTR:
				return false
			default:
				c.sres, c.serr = 0, os.NewSyscallError("sendmmsg", e)
				return true
			}
		})
		if err == nil {
			err = c.serr
		}
		if err != nil {
			// The request at done was not sent (its slot stays pending and
			// is never answered; it is not counted as sent either).
			c.sendErrs.Add(1)
			c.lastErr.Store(err)
			if errors.Is(err, net.ErrClosed) {
				break
			}
			done++
			continue
		}
		if c.sres == 0 {
			break
		}
		c.sent.Add(uint64(c.sres))
		done += c.sres
	}
	return done, skipped
}

// sendLoop sends at perClient requests/s (0: as fast as it can) from start
// until stop, in batches at most tick apart.
func (c *client) sendLoop(ctx context.Context, start, stop time.Time, perClient float64, tick time.Duration) {
	if perClient <= 0 {
		for ctx.Err() == nil && time.Now().Before(stop) {
			if _, skipped := c.send(maxBatch/4, start); skipped > 0 {
				// Every NTS session is waiting for its reply.
				time.Sleep(20 * time.Microsecond)
			}
		}
		return
	}
	var issued uint64
	for ctx.Err() == nil {
		now := time.Now()
		if !now.Before(stop) {
			return
		}
		due := uint64(perClient * now.Sub(start).Seconds())
		for issued < due && ctx.Err() == nil {
			done, skipped := c.send(int(min(due-issued, maxBatch)), start)
			// Skipped requests are not sent later in a burst: the
			// schedule moves on, and the run reports them.
			issued += uint64(done + skipped)
			c.skipped.Add(uint64(skipped))
			if done == 0 {
				break
			}
		}
		// Sleep until the next request is due, or one tick.
		next := start.Add(time.Duration(float64(issued+1) / perClient * float64(time.Second)))
		wait := min(time.Until(next), tick)
		if wait > 0 {
			time.Sleep(wait)
		}
	}
}

// recvLoop reads replies until the socket is closed.
func (c *client) recvLoop(start time.Time) {
	for {
		for i := range maxBatch {
			c.rhdr[i].Len = 0
			c.rhdr[i].Hdr.Flags = 0
		}
		err := c.raw.Read(func(fd uintptr) bool {
			r, _, e := unix.Syscall6(unix.SYS_RECVMMSG, fd, uintptr(unsafe.Pointer(&c.rhdr[0])), maxBatch, unix.MSG_DONTWAIT, 0, 0)
			switch e {
			case 0:
				c.rres, c.rerr = int(r), nil
				return true
			case unix.EAGAIN, unix.EINTR:
				return false
			default:
				c.rres, c.rerr = 0, os.NewSyscallError("recvmmsg", e)
				return true
			}
		})
		if err != nil {
			return // closed
		}
		if c.rerr != nil {
			// ECONNREFUSED from an ICMP error: nothing listens (yet).
			c.lastErr.Store(c.rerr)
			continue
		}
		rxNS := int64(time.Since(start))
		st, _ := c.p.counts()
		for i := range c.rres {
			n := int(c.rhdr[i].Len)
			if c.rhdr[i].Hdr.Flags&unix.MSG_TRUNC != 0 || n > c.blen {
				st.malformed++
				continue
			}
			c.p.reply(c.rbuf[i][:n], rxNS)
		}
		c.answered.Store(st.answered)
	}
}
