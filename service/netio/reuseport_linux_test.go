package netio

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// foreignUDP binds addr as another daemon would (chronyd sets
// SO_REUSEPORT on its server sockets), optionally with SO_REUSEPORT.
func foreignUDP(t *testing.T, addr netip.AddrPort, reuse bool) (*net.UDPConn, error) {
	t.Helper()
	lc := net.ListenConfig{Control: func(_, _ string, rc syscall.RawConn) error {
		return control(rc, func(fd int) error {
			if !reuse {
				return nil
			}
			return unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_REUSEPORT, 1)
		})
	}}
	pc, err := lc.ListenPacket(context.Background(), "udp4", addr.String())
	if err != nil {
		return nil, err
	}
	return pc.(*net.UDPConn), nil
}

// TestServerRefusesHeldPort: with another process's socket on the address,
// with or without SO_REUSEPORT, ListenServer fails with ErrAddrInUse for
// any number of workers, instead of silently sharing.
func TestServerRefusesHeldPort(t *testing.T) {
	for _, reuse := range []bool{true, false} {
		for _, workers := range []int{1, 2, 4} {
			t.Run(fmt.Sprintf("reuseport=%v/workers=%d", reuse, workers), func(t *testing.T) {
				f, err := foreignUDP(t, netip.MustParseAddrPort("127.0.0.1:0"), reuse)
				if err != nil {
					t.Fatal(err)
				}
				defer f.Close()
				addr := f.LocalAddr().(*net.UDPAddr).AddrPort()
				ss, err := ListenServer(testCtx(t), addr, workers)
				if err == nil {
					ss.Close()
					t.Fatalf("ListenServer(%v, %d) shared the port with another socket", addr, workers)
				}
				if !errors.Is(err, ErrAddrInUse) {
					t.Fatalf("error %v does not wrap ErrAddrInUse", err)
				}
			})
		}
	}
}

// TestServerLateJoinerGetsNothing: a socket of another process that joins
// the workers' SO_REUSEPORT group after them receives no datagram; the
// workers still share the clients.
func TestServerLateJoinerGetsNothing(t *testing.T) {
	ctx, cancel := context.WithCancel(testCtx(t))
	ss, err := ListenServer(ctx, netip.MustParseAddrPort("127.0.0.1:0"), 2)
	if err != nil {
		t.Fatal(err)
	}
	defer ss.Close()
	a := ss.Conns[0].LocalAddr()
	f, err := foreignUDP(t, a, true)
	if err != nil {
		t.Fatalf("a late SO_REUSEPORT socket could not join (the test needs it to): %v", err)
	}
	defer f.Close()
	var foreign int
	var mu sync.Mutex
	go func() {
		buf := make([]byte, 100)
		for {
			f.SetReadDeadline(time.Now().Add(10 * time.Second))
			if _, err := f.Read(buf); err != nil {
				return
			}
			mu.Lock()
			foreign++
			mu.Unlock()
		}
	}()
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
					msgs[j].N = copy(msgs[j].Buf, "ours")
				}
				sc.WriteBatch(msgs[:n])
			}
		}()
	}
	const clients = 64
	buf := make([]byte, 100)
	answered := 0
	for range clients {
		c := dialUDP(t, "udp4", netip.AddrPort{}, a)
		if _, err := c.Write([]byte("who?")); err != nil {
			t.Fatal(err)
		}
		c.SetReadDeadline(time.Now().Add(2 * time.Second))
		if n, err := c.Read(buf); err == nil && string(buf[:n]) == "ours" {
			answered++
		}
		c.Close()
	}
	cancel()
	wg.Wait()
	mu.Lock()
	defer mu.Unlock()
	t.Logf("workers read %v, the late socket %d", counts, foreign)
	if foreign != 0 || answered != clients {
		t.Errorf("the late socket got %d datagrams, the workers answered %d of %d", foreign, answered, clients)
	}
	if counts[0] == 0 || counts[1] == 0 {
		t.Errorf("workers read %v: want both to serve", counts)
	}
}

// TestSteerProgramV6: the IPv6 program spreads too (one worker count, many
// source ports on ::1).
func TestSteerProgramV6(t *testing.T) {
	ctx := testCtx(t)
	ss, err := ListenServer(ctx, netip.MustParseAddrPort("[::1]:0"), 3)
	if err != nil {
		t.Skipf("no IPv6 loopback: %v", err)
	}
	defer ss.Close()
	a := ss.Conns[0].LocalAddr()
	seen := map[int]bool{}
	for range 48 {
		c := dialUDP(t, "udp6", netip.AddrPort{}, a)
		if _, err := c.Write([]byte("x")); err != nil {
			t.Fatal(err)
		}
		c.Close()
	}
	msgs := newMessages(64)
	for i, sc := range ss.Conns {
		rctx, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
		n, _ := sc.ReadBatch(rctx, msgs)
		cancel()
		if n > 0 {
			seen[i] = true
		}
	}
	if len(seen) < 2 {
		t.Errorf("48 IPv6 clients reached workers %v only", seen)
	}
}
