// Package ntp is the NTP wire format (RFC 5905, RFC 7822 extension fields),
// reply checks, and server answers.
//
// Everything here is pure: Parse and MarshalTo work on caller-owned buffers
// without allocating, CheckReply and Respond take the times they need as
// arguments, and RateLimiter is driven by the time it is handed.
package ntp

import (
	"encoding/binary"
	"errors"
	"io"
	"strconv"

	"gnomon.dev/gnomon/engine/sample"
)

// HeaderLen is the length of the fixed NTP header.
const HeaderLen = 48

// Mode is the NTP association mode (RFC 5905 figure 10).
type Mode uint8

// The modes of RFC 5905. Control (6) and private (7) packets do not carry
// an NTP header; they are never answered.
const (
	ModeReserved         Mode = 0
	ModeSymmetricActive  Mode = 1
	ModeSymmetricPassive Mode = 2
	ModeClient           Mode = 3
	ModeServer           Mode = 4
	ModeBroadcast        Mode = 5
	ModeControl          Mode = 6
	ModePrivate          Mode = 7
)

func (m Mode) String() string {
	switch m {
	case ModeReserved:
		return "reserved"
	case ModeSymmetricActive:
		return "symmetric-active"
	case ModeSymmetricPassive:
		return "symmetric-passive"
	case ModeClient:
		return "client"
	case ModeServer:
		return "server"
	case ModeBroadcast:
		return "broadcast"
	case ModeControl:
		return "control"
	case ModePrivate:
		return "private"
	}
	return "mode(" + strconv.Itoa(int(m)) + ")"
}

// Errors returned by Parse and CheckReply. They are comparable sentinels;
// some errors Parse returns wrap one of them with a more precise message
// (use errors.Is).
var (
	// ErrShort: the datagram is shorter than the 48-byte header.
	ErrShort = errors.New("ntp: packet shorter than 48 bytes")
	// ErrVersion: Parse saw version 0 or 5..7; CheckReply wants 3 or 4.
	ErrVersion = errors.New("ntp: unsupported version")
	// ErrExtension: the data after the header is not a well-formed
	// sequence of RFC 7822 extension fields optionally followed by a MAC.
	ErrExtension = errors.New("ntp: malformed extension fields or MAC")

	ErrMode           = errors.New("ntp: reply is not in server mode")
	ErrOriginMismatch = errors.New("ntp: origin timestamp does not match our request (bogus or replayed reply)")
	ErrZeroTimestamp  = errors.New("ntp: reply has a zero receive or transmit timestamp")
	ErrUnsynchronized = errors.New("ntp: server is unsynchronized (leap 3)")
	ErrStratum        = errors.New("ntp: server stratum is 16 or more")
	ErrRootDistance   = errors.New("ntp: server root distance exceeds the limit")

	// ErrHeaderField: MarshalTo was given a Leap > 3, Version > 7 or Mode > 7.
	ErrHeaderField = errors.New("ntp: header field out of range")
)

// wrapped is a preallocated error with a precise message that still
// matches its sentinel under errors.Is; returning it allocates nothing.
type wrapped struct {
	msg  string
	base error
}

func (e *wrapped) Error() string { return e.msg }
func (e *wrapped) Unwrap() error { return e.base }

var (
	errTrailingAlign = &wrapped{"ntp: length after the header is not a multiple of 4", ErrExtension}
	errEFHeader      = &wrapped{"ntp: truncated extension field header", ErrExtension}
	errEFTooShort    = &wrapped{"ntp: extension field shorter than 16 bytes", ErrExtension}
	errEFAlign       = &wrapped{"ntp: extension field length not a multiple of 4", ErrExtension}
	errEFOverrun     = &wrapped{"ntp: extension field runs past the end of the packet", ErrExtension}
	errTail          = &wrapped{"ntp: 4 to 16 trailing bytes are neither an extension field nor a MAC (RFC 7822)", ErrExtension}
)

// Header is the fixed 48-byte NTP header.
type Header struct {
	Leap           sample.Leap
	Version        uint8
	Mode           Mode
	Stratum        uint8
	Poll           int8 // log2 seconds
	Precision      int8 // log2 seconds
	RootDelay      Short
	RootDispersion Short
	ReferenceID    uint32
	ReferenceTime  Timestamp
	OriginTime     Timestamp
	ReceiveTime    Timestamp
	TransmitTime   Timestamp
}

