package ptp

// Client-server PTP: unicast exchanges started by the client, with no
// negotiation and no per-client state on the server. Two layouts are
// spoken (docs/ptp.md#client-server-ptp-csptp says which and why):
//
//   - CSPTP1588_1, the layout of the IEEE P1588.1 draft as its public
//     implementation (erezgeva/csptp) speaks it: the client sends a Sync
//     carrying a CSPTP_REQUEST TLV and padded with a PAD TLV; the server
//     answers with a Sync carrying a CSPTP_RESPONSE TLV (the request's
//     ingress time and correctionField) and, when asked, a CSPTP_STATUS
//     TLV (the grandmaster's attributes), then a Follow_Up with the
//     Sync's precise transmit time. No reply is longer than its request.
//   - CSPTPSPTP, Meta's SPTP (facebook/time's sptp and ptp4u): the client
//     sends a Delay_Req (flags unicast and profileSpecific1); the server
//     answers with a Sync whose originTimestamp is the Delay_Req's
//     receive time, then an Announce whose originTimestamp is the Sync's
//     transmit time and whose correctionField is the Delay_Req's.
//
// Named as NTP names them: the client sends at a, the server receives at
// b and sends its reply at c, the client receives it at d. Offset (server
// minus client) = ((b−a−corrReq) − (d−c−corrResp))/2.

import (
	"encoding/binary"
	"errors"
	"fmt"
	"sort"
	"time"
)

// CSPTPVariant is the message layout of a client-server exchange.
type CSPTPVariant string

// The layouts.
const (
	CSPTP1588_1 CSPTPVariant = "1588.1"
	CSPTPSPTP   CSPTPVariant = "sptp"
)

// The CSPTP TLV types of the P1588.1 draft (values from the
// experimental range, as the draft's public implementation uses them;
// they may change when the standard is published), and SPTP's
// ALTERNATE_RESPONSE_PORT.
const (
	TLVCSPTPRequest          TLVType = 0xff00
	TLVCSPTPResponse         TLVType = 0xff01
	TLVCSPTPStatus           TLVType = 0xff02
	TLVAlternateResponsePort TLVType = 0x2007
)

// csptpRequestStatus is tlvRequestFlags[0] bit 0: the client asks for a
// CSPTP_STATUS TLV in the Sync.
const csptpRequestStatus = 0x01

// CSPTPRequestLen is the size the client pads its 1588.1 request to: room
// for the Sync with CSPTP_RESPONSE and an IPv6 CSPTP_STATUS TLV, so the
// server's answer never has to be longer than the request.
const CSPTPRequestLen = SyncLen + 28 + 48 + 4

// ErrCSPTP is wrapped by the errors of CSPTP-specific checks.
var ErrCSPTP = errors.New("ptp: not a client-server PTP message")

// CSPTPStatusTLV is the content of a CSPTP_STATUS TLV (the grandmaster
// attributes a client needs to select among servers, and the server's
// parent's address).
type CSPTPStatusTLV struct {
	GMPriority1      uint8
	GMQuality        ClockQuality
	GMPriority2      uint8
	StepsRemoved     uint16
	CurrentUTCOffset int16
	GMIdentity       ClockIdentity
	Parent           PortAddress
}

// PortAddress is a PTP PortAddress for UDP: networkProtocol 1 (IPv4, 4
// octets) or 2 (IPv6, 16 octets); the zero value is none. (The engine
// does not import net/netip; the service converts.)
type PortAddress struct {
	Protocol uint16
	Addr     [16]byte // the first 4 octets for IPv4
}

// IPv4Address and IPv6Address make PortAddresses.
func IPv4Address(a [4]byte) PortAddress {
	p := PortAddress{Protocol: 1}
	copy(p.Addr[:], a[:])
	return p
}

// IPv6Address makes an IPv6 PortAddress.
func IPv6Address(a [16]byte) PortAddress { return PortAddress{Protocol: 2, Addr: a} }

func (p PortAddress) octets() []byte {
	switch p.Protocol {
	case 1:
		return p.Addr[:4]
	case 2:
		return p.Addr[:]
	}
	return nil
}

