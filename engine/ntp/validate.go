package ntp

import (
	"strconv"
	"time"

	"gnomon.dev/gnomon/engine/sample"
)

// Kiss-o'-Death codes (RFC 5905 section 7.4, RFC 8915 section 5.7): a
// stratum-0 reply carries four ASCII characters in ReferenceID.
const (
	KissRate uint32 = 0x52415445 // RATE: poll less often
	KissDeny uint32 = 0x44454E59 // DENY: access denied, stop
	KissRstr uint32 = 0x52535452 // RSTR: access restricted, stop
	KissNTSN uint32 = 0x4E54534E // NTSN: NTS cookie not accepted, get new cookies
)

// KissCodeString renders a kiss code (or any reference ID meant as ASCII)
// for logs: the four characters if all are printable ASCII, trailing NUL
// bytes dropped (so "GPS\x00" is "GPS"); otherwise "0x" and eight hex
// digits. The result never contains control or non-ASCII bytes.
func KissCodeString(code uint32) string {
	b := [4]byte{byte(code >> 24), byte(code >> 16), byte(code >> 8), byte(code)}
	n := 4
	for n > 0 && b[n-1] == 0 {
		n--
	}
	if n == 0 {
		return hexCode(code)
	}
	for _, c := range b[:n] {
		if c < 0x20 || c > 0x7e {
			return hexCode(code)
		}
	}
	return string(b[:n])
}

func hexCode(code uint32) string {
	s := strconv.FormatUint(uint64(code), 16)
	for len(s) < 8 {
		s = "0" + s
	}
	return "0x" + s
}

// KissError is a Kiss-o'-Death reply (stratum 0) to our request. Code is the
// kiss code from ReferenceID. The client reacts per code: RATE means
// increase the poll interval; DENY and RSTR mean stop using the server; NTSN
// means fetch new NTS cookies.
type KissError struct{ Code uint32 }

// Error returns e.g. "kiss-o'-death RATE".
func (e *KissError) Error() string { return "kiss-o'-death " + KissCodeString(e.Code) }

// CheckReply validates a server's reply to our client request whose transmit
// field was sent. The checks, in order (RFC 5905 sections 8 and 7.4):
//
//  1. mode must be ModeServer (ErrMode);
//  2. version must be 3 or 4 (ErrVersion);
//  3. OriginTime must equal sent (ErrOriginMismatch: bogus or replayed),
//     so that nothing below, KoD included, is believed from a packet that
//     is not an answer to our request;
//  4. stratum 0 with a non-zero ReferenceID is a Kiss-o'-Death: *KissError
//     carrying the code (RFC 5905 7.4);
//  5. ReceiveTime and TransmitTime must be non-zero (ErrZeroTimestamp);
//  6. leap 3 means unsynchronized (ErrUnsynchronized);
//  7. stratum 16 or more, or 0 without a kiss code (ErrStratum);
//  8. if maxRootDistance > 0, RootDelay/2 + RootDispersion must not exceed
//     it (ErrRootDistance).
//
// A stratum-0 reply whose ReferenceID is 0 carries no kiss code: it is what
// an unsynchronized chronyd sends (leap 3, stratum 0, reference ID 0; see
// testdata/chronyd-4.3-unsync-reply.hex), so it is reported as
// ErrUnsynchronized (or ErrStratum if leap is not 3), not as a KoD.
//
// It returns nil for a reply worth taking a sample from.
func CheckReply(h *Header, sent Timestamp, maxRootDistance time.Duration) error {
	switch {
	case h.Mode != ModeServer:
		return ErrMode
	case h.Version != 3 && h.Version != 4:
		return ErrVersion
	case h.OriginTime != sent:
		return ErrOriginMismatch
	case h.Stratum == 0 && h.ReferenceID != 0:
		return &KissError{Code: h.ReferenceID}
	case h.ReceiveTime.IsZero() || h.TransmitTime.IsZero():
		return ErrZeroTimestamp
	case h.Leap == sample.LeapUnsync:
		return ErrUnsynchronized
	case h.Stratum == 0 || h.Stratum >= maxStratum:
		return ErrStratum
	case maxRootDistance > 0 && h.RootDelay.Duration()/2+h.RootDispersion.Duration() > maxRootDistance:
		return ErrRootDistance
	}
	return nil
}

// maxStratum is the "unsynchronized" stratum of RFC 5905.
const maxStratum = 16
