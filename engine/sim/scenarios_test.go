package sim

import (
	"flag"
	"os"
	"strconv"
	"sync"
	"testing"
	"time"

	"gnomon.dev/gnomon/engine/system"
)

var seedsFlag = flag.Int("seeds", 0, "seeds per scenario (default $GNOMON_SIM_SEEDS, else 20)")

// seeds is how many seeds each scenario runs over: -seeds, else
// GNOMON_SIM_SEEDS, else TableSeeds (the run is shared with
// TestAccuracyTable, so the default costs one pass).
func seeds(t *testing.T) int {
	if *seedsFlag > 0 {
		return *seedsFlag
	}
	if v := os.Getenv("GNOMON_SIM_SEEDS"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n <= 0 {
			t.Fatalf("GNOMON_SIM_SEEDS=%q: want a positive number", v)
		}
		return n
	}
	return TableSeeds
}

var (
	allMu   sync.Mutex
	allRuns = map[int]struct {
		sums []Summary
		errs [][]error
	}{}
)

// runAll is RunAll, once per seed count per test binary.
func runAll(n int) ([]Summary, [][]error) {
	allMu.Lock()
	defer allMu.Unlock()
	r, ok := allRuns[n]
	if !ok {
		r.sums, r.errs = RunAll(n)
		allRuns[n] = r
	}
	return r.sums, r.errs
}

// TestScenarios runs every acceptance scenario over several seeds and
// prints the tables kept in docs/accuracy.md (go test ./engine/sim -run
// Scenarios -v -seeds 20).
func TestScenarios(t *testing.T) {
	sums, errs := runAll(seeds(t))
	for i, s := range sums {
		t.Run(s.Name, func(t *testing.T) {
			for _, err := range errs[i] {
				t.Error(err)
			}
		})
	}
	t.Log("\n" + Tables(sums))
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

// TestSystemPeerIsSticky: among equally good sources the system peer does
// not take turns (chrony's reselectdist): the stratum, reference ID and
// status line stay put.
func TestSystemPeerIsSticky(t *testing.T) {
	sc := Scenario{Name: "sticky", Setup: Setup{Clock: osc, Servers: servers(lan), Engine: lanEngine,
		Source: lanSource, Duration: time.Hour, Seed: 11}}
	var last system.ID
	changes := 0
	sc.Watch = func(r *Run, sn *system.Snapshot) {
		if sn.SystemPeer != 0 && sn.SystemPeer != last {
			if last != 0 {
				changes++
			}
			last = sn.SystemPeer
		}
	}
	if _, err := RunScenario(sc); err != nil {
		t.Fatal(err)
	}
	if changes > 3 {
		t.Errorf("the system peer changed %d times in an hour among four equal sources, want at most 3", changes)
	}
	t.Logf("system peer changes: %d", changes)
}
