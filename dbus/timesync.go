package dbus

import (
	"encoding/binary"
	"net/netip"
	"sync"
	"time"

	godbus "github.com/godbus/dbus/v5"

	"gnomon.dev/gnomon/engine/system"
	"gnomon.dev/gnomon/polkit"
)

// TimesyncSpec is org.freedesktop.timesync1.Manager exactly as systemd
// 252 serves it: the server lists emit no change signals (≥ 255 would).
var TimesyncSpec = &InterfaceSpec{
	Name: "org.freedesktop.timesync1.Manager",
	Props: []PropSpec{
		{"LinkNTPServers", "as", EmitsFalse},
		{"SystemNTPServers", "as", EmitsConst},
		{"RuntimeNTPServers", "as", EmitsFalse},
		{"FallbackNTPServers", "as", EmitsConst},
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
}

func newTimesync(s *Service) *timesync {
	t := &timesync{s: s}
	snap := func() *system.Snapshot { return s.b.Snapshot() }
	t.props = &propsObject{ifaces: []propIface{{spec: TimesyncSpec, get: map[string]getter{
		"LinkNTPServers":     func() (any, error) { return appendNew(s.links.get(), linkServers(s.b)), nil },
		"SystemNTPServers":   func() (any, error) { return s.systemServers(), nil },
		"RuntimeNTPServers":  func() (any, error) { return nonNil(s.b.RuntimeServers()), nil },
		"FallbackNTPServers": func() (any, error) { return s.fallbackServers(), nil },
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

// object is timesync1's object for its router.
func (t *timesync) object() *busObject {
	return &busObject{path: PathTimesync, ifaces: []*objIface{{spec: TimesyncSpec, get: t.props.ifaces[0].get,
		methods: map[string]methodFunc{
			"SetRuntimeNTPServers": func(c *call) ([]any, *godbus.Error) {
				return nil, t.SetRuntimeNTPServers(*c.msg, c.body[0].([]string))
			},
		}}}}
}

// refresh emits NTPMessage after every new valid reply of the selected
// source (the only timesync1 property systemd 252 signals).
func (t *timesync) refresh(sn *system.Snapshot) {
	src := selected(sn)
	var count uint64
	var peer system.ID
	if src != nil {
		count, peer = src.Valid, src.ID
	}
	t.mu.Lock()
	newMsg := src != nil && (count != t.lastCount || peer != t.lastPeer)
	t.lastCount, t.lastPeer = count, peer
	t.mu.Unlock()
	if newMsg {
		t.s.tsr.emitValues(PathTimesync, TimesyncSpec.Name, []dictEntry{{"NTPMessage", godbus.MakeVariant(ntpMessage(sn, src))}})
	}
}

// ValidServerName is systemd 252's dns_name_is_valid_or_address, which
// SetRuntimeNTPServers applies: an IPv4 or IPv6 literal (inet_pton: no
// zone), or a DNS name in systemd's loose sense: labels of 1..63 bytes,
// each byte a printable ASCII character or any byte of 0x80 and above
// (not 0x7f, no control character), "\." "\\" and "\DDD" (≤ 255)
// escapes allowed, no empty label but a single final dot, and at most 253
// bytes once escaped again the way systemd does (letters, digits, '-' and
// '_' as they are, '.' and '\' as two bytes, everything else as \DDD).
// So "bad name!" is valid, as it is for systemd-timesyncd.
func ValidServerName(s string) bool {
	if s == "" {
		return false
	}
	if a, err := netip.ParseAddr(s); err == nil && a.Zone() == "" {
		return true
	}
	n, first := 0, true
	for i := 0; ; {
		label, next, ok := dnsLabel(s, i)
		if !ok {
			return false
		}
		if len(label) == 0 {
			if next != len(s) {
				return false
			}
			break
		}
		esc := 0
		for _, c := range label {
			switch {
			case c == '.' || c == '\\':
				esc += 2
			case c == '_' || c == '-' || c >= '0' && c <= '9' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z':
				esc++
			default:
				esc += 4
			}
		}
		if !first {
			n++
		}
		n += esc
		first = false
		i = next
	}
	return n <= 253
}

// dnsLabel unescapes the label of s starting at i (systemd's
// dns_label_unescape): the label's bytes and where the next one starts.
func dnsLabel(s string, i int) (label []byte, next int, ok bool) {
	for {
		if i == len(s) || s[i] == '.' {
			if i < len(s) {
				i++
			}
			break
		}
		if len(label) >= 63 {
			return nil, 0, false
		}
		c := s[i]
		switch {
		case c == '\\':
			i++
			switch {
			case i == len(s):
				return nil, 0, false
			case s[i] == '\\' || s[i] == '.':
				label = append(label, s[i])
				i++
			case s[i] >= '0' && s[i] <= '9':
				if i+2 >= len(s) || s[i+1] < '0' || s[i+1] > '9' || s[i+2] < '0' || s[i+2] > '9' {
					return nil, 0, false
				}
				k := int(s[i]-'0')*100 + int(s[i+1]-'0')*10 + int(s[i+2]-'0')
				if k > 255 {
					return nil, 0, false
				}
				label = append(label, byte(k))
				i += 3
			default:
				return nil, 0, false
			}
		case c >= ' ' && c != 127:
			label = append(label, c)
			i++
		default:
			return nil, 0, false
		}
	}
	if len(label) == 0 && i < len(s) {
		return nil, 0, false // an empty label that is not the end
	}
	if i < len(s) && s[i] == '.' {
		return nil, 0, false // more than one trailing dot
	}
	return label, i, true
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
	return nil
}
