package config

import (
	"fmt"
	"slices"
	"strings"
	"time"
)

// Reference clocks are [[source]] tables with mode = "gpsd", "pps", "shm"
// or "sock". Their settings live in SourceConfig.Refclock; docs/refclock.md
// describes them.

// The reference-clock source modes.
const (
	SourceGPSD SourceMode = "gpsd" // gpsd's JSON over TCP or a unix socket
	SourcePPS  SourceMode = "pps"  // an RFC 2783 PPS device (/dev/ppsN)
	SourceSHM  SourceMode = "shm"  // ntpd's shared-memory segment NTP<unit>
	SourceSOCK SourceMode = "sock" // chrony's SOCK datagrams on a unix socket
)

var refclockModes = []string{string(SourceGPSD), string(SourcePPS), string(SourceSHM), string(SourceSOCK)}

// IsRefclock says whether m is a reference-clock mode.
func (m SourceMode) IsRefclock() bool {
	switch m {
	case SourceGPSD, SourcePPS, SourceSHM, SourceSOCK:
		return true
	}
	return false
}

// Reference-clock defaults and limits.
const (
	DefaultGPSDAddress  = "127.0.0.1:2947"
	DefaultRefclockPoll = 4 // 16 s, chrony's
	MinRefclockPoll     = 0
	MaxRefclockPoll     = 10
	MaxRefclockFilter   = 1024
	// DefaultRefclockFilter is how many raw samples a poll keeps when the
	// file does not say (chrony's filter for refclocks is 64 too).
	DefaultRefclockFilter = 64
	MaxSHMUnit            = 255
)

// PPSEdge is which edge of the pulse marks the second.
type PPSEdge string

const (
	EdgeAssert PPSEdge = "assert"
	EdgeClear  PPSEdge = "clear"
)

// RefclockConfig is a reference clock's part of a [[source]].
type RefclockConfig struct {
	// RefID is how the source is named as a reference id (up to four
	// ASCII characters) and by other sources' lock; the default is GPS
	// (gpsd), PPS (pps), SHM<unit> (shm), SOCK (sock).
	RefID string
	// Device: gpsd's receiver to use (its device path, "" for the first
	// that reports time); the PPS device (pps, required).
	Device string
	// Unit is the SHM segment's unit (key 0x4e545030 + unit).
	Unit int
	// Path is the SOCK socket the daemon binds (sock, required).
	Path string
	// Lock is the refid of the reference clock that gives this one's
	// pulses their integer second (pps, and sock pulses).
	Lock string
	// Edge is the PPS edge that marks the second (pps; default assert).
	Edge PPSEdge
	// Offset is added to every sample; Delay and Precision are each
	// sample's delay and least dispersion.
	Offset, Delay, Precision time.Duration
	// Poll is log2 seconds between filtered samples; Filter how many raw
	// samples a poll keeps at most (their median is used).
	Poll   int
	Filter int
}

// Endpoint is what the reference clock is read from, for views: the gpsd
// address, the device, SHM unit, or socket path.
func (r *RefclockConfig) Endpoint(m SourceMode, address string) string {
	switch m {
	case SourceGPSD:
		return address
	case SourcePPS:
		return r.Device
	case SourceSHM:
		return fmt.Sprintf("NTP%d", r.Unit)
	case SourceSOCK:
		return r.Path
	}
	return ""
}

func defaultRefID(m SourceMode, unit int) string {
	switch m {
	case SourceGPSD:
		return "GPS"
	case SourcePPS:
		return "PPS"
	case SourceSHM:
		return fmt.Sprintf("SHM%d", unit%10)
	}
	return "SOCK"
}

// defaultPrecision: gpsd's times come from serial messages (TOFF, TPV),
// good to a millisecond at best; the others pass on their own precision.
func defaultPrecision(m SourceMode) time.Duration {
	if m == SourceGPSD {
		return time.Millisecond
	}
	return time.Microsecond
}