func (s CSPTPStatusTLV) tlv() TLV {
	addr, proto := s.Parent.octets(), s.Parent.Protocol
	if addr == nil {
		proto = 0
	}
	v := make([]byte, 6+1+4+1+2+2+8+4+len(addr))
	p := v[6:]
	p[0] = s.GMPriority1
	putQuality(p[1:5], s.GMQuality)
	p[5] = s.GMPriority2
	binary.BigEndian.PutUint16(p[6:8], s.StepsRemoved)
	binary.BigEndian.PutUint16(p[8:10], uint16(s.CurrentUTCOffset))
	copy(p[10:18], s.GMIdentity[:])
	binary.BigEndian.PutUint16(p[18:20], proto)
	binary.BigEndian.PutUint16(p[20:22], uint16(len(addr)))
	copy(p[22:], addr)
	return TLV{Type: TLVCSPTPStatus, Value: v}
}

// ParseCSPTPStatus decodes a CSPTP_STATUS TLV's value.
func ParseCSPTPStatus(v []byte) (CSPTPStatusTLV, error) {
	var s CSPTPStatusTLV
	if len(v) < 28 {
		return s, fmt.Errorf("%w: CSPTP_STATUS of %d octets, at least 28 needed", ErrTLV, len(v))
	}
	p := v[6:]
	s.GMPriority1 = p[0]
	s.GMQuality = getQuality(p[1:5])
	s.GMPriority2 = p[5]
	s.StepsRemoved = binary.BigEndian.Uint16(p[6:8])
	s.CurrentUTCOffset = int16(binary.BigEndian.Uint16(p[8:10]))
	copy(s.GMIdentity[:], p[10:18])
	proto := binary.BigEndian.Uint16(p[18:20])
	n := int(binary.BigEndian.Uint16(p[20:22]))
	if 22+n > len(p) {
		return s, fmt.Errorf("%w: CSPTP_STATUS address of %d octets past the end", ErrTLV, n)
	}
	switch {
	case proto == 1 && n == 4:
		s.Parent = IPv4Address([4]byte(p[22:26]))
	case proto == 2 && n == 16:
		s.Parent = IPv6Address([16]byte(p[22:38]))
	}
	return s, nil
}

func csptpResponseTLV(b Timestamp, corr TimeInterval) TLV {
	v := make([]byte, 6+10+8)
	putTS(v[6:16], b)
	binary.BigEndian.PutUint64(v[16:24], uint64(corr))
	return TLV{Type: TLVCSPTPResponse, Value: v}
}

// ParseCSPTPResponse decodes a CSPTP_RESPONSE TLV's value: the request's
// ingress timestamp at the server and its correctionField.
func ParseCSPTPResponse(v []byte) (Timestamp, TimeInterval, error) {
	if len(v) < 24 {
		return Timestamp{}, 0, fmt.Errorf("%w: CSPTP_RESPONSE of %d octets, 24 needed", ErrTLV, len(v))
	}
	ts, err := getTS(v[6:16])
	return ts, TimeInterval(binary.BigEndian.Uint64(v[16:24])), err
}

func padTLV(n int) TLV {
	if n < 4 {
		n = 4
	}
	return TLV{Type: TLVPad, Value: make([]byte, n-4)}
}

// ---------------------------------------------------------------- server

// CSPTPServerConfig is what a server tells its clients about its time.
type CSPTPServerConfig struct {
	Identity  ClockIdentity
	Domain    uint8
	Priority1 uint8 // default 128
	Priority2 uint8 // default 128
	Quality   ClockQuality
	// UTCOffset is TAI−UTC in seconds (default 37). With PTPTimescale the
	// server's timestamps are TAI (its clock plus UTCOffset) and flagged
	// so, as ptp4u sends them; otherwise they are its clock's (UTC).
	UTCOffset    int16
	PTPTimescale bool
	TimeSource   uint8
	StepsRemoved uint16
}

// CSPTPReply is one answer being built: the first message is sent at
// once; Second builds the other from the first's transmit time.
type CSPTPReply struct {
	Variant CSPTPVariant
	// ToGeneral: send the second message to the client's general port
	// (320) rather than to the port the request came from (SPTP with a
	// client port number of 10 or less, as ptp4u does).
	ToGeneral bool
	seq       uint16
	domain    uint8
	reqCorr   TimeInterval
	maxLen    int
}

// CSPTPResponder answers client-server PTP requests without keeping any
// state about clients. Each server worker has its own (it reuses
// buffers); it is not safe for concurrent use.
type CSPTPResponder struct {
	cfg CSPTPServerConfig
}

