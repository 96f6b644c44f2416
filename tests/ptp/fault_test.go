package ptp

import (
	"testing"
	"time"

	"gnomon.dev/gnomon/tests/peers"
)

// TestLinkDownAndBack: gnomond's link goes down for 8 s (past the
// announce receipt timeout) and comes back; gnomond leaves SLAVE and
// returns to it with the same grandmaster. In make test-ptp only.
func TestLinkDownAndBack(t *testing.T) {
	if !full() {
		t.Skip("GNOMON_PTP_FULL=1 (make test-ptp)")
	}
	t.Parallel()
	tag, dir := setup(t)
	m, g := netns(t, tag, "m"), netns(t, tag, "g")
	link(t, tag, m, "m0", "10.79.0.1/24", g, "g0", "10.79.0.2/24")
	gm := identityOf(t, m, "m0")
	peers.Start(t, dir, "ptp4l-master", nil, safeIn(t, m, append([]string{"ptp4l", "-i", "m0", "--masterOnly", "1",
		"--uds_address", dir + "/m.sock", "--logAnnounceInterval", "0"}, ptp4lFlags("udp4", "E2E")...)...)...)
	gn := startGnomond(t, dir, g, "gnomond", gnomondHead+"[[source]]\nmode = \"ptp\"\ninterface = \"g0\"\ntimestamping = \"software\"\n")
	slave := func() bool {
		ms := gnomondMeasurements(t, gn)
		return len(ms) > 0 && ms[len(ms)-1].State == "SLAVE" && ms[len(ms)-1].Grandmaster == gm
	}
	if !waitFor(50*time.Second, slave) {
		t.Fatal("gnomond did not reach SLAVE")
	}
	ip(t, "-n", g, "link", "set", "g0", "down")
	time.Sleep(8 * time.Second)
	left := logHas(t, gn, `"state":"LISTENING"`) || logHas(t, gn, `"state":"FAULTY"`)
	ip(t, "-n", g, "link", "set", "g0", "up")
	n := len(gnomondMeasurements(t, gn))
	if !waitFor(60*time.Second, func() bool { return len(gnomondMeasurements(t, gn)) > n+3 && slave() }) {
		t.Fatalf("gnomond did not return to SLAVE after the link came back")
	}
	if !left {
		t.Errorf("gnomond did not leave SLAVE while its link was down")
	}
}
