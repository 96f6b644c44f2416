package netio

import (
	"net"
	"net/netip"
	"os/exec"
	"runtime"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// enterPrivateNetns moves the calling goroutine, locked to its OS thread,
// into a fresh network namespace with lo up and the given extra addresses on
// lo. Sockets created by this goroutine live in the namespace; the thread is
// never unlocked, so Go discards it (and with it the namespace, once the
// sockets are closed) when the test goroutine ends.
func enterPrivateNetns(t *testing.T, addrs ...string) {
	t.Helper()
	ip, err := exec.LookPath("ip")
	if err != nil {
		requireCI(t, "no ip(8) to set up a network namespace: %v", err)
	}
	runtime.LockOSThread()
	if err := unix.Unshare(unix.CLONE_NEWNET); err != nil {
		requireCI(t, "cannot create a network namespace (need root): %v", err)
	}
	// Children forked from this locked thread inherit its namespace.
	run := func(args ...string) {
		if out, err := exec.Command(ip, args...).CombinedOutput(); err != nil {
			t.Fatalf("ip %v: %v\n%s", args, err, out)
		}
	}
	run("link", "set", "lo", "up")
	for _, a := range addrs {
		run("addr", "add", a, "dev", "lo", "nodad")
		waitLocalAddr(t, netip.MustParsePrefix(a).Addr())
	}
}

// waitLocalAddr waits until a datagram sent to a reaches a socket bound to a.
// The kernel finishes configuring a new IPv6 address (clears "tentative",
// inserts its local route) from a work queue after ip(8) returns, so the
// address may not be usable at once.
func waitLocalAddr(t *testing.T, a netip.Addr) {
	t.Helper()
	ctx := testCtx(t)
	buf := make([]byte, 16)
	for ctx.Err() == nil {
		l, err := net.ListenUDP("udp6", net.UDPAddrFromAddrPort(netip.AddrPortFrom(a, 0)))
		if err != nil {
			time.Sleep(time.Millisecond)
			continue
		}
		_, err = l.WriteToUDPAddrPort([]byte("probe"), udpAddrPort(l))
		if err == nil {
			l.SetReadDeadline(time.Now().Add(50 * time.Millisecond))
			_, _, err = l.ReadFromUDPAddrPort(buf)
		}
		l.Close()
		if err == nil {
			return
		}
	}
	t.Fatalf("address %v never became usable", a)
}

// TestServerReplyFromRequestedAddressIPv6 is the multi-homed IPv6 case:
// loopback outside has only ::1, so the test gives lo two more IPv6
// addresses inside a private network namespace.
func TestServerReplyFromRequestedAddressIPv6(t *testing.T) {
	enterPrivateNetns(t, "fd00:6e65:7469:6f::1/128", "fd00:6e65:7469:6f::2/128")
	for _, tc := range []serverCase{
		{"listen-v6-wildcard", listenCase("[::]:0"), []string{"::1", "fd00:6e65:7469:6f::1", "fd00:6e65:7469:6f::2"}},
		{"adopt-dual-stack", adoptCase("udp", "[::]:0"), []string{"fd00:6e65:7469:6f::2", "127.0.0.9", "::1"}},
	} {
		// Subtests would run on other goroutines (other threads, outside
		// the namespace): run the cases inline.
		ctx := testCtx(t)
		sc := tc.open(t).Conns[0]
		port := sc.LocalAddr().Port()
		msgs := newMessages(2)
		for _, target := range tc.targets {
			dst := netip.AddrPortFrom(netip.MustParseAddr(target), port)
			network, src := "udp6", netip.IPv6Loopback()
			if dst.Addr().Is4() {
				network, src = "udp4", netip.MustParseAddr("127.0.0.1")
			}
			free := listenUDP(t, network, netip.AddrPortFrom(src, 0))
			before := time.Now()
			if _, err := free.WriteToUDPAddrPort([]byte(target), dst); err != nil {
				t.Fatalf("%s: %v", tc.name, err)
			}
			got := echoOnce(t, ctx, sc, msgs[:1])
			checkRequest(t, got[0], target, udpAddrPort(free), dst.Addr(), before, !sc.fixedLocal)
			buf := make([]byte, 100)
			n, from := readWithin(t, free, buf)
			if from != dst || string(buf[:n]) != "re:"+target {
				t.Errorf("%s: reply %q from %v, want %q from %v", tc.name, buf[:n], from, "re:"+target, dst)
			}
		}
	}
}
