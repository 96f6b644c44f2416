package client

import (
	"fmt"

	godbus "github.com/godbus/dbus/v5"
)

// Manager is org.gnomon.Gnomon1.Manager's properties. The JSON names are
// gnomonctl's --json schema (docs/cli.md); units are in the names.
type Manager struct {
	Version          string  `json:"version"`
	Synchronized     bool    `json:"synchronized"`
	State            string  `json:"state"`
	ClockMode        string  `json:"clock_mode"`
	NTP              bool    `json:"ntp"`
	OffsetNS         int64   `json:"offset_ns"`
	FrequencyPPM     float64 `json:"frequency_ppm"`
	RootDelayNS      uint64  `json:"root_delay_ns"`
	RootDispersionNS uint64  `json:"root_dispersion_ns"`
	// RootDistanceNS is RootDelayNS/2 + RootDispersionNS.
	RootDistanceNS uint64 `json:"root_distance_ns"`
	Stratum        uint8  `json:"stratum"`
	// ReferenceID is the 32-bit reference ID as 8 hex digits.
	ReferenceID string `json:"reference_id"`
	// Reference is the reference ID read as text (stratum 1: "GPS", "PPS",
	// "LOCL") or as an IPv4 address (higher strata).
	Reference      string `json:"reference"`
	Leap           string `json:"leap"`
	SelectedPath   string `json:"selected_source"` // object path, "/" when none
	Panic          string `json:"panic"`
	AccuracyStatus string `json:"accuracy_status,omitempty"`

	sourcePaths []godbus.ObjectPath
}

// Source is org.gnomon.Gnomon1.Source's properties.
type Source struct {
	Path      string `json:"path"`
	ID        uint64 `json:"id"`
	Name      string `json:"name"`
	Address   string `json:"address"`
	Kind      string `json:"kind"`
	Origin    string `json:"origin"`
	Reach     uint8  `json:"reach"`
	OffsetNS  int64  `json:"offset_ns"`
	DelayNS   uint64 `json:"delay_ns"`
	JitterNS  uint64 `json:"jitter_ns"`
	Stratum   uint8  `json:"stratum"`
	PollUS    uint64 `json:"poll_interval_us"`
	State     string `json:"state"`
	LastError string `json:"last_error"`
	// Refclock is a reference clock's receiver state (refclock.go), nil
	// for other sources.
	Refclock *Refclock `json:"refclock,omitempty"`
	// PTP ports only (Kind "ptp"): port state, grandmaster and parent.
	PTPPortState   string  `json:"ptp_port_state,omitempty"`
	PTPGrandmaster string  `json:"ptp_grandmaster,omitempty"`
	PTPParent      string  `json:"ptp_parent,omitempty"`
	PTPDecision    string  `json:"ptp_decision,omitempty"`
	PTPPHC         *PTPPHC `json:"ptp_phc,omitempty"` // ptpphc.go
	// PTPLink: 802.1AS ports only (ptplink.go).
	PTPLink *PTPLink `json:"ptp_link,omitempty"`
	// Counters are the client's counters for the source (counters.go),
	// nil for a source without a socket.
	Counters *SourceCounters `json:"counters,omitempty"`
	// Selected: this is the manager's SelectedSource.
	Selected bool `json:"selected"`
}

// Status is the manager with every source.
type Status struct {
	Manager
	// Selected is the selected source's name, "" when none.
	Selected string   `json:"selected_name"`
	Sources  []Source `json:"sources"`
	// Servers are the counters of gnomond's NTP and NTS-KE servers.
	Servers []Server `json:"servers"`
}

func (m *Manager) fill(p map[string]godbus.Variant) {
	get(p, "Version", &m.Version)
	get(p, "Synchronized", &m.Synchronized)
	get(p, "State", &m.State)
	get(p, "ClockMode", &m.ClockMode)
	get(p, "NTP", &m.NTP)
	get(p, "Offset", &m.OffsetNS)
	get(p, "Frequency", &m.FrequencyPPM)
	get(p, "RootDelay", &m.RootDelayNS)
	get(p, "RootDispersion", &m.RootDispersionNS)
	get(p, "Stratum", &m.Stratum)
	var ref uint32
	get(p, "ReferenceID", &ref)
	m.ReferenceID, m.Reference = refID(ref, m.Stratum)
	get(p, "Leap", &m.Leap)
	var sel godbus.ObjectPath
	get(p, "SelectedSource", &sel)
	m.SelectedPath = string(sel)
	if m.SelectedPath == "" {
		m.SelectedPath = "/"
	}
	get(p, "Sources", &m.sourcePaths)
	get(p, "Panic", &m.Panic)
	get(p, "AccuracyStatus", &m.AccuracyStatus)
	m.RootDistanceNS = m.RootDelayNS/2 + m.RootDispersionNS
}

func (s *Source) fill(p map[string]godbus.Variant) {
	get(p, "ID", &s.ID)
	get(p, "Name", &s.Name)
	get(p, "Address", &s.Address)
	get(p, "Kind", &s.Kind)
	get(p, "Origin", &s.Origin)
	get(p, "Reachability", &s.Reach)
	get(p, "Offset", &s.OffsetNS)
	get(p, "Delay", &s.DelayNS)
	get(p, "Jitter", &s.JitterNS)
	get(p, "Stratum", &s.Stratum)
	get(p, "PollInterval", &s.PollUS)
	get(p, "State", &s.State)
	get(p, "LastError", &s.LastError)
	s.Refclock = refclockOf(p)
	get(p, "PTPPortState", &s.PTPPortState)
	get(p, "PTPGrandmaster", &s.PTPGrandmaster)
	get(p, "PTPParent", &s.PTPParent)
	get(p, "PTPDecision", &s.PTPDecision)
	s.PTPPHC = ptpPHCOf(p)
	s.PTPLink = ptpLinkOf(p)
	s.Counters = countersOf(p)
}

// get stores property name into dst when it is there with dst's type; a
// missing or mistyped property leaves dst's zero value (a newer or older
// gnomond may differ).
func get[T any](p map[string]godbus.Variant, name string, dst *T) {
	v, ok := p[name]
	if !ok {
		return
	}
	if t, ok := v.Value().(T); ok {
		*dst = t
	}
}

// refID renders a reference ID: text for stratum 0, 1 and 16 (a kiss code or
// a reference clock's name), a dotted IPv4 address otherwise (for IPv6
// peers it is the first four bytes of a hash, shown the same way, as chronyc
// does).
func refID(ref uint32, stratum uint8) (hex, text string) {
	hex = fmt.Sprintf("%08X", ref)
	b := [4]byte{byte(ref >> 24), byte(ref >> 16), byte(ref >> 8), byte(ref)}
	if ref == 0 {
		return hex, ""
	}
	if stratum <= 1 || stratum >= 16 {
		var t []byte
		for _, c := range b {
			if c == 0 {
				break
			}
			if c < 0x20 || c > 0x7e {
				return hex, ""
			}
			t = append(t, c)
		}
		return hex, string(t)
	}
	return hex, fmt.Sprintf("%d.%d.%d.%d", b[0], b[1], b[2], b[3])
}
