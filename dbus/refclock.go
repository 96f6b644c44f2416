package dbus

import (
	godbus "github.com/godbus/dbus/v5"

	"gnomon.dev/gnomon/engine/system"
)

// refclockProps is a Source's Refclock property: the receiver's state for a
// reference clock (docs/dbus.md), empty for other sources.
func refclockProps(st *system.RefclockState) map[string]godbus.Variant {
	out := map[string]godbus.Variant{}
	if st == nil {
		return out
	}
	r := st.Receiver
	var lastPPS uint64
	if !r.LastPPS.IsZero() {
		lastPPS = uint64(r.LastPPS.UnixMicro())
	}
	var lastFix uint64
	if !r.LastFix.IsZero() {
		lastFix = uint64(r.LastFix.UnixMicro())
	}
	for k, v := range map[string]any{
		"Connected":      r.Connected,
		"Device":         r.Device,
		"Driver":         r.Driver,
		"Release":        r.Release,
		"FixMode":        int32(r.Mode),
		"Satellites":     int32(r.Satellites),
		"SatellitesSeen": int32(r.SatellitesSeen),
		"LastFixUSec":    lastFix,
		"LastPPSUSec":    lastPPS,
		"Ignored":        st.Ignored,
		"LastIgnored":    st.LastIgnored,
		"Pending":        uint32(st.Pending),
	} {
		out[k] = godbus.MakeVariant(v)
	}
	return out
}
