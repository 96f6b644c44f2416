package netio

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"sync"
	"syscall"
	"testing"
	"time"
)

// echoServer answers every datagram on c with the same bytes, prefixed by
// prefix, until c is closed.
func echoServer(t *testing.T, c *net.UDPConn, prefix string) {
	t.Helper()
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		buf := make([]byte, 2048)
		for {
			n, from, err := c.ReadFromUDPAddrPort(buf)
			if err != nil {
				return
			}
			out := append([]byte(prefix), buf[:n]...)
			if _, err := c.WriteToUDPAddrPort(out, from); err != nil {
				return
			}
		}
	}()
	t.Cleanup(func() { c.Close(); wg.Wait() })
}

func TestClientExchange(t *testing.T) {
	tests := []struct {
		network string
		server  string
	}{
		{"udp4", "127.0.0.1:0"},
		{"udp", "127.0.0.1:0"},
		{"udp6", "[::1]:0"},
		{"udp", "[::1]:0"},
	}
	for _, tc := range tests {
		t.Run(tc.network+"/"+tc.server, func(t *testing.T) {
			ctx := testCtx(t)
			srvNet := "udp4"
			if netip.MustParseAddrPort(tc.server).Addr().Is6() {
				srvNet = "udp6"
			}
			srv := listenUDP(t, srvNet, netip.MustParseAddrPort(tc.server))
			srvAddr := udpAddrPort(srv)
			echoServer(t, srv, "echo:")

			c, err := Dial(ctx, tc.network, srvAddr)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			mode := c.Timestamping()
			t.Logf("timestamping on loopback: %v", mode)
			if !mode.RX() {
				t.Fatalf("no kernel RX timestamps: %v", mode)
			}
			if got := c.RemoteAddr(); got != srvAddr {
				t.Errorf("RemoteAddr = %v, want %v", got, srvAddr)
			}
			la := c.LocalAddr()
			if la.Port() == 0 || la.Addr() != srvAddr.Addr() {
				t.Errorf("LocalAddr = %v, want a kernel-chosen port on %v", la, srvAddr.Addr())
			}

			// A stranger sends to the client's port first: a connected
			// socket must never deliver it.
			strangerNet := "udp4"
			if la.Addr().Is6() {
				strangerNet = "udp6"
			}
			stranger := listenUDP(t, strangerNet, netip.AddrPortFrom(la.Addr(), 0))
			if _, err := stranger.WriteToUDPAddrPort([]byte("stranger"), la); err != nil {
				t.Fatal(err)
			}

			const count = 3
			type sendRec struct {
				sent time.Time
				id   uint32
			}
			var sends []sendRec
			before := time.Now()
			for i := range count {
				sent, id, err := c.Send(fmt.Appendf(nil, "req%d", i))
				if err != nil {
					t.Fatalf("send %d: %v", i, err)
				}
				if sent.Before(before) {
					t.Errorf("send %d: time %v before the test's own clock reading %v", i, sent, before)
				}
				sends = append(sends, sendRec{sent, id})
			}
			if mode.TX() {
				for i := 1; i < count; i++ {
					if sends[i].id != sends[i-1].id+1 {
						t.Errorf("send ids %d then %d, want consecutive", sends[i-1].id, sends[i].id)
					}
				}
			}

			var packets []string
			txByID := map[uint32]time.Time{}
			buf := make([]byte, 1500)
			for len(packets) < count || (mode.TX() && len(txByID) < count) {
				ev, err := c.Read(ctx, buf)
				if err != nil {
					t.Fatalf("read after %d packets, %d tx timestamps: %v", len(packets), len(txByID), err)
				}
				after := time.Now()
				switch ev.Kind {
				case EventPacket:
					if !ev.Kernel {
						t.Errorf("packet %q: no kernel RX timestamp", buf[:ev.N])
					}
					// The reply left the server after our first send and
					// was stamped before Read returned.
					if !wallLE(sends[0].sent, ev.Time) || !wallLE(ev.Time, after) {
						t.Errorf("RX time %v outside [%v, %v]", ev.Time, sends[0].sent, after)
					}
					if ev.Truncated {
						t.Errorf("packet truncated")
					}
					packets = append(packets, string(buf[:ev.N]))
				case EventTxTimestamp:
					if !mode.TX() {
						t.Fatalf("TX timestamp event without TX mode")
					}
					if !ev.Kernel || ev.N != 0 {
						t.Errorf("TX event %+v: want Kernel and N=0", ev)
					}
					if _, dup := txByID[ev.ID]; dup {
						t.Errorf("TX timestamp for id %d twice", ev.ID)
					}
					txByID[ev.ID] = ev.Time
					if !wallLE(ev.Time, after) {
						t.Errorf("TX time %v after the read returned at %v", ev.Time, after)
					}
				default:
					t.Fatalf("unexpected event %+v", ev)
				}
			}
			for i, p := range packets {
				if want := fmt.Sprintf("echo:req%d", i); p != want {
					t.Errorf("packet %d = %q, want %q (a stranger's datagram got through?)", i, p, want)
				}
			}
			if mode.TX() {
				for _, s := range sends {
					tx, ok := txByID[s.id]
					if !ok {
						t.Errorf("no TX timestamp for id %d (have %v)", s.id, txByID)
						continue
					}
					// The kernel stamps after the user-space time taken
					// just before the write.
					if !wallLE(s.sent, tx) {
						t.Errorf("id %d: TX time %v before user-space send time %v", s.id, tx, s.sent)
					}
				}
			}
		})
	}
}

