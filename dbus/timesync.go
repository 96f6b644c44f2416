package dbus

import (
	"encoding/binary"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"time"

	godbus "github.com/godbus/dbus/v5"

	"gnomon.dev/gnomon/engine/system"
	"gnomon.dev/gnomon/polkit"
)

// TimesyncSpec is org.freedesktop.timesync1.Manager with the change
// signals of systemd ≥ 255 (the four server lists emit changes).
var TimesyncSpec = &InterfaceSpec{
	Name: "org.freedesktop.timesync1.Manager",
	Props: []PropSpec{
		{"LinkNTPServers", "as", EmitsTrue},
		{"SystemNTPServers", "as", EmitsTrue},
		{"RuntimeNTPServers", "as", EmitsTrue},
		{"FallbackNTPServers", "as", EmitsTrue},
		{"ServerName", "s", EmitsFalse},
		{"ServerAddress", "(iay)", EmitsFalse},
		{"RootDistanceMaxUSec", "t", EmitsConst},
		{"PollIntervalMinUSec", "t", EmitsConst},
		{"PollIntervalMaxUSec", "t", EmitsConst},
		{"PollIntervalUSec", "t", EmitsFalse},
		{"NTPMessage", "(uuuuittayttttbtt)", EmitsTrue},
		{"Frequency", "x", EmitsFalse},
	},
	Methods: []MethodSpec{
		{"SetRuntimeNTPServers", []ArgSpec{in("runtime_servers", "as")}},
	},
}

// ServerAddress is timesync1's (iay): an address family (AF_INET 2,
// AF_INET6 10, or 0 with no bytes for none) and the raw address.
type ServerAddress struct {
	Family  int32
	Address []byte
}

// NTPMessage is timesync1's (uuuuittayttttbtt), field for field.
type NTPMessage struct {
	Leap, Version, Mode, Stratum uint32
	Precision                    int32
	RootDelay, RootDispersion    uint64 // µs
	Reference                    []byte // always 4 bytes
	Originate, Receive           uint64 // T1, T2: µs since the epoch
	Transmit, Destination        uint64 // T3, T4
	Ignored                      bool
	PacketCount                  uint64
	Jitter                       uint64 // µs
}

// selected is the source timesync1 reports: the system peer, else none.
func selected(sn *system.Snapshot) *system.SourceSnapshot {
	if sn == nil || sn.SystemPeer == 0 {
		return nil
	}
	for i := range sn.Sources {
		if sn.Sources[i].ID == sn.SystemPeer {
			return &sn.Sources[i]
		}
	}
	return nil
}

// serverAddress maps "addr:port" (or a bare address) to (iay).
func serverAddress(s string) ServerAddress {
	ap, err := netip.ParseAddrPort(s)
	var a netip.Addr
	if err == nil {
		a = ap.Addr()
	} else if a, err = netip.ParseAddr(s); err != nil {
		return ServerAddress{Family: 0, Address: []byte{}}
	}
	a = a.Unmap()
	if a.Is4() {
		b := a.As4()
		return ServerAddress{Family: 2, Address: b[:]}
	}
	b := a.As16()
	return ServerAddress{Family: 10, Address: b[:]}
}

func usec(d time.Duration) uint64 {
	if d <= 0 {
		return 0
	}
	return uint64(d / time.Microsecond)
}

func unixUsec(t time.Time) uint64 {
	if t.IsZero() || t.UnixMicro() < 0 {
		return 0
	}
	return uint64(t.UnixMicro())
}