// MarshalTo writes the 48-byte header to b and returns 48. It returns
// io.ErrShortBuffer if len(b) < 48 and ErrHeaderField if Leap, Version or
// Mode do not fit their bit fields. It does not allocate.
func (h *Header) MarshalTo(b []byte) (int, error) {
	if len(b) < HeaderLen {
		return 0, io.ErrShortBuffer
	}
	if h.Leap > 3 || h.Version > 7 || h.Mode > 7 {
		return 0, ErrHeaderField
	}
	b = b[:HeaderLen]
	b[0] = uint8(h.Leap)<<6 | h.Version<<3 | uint8(h.Mode)
	b[1] = h.Stratum
	b[2] = uint8(h.Poll)
	b[3] = uint8(h.Precision)
	binary.BigEndian.PutUint32(b[4:], uint32(h.RootDelay))
	binary.BigEndian.PutUint32(b[8:], uint32(h.RootDispersion))
	binary.BigEndian.PutUint32(b[12:], h.ReferenceID)
	binary.BigEndian.PutUint64(b[16:], uint64(h.ReferenceTime))
	binary.BigEndian.PutUint64(b[24:], uint64(h.OriginTime))
	binary.BigEndian.PutUint64(b[32:], uint64(h.ReceiveTime))
	binary.BigEndian.PutUint64(b[40:], uint64(h.TransmitTime))
	return HeaderLen, nil
}

// unmarshal decodes the first 48 bytes of b, which the caller has checked
// are there.
func (h *Header) unmarshal(b []byte) {
	b = b[:HeaderLen]
	h.Leap = sample.Leap(b[0] >> 6)
	h.Version = b[0] >> 3 & 7
	h.Mode = Mode(b[0] & 7)
	h.Stratum = b[1]
	h.Poll = int8(b[2])
	h.Precision = int8(b[3])
	h.RootDelay = Short(binary.BigEndian.Uint32(b[4:]))
	h.RootDispersion = Short(binary.BigEndian.Uint32(b[8:]))
	h.ReferenceID = binary.BigEndian.Uint32(b[12:])
	h.ReferenceTime = Timestamp(binary.BigEndian.Uint64(b[16:]))
	h.OriginTime = Timestamp(binary.BigEndian.Uint64(b[24:]))
	h.ReceiveTime = Timestamp(binary.BigEndian.Uint64(b[32:]))
	h.TransmitTime = Timestamp(binary.BigEndian.Uint64(b[40:]))
}

// Packet is a parsed datagram. Extensions and MAC alias the input slice (no
// copy, no allocation).
type Packet struct {
	Header
	// Extensions is the RFC 7822 extension-field area (all fields, back
	// to back), nil if there are none. Walk it with ExtensionFields.
	Extensions []byte
	// MAC is the authenticator after the header and extension fields,
	// nil if there is none. In NTPv4 it is a crypto-NAK (4 zero bytes) or
	// a legacy MAC of 20 or 24 bytes (4-byte key id + 16 or 20-byte
	// digest). In NTPv1..3 it is everything after the header (a multiple
	// of 4 bytes; MS-SNTP authenticators included).
	MAC []byte
}

// Lengths of what may follow the header (RFC 7822 section 7.5).
const (
	minExtensionLen = 16     // smallest extension field
	cryptoNAKLen    = 4      // a key id of 0 alone
	minMACLen       = 4 + 16 // key id + MD5/AES-CMAC digest
	maxV4MACLen     = 4 + 20 // key id + SHA-1 digest; longer MACs are not NTPv4
)

// Parse decodes b into p without allocating. It checks the length, the
// version (1..4 are accepted; which to serve or trust is the caller's
// policy), and the structure of what follows the header.
//
// The rules for what follows the header are RFC 7822's, applied as chrony
// applies them:
//   - the length after the header must be a multiple of 4;
//   - in NTPv1..3 there are no extension fields: anything after the header
//     is the MAC;
//   - in NTPv4, exactly 4 zero bytes are a crypto-NAK (MAC);
//   - otherwise, walking from the header: if 20 to 24 bytes remain they are
//     the MAC (RFC 7822 caps an NTPv4 MAC at 24 bytes and makes a last
//     extension field without a MAC at least 28 bytes, so this is never
//     ambiguous for a compliant sender); if more than 24 remain, an
//     extension field starts here and must be at least 16 bytes, a
//     multiple of 4, and fit in the packet; 1 to 19 remaining bytes are an
//     error.
//
// Errors match ErrShort, ErrVersion or ErrExtension under errors.Is. Parse
// never panics. On error p holds whatever was decoded so far and must not
// be used.
func Parse(b []byte, p *Packet) error {
	p.Extensions = nil
	p.MAC = nil
	if len(b) < HeaderLen {
		return ErrShort
	}
	p.Header.unmarshal(b)
	if p.Version < 1 || p.Version > 4 {
		return ErrVersion
	}
	rest := b[HeaderLen:]
	if len(rest) == 0 {
		return nil
	}
	if len(rest)%4 != 0 {
		return errTrailingAlign
	}
	if p.Version < 4 {
		p.MAC = rest
		return nil
	}
	if len(rest) == cryptoNAKLen && binary.BigEndian.Uint32(rest) == 0 {
		p.MAC = rest
		return nil
	}
	off := 0
	for off < len(rest) {
		remain := len(rest) - off
		if remain >= minMACLen && remain <= maxV4MACLen {
			break
		}
		if remain <= maxV4MACLen {
			return errTail
		}
		n, err := extensionLen(rest[off:])
		if err != nil {
			return err
		}
		off += n
	}
	if off > 0 {
		p.Extensions = rest[:off:off]
	}
	if off < len(rest) {
		p.MAC = rest[off:]
	}
	return nil
}
