package client

import (
	"testing"

	godbus "github.com/godbus/dbus/v5"
)

func TestPTPPHCOf(t *testing.T) {
	if ptpPHCOf(map[string]godbus.Variant{}) != nil {
		t.Error("no PTPPHC property: want nil")
	}
	if ptpPHCOf(map[string]godbus.Variant{"PTPPHC": godbus.MakeVariant(map[string]godbus.Variant{})}) != nil {
		t.Error("empty PTPPHC: want nil")
	}
	m := map[string]godbus.Variant{}
	for k, v := range map[string]any{"Following": true, "OffsetNSec": int64(-12), "UncertaintyNSec": uint64(60), "Servo": "s2",
		"FrequencyPPB": 1.5, "Samples": uint64(7), "Steps": uint64(2), "LastStepNSec": int64(-3), "Method": "PTP_SYS_OFFSET", "LastUSec": uint64(9)} {
		m[k] = godbus.MakeVariant(v)
	}
	got := ptpPHCOf(map[string]godbus.Variant{"PTPPHC": godbus.MakeVariant(m)})
	want := PTPPHC{Following: true, OffsetNSec: -12, UncertaintyNSec: 60, Servo: "s2", FrequencyPPB: 1.5, Samples: 7, Steps: 2,
		LastStepNSec: -3, Method: "PTP_SYS_OFFSET", LastUSec: 9}
	if got == nil || *got != want {
		t.Errorf("got %+v, want %+v", got, want)
	}
}
