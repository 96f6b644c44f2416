package dbus

import (
	godbus "github.com/godbus/dbus/v5"

	"gnomon.dev/gnomon/engine/system"
)

// ptpPHCProps is a Source's PTPPHC property: a hardware PTP port's PHC
// following the system clock (docs/dbus.md, docs/ptp.md), empty for other
// sources and ports.
func ptpPHCProps(x system.SourceSnapshot) map[string]godbus.Variant {
	out := map[string]godbus.Variant{}
	if x.PTP == nil || x.PTP.PHCFollow == nil {
		return out
	}
	f := x.PTP.PHCFollow
	var last uint64
	if !f.Updated.IsZero() {
		last = uint64(f.Updated.UnixMicro())
	}
	for k, v := range map[string]any{
		"Following":       f.Active,
		"OffsetNSec":      int64(f.Offset),
		"UncertaintyNSec": uint64(max(f.Uncertainty, 0)),
		"Servo":           f.Servo.String(),
		"FrequencyPPB":    f.FreqPPB,
		"Samples":         f.Samples,
		"Steps":           f.Steps,
		"LastStepNSec":    int64(f.LastStep),
		"Method":          f.Method,
		"LastUSec":        last,
	} {
		out[k] = godbus.MakeVariant(v)
	}
	return out
}
