package selection

import (
	"testing"
	"time"
)

func TestTrust(t *testing.T) {
	ms := time.Millisecond
	// Two servers agree with each other, a trusted reference clock 50 ms
	// away disagrees with both.
	cands := []Candidate{
		{ID: 1, Offset: 0, RootDistance: 5 * ms, Stratum: 2},
		{ID: 2, Offset: 1 * ms, RootDistance: 5 * ms, Stratum: 2},
		{ID: 3, Offset: 50 * ms, RootDistance: 1 * ms, Stratum: 0},
	}
	var r Result
	Select(cands, Params{}, &r)
	if r.States[2] != StateFalseticker || r.SystemPeer == 2 {
		t.Fatalf("untrusted: %v peer %d", r.States, r.SystemPeer)
	}
	cands[2].Trust = true
	Select(cands, Params{}, &r)
	if r.States[0] != StateFalseticker || r.States[1] != StateFalseticker || r.SystemPeer != 2 || !r.Synchronized {
		t.Fatalf("trusted: %v peer %d", r.States, r.SystemPeer)
	}
	// Two trusted sources that disagree: the majority among them rules as usual
	// (with two, neither wins, and nothing is selected).
	cands[0].Trust = true
	Select(cands, Params{}, &r)
	if r.Synchronized {
		t.Fatalf("two disagreeing trusted sources: %v", r.States)
	}
}