// ntpMessage builds NTPMessage from the selected source. gnomon's
// snapshot keeps the clock filter's pick (offset, delay, time) rather than
// the raw packet, so the four timestamps are reconstructed from it: T4 is
// the sample time plus half the delay, T1 = T4 - delay, T2 = T3 = the
// midpoint plus the offset. timedatectl derives exactly the source's delay
// and offset from them. Version is 4, Mode 4 (server), Precision that of
// gnomon's own reply path (unknown: reported as -20, ~1 µs).
func ntpMessage(sn *system.Snapshot, src *system.SourceSnapshot) NTPMessage {
	m := NTPMessage{Reference: []byte{0, 0, 0, 0}}
	if src == nil || src.Valid == 0 || src.LastSample.IsZero() {
		return m
	}
	ref := make([]byte, 4)
	binary.BigEndian.PutUint32(ref, src.RefID)
	m = NTPMessage{
		Leap:        uint32(src.Leap),
		Version:     4,
		Mode:        4,
		Stratum:     uint32(src.Stratum),
		Precision:   -20,
		Reference:   ref,
		PacketCount: src.Valid,
		Jitter:      usec(src.Jitter),
		Ignored:     src.Selection != "selected" && src.Selection != "combined",
	}
	if x := src.Exchange; x != nil {
		// The newest reply, field for field, as timesyncd shows its own.
		h := &x.Header
		binary.BigEndian.PutUint32(ref, h.ReferenceID)
		m.Leap, m.Version, m.Mode = uint32(h.Leap), uint32(h.Version), uint32(h.Mode)
		m.Stratum, m.Precision = uint32(h.Stratum), int32(h.Precision)
		m.RootDelay, m.RootDispersion = usec(h.RootDelay.Duration()), usec(h.RootDispersion.Duration())
		m.Originate, m.Receive = unixUsec(x.T1), unixUsec(x.T2)
		m.Transmit, m.Destination = unixUsec(x.T3), unixUsec(x.T4)
		return m
	}
	mid := src.LastSample
	delay := max(src.Delay, 0)
	t1 := mid.Add(-delay / 2)
	m.Originate, m.Receive = unixUsec(t1), unixUsec(mid.Add(src.Offset))
	m.Transmit, m.Destination = m.Receive, unixUsec(t1.Add(delay))
	if sn.SystemPeer == src.ID && sn.Synchronized {
		// The system root delay is the peer's plus the path to it.
		m.RootDelay = usec(sn.RootDelay - src.Delay)
		m.RootDispersion = usec(sn.RootDispersion)
	}
	return m
}

type timesync struct {
	s     *Service
	props *propsObject

	mu        sync.Mutex
	lastCount uint64
	lastPeer  system.ID
	lastLists [3][]string
}

func newTimesync(s *Service) *timesync {
	t := &timesync{s: s}
	snap := func() *system.Snapshot { return s.b.Snapshot() }
	t.props = &propsObject{ifaces: []propIface{{spec: TimesyncSpec, get: map[string]getter{
		"LinkNTPServers":     func() (any, error) { return linkServers(s.b), nil },
		"SystemNTPServers":   func() (any, error) { return nonNil(s.b.ConfigServers()), nil },
		"RuntimeNTPServers":  func() (any, error) { return nonNil(s.b.RuntimeServers()), nil },
		"FallbackNTPServers": func() (any, error) { return []string{}, nil },
		"ServerName": func() (any, error) {
			if src := selected(snap()); src != nil {
				return src.Name, nil
			}
			return "", nil
		},
		"ServerAddress": func() (any, error) {
			if src := selected(snap()); src != nil {
				return serverAddress(src.Address), nil
			}
			return ServerAddress{Address: []byte{}}, nil
		},
		"RootDistanceMaxUSec": func() (any, error) { return usec(s.opts.RootDistanceMax), nil },
		"PollIntervalMinUSec": func() (any, error) { return usec(s.opts.PollIntervalMin), nil },
		"PollIntervalMaxUSec": func() (any, error) { return usec(s.opts.PollIntervalMax), nil },
		"PollIntervalUSec": func() (any, error) {
			if src := selected(snap()); src != nil {
				return pollUSec(src.Poll), nil
			}
			return uint64(0), nil
		},
		"NTPMessage": func() (any, error) {
			sn := snap()
			return ntpMessage(sn, selected(sn)), nil
		},
		"Frequency": func() (any, error) {
			sn := snap()
			if sn == nil {
				return int64(0), nil
			}
			return int64(sn.FreqPPM * 65536), nil
		},
	}}}}
	return t
}

