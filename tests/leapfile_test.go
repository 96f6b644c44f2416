package tests

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"gnomon.dev/gnomon/engine/sample"
	"gnomon.dev/gnomon/tests/peers"
)

// leapFileText is a leap-seconds file that expires in 2030 and, with
// leap2026, has a leap second at the end of 2026.
func leapFileText(leap2026 bool) string {
	s := "#@\t4102444800\n3644697600\t36\t# 1 Jul 2015\n3692217600\t37\t# 1 Jan 2017\n"
	if leap2026 {
		// 1 Jan 2027 00:00 UTC in NTP seconds.
		s += fmt.Sprintf("%d\t38\t# 1 Jan 2027\n", time.Date(2027, 1, 1, 0, 0, 0, 0, time.UTC).Unix()+2208988800)
	}
	return s
}

// servedLeap runs gnomond (observe) behind an upstream whose clock is at
// noon on 31 December 2026 and announces upLeap, with the given leap file
// ("" for none), and returns the leap indicator gnomond's server answers
// with once synchronized.
func servedLeap(t *testing.T, dir string, upLeap sample.Leap, leapFile string) sample.Leap {
	t.Helper()
	up := peers.Loop4(peers.FreePort(t))
	shift := time.Until(time.Date(2026, 12, 31, 12, 0, 0, 0, time.UTC))
	peers.StartLiarLeap(t, up, shift, upLeap)
	srvPort := peers.FreePort(t)
	sync := ""
	if leapFile != "" {
		sync = "[synchronization]\nleap-seconds-file = \"" + leapFile + "\"\n"
	}
	cfg := "[clock]\nmode = \"observe\"\ndrift-file = \"\"\npanic-threshold = 0\nstep-limit = -1\n\n" + sync +
		sourceTable(int(up.Port())) + "\n" + serverTable(peers.Loop4(srvPort).String(), "rate-limit = { interval = 0 }")
	g := startGnomond(t, dir, cfg, gnomondOpts{})
	waitSynced(t, g, up.String(), 20*time.Second)
	c := peers.NewNTPClient(t, "127.0.0.1")
	// The system's leap status follows the selected source's samples:
	// ask until two answers agree.
	var last sample.Leap = 9
	for range 20 {
		h, _, err := query(c, peers.Loop4(srvPort))
		if err == nil {
			if h.Leap == last {
				g.Stop()
				return h.Leap
			}
			last = h.Leap
		}
		time.Sleep(500 * time.Millisecond)
	}
	t.Fatalf("no stable answer from gnomond")
	return 0
}

// A single source announcing a leap that the leap-seconds file denies is
// ignored (without the file, gnomond passes the announcement on); a leap
// the file has is served even when the source does not announce it.
func TestLeapSecondsFile(t *testing.T) {
	peers.NeedRoot(t, rootFor)
	t.Parallel()
	dir := peers.TempDir(t, 0o777)
	noLeap := filepath.Join(dir, "leap-seconds-none.list")
	withLeap := filepath.Join(dir, "leap-seconds-2026.list")
	if err := os.WriteFile(noLeap, []byte(leapFileText(false)), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(withLeap, []byte(leapFileText(true)), 0o644); err != nil {
		t.Fatal(err)
	}
	if got := servedLeap(t, dir, sample.LeapInsert, ""); got != sample.LeapInsert {
		t.Errorf("without a leap file: gnomond served leap %v, want the source's insert", got)
	}
	if got := servedLeap(t, dir, sample.LeapInsert, noLeap); got != sample.LeapNone {
		t.Errorf("the file denies the leap: gnomond served leap %v, want none", got)
	}
	if got := servedLeap(t, dir, sample.LeapNone, withLeap); got != sample.LeapInsert {
		t.Errorf("the file has the leap: gnomond served leap %v, want insert", got)
	}
}
