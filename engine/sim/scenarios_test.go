package sim

import (
	"testing"
	"time"
)

// TestScenarios runs every acceptance scenario and prints the table kept in
// docs/accuracy.md (go test ./engine/sim -run Scenarios -v).
func TestScenarios(t *testing.T) {
	var rows []string
	for _, c := range Cases() {
		t.Run(c.Name, func(t *testing.T) {
			res, errs := c.Judge()
			rows = append(rows, res.Row())
			for _, err := range errs {
				t.Error(err)
			}
		})
	}
	t.Log("\n" + TableHeader)
	for _, r := range rows {
		t.Log(r)
	}
}

// TestAccuracyTargetSetsPolling: a user who needs 10 ms sends far fewer
// packets than one who needs 10 µs, and each gets what they asked for.
func TestAccuracyTargetSetsPolling(t *testing.T) {
	var tight, loose *Case
	for _, c := range Cases() {
		switch c.Name {
		case "(a) LAN, 4 servers, +30 ppm":
			tight = c
		case "(a') LAN, 10 ms accuracy target":
			loose = c
		}
	}
	if tight == nil || loose == nil {
		t.Fatal("scenarios (a) and (a') not found")
	}
	rt, _ := tight.Judge()
	rl, _ := loose.Judge()
	if !(rl.PacketsPerHour*4 < rt.PacketsPerHour) {
		t.Errorf("10 ms target sent %.0f packets/h, 10 µs target %.0f: want at least 4 times fewer", rl.PacketsPerHour, rt.PacketsPerHour)
	}
	if rt.RMS > 10*time.Microsecond || rl.RMS > 10*time.Millisecond {
		t.Errorf("targets not met: 10 µs target gave %v RMS, 10 ms target %v", rt.RMS, rl.RMS)
	}
}