// NewCSPTPResponder makes a responder.
func NewCSPTPResponder(cfg CSPTPServerConfig) *CSPTPResponder {
	if cfg.Priority1 == 0 {
		cfg.Priority1 = 128
	}
	if cfg.Priority2 == 0 {
		cfg.Priority2 = 128
	}
	if cfg.UTCOffset == 0 {
		cfg.UTCOffset = 37
	}
	if cfg.TimeSource == 0 {
		cfg.TimeSource = TimeSourceInternalOsc
	}
	return &CSPTPResponder{cfg: cfg}
}

func (r *CSPTPResponder) stamp(t time.Time) Timestamp {
	if r.cfg.PTPTimescale {
		t = t.Add(time.Duration(r.cfg.UTCOffset) * time.Second)
	}
	return TimestampOf(t)
}

func (r *CSPTPResponder) flags() uint16 {
	f := FlagUnicast | FlagUTCOffsetValid
	if r.cfg.PTPTimescale {
		f |= FlagPTPTimescale
	}
	return f
}

// Answer decodes a request received at rx (the server clock's reading)
// and writes the first reply into out, with now (the server's clock just
// before sending) as its rough transmit time. local is the address the
// request came to (for the CSPTP_STATUS TLV). It returns the length
// written; an error says why the request is not answered.
func (r *CSPTPResponder) Answer(req []byte, rx, now time.Time, local PortAddress, out []byte) (int, CSPTPReply, error) {
	var rep CSPTPReply
	m, err := Parse(req)
	if err != nil {
		return 0, rep, err
	}
	h := m.Hdr()
	rep.seq, rep.domain, rep.reqCorr = h.Sequence, h.Domain, h.Correction
	if h.Domain != r.cfg.Domain {
		return 0, rep, fmt.Errorf("%w: domain %d, serving %d", ErrCSPTP, h.Domain, r.cfg.Domain)
	}
	hdr := Header{Domain: r.cfg.Domain, Flags: r.flags() | FlagTwoStep, Source: PortIdentity{r.cfg.Identity, 1},
		Sequence: h.Sequence, LogInterval: 0x7f, MinorVersion: 1}
	switch m := m.(type) {
	case *Sync:
		// 1588.1: the request carries CSPTP_REQUEST.
		var reqFlags byte
		found := false
		for _, t := range m.TLVs {
			if t.Type == TLVCSPTPRequest && len(t.Value) >= 4 {
				reqFlags, found = t.Value[0], true
			}
		}
		if !found {
			return 0, rep, fmt.Errorf("%w: Sync without a CSPTP_REQUEST TLV", ErrCSPTP)
		}
		rep.Variant, rep.maxLen = CSPTP1588_1, int(h.Length)
		tlvs := []TLV{csptpResponseTLV(r.stamp(rx), h.Correction)}
		if reqFlags&csptpRequestStatus != 0 {
			st := CSPTPStatusTLV{GMPriority1: r.cfg.Priority1, GMQuality: r.cfg.Quality, GMPriority2: r.cfg.Priority2,
				StepsRemoved: r.cfg.StepsRemoved, CurrentUTCOffset: r.cfg.UTCOffset, GMIdentity: r.cfg.Identity, Parent: local}
			if t := st.tlv(); SyncLen+tlvLen(tlvs)+4+len(t.Value) <= rep.maxLen {
				tlvs = append(tlvs, t)
			}
		}
		if n := SyncLen + tlvLen(tlvs); n > rep.maxLen {
			return 0, rep, fmt.Errorf("%w: request of %d octets is shorter than the %d-octet answer", ErrCSPTP, rep.maxLen, n)
		}
		s := Sync{Header: hdr, Origin: r.stamp(now), TLVs: tlvs}
		n, err := s.MarshalTo(out)
		return n, rep, err
	case *DelayReq:
		if h.Flags&FlagUnicast == 0 {
			return 0, rep, fmt.Errorf("%w: multicast Delay_Req", ErrCSPTP)
		}
		rep.Variant = CSPTPSPTP
		rep.ToGeneral = h.Source.Port <= 10
		s := Sync{Header: hdr, Origin: r.stamp(rx)}
		n, err := s.MarshalTo(out)
		return n, rep, err
	}
	return 0, rep, fmt.Errorf("%w: %s", ErrCSPTP, h.Type)
}

