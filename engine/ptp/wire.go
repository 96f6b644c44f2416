// Package ptp is IEEE 1588-2019 (PTPv2.1) without I/O: the wire format of
// every message and the TLVs the profiles need, the datasets, the best
// master clock algorithm (§9.3), the port state machine, the delay
// mechanisms (E2E and P2P, one- and two-step), and a PI servo with
// linuxptp's step rules.
//
// Everything is driven from outside: a Port is handed received bytes with
// their timestamps, transmit timestamps, and the time; it answers with
// actions (send these bytes, a new measurement, a state change) and says
// when it next needs to be woken. Nothing here reads a clock, opens a
// socket or starts a goroutine, so the same code runs under the simulator
// and in the daemon. Profiles (the default E2E and P2P profiles here;
// gPTP, automotive and CSPTP later) are values of Profile that set the
// defaults and switch the optional rules.
package ptp

import (
	"encoding/binary"
	"errors"
	"fmt"
	"time"
)

// MessageType is the PTP messageType (1588-2019 table 36).
type MessageType uint8

// The message types.
const (
	MsgSync               MessageType = 0x0
	MsgDelayReq           MessageType = 0x1
	MsgPdelayReq          MessageType = 0x2
	MsgPdelayResp         MessageType = 0x3
	MsgFollowUp           MessageType = 0x8
	MsgDelayResp          MessageType = 0x9
	MsgPdelayRespFollowUp MessageType = 0xA
	MsgAnnounce           MessageType = 0xB
	MsgSignaling          MessageType = 0xC
	MsgManagement         MessageType = 0xD
)

func (t MessageType) String() string {
	switch t {
	case MsgSync:
		return "Sync"
	case MsgDelayReq:
		return "Delay_Req"
	case MsgPdelayReq:
		return "Pdelay_Req"
	case MsgPdelayResp:
		return "Pdelay_Resp"
	case MsgFollowUp:
		return "Follow_Up"
	case MsgDelayResp:
		return "Delay_Resp"
	case MsgPdelayRespFollowUp:
		return "Pdelay_Resp_Follow_Up"
	case MsgAnnounce:
		return "Announce"
	case MsgSignaling:
		return "Signaling"
	case MsgManagement:
		return "Management"
	}
	return fmt.Sprintf("messageType(%#x)", uint8(t))
}

// IsEvent says whether the message is an event message: timestamped on
// send and receipt, sent to port 319.
func (t MessageType) IsEvent() bool { return t <= MsgPdelayResp }

// controlField values (1588-2019 table 42, kept for PTPv1 hardware).
func (t MessageType) control() uint8 {
	switch t {
	case MsgSync:
		return 0
	case MsgDelayReq:
		return 1
	case MsgFollowUp:
		return 2
	case MsgDelayResp:
		return 3
	case MsgManagement:
		return 4
	}
	return 5
}

// Flag bits of the header's flagField (1588-2019 table 37), as one
// big-endian uint16: the first octet is the high byte.
const (
	FlagAlternateMaster uint16 = 0x0100
	FlagTwoStep         uint16 = 0x0200
	FlagUnicast         uint16 = 0x0400
	FlagProfile1        uint16 = 0x2000
	FlagProfile2        uint16 = 0x4000
	FlagSecurity        uint16 = 0x8000
	FlagLeap61          uint16 = 0x0001
	FlagLeap59          uint16 = 0x0002
	FlagUTCOffsetValid  uint16 = 0x0004
	FlagPTPTimescale    uint16 = 0x0008
	FlagTimeTraceable   uint16 = 0x0010
	FlagFreqTraceable   uint16 = 0x0020
	FlagSyncUncertain   uint16 = 0x0040
	timePropertiesFlags        = FlagLeap61 | FlagLeap59 | FlagUTCOffsetValid | FlagPTPTimescale | FlagTimeTraceable | FlagFreqTraceable | FlagSyncUncertain
	HeaderLen                  = 34
	maxMessageLen              = 1500 // larger than any Ethernet payload: refused
)

