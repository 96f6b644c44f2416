package peers

import (
	"net/netip"
	"testing"
	"time"

	"gnomon.dev/gnomon/engine/sample"
)

func TestStartLiar(t *testing.T) {
	for _, tc := range []struct {
		ip    string
		shift time.Duration
	}{
		{"127.0.0.1", time.Second},
		{"::1", -2 * time.Second},
	} {
		t.Run(tc.ip, func(t *testing.T) {
			at := netip.AddrPortFrom(netip.MustParseAddr(tc.ip), uint16(FreePort(t)))
			StartLiar(t, at, tc.shift)
			c := NewNTPClient(t, tc.ip)
			off, delay, h, err := c.Measure(at, 2*time.Second)
			if err != nil {
				t.Fatal(err)
			}
			if d := off - tc.shift; d < -100*time.Millisecond || d > 100*time.Millisecond {
				t.Errorf("offset %v (delay %v), want about %v", off, delay, tc.shift)
			}
			if h.Stratum != 1 || h.Leap != sample.LeapNone || h.ReferenceID != LiarRefID {
				t.Errorf("reply stratum %d leap %d refid %#x, want a synchronized stratum-1 LIAR", h.Stratum, h.Leap, h.ReferenceID)
			}
			off8, delay8, _, err := c.MeasureBest(at, 8, 2*time.Second)
			if err != nil {
				t.Fatal(err)
			}
			if d := off8 - tc.shift; d < -100*time.Millisecond || d > 100*time.Millisecond {
				t.Errorf("MeasureBest: offset %v (delay %v), want about %v", off8, delay8, tc.shift)
			}
		})
	}
}
