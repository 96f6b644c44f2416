package ptp

import (
	"strings"
	"testing"
	"time"

	"gnomon.dev/gnomon/tests/peers"
)

// TestBMCAWithPTP4l: two gnomonds and a ptp4l on one bridged segment, with
// priority1 100 (gnomond A), 110 (ptp4l) and 120 (gnomond B), elect A,
// as ptp4l itself does; when A dies, ptp4l takes over and B follows it.
func TestBMCAWithPTP4l(t *testing.T) {
	t.Parallel()
	tag, dir := setup(t)
	h := netns(t, tag, "h")
	ip(t, "-n", h, "link", "add", "br0", "type", "bridge", "mcast_snooping", "0")
	ip(t, "-n", h, "link", "set", "br0", "up")
	members := map[string]string{}
	for i, role := range []string{"a", "b", "p"} {
		ns := netns(t, tag, role)
		members[role] = ns
		link(t, tag, h, "h"+role, "10.77.9."+string(rune('1'+i))+"/24", ns, "e0", "10.77.0."+string(rune('1'+i))+"/24")
		ip(t, "-n", h, "link", "set", "h"+role, "master", "br0")
	}
	idA, idB, idP := identityOf(t, members["a"], "e0"), identityOf(t, members["b"], "e0"), identityOf(t, members["p"], "e0")
	port := func(prio string) string {
		return gnomondHead + "[[ptp-port]]\ninterface = \"e0\"\ntimestamping = \"software\"\nannounce-interval = 0\npriority1 = " + prio + "\n"
	}
	a := startGnomond(t, dir, members["a"], "gnomond-a", port("100"))
	b := startGnomond(t, dir, members["b"], "gnomond-b", port("120"))
	p4 := peers.Start(t, dir, "ptp4l", nil, safeIn(t, members["p"], append([]string{"ptp4l", "-i", "e0",
		"--priority1", "110", "--logAnnounceInterval", "0", "--uds_address", dir + "/p.sock"}, ptp4lFlags("udp4", "E2E")...)...)...)

	gmOf := func(p *peers.Proc) string {
		ms := gnomondMeasurements(t, p)
		if len(ms) == 0 {
			return ""
		}
		return ms[len(ms)-1].Grandmaster
	}
	if !waitFor(40*time.Second, func() bool {
		return gmOf(b) == idA && logHas(t, p4, "selected best master clock "+idA) && logHas(t, a, `"state":"MASTER"`)
	}) {
		t.Fatalf("no election of A (%s): B follows %q, ptp4l selected A: %v", idA, gmOf(b), logHas(t, p4, "selected best master clock "+idA))
	}
	t.Logf("elected: gnomond A %s (priority1 100); ptp4l %s and gnomond B %s follow it", idA, idP, idB)

	roles := strings.Count(p4.Tail(1<<20), "assuming the grand master role")
	a.Stop()
	if !waitFor(40*time.Second, func() bool {
		return gmOf(b) == idP && strings.Count(p4.Tail(1<<20), "assuming the grand master role") > roles
	}) {
		t.Fatalf("after A died: B follows %q, want ptp4l's %s", gmOf(b), idP)
	}
	ms := gnomondMeasurements(t, b)
	last := ms[len(ms)-1]
	t.Logf("failover: ptp4l %s took the grand master role, gnomond B is %s to it (offset %d ns)", idP, last.State, last.OffsetNS)
	if logHas(t, p4, "selected best master clock "+idB) {
		t.Errorf("ptp4l selected B (priority1 120) at some point")
	}
}
