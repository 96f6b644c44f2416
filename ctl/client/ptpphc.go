package client

import godbus "github.com/godbus/dbus/v5"

// PTPPHC is a hardware PTP port's PHC following the system clock (the
// source's PTPPHC property, docs/dbus.md).
type PTPPHC struct {
	Following       bool    `json:"following"`
	OffsetNSec      int64   `json:"offset_ns"`
	UncertaintyNSec uint64  `json:"uncertainty_ns"`
	Servo           string  `json:"servo"`
	FrequencyPPB    float64 `json:"frequency_ppb"`
	Samples         uint64  `json:"samples"`
	Steps           uint64  `json:"steps"`
	LastStepNSec    int64   `json:"last_step_ns"`
	Method          string  `json:"method"`
	LastUSec        uint64  `json:"last_us"`
}

func ptpPHCOf(p map[string]godbus.Variant) *PTPPHC {
	var m map[string]godbus.Variant
	get(p, "PTPPHC", &m)
	if len(m) == 0 {
		return nil
	}
	r := &PTPPHC{}
	get(m, "Following", &r.Following)
	get(m, "OffsetNSec", &r.OffsetNSec)
	get(m, "UncertaintyNSec", &r.UncertaintyNSec)
	get(m, "Servo", &r.Servo)
	get(m, "FrequencyPPB", &r.FrequencyPPB)
	get(m, "Samples", &r.Samples)
	get(m, "Steps", &r.Steps)
	get(m, "LastStepNSec", &r.LastStepNSec)
	get(m, "Method", &r.Method)
	get(m, "LastUSec", &r.LastUSec)
	return r
}