// Wire lengths of the fixed parts of each message.
const (
	SyncLen       = HeaderLen + 10
	DelayReqLen   = HeaderLen + 10
	FollowUpLen   = HeaderLen + 10
	DelayRespLen  = HeaderLen + 20
	PdelayLen     = HeaderLen + 20 // Pdelay_Req, Pdelay_Resp, Pdelay_Resp_Follow_Up
	AnnounceLen   = HeaderLen + 30
	SignalingLen  = HeaderLen + 10 // before the TLVs
	ManagementLen = HeaderLen + 14 // before the management TLV
)

// Errors returned by the decoders; detailed errors wrap one of them.
var (
	ErrShort   = errors.New("ptp: message too short")
	ErrLong    = errors.New("ptp: message too long")
	ErrVersion = errors.New("ptp: unsupported PTP version")
	ErrLength  = errors.New("ptp: messageLength does not match the datagram")
	ErrType    = errors.New("ptp: unknown or unexpected message type")
	ErrTLV     = errors.New("ptp: malformed TLV")
	ErrField   = errors.New("ptp: field out of range")
)

// ClockIdentity is the 8-octet clock identity (EUI-64 based).
type ClockIdentity [8]byte

func (c ClockIdentity) String() string {
	return fmt.Sprintf("%02x%02x%02x.%02x%02x.%02x%02x%02x", c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7])
}

// ClockIdentityFromMAC makes the identity linuxptp makes from a MAC
// address: the EUI-48 with ff:fe in the middle.
func ClockIdentityFromMAC(mac []byte) ClockIdentity {
	var c ClockIdentity
	if len(mac) != 6 {
		return c
	}
	copy(c[:3], mac[:3])
	c[3], c[4] = 0xff, 0xfe
	copy(c[5:], mac[3:])
	return c
}

// Compare orders identities as unsigned integers (for the BMCA).
func (c ClockIdentity) Compare(o ClockIdentity) int {
	for i := range c {
		if c[i] != o[i] {
			if c[i] < o[i] {
				return -1
			}
			return 1
		}
	}
	return 0
}

// AllOnes is the wildcard clock identity (management target "all clocks").
var AllOnes = ClockIdentity{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff}

// PortIdentity is a clock identity and a port number.
type PortIdentity struct {
	Clock ClockIdentity
	Port  uint16
}

func (p PortIdentity) String() string { return fmt.Sprintf("%s-%d", p.Clock, p.Port) }

// Compare orders port identities as 80-bit unsigned integers.
func (p PortIdentity) Compare(o PortIdentity) int {
	if c := p.Clock.Compare(o.Clock); c != 0 {
		return c
	}
	switch {
	case p.Port < o.Port:
		return -1
	case p.Port > o.Port:
		return 1
	}
	return 0
}

// WildcardPort addresses every port of every clock.
var WildcardPort = PortIdentity{AllOnes, 0xffff}

func getPortID(b []byte) PortIdentity {
	var p PortIdentity
	copy(p.Clock[:], b[:8])
	p.Port = binary.BigEndian.Uint16(b[8:10])
	return p
}

func putPortID(b []byte, p PortIdentity) {
	copy(b[:8], p.Clock[:])
	binary.BigEndian.PutUint16(b[8:10], p.Port)
}

// Timestamp is a PTP timestamp: 48-bit seconds and nanoseconds since the
// epoch of the timescale (the PTP epoch for the PTP timescale).
type Timestamp struct {
	Seconds     uint64 // 48 bits on the wire
	Nanoseconds uint32 // < 1e9
}

// TimestampOf converts a time to a Timestamp on the same epoch as Unix
// time (times before 1970 give the zero Timestamp).
func TimestampOf(t time.Time) Timestamp {
	if t.Unix() < 0 {
		return Timestamp{}
	}
	return Timestamp{Seconds: uint64(t.Unix()) & (1<<48 - 1), Nanoseconds: uint32(t.Nanosecond())}
}

// Time is the Timestamp as a time.Time on the Unix epoch.
func (t Timestamp) Time() time.Time { return time.Unix(int64(t.Seconds), int64(t.Nanoseconds)) }