// refclock decodes a reference clock's [[source]]; s has its mode.
func (d *decoder) refclock(t *table, s SourceConfig) SourceConfig {
	r := &RefclockConfig{Poll: DefaultRefclockPoll, Filter: DefaultRefclockFilter, Delay: time.Nanosecond, Precision: defaultPrecision(s.Mode)}
	s.Refclock = r
	s.IBurst = false
	only := func(k string, modes ...SourceMode) bool {
		if _, ok := t.m[k]; !ok {
			if slices.Contains(modes, s.Mode) {
				t.get(k) // a key of this mode: listed when another is unknown
			}
			return false
		}
		for _, m := range modes {
			if s.Mode == m {
				return true
			}
		}
		t.get(k)
		want := make([]string, len(modes))
		for i, m := range modes {
			want[i] = fmt.Sprintf("%q", m)
		}
		d.errorf(t.key(k), "only allowed with mode = %s", strings.Join(want, " or "))
		return false
	}
	if only("address", SourceGPSD) {
		var a string
		if t.str("address", &a) {
			if norm, err := normalizeGPSDAddress(a); err != nil {
				d.errorf(t.key("address"), "%s", err.Error())
			} else {
				s.Address = norm
			}
		}
	}
	if s.Mode == SourceGPSD && s.Address == "" {
		s.Address = DefaultGPSDAddress
	}
	if only("device", SourceGPSD, SourcePPS) {
		t.str("device", &r.Device)
	}
	if only("unit", SourceSHM) {
		t.integer("unit", &r.Unit)
	}
	if only("path", SourceSOCK) {
		t.str("path", &r.Path)
	}
	if only("lock", SourcePPS, SourceSOCK) {
		t.str("lock", &r.Lock)
	}
	if only("edge", SourcePPS) {
		var e string
		if t.str("edge", &e) {
			switch PPSEdge(e) {
			case EdgeAssert, EdgeClear:
				r.Edge = PPSEdge(e)
			default:
				d.errorf(t.key("edge"), "%q is not an edge (want %q or %q)", e, EdgeAssert, EdgeClear)
			}
		}
	}
	if s.Mode == SourcePPS && r.Edge == "" {
		r.Edge = EdgeAssert
	}
	r.RefID = defaultRefID(s.Mode, r.Unit)
	t.str("refid", &r.RefID)
	t.seconds("offset", &r.Offset)
	t.seconds("delay", &r.Delay)
	t.seconds("precision", &r.Precision)
	t.integer("poll", &r.Poll)
	t.integer("filter", &r.Filter)
	t.boolean("prefer", &s.Prefer)
	t.boolean("noselect", &s.NoSelect)
	t.boolean("trust", &s.Trust)
	t.finish()
	return s
}

// normalizeGPSDAddress takes host[:port] (port 2947 by default) or an
// absolute unix socket path.
func normalizeGPSDAddress(a string) (string, error) {
	if strings.HasPrefix(a, "/") {
		if strings.ContainsFunc(a, func(r rune) bool { return r < ' ' || r == 0x7f }) {
			return "", fmt.Errorf("%q contains control characters", a)
		}
		if len(a) > 107 {
			return "", fmt.Errorf("%q is longer than a unix socket path may be (107 bytes)", a)
		}
		return a, nil
	}
	return normalizeSourceAddress(a, 2947)
}

