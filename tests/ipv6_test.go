package tests

import (
	"crypto/md5"
	"encoding/binary"
	"fmt"
	"net/netip"
	"testing"
	"time"

	"gnomon.dev/gnomon/engine/ntp"
	"gnomon.dev/gnomon/engine/sample"
	"gnomon.dev/gnomon/tests/peers"
)

// gnomond over IPv6 only: its source is a chronyd serving on ::1 alone,
// its server listens on ::1 and answers an IPv6 client.
func TestIPv6SyncAndServe(t *testing.T) {
	peers.NeedRoot(t, rootFor)
	t.Parallel()
	dir := peers.TempDir(t, 0o777)
	loop6 := netip.IPv6Loopback()
	up := peers.StartChronydAt(t, dir, loop6, peers.FreePort(t))
	srv := netip.AddrPortFrom(loop6, uint16(peers.FreePort(t)))
	source := fmt.Sprintf("[[source]]\nmode = \"server\"\naddress = %q\npoll-interval-limits = { min = 0, max = 2 }\n", up.AddrPort())
	g := startGnomond(t, dir, observeConfig(source, serverTable(srv.String(), "rate-limit = { interval = 0 }")), gnomondOpts{})

	peer := up.AddrPort().String() // [::1]:PORT
	st := waitSynced(t, g, peer, 10*time.Second)
	if st.stratum != 2 || abs(st.offset) >= maxOffset {
		t.Errorf("STATUS stratum %d offset %v, want 2 and |offset| < %v", st.stratum, st.offset, maxOffset)
	}

	c := peers.NewNTPClient(t, "::1")
	var h ntp.Header
	var err error
	for range 3 { // UDP: allow a lost datagram, never a wrong answer
		if h, _, err = c.Query(srv, 2*time.Second); err == nil {
			break
		}
	}
	if err != nil {
		t.Fatalf("gnomond's server on %v: %v", srv, err)
	}
	if h.Stratum != 2 || h.Leap == sample.LeapUnsync {
		t.Errorf("reply stratum %d leap %d, want stratum 2 (chronyd's 1 + 1) and a synchronized leap", h.Stratum, h.Leap)
	}
	// RFC 5905: an IPv6 upstream is named by the first four octets of
	// the MD5 of its address.
	a16 := loop6.As16()
	sum := md5.Sum(a16[:])
	if want := binary.BigEndian.Uint32(sum[:4]); h.ReferenceID != want {
		t.Errorf("reply reference ID %#x, want %#x (MD5 of ::1)", h.ReferenceID, want)
	}
	if off, delay, _, err := c.MeasureBest(srv, 4, 2*time.Second); err != nil {
		t.Errorf("measuring gnomond's served time over IPv6: %v", err)
	} else if servedOff(off, delay) {
		t.Errorf("gnomond serves time %v off this machine's clock (delay %v), want |offset| < %v + delay/2", off, delay, maxOffset)
	}
	t.Logf("synchronized to %s over IPv6; its server on %v answers stratum %d", st.peer, srv, h.Stratum)
}