func TestDialFreshPorts(t *testing.T) {
	ctx := testCtx(t)
	srv := listenUDP(t, "udp4", netip.MustParseAddrPort("127.0.0.1:0"))
	seen := map[uint16]bool{}
	var conns []*ClientConn
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	for range 4 {
		c, err := Dial(ctx, "udp4", udpAddrPort(srv))
		if err != nil {
			t.Fatal(err)
		}
		conns = append(conns, c)
		p := c.LocalAddr().Port()
		if p == 0 || seen[p] {
			t.Fatalf("local port %d reused or zero (seen %v)", p, seen)
		}
		seen[p] = true
	}
}

func TestDialErrors(t *testing.T) {
	ctx := testCtx(t)
	tests := []struct {
		network string
		server  netip.AddrPort
	}{
		{"tcp", netip.MustParseAddrPort("127.0.0.1:123")},
		{"udp", netip.AddrPort{}},
		{"udp", netip.MustParseAddrPort("127.0.0.1:0")},
		{"udp6", netip.MustParseAddrPort("127.0.0.1:123")},
	}
	for _, tc := range tests {
		if c, err := Dial(ctx, tc.network, tc.server); err == nil {
			c.Close()
			t.Errorf("Dial(%q, %v) succeeded, want an error", tc.network, tc.server)
		}
	}
}

// closedPort returns a loopback UDP port nobody listens on right now.
func closedPort(t *testing.T, network string, addr netip.Addr) netip.AddrPort {
	t.Helper()
	c, err := net.ListenUDP(network, net.UDPAddrFromAddrPort(netip.AddrPortFrom(addr, 0)))
	if err != nil {
		t.Fatal(err)
	}
	ap := udpAddrPort(c)
	c.Close()
	return ap
}

func TestClientRefusedStaysUsable(t *testing.T) {
	for _, tc := range []struct {
		network string
		addr    netip.Addr
	}{
		{"udp4", netip.MustParseAddr("127.0.0.1")},
		{"udp6", netip.IPv6Loopback()},
	} {
		t.Run(tc.network, func(t *testing.T) {
			ctx := testCtx(t)
			target := closedPort(t, tc.network, tc.addr)
			c, err := Dial(ctx, tc.network, target)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			if _, _, err := c.Send([]byte("anyone?")); err != nil {
				t.Fatal(err)
			}
			buf := make([]byte, 1500)
			var refused error
			for refused == nil {
				ev, err := c.Read(ctx, buf)
				switch {
				case err != nil:
					refused = err
				case ev.Kind == EventPacket:
					t.Fatalf("got a packet from a closed port: %q", buf[:ev.N])
				}
			}
			if !errors.Is(refused, syscall.ECONNREFUSED) {
				t.Fatalf("read error = %v, want ECONNREFUSED", refused)
			}

			// Someone starts listening on that port: the same conn now works.
			srv := listenUDP(t, tc.network, target)
			echoServer(t, srv, "late:")
			if _, _, err := c.Send([]byte("again")); err != nil {
				t.Fatalf("send after refusal: %v", err)
			}
			for {
				ev, err := c.Read(ctx, buf)
				if err != nil {
					t.Fatalf("read after refusal: %v", err)
				}
				if ev.Kind == EventPacket {
					if got := string(buf[:ev.N]); got != "late:again" {
						t.Fatalf("got %q, want %q", got, "late:again")
					}
					return
				}
			}
		})
	}
}

func TestClientReadCancelAndClose(t *testing.T) {
	ctx := testCtx(t)
	srv := listenUDP(t, "udp4", netip.MustParseAddrPort("127.0.0.1:0"))
	c, err := Dial(ctx, "udp4", udpAddrPort(srv))
	if err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 1500)

	// An already-cancelled context returns at once.
	done, cancelDone := context.WithCancel(ctx)
	cancelDone()
	if _, err := c.Read(done, buf); !errors.Is(err, context.Canceled) {
		t.Fatalf("read with cancelled ctx: %v, want context.Canceled", err)
	}

	// Cancelling while blocked interrupts the read.
	rctx, cancel := context.WithCancel(ctx)
	errc := make(chan error, 1)
	go func() {
		_, err := c.Read(rctx, buf)
		errc <- err
	}()
	cancel()
	if err := <-errc; !errors.Is(err, context.Canceled) {
		t.Fatalf("blocked read after cancel: %v, want context.Canceled", err)
	}

	// The conn is still usable with a new context.
	if _, err := srv.WriteToUDPAddrPort([]byte("hi"), c.LocalAddr()); err != nil {
		t.Fatal(err)
	}
	ev, err := c.Read(ctx, buf)
	if err != nil || ev.Kind != EventPacket || !bytes.Equal(buf[:ev.N], []byte("hi")) {
		t.Fatalf("read after cancel: %+v %v", ev, err)
	}

	// Close wakes a blocked reader.
	go func() {
		_, err := c.Read(ctx, buf)
		errc <- err
	}()
	// Whether Close lands before or during the Read, the Read must fail
	// with net.ErrClosed.
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	if err := <-errc; !errors.Is(err, net.ErrClosed) {
		t.Fatalf("read after close: %v, want net.ErrClosed", err)
	}
}