// IsZero says whether both fields are zero.
func (t Timestamp) IsZero() bool { return t.Seconds == 0 && t.Nanoseconds == 0 }

func getTS(b []byte) (Timestamp, error) {
	hi := uint64(binary.BigEndian.Uint16(b[0:2]))
	lo := uint64(binary.BigEndian.Uint32(b[2:6]))
	t := Timestamp{Seconds: hi<<32 | lo, Nanoseconds: binary.BigEndian.Uint32(b[6:10])}
	if t.Nanoseconds >= 1e9 {
		return t, fmt.Errorf("%w: timestamp nanoseconds %d", ErrField, t.Nanoseconds)
	}
	return t, nil
}

func putTS(b []byte, t Timestamp) {
	binary.BigEndian.PutUint16(b[0:2], uint16(t.Seconds>>32))
	binary.BigEndian.PutUint32(b[2:6], uint32(t.Seconds))
	binary.BigEndian.PutUint32(b[6:10], t.Nanoseconds)
}

// TimeInterval is a PTP TimeInterval: nanoseconds scaled by 2^16.
type TimeInterval int64

// Duration converts to a time.Duration (sub-nanoseconds truncated toward
// zero).
func (ti TimeInterval) Duration() time.Duration { return time.Duration(int64(ti) / 65536) }

// Interval converts a duration to a TimeInterval (saturating).
func Interval(d time.Duration) TimeInterval {
	const lim = 1<<47 - 1
	switch {
	case d > lim:
		return TimeInterval(int64(lim) << 16)
	case d < -lim:
		return TimeInterval(-int64(lim) << 16)
	}
	return TimeInterval(int64(d) << 16)
}

// ClockQuality is clockClass, clockAccuracy and offsetScaledLogVariance.
type ClockQuality struct {
	Class                   uint8
	Accuracy                uint8
	OffsetScaledLogVariance uint16
}

func getQuality(b []byte) ClockQuality {
	return ClockQuality{Class: b[0], Accuracy: b[1], OffsetScaledLogVariance: binary.BigEndian.Uint16(b[2:4])}
}

func putQuality(b []byte, q ClockQuality) {
	b[0], b[1] = q.Class, q.Accuracy
	binary.BigEndian.PutUint16(b[2:4], q.OffsetScaledLogVariance)
}

// Header is the common header of every PTP message (1588-2019 §13.3).
type Header struct {
	MajorSdoID   uint8 // 4 bits (transportSpecific in 2008)
	Type         MessageType
	MinorVersion uint8 // 4 bits: 1 for 1588-2019
	Version      uint8 // 4 bits: 2
	Length       uint16
	Domain       uint8
	MinorSdoID   uint8
	Flags        uint16
	Correction   TimeInterval
	TypeSpecific uint32
	Source       PortIdentity
	Sequence     uint16
	Control      uint8
	LogInterval  int8
}

// ParseHeader decodes the common header and checks the version and the
// length: the datagram may be longer than messageLength (Ethernet padding,
// and the 2-octet UDPv6 trailer) but not shorter.
func ParseHeader(b []byte) (Header, error) {
	var h Header
	if len(b) < HeaderLen {
		return h, fmt.Errorf("%w: %d octets, the header alone is %d", ErrShort, len(b), HeaderLen)
	}
	if len(b) > maxMessageLen {
		return h, fmt.Errorf("%w: %d octets", ErrLong, len(b))
	}
	h.MajorSdoID = b[0] >> 4
	h.Type = MessageType(b[0] & 0x0f)
	h.MinorVersion = b[1] >> 4
	h.Version = b[1] & 0x0f
	h.Length = binary.BigEndian.Uint16(b[2:4])
	h.Domain = b[4]
	h.MinorSdoID = b[5]
	h.Flags = binary.BigEndian.Uint16(b[6:8])
	h.Correction = TimeInterval(binary.BigEndian.Uint64(b[8:16]))
	h.TypeSpecific = binary.BigEndian.Uint32(b[16:20])
	h.Source = getPortID(b[20:30])
	h.Sequence = binary.BigEndian.Uint16(b[30:32])
	h.Control = b[32]
	h.LogInterval = int8(b[33])
	if h.Version != 2 {
		return h, fmt.Errorf("%w: versionPTP %d.%d", ErrVersion, h.Version, h.MinorVersion)
	}
	if int(h.Length) < HeaderLen || int(h.Length) > len(b) {
		return h, fmt.Errorf("%w: messageLength %d, datagram %d octets", ErrLength, h.Length, len(b))
	}
	return h, nil
}

