package sim

import (
	"fmt"
	"testing"
	"time"

	"gnomon.dev/gnomon/engine/clock"
	"gnomon.dev/gnomon/engine/ptp"
)

// TestPTPScenarios runs the bounded PTP scenarios and prints the table in
// docs/accuracy.md (go test ./engine/sim -run PTPScenarios -v).
func TestPTPScenarios(t *testing.T) {
	rows := []string{"| scenario | RMS error | max error | SLAVE after | steps | path delay | residual freq (ppb) |", "|---|---|---|---|---|---|---|"}
	for _, c := range PTPCases() {
		res, err := c.Run(1)
		if err != nil {
			t.Fatal(err)
		}
		rows = append(rows, fmt.Sprintf("| %s | %s | %s | %v | %d | %s | %.1f |", res.Name, fmtDur(res.RMS), fmtDur(res.Max),
			res.ToSlave, res.Steps, fmtDur(res.PathDelay), res.FreqErrPPB))
		if res.Final != ptp.StateSlave {
			t.Errorf("%s: slave ended in %s", c.Name, res.Final)
		}
		if res.RMS > c.RMSBound || res.Max > c.MaxBound {
			t.Errorf("%s: RMS %v max %v, bounds %v and %v", c.Name, res.RMS, res.Max, c.RMSBound, c.MaxBound)
		}
		if res.Steps != 1 {
			t.Errorf("%s: %d steps, want exactly the first (3 ms > first_step_threshold)", c.Name, res.Steps)
		}
	}
	for _, r := range rows {
		t.Log(r)
	}
}

// TestPTPFailover: three clocks elect the best as grandmaster; when it
// dies the next best takes over and the third follows it.
func TestPTPFailover(t *testing.T) {
	id := func(n byte) ptp.ClockIdentity { return ptp.ClockIdentity{2, 0, 0, 0xff, 0xfe, 0, 0, n} }
	nodes := []PTPNode{
		{Config: ptp.Config{Identity: id(3), Priority1: 100}, Down: []Window{{From: 60 * time.Second, Until: time.Hour}}},
		{Config: ptp.Config{Identity: id(2), Priority1: 110}, Clock: clock.SimConfig{Offset: time.Millisecond, FreqPPM: -10}},
		{Config: ptp.Config{Identity: id(1), Priority1: 128}, Clock: clock.SimConfig{Offset: -time.Millisecond, FreqPPM: 10}},
	}
	for i := range nodes {
		nodes[i].Clock.Start = ptpStart
	}
	var at50, at120 [3]ptp.PortState
	var gm50, gm120 ptp.ClockIdentity
	r, err := NewPTP(PTPSetup{Nodes: nodes, Link: PTPLink{Delay: time.Microsecond, Jitter: 50}, Seed: 3, Duration: 150 * time.Second,
		Observe: func(r *PTPRun) {
			switch r.Elapsed() {
			case 50 * time.Second:
				for i, p := range r.Ports {
					at50[i] = p.State()
				}
				gm50 = r.Ports[2].Status().Parent.GMIdentity
			case 140 * time.Second:
				for i, p := range r.Ports {
					at120[i] = p.State()
				}
				gm120 = r.Ports[2].Status().Parent.GMIdentity
			}
		}})
	if err != nil {
		t.Fatal(err)
	}
	r.Run()
	if at50 != [3]ptp.PortState{ptp.StateMaster, ptp.StateSlave, ptp.StateSlave} || gm50 != id(3) {
		t.Errorf("before the failure: states %v, grandmaster %s", at50, gm50)
	}
	if at120[1] != ptp.StateMaster || at120[2] != ptp.StateSlave || gm120 != id(2) {
		t.Errorf("after the failure: states %v, grandmaster %s", at120, gm120)
	}
}