// refclock validates a reference clock's [[source]].
func (v *validator) refclock(key string, s *SourceConfig) {
	r := s.Refclock
	if r == nil || !s.Mode.IsRefclock() {
		v.errorf(key+".mode", "reference-clock settings need mode %s", alternatives(refclockModes))
		return
	}
	switch s.Mode {
	case SourceGPSD:
		if _, err := normalizeGPSDAddress(s.Address); err != nil {
			v.errorf(key+".address", "%s", err.Error())
		}
	case SourcePPS:
		if r.Device == "" {
			v.errorf(key+".device", "missing (want the PPS device, e.g. \"/dev/pps0\")")
		} else {
			v.absPath(key+".device", r.Device)
		}
	case SourceSHM:
		if r.Unit < 0 || r.Unit > MaxSHMUnit {
			v.errorf(key+".unit", "must be between 0 and %d (got %d)", MaxSHMUnit, r.Unit)
		}
	case SourceSOCK:
		if r.Path == "" {
			v.errorf(key+".path", "missing (want the socket to bind, e.g. \"/run/chrony.ttyS0.sock\")")
		} else if v.absPath(key+".path", r.Path) && len(r.Path) > 107 {
			v.errorf(key+".path", "is longer than a unix socket path may be (107 bytes)")
		}
	}
	if r.RefID == "" || len(r.RefID) > 4 || strings.ContainsFunc(r.RefID, func(c rune) bool { return c <= ' ' || c > '~' }) {
		v.errorf(key+".refid", "%q is not a reference id (want 1 to 4 printable ASCII characters)", r.RefID)
	}
	if r.Poll < MinRefclockPoll || r.Poll > MaxRefclockPoll {
		v.errorf(key+".poll", "must be between %d and %d (got %d)", MinRefclockPoll, MaxRefclockPoll, r.Poll)
	}
	if r.Filter < 1 || r.Filter > MaxRefclockFilter {
		v.errorf(key+".filter", "must be between 1 and %d (got %d)", MaxRefclockFilter, r.Filter)
	}
	if r.Delay < 0 {
		v.errorf(key+".delay", "must not be negative (got %s)", secs(r.Delay))
	}
	if r.Precision < 0 {
		v.errorf(key+".precision", "must not be negative (got %s)", secs(r.Precision))
	}
	if max(r.Offset, -r.Offset) > time.Hour {
		v.errorf(key+".offset", "%s s is more than an hour", secs(r.Offset))
	}
	// Reference ids name the reference clocks: unique, and lock must name
	// another one. The index is built once per Validate (linear in the
	// number of sources).
	ix := v.refclockIndex()
	me := ix.pos[key]
	if first, ok := ix.refid[r.RefID]; ok && first != me {
		v.errorf(key+".refid", "%q is also the refid of %s", r.RefID, indexKey("source", first))
	}
	if r.Lock != "" {
		if i, ok := ix.refid[r.Lock]; !ok || (i == me && ix.count[r.Lock] == 1) {
			v.errorf(key+".lock", "%q is not the refid of another reference clock", r.Lock)
		}
	}
	ep := string(s.Mode) + "|" + r.Endpoint(s.Mode, s.Address)
	if first, ok := ix.endpoint[ep]; ok && first != me && (s.Mode == SourceSOCK || s.Mode == SourceSHM) {
		v.errorf(key, "reads the same %s as %s", r.Endpoint(s.Mode, s.Address), indexKey("source", first))
	}
}

// refclockIndex is where each reference clock's refid and endpoint first
// appear among the sources, by index.
type refclockIndex struct {
	pos      map[string]int // "source[i]" -> i
	refid    map[string]int
	count    map[string]int
	endpoint map[string]int
}

func (v *validator) refclockIndex() *refclockIndex {
	if v.refIdx != nil {
		return v.refIdx
	}
	ix := &refclockIndex{pos: map[string]int{}, refid: map[string]int{}, count: map[string]int{}, endpoint: map[string]int{}}
	for i, o := range v.c.Sources {
		if o.Refclock == nil {
			continue
		}
		ix.pos[indexKey("source", i)] = i
		if _, ok := ix.refid[o.Refclock.RefID]; !ok {
			ix.refid[o.Refclock.RefID] = i
		}
		ix.count[o.Refclock.RefID]++
		ep := string(o.Mode) + "|" + o.Refclock.Endpoint(o.Mode, o.Address)
		if _, ok := ix.endpoint[ep]; !ok {
			ix.endpoint[ep] = i
		}
	}
	v.refIdx = ix
	return ix
}
