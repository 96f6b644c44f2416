package client

import (
	godbus "github.com/godbus/dbus/v5"
)

// Refclock is a Source's Refclock property: what its receiver says.
type Refclock struct {
	Connected      bool   `json:"connected"`
	Device         string `json:"device"`
	Driver         string `json:"driver,omitempty"`
	Release        string `json:"release,omitempty"`
	FixMode        int32  `json:"fix_mode"`
	Satellites     int32  `json:"satellites"`
	SatellitesSeen int32  `json:"satellites_seen"`
	LastFixUSec    uint64 `json:"last_fix_usec"`
	LastPPSUSec    uint64 `json:"last_pps_usec"`
	Ignored        uint64 `json:"ignored"`
	LastIgnored    string `json:"last_ignored,omitempty"`
	Pending        uint32 `json:"pending"`
}

func refclockOf(p map[string]godbus.Variant) *Refclock {
	var m map[string]godbus.Variant
	get(p, "Refclock", &m)
	if len(m) == 0 {
		return nil
	}
	r := &Refclock{}
	get(m, "Connected", &r.Connected)
	get(m, "Device", &r.Device)
	get(m, "Driver", &r.Driver)
	get(m, "Release", &r.Release)
	get(m, "FixMode", &r.FixMode)
	get(m, "Satellites", &r.Satellites)
	get(m, "SatellitesSeen", &r.SatellitesSeen)
	get(m, "LastFixUSec", &r.LastFixUSec)
	get(m, "LastPPSUSec", &r.LastPPSUSec)
	get(m, "Ignored", &r.Ignored)
	get(m, "LastIgnored", &r.LastIgnored)
	get(m, "Pending", &r.Pending)
	return r
}