// Second writes the second message of the reply (1588.1: Follow_Up;
// SPTP: Announce) given the first one's transmit time tx.
func (r *CSPTPResponder) Second(rep *CSPTPReply, tx time.Time, out []byte) (int, error) {
	hdr := Header{Domain: r.cfg.Domain, Flags: r.flags(), Source: PortIdentity{r.cfg.Identity, 1},
		Sequence: rep.seq, LogInterval: 0x7f, MinorVersion: 1}
	if rep.Variant == CSPTP1588_1 {
		f := FollowUp{Header: hdr, PreciseOrigin: r.stamp(tx)}
		return f.MarshalTo(out)
	}
	hdr.Correction = rep.reqCorr
	hdr.LogInterval = 0
	a := Announce{Header: hdr, Origin: r.stamp(tx), CurrentUTCOffset: r.cfg.UTCOffset, GMPriority1: r.cfg.Priority1,
		GMQuality: r.cfg.Quality, GMPriority2: r.cfg.Priority2, GMIdentity: r.cfg.Identity,
		StepsRemoved: r.cfg.StepsRemoved, TimeSource: r.cfg.TimeSource}
	return a.MarshalTo(out)
}

// ---------------------------------------------------------------- client

// CSPTPClientConfig configures a client of one server.
type CSPTPClientConfig struct {
	Variant  CSPTPVariant // default CSPTP1588_1
	Identity ClockIdentity
	// PortNumber is the client's port number. SPTP servers send the
	// Announce to the request's source port when it is above 10 (and to
	// port 320 otherwise); the default, 11, lets a client use one
	// unprivileged socket.
	PortNumber uint16
	Domain     uint8
	Interval   time.Duration // between requests (default 1 s)
	// Timeout: an exchange not complete after it is abandoned (default
	// the interval, at most 1 s).
	Timeout time.Duration
	// DelayFilter is the length of the path delay median filter
	// (default 5; 1 turns it off).
	DelayFilter int
}

// CSPTPCounters are what the client counted.
type CSPTPCounters struct {
	Sent, Received, Measurements uint64
	Malformed                    uint64 // did not decode
	Unmatched                    uint64 // no exchange waits for it
	Timeouts                     uint64 // exchanges abandoned
	Bad                          uint64 // complete but inconsistent (negative delay, ...)
}

// CSPTPStatus is the client's state, a value copy for views.
type CSPTPStatus struct {
	Variant      CSPTPVariant
	Server       PortIdentity
	GMIdentity   ClockIdentity
	GMPriority1  uint8
	GMQuality    ClockQuality
	GMPriority2  uint8
	StepsRemoved uint16
	UTCOffset    int16
	PTPTimescale bool
	Offset       time.Duration // newest, server minus client
	PathDelay    time.Duration
	LastSample   time.Time
	Counters     CSPTPCounters
}

type csptpExchange struct {
	active   bool
	seq      uint16
	started  time.Time
	a        time.Time // our transmit time
	haveA    bool
	d        time.Time // our receipt of the (first) reply
	haveD    bool
	b        Timestamp // server receipt of the request
	haveB    bool
	reqCorr  TimeInterval
	c        Timestamp // server transmit time
	haveC    bool
	respCorr TimeInterval
	fupCorr  TimeInterval
	twoStep  bool
	flags    uint16
	server   PortIdentity
	status   *CSPTPStatusTLV
	ann      *Announce
}

// CSPTPClient is the client side of client-server PTP with one server.
// Sans-IO: Poll says when to send, Receive and TxTimestamp take what came
// back. It is not safe for concurrent use.
type CSPTPClient struct {
	cfg    CSPTPClientConfig
	seq    uint16
	next   time.Time
	ex     csptpExchange
	delays []time.Duration
	st     CSPTPStatus
	buf    []byte
}

