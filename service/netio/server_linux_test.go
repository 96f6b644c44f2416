package netio

import (
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

	"golang.org/x/sys/unix"
)

// echoOnce reads one batch on sc, checks each message's addresses against
// want (by peer), prefixes each payload with "re:" and writes the batch back.
// It returns the messages read.
func echoOnce(t *testing.T, ctx context.Context, sc *ServerConn, msgs []Message) []Message {
	t.Helper()
	n, err := sc.ReadBatch(ctx, msgs)
	if err != nil {
		t.Fatalf("ReadBatch: %v", err)
	}
	if n < 1 || n > len(msgs) {
		t.Fatalf("ReadBatch returned %d of %d", n, len(msgs))
	}
	for i := range n {
		m := &msgs[i]
		copy(m.Buf[3:], m.Buf[:m.N])
		copy(m.Buf, "re:")
		m.N += 3
	}
	w, err := sc.WriteBatch(msgs[:n])
	if err != nil || w != n {
		t.Fatalf("WriteBatch = %d, %v; want %d, nil", w, err, n)
	}
	return msgs[:n]
}

// checkRequest verifies what the server learned about one request.
// A socket bound to one address has no PKTINFO (fixedLocal), hence no
// interface index; wantIfIndex is false for it.
func checkRequest(t *testing.T, m Message, payload string, peer netip.AddrPort, local netip.Addr, sentAfter time.Time, wantIfIndex bool) {
	t.Helper()
	if got := string(m.Buf[:m.N]); got != "re:"+payload {
		t.Errorf("payload %q, want %q", got, "re:"+payload)
	}
	if m.Peer != peer {
		t.Errorf("Peer = %v, want %v", m.Peer, peer)
	}
	if m.Local != local {
		t.Errorf("Local = %v, want %v", m.Local, local)
	}
	if wantIfIndex && m.IfIndex == 0 {
		t.Errorf("IfIndex = 0, want the loopback interface")
	}
	if !m.RxKernel {
		t.Errorf("no kernel RX timestamp")
	}
	if !wallLE(sentAfter, m.RxTime) || !wallLE(m.RxTime, time.Now()) {
		t.Errorf("RxTime %v outside [%v, now]", m.RxTime, sentAfter)
	}
}

// serverCase is one wildcard server and the addresses clients reach it on.
type serverCase struct {
	name    string
	open    func(t *testing.T) *ServerSockets
	targets []string // addresses the clients send to
}

func listenCase(bind string) func(t *testing.T) *ServerSockets {
	return func(t *testing.T) *ServerSockets {
		ss, err := ListenServer(testCtx(t), netip.MustParseAddrPort(bind), 1)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { ss.Close() })
		return ss
	}
}

// adoptCase opens a socket the way another process (systemd) would, with
// package net, and hands its *os.File to AdoptServer.
func adoptCase(network, bind string) func(t *testing.T) *ServerSockets {
	return func(t *testing.T) *ServerSockets {
		l, err := net.ListenUDP(network, net.UDPAddrFromAddrPort(netip.MustParseAddrPort(bind)))
		if err != nil {
			t.Fatal(err)
		}
		f, err := l.File()
		l.Close()
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close() // AdoptServer duplicates the descriptor
		ss, err := AdoptServer([]*os.File{f})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { ss.Close() })
		return ss
	}
}

