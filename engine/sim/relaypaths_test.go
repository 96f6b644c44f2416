package sim

import (
	"os"
	"slices"
	"testing"
	"time"
)

func measuredLAN(t *testing.T) [][2]time.Duration {
	t.Helper()
	f, err := os.Open("testdata/relay-lan-paths.txt")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	p, err := LoadPaths(f)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// rtMeasured is setting s with every server's path replaced by the
// measured relay delays.
func rtMeasured(s rtSetting, paths [][2]time.Duration) rtSetting {
	s.path.Measured = paths
	return s
}

func TestRelayPathsPrint(t *testing.T) {
	if os.Getenv("SIM_EXPLORE") == "" {
		t.Skip()
	}
	paths := measuredLAN(t)
	for _, s := range rtSettings() {
		if !s.interleaved || s.defaultPoll || s.path.RoundTrip != rtLAN.RoundTrip {
			continue
		}
		for _, m := range []bool{false, true} {
			ss := s
			if m {
				ss = rtMeasured(s, paths)
			}
			for _, d := range []time.Duration{8 * time.Minute, 15 * time.Minute} {
				var rms, mean []float64
				for seed := range 10 {
					sc := ss.scenario(uint64(100+seed), d)
					res, err := RunScenario(sc)
					if err != nil {
						t.Fatal(err)
					}
					rms, mean = append(rms, res.RMS.Seconds()*1e6), append(mean, res.Mean.Seconds()*1e6)
				}
				slices.Sort(rms)
				slices.Sort(mean)
				t.Logf("%-18s measured=%v %v: RMS median %.1f (%.1f … %.1f) mean median %+.1f", s.name, m, d, rms[5], rms[0], rms[9], mean[5])
			}
		}
	}
}