func pollUSec(poll int8) uint64 {
	if poll < -30 || poll > 30 {
		return 0
	}
	return uint64(time.Duration(float64(time.Second)*pow2(int(poll))) / time.Microsecond)
}

func pow2(n int) float64 {
	f := 1.0
	for ; n > 0; n-- {
		f *= 2
	}
	for ; n < 0; n++ {
		f /= 2
	}
	return f
}

func nonNil(l []string) []string {
	if l == nil {
		return []string{}
	}
	return l
}

func (t *timesync) export(conn *godbus.Conn) error {
	if err := conn.Export(t, PathTimesync, TimesyncSpec.Name); err != nil {
		return err
	}
	if err := conn.Export(t.props, PathTimesync, ifaceProperties); err != nil {
		return err
	}
	return conn.Export(&introspectObject{ifaces: []*InterfaceSpec{TimesyncSpec}}, PathTimesync, ifaceIntrospect)
}

// refresh emits NTPMessage after every new valid reply of the selected
// source, and the server lists when they change.
func (t *timesync) refresh(sn *system.Snapshot) {
	src := selected(sn)
	var count uint64
	var peer system.ID
	if src != nil {
		count, peer = src.Valid, src.ID
	}
	lists := [3][]string{nonNil(t.s.b.ConfigServers()), nonNil(t.s.b.RuntimeServers()), linkServers(t.s.b)}
	t.mu.Lock()
	newMsg := src != nil && (count != t.lastCount || peer != t.lastPeer)
	t.lastCount, t.lastPeer = count, peer
	changed := map[string]godbus.Variant{}
	names := [3]string{"SystemNTPServers", "RuntimeNTPServers", "LinkNTPServers"}
	for i := range lists {
		if t.lastLists[i] != nil && !slices.Equal(t.lastLists[i], lists[i]) {
			changed[names[i]] = godbus.MakeVariant(lists[i])
		}
		t.lastLists[i] = lists[i]
	}
	t.mu.Unlock()
	if newMsg {
		changed["NTPMessage"] = godbus.MakeVariant(ntpMessage(sn, src))
	}
	t.s.emit(PathTimesync, TimesyncSpec.Name, changed)
}

// ValidServerName reports whether s is an IPv4/IPv6 literal (no zone) or a valid
// DNS name (labels of 1–63 letters, digits, '-' or '_', 253 bytes at
// most, an optional final dot), as SetRuntimeNTPServers requires.
func ValidServerName(s string) bool {
	if s == "" {
		return false
	}
	if a, err := netip.ParseAddr(s); err == nil {
		// inet_pton has no zones ("fe80::1%eth0"), nor does systemd.
		return a.Zone() == ""
	}
	name := strings.TrimSuffix(s, ".")
	if name == "" || len(name) > 253 {
		return false
	}
	for _, label := range strings.Split(name, ".") {
		if label == "" || len(label) > 63 {
			return false
		}
		for i := 0; i < len(label); i++ {
			c := label[i]
			if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
				return false
			}
		}
	}
	return true
}

// SetRuntimeNTPServers replaces the runtime servers.
func (t *timesync) SetRuntimeNTPServers(msg godbus.Message, servers []string) *godbus.Error {
	for _, name := range servers {
		if !ValidServerName(name) {
			return newError(ErrInvalidArgs, "Invalid NTP server name or address, refusing: %s", name)
		}
	}
	// systemd 252 always asks interactively for this action.
	if err := t.s.authorize(&msg, polkit.ActionSetRuntimeServers, true); err != nil {
		return err
	}
	ctx, cancel := t.s.call()
	defer cancel()
	if err := t.s.b.SetRuntimeServers(ctx, append([]string{}, servers...)); err != nil {
		return errnoError("Failed to set runtime NTP servers", err)
	}
	t.s.emit(PathTimesync, TimesyncSpec.Name, map[string]godbus.Variant{
		"RuntimeNTPServers": godbus.MakeVariant(nonNil(t.s.b.RuntimeServers()))})
	t.mu.Lock()
	t.lastLists[1] = nonNil(t.s.b.RuntimeServers())
	t.mu.Unlock()
	return nil
}
