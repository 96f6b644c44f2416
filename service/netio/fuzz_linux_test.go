package netio

import (
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"net/netip"
	"testing"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Real control buffers and socket addresses, captured from this package's
// sockets on Linux 6.18 (x86_64, loopback), in host byte order.
var (
	// recvmmsg on a 0.0.0.0 socket, request to 127.0.0.2:
	// SCM_TIMESTAMPING + IP_PKTINFO.
	seedRxV4Pktinfo = "40000000000000000100000025000000b15f076b00000000e97184070000000000000000000000000000000000000000000000000000000000000000000000001c000000000000000000000008000000010000007f0000027f00000200000000"
	// recvmmsg on a [::] socket, request to ::1: SCM_TIMESTAMPING + IPV6_PKTINFO.
	seedRxV6Pktinfo = "40000000000000000100000025000000b15f076b000000006c3ea40700000000000000000000000000000000000000000000000000000000000000000000000024000000000000002900000032000000000000000000000000000000000000010100000000000000"
	// recvmmsg on a dual-stack [::] socket, IPv4 request to 127.0.0.3:
	// IPV6_PKTINFO with a v4-mapped address.
	seedRxDualPktinfo = "40000000000000000100000025000000b15f076b00000000a00cbb070000000000000000000000000000000000000000000000000000000000000000000000002400000000000000290000003200000000000000000000000000ffff7f0000030100000000000000"
	// recvmsg on a connected client socket: SCM_TIMESTAMPING only.
	seedRxClient = "40000000000000000100000025000000875f076b0000000056682d0a000000000000000000000000000000000000000000000000000000000000000000000000"
	// MSG_ERRQUEUE on an IPv4 client: SCM_TIMESTAMPING + IP_RECVERR
	// (ENOMSG, SO_EE_ORIGIN_TIMESTAMPING, SCM_TSTAMP_SND, id 1).
	seedErrV4 = "40000000000000000100000025000000875f076b000000009dba2c0a0000000000000000000000000000000000000000000000000000000000000000000000003000000000000000000000000b0000002a00000004000000000000000100000000000000000000000000000000000000"
	// MSG_ERRQUEUE on an IPv6 client: SCM_TIMESTAMPING + IPV6_RECVERR, id 0.
	seedErrV6 = "40000000000000000100000025000000aa5f076b000000000934631d0000000000000000000000000000000000000000000000000000000000000000000000003c0000000000000029000000190000002a0000000400000000000000000000000000000000000000000000000000000000000000000000000000000000000000"
	// msg_name from recvmmsg: 127.0.0.1:43938 and [::1]:60957 and
	// [::ffff:127.0.0.1]:49182.
	seedNameV4     = "0200aba27f0000010000000000000000"
	seedNameV6     = "0a00ee1d000000000000000000000000000000000000000100000000"
	seedNameMapped = "0a00c01e0000000000000000000000000000ffff7f00000100000000"
)

func mustHex(tb testing.TB, s string) []byte {
	tb.Helper()
	b, err := hex.DecodeString(s)
	if err != nil {
		tb.Fatal(err)
	}
	return b
}

// The captured seeds are for 64-bit little-endian layouts.
func seedsApply() bool {
	return unix.SizeofCmsghdr == 16 && timespecLen == 16 && binary.NativeEndian.Uint16([]byte{1, 0}) == 1
}

func TestParseRealControl(t *testing.T) {
	if !seedsApply() {
		t.Skip("captured seeds are for 64-bit little-endian Linux")
	}
	ts := func(sec, nsec int64) time.Time { return time.Unix(sec, nsec) }
	rx := []struct {
		name string
		hex  string
		want rxControl
	}{
		{"v4", seedRxV4Pktinfo, rxControl{ts(0x6b075fb1, 0x078471e9), true, netip.MustParseAddr("127.0.0.2"), 1}},
		{"v6", seedRxV6Pktinfo, rxControl{ts(0x6b075fb1, 0x07a43e6c), true, netip.MustParseAddr("::1"), 1}},
		{"dual", seedRxDualPktinfo, rxControl{ts(0x6b075fb1, 0x07bb0ca0), true, netip.MustParseAddr("127.0.0.3"), 1}},
		{"client", seedRxClient, rxControl{ts(0x6b075f87, 0x0a2d6856), true, netip.Addr{}, 0}},
		{"empty", "", rxControl{}},
	}
	for _, tc := range rx {
		got := parseRxControl(mustHex(t, tc.hex))
		if !got.Time.Equal(tc.want.Time) || got.Kernel != tc.want.Kernel || got.Local != tc.want.Local || got.IfIndex != tc.want.IfIndex {
			t.Errorf("%s: parseRxControl = %+v, want %+v", tc.name, got, tc.want)
		}
	}
	errq := []struct {
		name string
		hex  string
		want txControl
	}{
		{"v4", seedErrV4, txControl{ts(0x6b075f87, 0x0a2cba9d), 1, true}},
		{"v6", seedErrV6, txControl{ts(0x6b075faa, 0x1d633409), 0, true}},
		{"rx-only", seedRxClient, txControl{ts(0x6b075f87, 0x0a2d6856), 0, false}},
	}
	for _, tc := range errq {
		got := parseErrQueueControl(mustHex(t, tc.hex))
		if got.IsTimestamp != tc.want.IsTimestamp || got.ID != tc.want.ID || (got.IsTimestamp && !got.Time.Equal(tc.want.Time)) {
			t.Errorf("%s: parseErrQueueControl = %+v, want %+v", tc.name, got, tc.want)
		}
	}
	names := []struct {
		hex  string
		want string
	}{
		{seedNameV4, "127.0.0.1:43938"},
		{seedNameV6, "[::1]:60957"},
		{seedNameMapped, "127.0.0.1:49182"},
	}
	for _, tc := range names {
		got, ok := parseSockaddr(mustHex(t, tc.hex))
		if !ok || got != netip.MustParseAddrPort(tc.want) {
			t.Errorf("parseSockaddr(%s) = %v, %v; want %s", tc.hex, got, ok, tc.want)
		}
	}
}

// walkCmsgs lists what nextCmsg finds, for comparison with x/sys/unix.
func walkCmsgs(b []byte) []unix.SocketControlMessage {
	var out []unix.SocketControlMessage
	for {
		level, typ, data, rest, ok := nextCmsg(b)
		if !ok {
			return out
		}
		out = append(out, unix.SocketControlMessage{Header: unix.Cmsghdr{Level: level, Type: typ}, Data: data})
		b = rest
	}
}

func addControlSeeds(f *testing.F) {
	if seedsApply() {
		for _, s := range []string{seedRxV4Pktinfo, seedRxV6Pktinfo, seedRxDualPktinfo, seedRxClient, seedErrV4, seedErrV6} {
			f.Add(mustHex(f, s))
		}
	}
	// Buffers our own writer produces, which are valid on any layout.
	for _, local := range []string{"127.0.0.2", "::1", "fe80::1%7", "::ffff:10.0.0.1"} {
		b := make([]byte, pktinfoSpace)
		n := putPktinfo(b, unix.AF_INET6, netip.MustParseAddr(local), 3)
		f.Add(b[:n])
	}
	f.Add([]byte{})
}

func FuzzParseRxControl(f *testing.F) {
	addControlSeeds(f)
	f.Fuzz(func(t *testing.T, b []byte) {
		rc := parseRxControl(b)
		if rc.Kernel && (rc.Time.IsZero() || rc.Time.Nanosecond() < 0) {
			t.Fatalf("kernel time %v", rc.Time)
		}
		if !rc.Kernel && !rc.Time.IsZero() {
			t.Fatalf("time %v without Kernel", rc.Time)
		}
		if rc.Local.Is4In6() {
			t.Fatalf("Local %v left v4-mapped", rc.Local)
		}
		// Differential: where x/sys/unix parses the buffer cleanly, the
		// walker must see exactly the same messages.
		if want, err := unix.ParseSocketControlMessage(b); err == nil {
			got := walkCmsgs(b)
			if len(got) != len(want) {
				t.Fatalf("walker found %d messages, x/sys/unix %d", len(got), len(want))
			}
			for i := range got {
				if got[i].Header.Level != want[i].Header.Level || got[i].Header.Type != want[i].Header.Type ||
					!bytes.Equal(got[i].Data, want[i].Data) {
					t.Fatalf("message %d differs: %+v vs %+v", i, got[i], want[i])
				}
			}
		}
	})
}

func FuzzParseErrQueueControl(f *testing.F) {
	addControlSeeds(f)
	f.Fuzz(func(t *testing.T, b []byte) {
		tc := parseErrQueueControl(b)
		if tc.IsTimestamp && tc.Time.IsZero() {
			t.Fatalf("timestamp report without a time: %+v", tc)
		}
	})
}

func FuzzSockaddr(f *testing.F) {
	if seedsApply() {
		for _, s := range []string{seedNameV4, seedNameV6, seedNameMapped} {
			f.Add(mustHex(f, s))
		}
	}
	for _, ap := range []string{"127.0.0.1:123", "[::1]:123", "[fe80::1%2]:4460", "[2001:db8::1]:65535"} {
		var sa unix.RawSockaddrInet6
		fam := unix.AF_INET6
		if netip.MustParseAddrPort(ap).Addr().Is4() {
			fam = unix.AF_INET
		}
		n := putSockaddr(&sa, fam, netip.MustParseAddrPort(ap), 0)
		f.Add(append([]byte(nil), unsafe.Slice((*byte)(unsafe.Pointer(&sa)), n)...))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		ap, ok := parseSockaddr(b)
		if !ok {
			return
		}
		if ap.Addr().Is4In6() {
			t.Fatalf("%v left v4-mapped", ap)
		}
		// Round trip through the writer, for both socket families that
		// can carry the address.
		for _, fam := range []int{unix.AF_INET, unix.AF_INET6} {
			var sa unix.RawSockaddrInet6
			n := putSockaddr(&sa, fam, ap, 0)
			if n == 0 {
				if fam == unix.AF_INET && !ap.Addr().Is4() {
					continue
				}
				t.Fatalf("putSockaddr(%d, %v) failed", fam, ap)
			}
			back, ok := parseSockaddr(unsafe.Slice((*byte)(unsafe.Pointer(&sa)), n))
			if !ok || back != ap {
				t.Fatalf("round trip %v via family %d gave %v, %v", ap, fam, back, ok)
			}
		}
	})
}

// TestParseLegacyTimestamp covers the SO_TIMESTAMPNS fallback, which this
// kernel never needs (SO_TIMESTAMPING works), with a buffer built here.
func TestParseLegacyTimestamp(t *testing.T) {
	want := time.Unix(1700000000, 123456789)
	b := make([]byte, 64)
	d := putCmsgHeader(b, unix.SOL_SOCKET, unix.SCM_TIMESTAMPNS, timespecLen)
	ts := unix.NsecToTimespec(want.UnixNano())
	copy(d, unsafe.Slice((*byte)(unsafe.Pointer(&ts)), timespecLen))
	n := cmsgAlign(cmsgHdrLen + timespecLen)
	rc := parseRxControl(b[:n])
	if !rc.Kernel || !rc.Time.Equal(want) {
		t.Fatalf("parseRxControl = %+v, want kernel time %v", rc, want)
	}
	// A zero timespec is "no timestamp".
	clear(d)
	if rc := parseRxControl(b[:n]); rc.Kernel {
		t.Fatalf("zero timespec parsed as a kernel time: %+v", rc)
	}
}