func TestServerReplyFromRequestedAddress(t *testing.T) {
	cases := []serverCase{
		{"listen-v4-wildcard", listenCase("0.0.0.0:0"), []string{"127.0.0.1", "127.0.0.2", "127.3.4.5"}},
		{"listen-v6-wildcard", listenCase("[::]:0"), []string{"::1"}},
		{"listen-v4-specific", listenCase("127.0.0.2:0"), []string{"127.0.0.2"}},
		{"adopt-v4-wildcard", adoptCase("udp4", "0.0.0.0:0"), []string{"127.0.0.1", "127.0.0.2"}},
		// package net's "udp" on [::] is dual-stack, like a systemd
		// ListenDatagram=123 socket: IPv4 clients arrive v4-mapped.
		{"adopt-dual-stack", adoptCase("udp", "[::]:0"), []string{"::1", "127.0.0.1", "127.0.0.2"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ctx := testCtx(t)
			ss := tc.open(t)
			if len(ss.Conns) != 1 {
				t.Fatalf("%d conns, want 1", len(ss.Conns))
			}
			sc := ss.Conns[0]
			if !sc.Timestamping().RX() {
				t.Errorf("server socket without kernel RX timestamps: %v", sc.Timestamping())
			}
			// Only the socket bound to one address goes without PKTINFO.
			specific := !sc.LocalAddr().Addr().IsUnspecified()
			if sc.fixedLocal != specific {
				t.Errorf("bound to %v: fixedLocal %v", sc.LocalAddr(), sc.fixedLocal)
			}
			if sc.family == unix.AF_INET {
				var on int
				if err := control(sc.raw, func(fd int) (err error) {
					on, err = unix.GetsockoptInt(fd, unix.SOL_IP, unix.IP_PKTINFO)
					return err
				}); err != nil {
					t.Fatal(err)
				}
				if (on != 0) == specific {
					t.Errorf("bound to %v: IP_PKTINFO %d", sc.LocalAddr(), on)
				}
			}
			port := sc.LocalAddr().Port()
			msgs := newMessages(4)
			for _, target := range tc.targets {
				dst := netip.AddrPortFrom(netip.MustParseAddr(target), port)
				network, src := "udp4", netip.MustParseAddr("127.0.0.1")
				if dst.Addr().Is6() {
					network, src = "udp6", netip.IPv6Loopback()
				}

				// Client 1: unconnected, bound to 127.0.0.1 / ::1, so it
				// sees the true source address of the reply. Without
				// PKTINFO the reply to 127.0.0.2 would come from 127.0.0.1.
				free := listenUDP(t, network, netip.AddrPortFrom(src, 0))
				before := time.Now()
				payload := "to " + target
				if _, err := free.WriteToUDPAddrPort([]byte(payload), dst); err != nil {
					t.Fatal(err)
				}
				got := echoOnce(t, ctx, sc, msgs[:1])
				checkRequest(t, got[0], payload, udpAddrPort(free), dst.Addr(), before, !sc.fixedLocal)
				buf := make([]byte, 1500)
				n, from := readWithin(t, free, buf)
				if from != dst {
					t.Errorf("reply to a request sent to %v came from %v", dst, from)
				}
				if string(buf[:n]) != "re:"+payload {
					t.Errorf("reply %q", buf[:n])
				}

				// Client 2: connected to the specific address; the kernel
				// delivers it only a reply from exactly that address.
				conn := dialUDP(t, network, netip.AddrPortFrom(src, 0), dst)
				before = time.Now()
				if _, err := conn.Write([]byte("connected")); err != nil {
					t.Fatal(err)
				}
				got = echoOnce(t, ctx, sc, msgs[:1])
				checkRequest(t, got[0], "connected", udpAddrPort(conn), dst.Addr(), before, !sc.fixedLocal)
				n, _ = readWithin(t, conn, buf)
				if string(buf[:n]) != "re:connected" {
					t.Errorf("connected client got %q", buf[:n])
				}
			}
		})
	}
}

func TestPktinfoNeeded(t *testing.T) {
	for a, want := range map[string]bool{
		"0.0.0.0": true, "::": true, "224.0.1.1": true, "ff02::101": true, "fe80::1": true,
		"127.0.0.1": false, "192.0.2.7": false, "::1": false, "2001:db8::1": false, "169.254.1.1": false,
	} {
		if got := pktinfoNeeded(netip.MustParseAddr(a)); got != want {
			t.Errorf("pktinfoNeeded(%s) = %v, want %v", a, got, want)
		}
	}
	if !pktinfoNeeded(netip.Addr{}) {
		t.Error("pktinfoNeeded(zero address) = false")
	}
}

func TestServerBatch(t *testing.T) {
	ctx := testCtx(t)
	ss := listenCase("127.0.0.1:0")(t)
	sc := ss.Conns[0]
	const clients = 12
	var conns []*net.UDPConn
	byPeer := map[netip.AddrPort]int{}
	for i := range clients {
		c := dialUDP(t, "udp4", netip.AddrPort{}, sc.LocalAddr())
		conns = append(conns, c)
		byPeer[udpAddrPort(c)] = i
	}
	before := time.Now()
	for i, c := range conns {
		if _, err := fmt.Fprintf(c, "client %d", i); err != nil {
			t.Fatal(err)
		}
	}
	// Read until every client's request is in; batches may be split.
	all := newMessages(clients)
	got := 0
	batches := 0
	for got < clients {
		n, err := sc.ReadBatch(ctx, all[got:])
		if err != nil {
			t.Fatal(err)
		}
		got += n
		batches++
	}
	t.Logf("%d requests in %d ReadBatch calls", clients, batches)
	seen := map[netip.AddrPort]bool{}
	for _, m := range all {
		i, ok := byPeer[m.Peer]
		if !ok || seen[m.Peer] {
			t.Fatalf("unexpected or duplicate peer %v", m.Peer)
		}
		seen[m.Peer] = true
		if want := fmt.Sprintf("client %d", i); string(m.Buf[:m.N]) != want {
			t.Errorf("from %v: %q, want %q", m.Peer, m.Buf[:m.N], want)
		}
		if !m.RxKernel || !wallLE(before, m.RxTime) {
			t.Errorf("from %v: RxTime %v kernel=%v, want kernel time after %v", m.Peer, m.RxTime, m.RxKernel, before)
		}
	}
	// Answer everyone in one WriteBatch.
	for i := range all {
		all[i].N = copy(all[i].Buf, fmt.Sprintf("answer %d", byPeer[all[i].Peer]))
	}
	n, err := sc.WriteBatch(all)
	if err != nil || n != clients {
		t.Fatalf("WriteBatch = %d, %v; want %d", n, err, clients)
	}
	buf := make([]byte, 100)
	for i, c := range conns {
		n, _ := readWithin(t, c, buf)
		if want := fmt.Sprintf("answer %d", i); string(buf[:n]) != want {
			t.Errorf("client %d got %q, want %q", i, buf[:n], want)
		}
	}
}

