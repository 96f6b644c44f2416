package dbus

import (
	"testing"
	"time"

	"gnomon.dev/gnomon/engine/ptp"
	"gnomon.dev/gnomon/engine/system"
)

func TestPTPPHCProps(t *testing.T) {
	if got := ptpPHCProps(system.SourceSnapshot{}); len(got) != 0 {
		t.Errorf("not a PTP source: %v", got)
	}
	if got := ptpPHCProps(system.SourceSnapshot{PTP: &ptp.View{}}); len(got) != 0 {
		t.Errorf("a PTP port without a following PHC: %v", got)
	}
	at := time.Unix(1_800_000_000, 5000)
	v := ptp.View{PHCFollow: &ptp.FollowStatus{Active: true, Offset: -12, Uncertainty: 60, Servo: ptp.ServoLocked, FreqPPB: -46990.5,
		Samples: 260, Steps: 3, LastStep: -250 * time.Millisecond, Method: "PTP_SYS_OFFSET_EXTENDED", Updated: at}}
	got := ptpPHCProps(system.SourceSnapshot{PTP: &v})
	want := map[string]any{"Following": true, "OffsetNSec": int64(-12), "UncertaintyNSec": uint64(60), "Servo": "s2",
		"FrequencyPPB": -46990.5, "Samples": uint64(260), "Steps": uint64(3), "LastStepNSec": int64(-250e6),
		"Method": "PTP_SYS_OFFSET_EXTENDED", "LastUSec": uint64(1_800_000_000_000_005)}
	if len(got) != len(want) {
		t.Errorf("keys %v, want %v", got, want)
	}
	for k, w := range want {
		if g, ok := got[k]; !ok || g.Value() != w {
			t.Errorf("%s = %v (%T), want %v (%T)", k, g.Value(), g.Value(), w, w)
		}
	}
}