// put writes the header into b[:HeaderLen]; Length must already be set.
func (h *Header) put(b []byte) {
	b[0] = h.MajorSdoID<<4 | uint8(h.Type)&0x0f
	minor := h.MinorVersion
	b[1] = minor<<4 | 2
	binary.BigEndian.PutUint16(b[2:4], h.Length)
	b[4] = h.Domain
	b[5] = h.MinorSdoID
	binary.BigEndian.PutUint16(b[6:8], h.Flags)
	binary.BigEndian.PutUint64(b[8:16], uint64(h.Correction))
	binary.BigEndian.PutUint32(b[16:20], h.TypeSpecific)
	putPortID(b[20:30], h.Source)
	binary.BigEndian.PutUint16(b[30:32], h.Sequence)
	b[32] = h.Type.control()
	b[33] = uint8(h.LogInterval)
}

// Message is any decoded PTP message.
type Message interface {
	Hdr() *Header
	// MarshalTo encodes the message into b (which must have room: at
	// most MaxLen octets) and returns the length; it sets Length and the
	// message type in the header.
	MarshalTo(b []byte) (int, error)
}

// Sync, Delay_Req and Follow_Up carry one timestamp: originTimestamp for
// Sync and Delay_Req, preciseOriginTimestamp for Follow_Up.
type Sync struct {
	Header
	Origin Timestamp
	TLVs   []TLV
}

// DelayReq is Delay_Req.
type DelayReq struct {
	Header
	Origin Timestamp
	TLVs   []TLV
}

// FollowUp is Follow_Up.
type FollowUp struct {
	Header
	PreciseOrigin Timestamp
	TLVs          []TLV
}

// DelayResp is Delay_Resp.
type DelayResp struct {
	Header
	Receive    Timestamp
	Requesting PortIdentity
	TLVs       []TLV
}

// PdelayReq is Pdelay_Req (its 10 reserved octets are sent as zero).
type PdelayReq struct {
	Header
	Origin Timestamp
	TLVs   []TLV
}

// PdelayResp is Pdelay_Resp.
type PdelayResp struct {
	Header
	RequestReceipt Timestamp
	Requesting     PortIdentity
	TLVs           []TLV
}

// PdelayRespFollowUp is Pdelay_Resp_Follow_Up.
type PdelayRespFollowUp struct {
	Header
	ResponseOrigin Timestamp
	Requesting     PortIdentity
	TLVs           []TLV
}

// Announce is Announce (1588-2019 §13.5).
type Announce struct {
	Header
	Origin           Timestamp
	CurrentUTCOffset int16
	GMPriority1      uint8
	GMQuality        ClockQuality
	GMPriority2      uint8
	GMIdentity       ClockIdentity
	StepsRemoved     uint16
	TimeSource       uint8
	TLVs             []TLV
}

// Signaling is Signaling (1588-2019 §13.12): a target and TLVs.
type Signaling struct {
	Header
	Target PortIdentity
	TLVs   []TLV
}

// Hdr returns the header of each message type.
func (m *Sync) Hdr() *Header               { return &m.Header }
func (m *DelayReq) Hdr() *Header           { return &m.Header }
func (m *FollowUp) Hdr() *Header           { return &m.Header }
func (m *DelayResp) Hdr() *Header          { return &m.Header }
func (m *PdelayReq) Hdr() *Header          { return &m.Header }
func (m *PdelayResp) Hdr() *Header         { return &m.Header }
func (m *PdelayRespFollowUp) Hdr() *Header { return &m.Header }
func (m *Announce) Hdr() *Header           { return &m.Header }
func (m *Signaling) Hdr() *Header          { return &m.Header }
func (m *Management) Hdr() *Header         { return &m.Header }

