package netio

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"os"
	"testing"
	"time"
)

// testCtx is a context that ends well after any healthy test step, so a
// broken read fails the test instead of hanging it. It is not an assertion
// about speed.
func testCtx(t testing.TB) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// requireCI fails under CI=true and skips otherwise: for tests whose
// environment (here: root to create a network namespace) is missing.
func requireCI(t *testing.T, format string, args ...any) {
	t.Helper()
	if os.Getenv("CI") == "true" {
		t.Fatalf(format, args...)
	}
	t.Skipf(format, args...)
}

// listenUDP opens a plain Go UDP socket for the test side.
func listenUDP(t testing.TB, network string, addr netip.AddrPort) *net.UDPConn {
	t.Helper()
	c, err := net.ListenUDP(network, net.UDPAddrFromAddrPort(addr))
	if err != nil {
		t.Fatalf("listen %s %v: %v", network, addr, err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func dialUDP(t testing.TB, network string, laddr, raddr netip.AddrPort) *net.UDPConn {
	t.Helper()
	var l *net.UDPAddr
	if laddr.IsValid() {
		l = net.UDPAddrFromAddrPort(laddr)
	}
	c, err := net.DialUDP(network, l, net.UDPAddrFromAddrPort(raddr))
	if err != nil {
		t.Fatalf("dial %s %v->%v: %v", network, laddr, raddr, err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func udpAddrPort(c *net.UDPConn) netip.AddrPort {
	ap := c.LocalAddr().(*net.UDPAddr).AddrPort()
	return netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())
}

// readWithin reads one datagram from a plain test socket, failing the test
// instead of hanging forever if none comes.
func readWithin(t testing.TB, c *net.UDPConn, buf []byte) (int, netip.AddrPort) {
	t.Helper()
	if err := c.SetReadDeadline(time.Now().Add(20 * time.Second)); err != nil {
		t.Fatal(err)
	}
	n, from, err := c.ReadFromUDPAddrPort(buf)
	if err != nil {
		t.Fatalf("read on %v: %v", c.LocalAddr(), err)
	}
	return n, netip.AddrPortFrom(from.Addr().Unmap(), from.Port())
}

// newMessages returns n messages with 1500-byte buffers.
func newMessages(n int) []Message {
	msgs := make([]Message, n)
	for i := range msgs {
		msgs[i].Buf = make([]byte, 1500)
	}
	return msgs
}

// wallLE reports a <= b on the wall clock (kernel timestamps carry no
// monotonic reading, so compare wall times).
func wallLE(a, b time.Time) bool { return !a.Round(0).After(b.Round(0)) }

// TestMain keeps one kernel-timestamping socket open for the whole run.
//
// Linux turns software receive timestamps on globally (a static key) the
// first time any socket asks for them, but it does so from a work queue: for
// a moment after the first socket enables SO_TIMESTAMPING, datagrams arrive
// without a timestamp (and the key goes off again when the last such socket
// closes). On a quiet machine every test's first datagram could fall into that
// gap. Holding one socket open, and waiting until it sees a kernel timestamp,
// keeps the tests about this package rather than about that race.
func TestMain(m *testing.M) {
	stop, err := holdKernelTimestamps()
	if err != nil {
		fmt.Fprintf(os.Stderr, "netio: could not warm kernel timestamps: %v\n", err)
	}
	code := m.Run()
	stop()
	os.Exit(code)
}

func holdKernelTimestamps() (stop func(), err error) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	ss, err := ListenServer(ctx, netip.MustParseAddrPort("127.0.0.1:0"), 1)
	if err != nil {
		return func() {}, err
	}
	stop = func() { ss.Close() }
	if !ss.Conns[0].Timestamping().RX() {
		return stop, fmt.Errorf("no kernel RX timestamping: %v", ss.Conns[0].Timestamping())
	}
	msgs := newMessages(1)
	for {
		c, err := net.DialUDP("udp4", nil, net.UDPAddrFromAddrPort(ss.Conns[0].LocalAddr()))
		if err != nil {
			return stop, err
		}
		_, err = c.Write([]byte("warm"))
		c.Close()
		if err != nil {
			return stop, err
		}
		if _, err := ss.Conns[0].ReadBatch(ctx, msgs); err != nil {
			return stop, err
		}
		if msgs[0].RxKernel {
			return stop, nil
		}
		time.Sleep(time.Millisecond) // give the kernel's work queue a turn
	}
}
