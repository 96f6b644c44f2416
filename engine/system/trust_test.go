package system

import (
	"testing"
	"time"

	"gnomon.dev/gnomon/engine/clock"
	"gnomon.dev/gnomon/engine/ntp"
)

// TestTrustNTP: trust on an NTP source means what chrony's trust means. A
// trusted server one second off, against three untrusted ones that agree
// with each other: without trust the three outvote it (a falseticker, as
// in TestSnapshotSelection); with it, it cannot be voted out, the three
// that disagree with it are the falsetickers, and an untrusted server that
// agrees with it stays a truechimer.
func TestTrustNTP(t *testing.T) {
	for _, trusted := range []bool{false, true} {
		h := newHarness(t, clock.SimConfig{}, Config{})
		nc := ntp.SourceConfig{MinPoll: 6, MaxPoll: 6}
		offsets := map[string]time.Duration{"a": 0, "b": 0, "c": 0, "d": time.Second, "e": time.Second + 300*time.Microsecond}
		for i, name := range []string{"a", "b", "c", "d", "e"} {
			srv := &server{Offset: offsets[name], Stratum: 1, RefID: 0x47505300, Delay: 2 * time.Millisecond}
			id := h.sys.AddSource(SourceConfig{Name: name, Address: name + ":123", Kind: "server", RefID: uint32(i + 1), NTP: nc,
				Trust: trusted && name == "d"}, h.instant())
			h.servers[id] = srv
		}
		h.poll(10 * time.Second)
		sn := h.snapshot()
		if !sn.Synchronized {
			t.Fatalf("trust %v: not synchronized: %+v", trusted, sn)
		}
		sel := map[string]string{}
		for _, s := range sn.Sources {
			sel[s.Name] = s.Selection
		}
		truth, liars := []string{"a", "b", "c"}, []string{"d", "e"}
		if trusted {
			truth, liars = liars, truth
		}
		for _, n := range liars {
			if sel[n] != "falseticker" {
				t.Errorf("trust %v: %s is %q, want falseticker (%v)", trusted, n, sel[n], sel)
			}
		}
		for _, n := range truth {
			if sel[n] != "selected" && sel[n] != "combined" {
				t.Errorf("trust %v: %s is %q, want selected or combined (%v)", trusted, n, sel[n], sel)
			}
		}
		if trusted && sn.PeerName != "d" && sn.PeerName != "e" {
			t.Errorf("trusted: the system peer is %q, want the trusted d or e, which agrees with it", sn.PeerName)
		}
	}
}
