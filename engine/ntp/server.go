package ntp

import (
	"time"

	"gnomon.dev/gnomon/engine/sample"
)

// ServerState is what a server puts in its replies about itself.
type ServerState struct {
	Leap sample.Leap
	// Stratum is our stratum; 0 or >= 16 means unsynchronized. Then (and
	// when Leap is LeapUnsync) replies carry leap 3 and stratum 16, the
	// RFC 5905 "unsynchronized" stratum, as NTPsec's ntpd sends it.
	// (chronyd 4.3 sends leap 3 with stratum 0 instead, because it maps
	// every stratum >= 16 to 0 on the wire; a stratum-0 reply reads as a
	// Kiss-o'-Death, so we do not copy that.)
	Stratum        uint8
	Precision      int8
	RootDelay      time.Duration
	RootDispersion time.Duration
	ReferenceID    uint32
	// ReferenceTime is when the clock was last updated; the zero
	// time.Time goes on the wire as the zero Timestamp.
	ReferenceTime time.Time
	// MinPoll is the smallest poll exponent the reply suggests to the
	// client: the service sets it from the rate-limit interval (as
	// chronyd does) so that clients are asked to poll no faster than they
	// will be answered. The zero value means 1 s.
	MinPoll int8
}

// MaxReplyPoll is the largest poll exponent a reply suggests (RFC 5905
// MAXPOLL, 2^17 s = 36 h).
const MaxReplyPoll = 17

// Respond builds the reply to req into resp. rx is when the request arrived
// (local time), tx when the reply will leave (taken as late as possible by
// the caller).
//
// It returns false, and leaves resp alone, for anything that is not a
// mode-3 client request of version 1..4: in particular symmetric, broadcast
// and server packets, and mode 6/7 control/private packets, which are never
// answered (they are the classic amplification vectors).
//
// The reply echoes the version, has mode 4, and suggests the request's poll
// clamped to [st.MinPoll, MaxReplyPoll]. Origin is the request's transmit
// timestamp, receive is rx, transmit is tx. Leap, stratum, precision, root
// delay and dispersion, reference ID and time come from st, except that an
// unsynchronized server (st.Leap == LeapUnsync, st.Stratum 0 or >= 16)
// answers with leap 3 and stratum 16.
func Respond(req *Header, rx, tx time.Time, st *ServerState, resp *Header) bool {
	if req.Mode != ModeClient || req.Version < 1 || req.Version > 4 {
		return false
	}
	leap, stratum := st.Leap, st.Stratum
	if leap == sample.LeapUnsync || stratum == 0 || stratum >= maxStratum {
		leap, stratum = sample.LeapUnsync, maxStratum
	}
	var ref Timestamp
	if !st.ReferenceTime.IsZero() {
		ref = TimestampFromTime(st.ReferenceTime)
	}
	*resp = Header{
		Leap:           leap & 3,
		Version:        req.Version,
		Mode:           ModeServer,
		Stratum:        stratum,
		Poll:           clampReplyPoll(req.Poll, st.MinPoll),
		Precision:      st.Precision,
		RootDelay:      ShortFromDuration(st.RootDelay),
		RootDispersion: ShortFromDuration(st.RootDispersion),
		ReferenceID:    st.ReferenceID,
		ReferenceTime:  ref,
		OriginTime:     req.TransmitTime,
		ReceiveTime:    TimestampFromTime(rx),
		TransmitTime:   TimestampFromTime(tx),
	}
	return true
}

// RespondKiss fills resp with a stratum-0 Kiss-o'-Death reply carrying code
// (KissRate, KissDeny, KissRstr, ...) to req, which the caller has already
// found worth answering (Respond would return true for it).
//
// Like ntpd's KoD, it reveals nothing about our clock: leap 3, stratum 0,
// the code as reference ID, and every other field echoed from the request,
// with origin, receive and transmit all set to the request's transmit
// timestamp (so the client's origin check passes and there is no time to
// take from it). Version is echoed, mode is 4, poll is clamped to
// [0, MaxReplyPoll] like Respond's.
func RespondKiss(req *Header, code uint32, resp *Header) {
	version := req.Version
	if version < 1 || version > 4 {
		version = 4
	}
	*resp = Header{
		Leap:           sample.LeapUnsync,
		Version:        version,
		Mode:           ModeServer,
		Stratum:        0,
		Poll:           clampReplyPoll(req.Poll, 0),
		Precision:      req.Precision,
		RootDelay:      req.RootDelay,
		RootDispersion: req.RootDispersion,
		ReferenceID:    code,
		ReferenceTime:  req.ReferenceTime,
		OriginTime:     req.TransmitTime,
		ReceiveTime:    req.TransmitTime,
		TransmitTime:   req.TransmitTime,
	}
}

func clampReplyPoll(p, lo int8) int8 {
	if lo > MaxReplyPoll {
		lo = MaxReplyPoll
	}
	switch {
	case p < lo:
		return lo
	case p > MaxReplyPoll:
		return MaxReplyPoll
	}
	return p
}
