package system

import (
	"math/rand/v2"
	"testing"
	"time"

	"gnomon.dev/gnomon/engine/clock"
	"gnomon.dev/gnomon/engine/ntp"
)

func TestSetLimits(t *testing.T) {
	clk := clock.NewSim(clock.SimConfig{Start: start})
	sys, err := New(Config{Random: rand.New(rand.NewPCG(1, 1)), MinSources: 3}, clk)
	if err != nil {
		t.Fatal(err)
	}
	id := sys.AddSource(SourceConfig{Name: "a", NTP: ntp.SourceConfig{MinPoll: 4, MaxPoll: 6}}, Instant{Wall: clk.Now()})
	// Zero values keep New's defaults, as in Config.
	sys.SetLimits(Limits{StepThreshold: time.Second, StepLimit: -1, MaxDistance: 0, Accuracy: 5 * time.Millisecond})
	if sys.cfg.MinSources != 1 || sys.cfg.MaxDistance != 3*time.Second || sys.cfg.Accuracy != 5*time.Millisecond {
		t.Errorf("selection limits %+v", sys.cfg)
	}
	if sys.cfg.Discipline.StepThreshold != time.Second || sys.cfg.Discipline.StepLimit != -1 {
		t.Errorf("discipline limits %+v", sys.cfg.Discipline)
	}
	sys.SetLimits(Limits{MaxDistance: 250 * time.Millisecond})
	if got := sys.find(id).ntp; got == nil {
		t.Fatal("source gone")
	}
	if sys.cfg.MaxDistance != 250*time.Millisecond {
		t.Errorf("max distance %v", sys.cfg.MaxDistance)
	}
}
