package peers

import (
	"errors"
	"net"
	"net/netip"
	"testing"
	"time"

	"gnomon.dev/gnomon/engine/ntp"
	"gnomon.dev/gnomon/engine/sample"
)

// LiarRefID is the reference ID a Liar puts in its replies ("LIAR").
const LiarRefID = 0x4c494152

// StartLiar serves NTP on at (a loopback address and port) from a server
// written with engine/ntp that claims to be a synchronized stratum-1
// server but whose clock is shift ahead of this machine's. It stops when
// the test ends.
func StartLiar(t testing.TB, at netip.AddrPort, shift time.Duration) {
	t.Helper()
	StartLiarLeap(t, at, shift, sample.LeapNone)
}

// StartLiarLeap is StartLiar announcing leap (a leap second at the end of
// the liar's day).
func StartLiarLeap(t testing.TB, at netip.AddrPort, shift time.Duration, leap sample.Leap) {
	t.Helper()
	conn, err := net.ListenUDP("udp", net.UDPAddrFromAddrPort(at))
	if err != nil {
		t.Fatalf("liar on %v: %v", at, err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		buf := make([]byte, 2048)
		out := make([]byte, ntp.HeaderLen)
		for {
			n, from, err := conn.ReadFromUDPAddrPort(buf)
			if err != nil {
				if errors.Is(err, net.ErrClosed) {
					return
				}
				continue
			}
			rx := time.Now().Add(shift)
			var p ntp.Packet
			if ntp.Parse(buf[:n], &p) != nil {
				continue
			}
			st := ntp.ServerState{
				Leap:           leap,
				Stratum:        1,
				Precision:      -20,
				RootDispersion: 100 * time.Microsecond,
				ReferenceID:    LiarRefID,
				ReferenceTime:  rx.Add(-time.Second),
			}
			var h ntp.Header
			if !ntp.Respond(&p.Header, rx, time.Now().Add(shift), &st, &h) {
				continue
			}
			if _, err := h.MarshalTo(out); err == nil {
				conn.WriteToUDPAddrPort(out, from)
			}
		}
	}()
	t.Cleanup(func() {
		conn.Close()
		<-done
	})
}