func TestServerWriteBatchSkipsBadMessage(t *testing.T) {
	ss := listenCase("127.0.0.1:0")(t)
	sc := ss.Conns[0]
	a := listenUDP(t, "udp4", netip.MustParseAddrPort("127.0.0.1:0"))
	b := listenUDP(t, "udp4", netip.MustParseAddrPort("127.0.0.1:0"))
	msgs := newMessages(4)
	msgs[0].Peer, msgs[0].N = udpAddrPort(a), copy(msgs[0].Buf, "to a")
	msgs[1].Peer, msgs[1].N = netip.MustParseAddrPort("[::1]:9"), copy(msgs[1].Buf, "v6 on a v4 socket")
	msgs[2].Peer, msgs[2].N = udpAddrPort(b), 5000 // N beyond the buffer
	msgs[3].Peer, msgs[3].N = udpAddrPort(b), copy(msgs[3].Buf, "to b")
	n, err := sc.WriteBatch(msgs)
	if n != 2 || err == nil {
		t.Fatalf("WriteBatch = %d, %v; want 2 and an error", n, err)
	}
	if !errors.Is(err, syscall.EAFNOSUPPORT) {
		t.Errorf("first error %v, want EAFNOSUPPORT for the IPv6 peer", err)
	}
	buf := make([]byte, 100)
	if n, _ := readWithin(t, a, buf); string(buf[:n]) != "to a" {
		t.Errorf("a got %q", buf[:n])
	}
	if n, _ := readWithin(t, b, buf); string(buf[:n]) != "to b" {
		t.Errorf("b got %q", buf[:n])
	}
}

func TestServerTruncated(t *testing.T) {
	ctx := testCtx(t)
	ss := listenCase("127.0.0.1:0")(t)
	sc := ss.Conns[0]
	c := dialUDP(t, "udp4", netip.AddrPort{}, sc.LocalAddr())
	if _, err := c.Write([]byte("0123456789")); err != nil {
		t.Fatal(err)
	}
	msgs := []Message{{Buf: make([]byte, 4)}}
	n, err := sc.ReadBatch(ctx, msgs)
	if err != nil || n != 1 {
		t.Fatal(n, err)
	}
	if msgs[0].N != 4 || !msgs[0].Truncated || string(msgs[0].Buf) != "0123" {
		t.Fatalf("got N=%d truncated=%v %q", msgs[0].N, msgs[0].Truncated, msgs[0].Buf)
	}
}

func TestServerReusePortWorkers(t *testing.T) {
	ctx, cancel := context.WithCancel(testCtx(t))
	ss, err := ListenServer(ctx, netip.MustParseAddrPort("127.0.0.1:0"), 2)
	if err != nil {
		t.Fatal(err)
	}
	defer ss.Close()
	if len(ss.Conns) != 2 {
		t.Fatalf("%d conns, want 2", len(ss.Conns))
	}
	a, b := ss.Conns[0].LocalAddr(), ss.Conns[1].LocalAddr()
	if a != b || a.Port() == 0 {
		t.Fatalf("workers bound to %v and %v, want one shared port", a, b)
	}

	// One reader per conn, as the daemon runs them; count who answers.
	var wg sync.WaitGroup
	counts := make([]int, 2)
	for i, sc := range ss.Conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			msgs := newMessages(8)
			for {
				n, err := sc.ReadBatch(ctx, msgs)
				if err != nil {
					return
				}
				counts[i] += n
				for j := range n {
					msgs[j].N = copy(msgs[j].Buf, fmt.Sprintf("worker %d", i))
				}
				sc.WriteBatch(msgs[:n])
			}
		}()
	}
	// Many clients (distinct source ports) so the REUSEPORT hash spreads them.
	const clients = 64
	answered := map[string]int{}
	buf := make([]byte, 100)
	for range clients {
		c := dialUDP(t, "udp4", netip.AddrPort{}, a)
		if _, err := c.Write([]byte("who?")); err != nil {
			t.Fatal(err)
		}
		n, _ := readWithin(t, c, buf)
		answered[string(buf[:n])]++
		c.Close()
	}
	cancel()
	wg.Wait()
	t.Logf("answers per worker: %v (reads %v)", answered, counts)
	if counts[0]+counts[1] != clients {
		t.Errorf("workers read %v requests, want %d in total", counts, clients)
	}
	// With 64 clients the chance that the kernel's hash sends all of them
	// to one socket is 2^-63: both must have served.
	if answered["worker 0"] == 0 || answered["worker 1"] == 0 {
		t.Errorf("answers per worker %v: want both workers to serve", answered)
	}
}