// MaxLen is the largest message MarshalTo writes.
const MaxLen = maxMessageLen

func begin(b []byte, h *Header, t MessageType, fixed int, tlvs []TLV) (int, error) {
	n := fixed + tlvLen(tlvs)
	if n > maxMessageLen {
		return 0, fmt.Errorf("%w: %d octets", ErrLong, n)
	}
	if len(b) < n {
		return 0, fmt.Errorf("%w: buffer of %d octets for a %d-octet message", ErrShort, len(b), n)
	}
	clear(b[:n])
	h.Type = t
	h.Length = uint16(n)
	h.put(b)
	if err := putTLVs(b[fixed:n], tlvs); err != nil {
		return 0, err
	}
	return n, nil
}

// MarshalTo encodes the message.
func (m *Sync) MarshalTo(b []byte) (int, error) {
	n, err := begin(b, &m.Header, MsgSync, SyncLen, m.TLVs)
	if err == nil {
		putTS(b[HeaderLen:], m.Origin)
	}
	return n, err
}

// MarshalTo encodes the message.
func (m *DelayReq) MarshalTo(b []byte) (int, error) {
	n, err := begin(b, &m.Header, MsgDelayReq, DelayReqLen, m.TLVs)
	if err == nil {
		putTS(b[HeaderLen:], m.Origin)
	}
	return n, err
}

// MarshalTo encodes the message.
func (m *FollowUp) MarshalTo(b []byte) (int, error) {
	n, err := begin(b, &m.Header, MsgFollowUp, FollowUpLen, m.TLVs)
	if err == nil {
		putTS(b[HeaderLen:], m.PreciseOrigin)
	}
	return n, err
}

// MarshalTo encodes the message.
func (m *DelayResp) MarshalTo(b []byte) (int, error) {
	n, err := begin(b, &m.Header, MsgDelayResp, DelayRespLen, m.TLVs)
	if err == nil {
		putTS(b[HeaderLen:], m.Receive)
		putPortID(b[HeaderLen+10:], m.Requesting)
	}
	return n, err
}

// MarshalTo encodes the message.
func (m *PdelayReq) MarshalTo(b []byte) (int, error) {
	n, err := begin(b, &m.Header, MsgPdelayReq, PdelayLen, m.TLVs)
	if err == nil {
		putTS(b[HeaderLen:], m.Origin)
	}
	return n, err
}

// MarshalTo encodes the message.
func (m *PdelayResp) MarshalTo(b []byte) (int, error) {
	n, err := begin(b, &m.Header, MsgPdelayResp, PdelayLen, m.TLVs)
	if err == nil {
		putTS(b[HeaderLen:], m.RequestReceipt)
		putPortID(b[HeaderLen+10:], m.Requesting)
	}
	return n, err
}

// MarshalTo encodes the message.
func (m *PdelayRespFollowUp) MarshalTo(b []byte) (int, error) {
	n, err := begin(b, &m.Header, MsgPdelayRespFollowUp, PdelayLen, m.TLVs)
	if err == nil {
		putTS(b[HeaderLen:], m.ResponseOrigin)
		putPortID(b[HeaderLen+10:], m.Requesting)
	}
	return n, err
}

// MarshalTo encodes the message.
func (m *Announce) MarshalTo(b []byte) (int, error) {
	n, err := begin(b, &m.Header, MsgAnnounce, AnnounceLen, m.TLVs)
	if err == nil {
		p := b[HeaderLen:]
		putTS(p, m.Origin)
		binary.BigEndian.PutUint16(p[10:12], uint16(m.CurrentUTCOffset))
		p[13] = m.GMPriority1
		putQuality(p[14:18], m.GMQuality)
		p[18] = m.GMPriority2
		copy(p[19:27], m.GMIdentity[:])
		binary.BigEndian.PutUint16(p[27:29], m.StepsRemoved)
		p[29] = m.TimeSource
	}
	return n, err
}