// NewCSPTPClient makes a client that sends its first request at now.
func NewCSPTPClient(cfg CSPTPClientConfig, now time.Time) (*CSPTPClient, error) {
	if cfg.Variant == "" {
		cfg.Variant = CSPTP1588_1
	}
	if cfg.Variant != CSPTP1588_1 && cfg.Variant != CSPTPSPTP {
		return nil, fmt.Errorf("ptp: unknown client-server variant %q (want %q or %q)", cfg.Variant, CSPTP1588_1, CSPTPSPTP)
	}
	if cfg.Identity == (ClockIdentity{}) || cfg.Identity == AllOnes {
		return nil, fmt.Errorf("ptp: clock identity %s is reserved", cfg.Identity)
	}
	if cfg.PortNumber == 0 {
		cfg.PortNumber = 11
	}
	if cfg.Interval <= 0 {
		cfg.Interval = time.Second
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = min(cfg.Interval, time.Second)
	}
	if cfg.DelayFilter <= 0 {
		cfg.DelayFilter = 5
	}
	return &CSPTPClient{cfg: cfg, next: now, st: CSPTPStatus{Variant: cfg.Variant}, buf: make([]byte, MaxLen)}, nil
}

// NextWake is when Poll next has something to do.
func (c *CSPTPClient) NextWake() time.Time {
	if c.ex.active && c.ex.started.Add(c.cfg.Timeout).Before(c.next) {
		return c.ex.started.Add(c.cfg.Timeout)
	}
	return c.next
}

// Status is a copy of the client's state.
func (c *CSPTPClient) Status() CSPTPStatus { return c.st }

// Poll abandons a late exchange and, when a request is due, returns it
// (an event message: the service reports its transmit time with
// TxTimestamp). The returned Data is valid until the next Poll.
func (c *CSPTPClient) Poll(now time.Time) (Send, bool) {
	if c.ex.active && !now.Before(c.ex.started.Add(c.cfg.Timeout)) {
		c.ex.active = false
		c.st.Counters.Timeouts++
	}
	if now.Before(c.next) {
		return Send{}, false
	}
	c.next = now.Add(c.cfg.Interval)
	c.seq++
	c.ex = csptpExchange{active: true, seq: c.seq, started: now}
	hdr := Header{Domain: c.cfg.Domain, Flags: FlagUnicast, Source: PortIdentity{c.cfg.Identity, c.cfg.PortNumber},
		Sequence: c.seq, LogInterval: 0x7f, MinorVersion: 1}
	var n int
	var err error
	typ := MsgSync
	if c.cfg.Variant == CSPTPSPTP {
		typ = MsgDelayReq
		hdr.Flags |= FlagProfile1
		m := DelayReq{Header: hdr}
		n, err = m.MarshalTo(c.buf)
	} else {
		tlvs := []TLV{{Type: TLVCSPTPRequest, Value: []byte{csptpRequestStatus, 0, 0, 0}}}
		tlvs = append(tlvs, padTLV(CSPTPRequestLen-SyncLen-tlvLen(tlvs)))
		m := Sync{Header: hdr, TLVs: tlvs}
		n, err = m.MarshalTo(c.buf)
	}
	if err != nil { // cannot happen: fixed sizes
		return Send{}, false
	}
	c.st.Counters.Sent++
	return Send{Data: c.buf[:n], Type: typ, Seq: c.seq, Event: true, WantTimestamp: true}, true
}

// TxTimestamp reports when the request with sequence seq left.
func (c *CSPTPClient) TxTimestamp(seq uint16, at time.Time) (*Measurement, bool) {
	if !c.ex.active || c.ex.seq != seq || c.ex.haveA {
		return nil, false
	}
	c.ex.a, c.ex.haveA = at, true
	return c.complete()
}