func TestServerReadCancelAndClose(t *testing.T) {
	ctx := testCtx(t)
	ss := listenCase("127.0.0.1:0")(t)
	sc := ss.Conns[0]
	msgs := newMessages(2)

	rctx, cancel := context.WithCancel(ctx)
	errc := make(chan error, 1)
	go func() {
		_, err := sc.ReadBatch(rctx, msgs)
		errc <- err
	}()
	cancel()
	if err := <-errc; !errors.Is(err, context.Canceled) {
		t.Fatalf("ReadBatch after cancel: %v, want context.Canceled", err)
	}

	// Still usable with another context.
	c := dialUDP(t, "udp4", netip.AddrPort{}, sc.LocalAddr())
	if _, err := c.Write([]byte("after")); err != nil {
		t.Fatal(err)
	}
	n, err := sc.ReadBatch(ctx, msgs)
	if err != nil || n != 1 || string(msgs[0].Buf[:msgs[0].N]) != "after" {
		t.Fatalf("ReadBatch after cancel: %d %v", n, err)
	}
	// And with a context that cannot be cancelled.
	if _, err := c.Write([]byte("bg")); err != nil {
		t.Fatal(err)
	}
	if n, err := sc.ReadBatch(context.Background(), msgs); err != nil || n != 1 {
		t.Fatalf("ReadBatch with Background: %d %v", n, err)
	}

	go func() {
		_, err := sc.ReadBatch(ctx, msgs)
		errc <- err
	}()
	if err := ss.Close(); err != nil {
		t.Fatal(err)
	}
	if err := <-errc; !errors.Is(err, net.ErrClosed) {
		t.Fatalf("ReadBatch after Close: %v, want net.ErrClosed", err)
	}
}

func TestAdoptServerRejects(t *testing.T) {
	l, err := net.ListenTCP("tcp4", &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	f, err := l.File()
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if ss, err := AdoptServer([]*os.File{f}); err == nil {
		ss.Close()
		t.Fatal("AdoptServer accepted a TCP listener")
	}
}

func TestServerNoAllocs(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ss, err := ListenServer(ctx, netip.MustParseAddrPort("0.0.0.0:0"), 1)
	if err != nil {
		t.Fatal(err)
	}
	defer ss.Close()
	sc := ss.Conns[0]
	const clients = 4
	var conns []*net.UDPConn
	for range clients {
		conns = append(conns, dialUDP(t, "udp4", netip.AddrPort{},
			netip.AddrPortFrom(netip.MustParseAddr("127.0.0.2"), sc.LocalAddr().Port())))
	}
	msgs := newMessages(16)
	req := make([]byte, 48)
	buf := make([]byte, 1500)
	var bad error
	round := func() {
		for _, c := range conns {
			if _, err := c.Write(req); err != nil {
				bad = err
				return
			}
		}
		for got := 0; got < clients; {
			n, err := sc.ReadBatch(ctx, msgs)
			if err != nil {
				bad = err
				return
			}
			if _, err := sc.WriteBatch(msgs[:n]); err != nil {
				bad = err
				return
			}
			got += n
		}
		for _, c := range conns {
			if _, err := c.Read(buf); err != nil {
				bad = err
				return
			}
		}
	}
	round() // warm up
	allocs := testing.AllocsPerRun(100, round)
	if bad != nil {
		t.Fatal(bad)
	}
	if allocs != 0 {
		t.Errorf("%d-client round allocates %v times, want 0", clients, allocs)
	}
}

// TestServerReceiveBuffer: a server socket gets the large receive buffer
// where the process may force it (root), and at least the kernel's default
// where it may not.
func TestServerReceiveBuffer(t *testing.T) {
	ss, err := ListenServer(context.Background(), netip.MustParseAddrPort("127.0.0.1:0"), 1)
	if err != nil {
		t.Fatal(err)
	}
	defer ss.Close()
	var got int
	if err := control(ss.Conns[0].raw, func(fd int) error {
		var err error
		got, err = unix.GetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUF)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	// The kernel reports twice what was set (its bookkeeping overhead).
	if os.Geteuid() == 0 && got < ServerReceiveBuffer {
		t.Errorf("receive buffer %d bytes as root, want at least %d", got, ServerReceiveBuffer)
	}
	if got <= 0 {
		t.Errorf("receive buffer %d", got)
	}
}
