package tests

import (
	"math"
	"net/netip"
	"testing"
	"time"

	"gnomon.dev/gnomon/engine/ntp"
	"gnomon.dev/gnomon/engine/sample"
	"gnomon.dev/gnomon/tests/peers"
)

// gnomond (observe) follows a server whose clock is 4.5 minutes before the
// leap second at the end of 2026 and announces it; its own server smears
// the leap over 600 s (from 5 minutes before the leap). A client measuring
// both sees gnomond's served time fall behind the upstream's along the
// smear curve, and never sees the leap indicator from gnomond.
func TestLeapSmearServed(t *testing.T) {
	peers.NeedRoot(t, rootFor)
	t.Parallel()
	dir := peers.TempDir(t, 0o777)
	const window = 600 * time.Second
	leapAt := time.Date(2026, 12, 31, 24, 0, 0, 0, time.UTC)
	up := peers.Loop4(peers.FreePort(t))
	shift := time.Until(leapAt.Add(-window/2 + 30*time.Second))
	peers.StartLiarLeap(t, up, shift, sample.LeapInsert)
	srvPort := peers.FreePort(t)
	cfg := "[clock]\nmode = \"observe\"\ndrift-file = \"\"\npanic-threshold = 0\nstep-limit = -1\n\n" +
		sourceTable(int(up.Port())) + "\n" +
		serverTable(peers.Loop4(srvPort).String(), "leap-smear = 600", "rate-limit = { interval = 0 }")
	g := startGnomond(t, dir, cfg, gnomondOpts{})
	waitSynced(t, g, up.String(), 20*time.Second)

	c := peers.NewNTPClient(t, "127.0.0.1")
	measured := 0
	for i := 0; i < 40 && measured < 5; i++ {
		time.Sleep(500 * time.Millisecond)
		hu, ou, err1 := query(c, up)
		hg, og, err2 := query(c, peers.Loop4(srvPort))
		if err1 != nil || err2 != nil {
			continue
		}
		if hu.Leap != sample.LeapInsert {
			t.Fatalf("upstream leap %v", hu.Leap)
		}
		if hg.Leap != sample.LeapNone {
			t.Fatalf("gnomond served leap indicator %v during the smear", hg.Leap)
		}
		// Offsets against this machine's clock; their difference is
		// gnomond's served time minus the upstream's.
		served := og - ou
		upTime := hu.TransmitTime.Time(leapAt)
		frac := float64(upTime.Sub(leapAt.Add(-window/2))) / float64(window)
		want := -time.Duration(frac * float64(time.Second))
		t.Logf("upstream %s: served - upstream = %v, smear curve %v", upTime.Format("15:04:05.000"), served, want)
		if math.Abs(float64(served-want)) > float64(2*time.Millisecond) {
			t.Errorf("served - upstream = %v, want %v (smear curve) within 2 ms", served, want)
		}
		measured++
	}
	if measured < 5 {
		t.Fatalf("only %d measurements", measured)
	}
}

// query measures a server's offset from this machine's clock.
func query(c *peers.NTPClient, to netip.AddrPort) (ntp.Header, time.Duration, error) {
	t1 := time.Now()
	h, _, err := c.Query(to, time.Second)
	t4 := time.Now()
	if err != nil {
		return h, 0, err
	}
	t2, t3 := h.ReceiveTime.Time(t1), h.TransmitTime.Time(t1)
	return h, (t2.Sub(t1) + t3.Sub(t4)) / 2, nil
}