func TestClientTruncated(t *testing.T) {
	ctx := testCtx(t)
	srv := listenUDP(t, "udp4", netip.MustParseAddrPort("127.0.0.1:0"))
	c, err := Dial(ctx, "udp4", udpAddrPort(srv))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := srv.WriteToUDPAddrPort([]byte("0123456789"), c.LocalAddr()); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 4)
	ev, err := c.Read(ctx, buf)
	if err != nil {
		t.Fatal(err)
	}
	if ev.N != 4 || !ev.Truncated || string(buf) != "0123" {
		t.Fatalf("got %+v %q, want N=4 truncated \"0123\"", ev, buf)
	}
}

func TestClientNoAllocs(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ss, err := ListenServer(ctx, netip.MustParseAddrPort("127.0.0.1:0"), 1)
	if err != nil {
		t.Fatal(err)
	}
	defer ss.Close()
	sc := ss.Conns[0]
	c, err := Dial(ctx, "udp4", sc.LocalAddr())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	msgs := newMessages(1)
	req := []byte("0123456789012345678901234567890123456789012345")
	buf := make([]byte, 1500)
	var bad error
	exchange := func() {
		if _, _, err := c.Send(req); err != nil {
			bad = err
			return
		}
		n, err := sc.ReadBatch(ctx, msgs)
		if err != nil {
			bad = err
			return
		}
		if _, err := sc.WriteBatch(msgs[:n]); err != nil {
			bad = err
			return
		}
		// Read until the reply (TX timestamps may come first or not at all).
		for {
			ev, err := c.Read(ctx, buf)
			if err != nil {
				bad = err
				return
			}
			if ev.Kind == EventPacket {
				return
			}
		}
	}
	exchange() // warm up: first-use allocations (ctx.Done channel, AfterFunc)
	allocs := testing.AllocsPerRun(200, exchange)
	if bad != nil {
		t.Fatal(bad)
	}
	if allocs != 0 {
		t.Errorf("client+server exchange allocates %v times per run, want 0", allocs)
	}
}

// TestClientTxIDsAcrossErrors checks that the IDs Send hands out match the
// kernel's OPT_ID keys even when some Sends fail: while the server port is
// closed, ICMP port-unreachable errors make some Sends return ECONNREFUSED,
// and a failed Send must not consume an ID.
func TestClientTxIDsAcrossErrors(t *testing.T) {
	ctx := testCtx(t)
	target := closedPort(t, "udp4", netip.MustParseAddr("127.0.0.1"))
	c, err := Dial(ctx, "udp4", target)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if !c.Timestamping().TX() {
		if os.Getenv("CI") == "true" {
			// CI runs on this project's kernel, which gives them.
			t.Fatalf("no kernel TX timestamps: %v", c.Timestamping())
		}
		t.Skipf("no kernel TX timestamps here: %v", c.Timestamping())
	}
	ids := map[uint32]bool{}
	refusedSends := 0
	send := func(p string) bool {
		_, id, err := c.Send([]byte(p))
		switch {
		case err == nil:
			if ids[id] {
				t.Fatalf("id %d handed out twice", id)
			}
			ids[id] = true
			return true
		case errors.Is(err, syscall.ECONNREFUSED):
			refusedSends++
			return false
		default:
			t.Fatalf("send: %v", err)
			return false
		}
	}
	for range 20 {
		send("nobody")
	}
	srv := listenUDP(t, "udp4", target)
	echoServer(t, srv, "late:")
	for !send("final") {
	}
	t.Logf("%d sends, %d refused at send time", len(ids)+refusedSends, refusedSends)

	tx := map[uint32]bool{}
	gotReply := false
	buf := make([]byte, 1500)
	for !gotReply || len(tx) < len(ids) {
		ev, err := c.Read(ctx, buf)
		if errors.Is(err, syscall.ECONNREFUSED) {
			continue
		}
		if err != nil {
			t.Fatalf("read with %d of %d TX timestamps, reply %v: %v", len(tx), len(ids), gotReply, err)
		}
		switch ev.Kind {
		case EventTxTimestamp:
			if !ids[ev.ID] {
				t.Fatalf("TX timestamp with id %d, which no successful Send returned (ids %v)", ev.ID, ids)
			}
			tx[ev.ID] = true
		case EventPacket:
			if got := string(buf[:ev.N]); got != "late:final" {
				t.Fatalf("reply %q", got)
			}
			gotReply = true
		}
	}
}