// Receive takes a datagram that arrived at rx (the client's clock) when
// the time is now. It returns a measurement when an exchange completes.
func (c *CSPTPClient) Receive(now time.Time, b []byte, rx time.Time) (*Measurement, bool, error) {
	if rx.IsZero() {
		rx = now
	}
	m, err := Parse(b)
	if err != nil {
		c.st.Counters.Malformed++
		return nil, false, err
	}
	c.st.Counters.Received++
	h := m.Hdr()
	if !c.ex.active || h.Sequence != c.ex.seq || h.Domain != c.cfg.Domain {
		c.st.Counters.Unmatched++
		return nil, false, nil
	}
	ex := &c.ex
	switch m := m.(type) {
	case *Sync:
		if ex.haveD {
			c.st.Counters.Unmatched++
			return nil, false, nil
		}
		ex.d, ex.haveD, ex.respCorr, ex.server, ex.flags = rx, true, h.Correction, h.Source, h.Flags
		ex.twoStep = h.Flags&FlagTwoStep != 0
		if c.cfg.Variant == CSPTPSPTP {
			ex.b, ex.haveB = m.Origin, true
			break
		}
		found := false
		for _, t := range m.TLVs {
			switch t.Type {
			case TLVCSPTPResponse:
				ts, corr, err := ParseCSPTPResponse(t.Value)
				if err != nil {
					c.st.Counters.Malformed++
					ex.active = false
					return nil, false, err
				}
				ex.b, ex.reqCorr, ex.haveB, found = ts, corr, true, true
			case TLVCSPTPStatus:
				if s, err := ParseCSPTPStatus(t.Value); err == nil {
					ex.status = &s
				}
			}
		}
		if !found {
			c.st.Counters.Malformed++
			ex.active = false
			return nil, false, fmt.Errorf("%w: Sync answer without CSPTP_RESPONSE", ErrCSPTP)
		}
		if !ex.twoStep {
			ex.c, ex.haveC = m.Origin, true
		}
	case *FollowUp:
		if c.cfg.Variant != CSPTP1588_1 || ex.haveC {
			c.st.Counters.Unmatched++
			return nil, false, nil
		}
		ex.c, ex.haveC = m.PreciseOrigin, true
		ex.fupCorr = h.Correction
	case *Announce:
		if c.cfg.Variant != CSPTPSPTP || ex.haveC {
			c.st.Counters.Unmatched++
			return nil, false, nil
		}
		ex.c, ex.haveC, ex.reqCorr = m.Origin, true, h.Correction
		a := *m
		ex.ann = &a
		ex.flags = h.Flags
	default:
		c.st.Counters.Unmatched++
		return nil, false, nil
	}
	meas, ok := c.complete()
	return meas, ok, nil
}

func (c *CSPTPClient) complete() (*Measurement, bool) {
	ex := &c.ex
	if !ex.active || !ex.haveA || !ex.haveB || !ex.haveC || !ex.haveD {
		return nil, false
	}
	if c.cfg.Variant == CSPTPSPTP && ex.ann == nil {
		return nil, false
	}
	ex.active = false
	// the server's timescale
	utc := c.st.UTCOffset
	ptpScale := ex.flags&FlagPTPTimescale != 0
	c.st.Server = ex.server
	if s := ex.status; s != nil {
		c.st.GMIdentity, c.st.GMPriority1, c.st.GMQuality, c.st.GMPriority2 = s.GMIdentity, s.GMPriority1, s.GMQuality, s.GMPriority2
		c.st.StepsRemoved, utc = s.StepsRemoved, s.CurrentUTCOffset
	}
	if a := ex.ann; a != nil {
		c.st.GMIdentity, c.st.GMPriority1, c.st.GMQuality, c.st.GMPriority2 = a.GMIdentity, a.GMPriority1, a.GMQuality, a.GMPriority2
		c.st.StepsRemoved, utc = a.StepsRemoved, a.CurrentUTCOffset
	}
	c.st.UTCOffset, c.st.PTPTimescale = utc, ptpScale
	shift := time.Duration(0)
	if ptpScale {
		shift = time.Duration(utc) * time.Second
	}
	b := ex.b.Time().Add(-shift)
	cc := ex.c.Time().Add(-shift)
	up := b.Sub(ex.a) - ex.reqCorr.Duration()
	down := ex.d.Sub(cc) - (ex.respCorr + ex.fupCorr).Duration()
	delay := (up + down) / 2
	if delay < 0 {
		c.st.Counters.Bad++
		return nil, false
	}
	c.delays = append(c.delays, delay)
	if len(c.delays) > c.cfg.DelayFilter {
		c.delays = c.delays[1:]
	}
	med := append([]time.Duration(nil), c.delays...)
	sort.Slice(med, func(i, j int) bool { return med[i] < med[j] })
	pd := med[len(med)/2]
	// offset from the downstream leg and the filtered delay, as SPTP and
	// ptp4l do: a delay outlier then does not move the offset.
	offset := pd - down
	c.st.Offset, c.st.PathDelay, c.st.LastSample = offset, pd, ex.d
	c.st.Counters.Measurements++
	m := Measurement{Time: ex.d, Offset: offset, PathDelay: pd}
	return &m, true
}