// MarshalTo encodes the message.
func (m *Signaling) MarshalTo(b []byte) (int, error) {
	n, err := begin(b, &m.Header, MsgSignaling, SignalingLen, m.TLVs)
	if err == nil {
		putPortID(b[HeaderLen:], m.Target)
	}
	return n, err
}

// Parse decodes any PTP message. The returned message does not alias b
// (TLV values are copied).
func Parse(b []byte) (Message, error) {
	h, err := ParseHeader(b)
	if err != nil {
		return nil, err
	}
	b = b[:h.Length]
	need := func(n int) error {
		if len(b) < n {
			return fmt.Errorf("%w: %s of %d octets, at least %d needed", ErrShort, h.Type, len(b), n)
		}
		return nil
	}
	switch h.Type {
	case MsgSync, MsgDelayReq, MsgFollowUp, MsgPdelayReq:
		fixed := SyncLen
		if h.Type == MsgPdelayReq {
			fixed = PdelayLen
		}
		if err := need(fixed); err != nil {
			return nil, err
		}
		ts, err := getTS(b[HeaderLen:])
		if err != nil {
			return nil, err
		}
		tlvs, err := parseTLVs(b[fixed:])
		if err != nil {
			return nil, err
		}
		switch h.Type {
		case MsgSync:
			return &Sync{Header: h, Origin: ts, TLVs: tlvs}, nil
		case MsgDelayReq:
			return &DelayReq{Header: h, Origin: ts, TLVs: tlvs}, nil
		case MsgFollowUp:
			return &FollowUp{Header: h, PreciseOrigin: ts, TLVs: tlvs}, nil
		}
		return &PdelayReq{Header: h, Origin: ts, TLVs: tlvs}, nil
	case MsgDelayResp, MsgPdelayResp, MsgPdelayRespFollowUp:
		if err := need(DelayRespLen); err != nil {
			return nil, err
		}
		ts, err := getTS(b[HeaderLen:])
		if err != nil {
			return nil, err
		}
		req := getPortID(b[HeaderLen+10:])
		tlvs, err := parseTLVs(b[DelayRespLen:])
		if err != nil {
			return nil, err
		}
		switch h.Type {
		case MsgDelayResp:
			return &DelayResp{Header: h, Receive: ts, Requesting: req, TLVs: tlvs}, nil
		case MsgPdelayResp:
			return &PdelayResp{Header: h, RequestReceipt: ts, Requesting: req, TLVs: tlvs}, nil
		}
		return &PdelayRespFollowUp{Header: h, ResponseOrigin: ts, Requesting: req, TLVs: tlvs}, nil
	case MsgAnnounce:
		if err := need(AnnounceLen); err != nil {
			return nil, err
		}
		p := b[HeaderLen:]
		ts, err := getTS(p)
		if err != nil {
			return nil, err
		}
		a := &Announce{Header: h, Origin: ts}
		a.CurrentUTCOffset = int16(binary.BigEndian.Uint16(p[10:12]))
		a.GMPriority1 = p[13]
		a.GMQuality = getQuality(p[14:18])
		a.GMPriority2 = p[18]
		copy(a.GMIdentity[:], p[19:27])
		a.StepsRemoved = binary.BigEndian.Uint16(p[27:29])
		a.TimeSource = p[29]
		if a.TLVs, err = parseTLVs(b[AnnounceLen:]); err != nil {
			return nil, err
		}
		return a, nil
	case MsgSignaling:
		if err := need(SignalingLen); err != nil {
			return nil, err
		}
		s := &Signaling{Header: h, Target: getPortID(b[HeaderLen:])}
		if s.TLVs, err = parseTLVs(b[SignalingLen:]); err != nil {
			return nil, err
		}
		return s, nil
	case MsgManagement:
		return parseManagement(h, b)
	}
	return nil, fmt.Errorf("%w: %s", ErrType, h.Type)
}
