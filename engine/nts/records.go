package nts

import (
	"encoding/binary"
	"errors"
	"fmt"
	"strconv"
)

// RecordType is an NTS-KE record type (RFC 8915 section 4), without the
// critical bit.
type RecordType uint16

// The record types of RFC 8915.
const (
	RecordEndOfMessage      RecordType = 0
	RecordNextProtocol      RecordType = 1
	RecordError             RecordType = 2
	RecordWarning           RecordType = 3
	RecordAEADAlgorithm     RecordType = 4
	RecordNewCookie         RecordType = 5
	RecordServerNegotiation RecordType = 6
	RecordPortNegotiation   RecordType = 7
)

func (t RecordType) String() string {
	switch t {
	case RecordEndOfMessage:
		return "end-of-message"
	case RecordNextProtocol:
		return "next-protocol"
	case RecordError:
		return "error"
	case RecordWarning:
		return "warning"
	case RecordAEADAlgorithm:
		return "aead-algorithm"
	case RecordNewCookie:
		return "new-cookie"
	case RecordServerNegotiation:
		return "server"
	case RecordPortNegotiation:
		return "port"
	}
	return "record(" + strconv.Itoa(int(t)) + ")"
}

// criticalBit is the top bit of the 16-bit type field.
const criticalBit = 0x8000

// ProtocolNTPv4 is the NTS Next Protocol ID of NTPv4.
const ProtocolNTPv4 uint16 = 0

// Error and warning codes of RFC 8915 section 4.1.3.
const (
	ErrorUnrecognizedCritical uint16 = 0
	ErrorBadRequest           uint16 = 1
	ErrorInternalServer       uint16 = 2
)

// Limits on an NTS-KE message. RFC 8915 sets none; these are far above
// what any real peer sends (chrony: at most 256-byte cookies, 8 of them).
const (
	// MaxRecordBody is the largest record body accepted.
	MaxRecordBody = 1024
	// MaxRecords is the most records in one message, End of Message included.
	MaxRecords = 64
	// MaxMessageLen is the most bytes one message may take.
	MaxMessageLen = 16384
	// MaxCookies is how many cookies a client keeps and a server sends.
	MaxCookies = 8
	// MaxServerName is the longest NTPv4 server name accepted (a DNS name).
	MaxServerName = 255
)

// Record is one NTS-KE record. Body aliases the decoded input.
type Record struct {
	Critical bool
	Type     RecordType
	Body     []byte
}

// RecordHeaderLen is the length of a record header (type, body length).
const RecordHeaderLen = 4

// Errors of record and message decoding. Decoding errors wrap
// ErrMalformed, except ErrUnrecognizedCritical.
var (
	ErrMalformed            = errors.New("nts: malformed NTS-KE message")
	ErrTruncated            = fmt.Errorf("%w: truncated record", ErrMalformed)
	ErrUnrecognizedCritical = errors.New("nts: unrecognized critical NTS-KE record")
	ErrTooLarge             = fmt.Errorf("%w: message exceeds the size or record limits", ErrMalformed)
)

// AppendRecord appends r in wire form to b. It fails if the body is larger
// than the 16-bit length field or the type does not fit in 15 bits.
func AppendRecord(b []byte, r Record) ([]byte, error) {
	if len(r.Body) > 0xffff {
		return b, fmt.Errorf("nts: record body of %d bytes exceeds 65535", len(r.Body))
	}
	if r.Type&criticalBit != 0 {
		return b, fmt.Errorf("nts: record type %d does not fit in 15 bits", r.Type)
	}
	t := uint16(r.Type)
	if r.Critical {
		t |= criticalBit
	}
	b = binary.BigEndian.AppendUint16(b, t)
	b = binary.BigEndian.AppendUint16(b, uint16(len(r.Body)))
	return append(b, r.Body...), nil
}

// ParseRecord decodes the record at the start of b and returns it with its
// wire length. It returns ErrTruncated when b holds less than a whole
// record (for a stream: read more), ErrTooLarge when the body is larger
// than MaxRecordBody.
func ParseRecord(b []byte) (Record, int, error) {
	if len(b) < RecordHeaderLen {
		return Record{}, 0, ErrTruncated
	}
	t := binary.BigEndian.Uint16(b)
	n := int(binary.BigEndian.Uint16(b[2:]))
	if n > MaxRecordBody {
		return Record{}, 0, ErrTooLarge
	}
	if len(b) < RecordHeaderLen+n {
		return Record{}, 0, ErrTruncated
	}
	return Record{
		Critical: t&criticalBit != 0,
		Type:     RecordType(t &^ criticalBit),
		Body:     b[RecordHeaderLen : RecordHeaderLen+n : RecordHeaderLen+n],
	}, RecordHeaderLen + n, nil
}

// MessageLen reports whether b starts with a whole NTS-KE message (records
// up to and including End of Message) and how long it is. It is the
// framing step for a stream: read until complete or an error. The error is
// ErrTooLarge when the limits are exceeded, or another ErrMalformed for a
// record that could never be valid; a partial record is not an error.
func MessageLen(b []byte) (n int, complete bool, err error) {
	for records := 0; ; records++ {
		if records >= MaxRecords || n > MaxMessageLen {
			return n, false, ErrTooLarge
		}
		r, l, err := ParseRecord(b[n:])
		if errors.Is(err, ErrTruncated) {
			if len(b) > MaxMessageLen {
				return n, false, ErrTooLarge
			}
			return n, false, nil
		}
		if err != nil {
			return n, false, err
		}
		n += l
		if n > MaxMessageLen {
			return n, false, ErrTooLarge
		}
		if r.Type == RecordEndOfMessage {
			return n, true, nil
		}
	}
}

// Message is a decoded NTS-KE message: every record type of RFC 8915.
// Unknown non-critical records are skipped.
type Message struct {
	// NextProtocols is the Next Protocol Negotiation record's list;
	// HasNextProtocol says whether the record was present (an empty list
	// means "none of those offered").
	NextProtocols   []uint16
	HasNextProtocol bool
	// AEADs is the AEAD Algorithm Negotiation record's list.
	AEADs   []AEADAlgorithm
	HasAEAD bool
	// Errors and Warnings are the codes of Error and Warning records.
	Errors   []uint16
	Warnings []uint16
	// Cookies are the New Cookie for NTPv4 records' bodies, in order.
	Cookies [][]byte
	// Server is the NTPv4 Server Negotiation record ("" if absent).
	Server string
	// Port is the NTPv4 Port Negotiation record, if HasPort.
	Port    uint16
	HasPort bool
	// CriticalFlags records, per known type, whether the sender set the
	// critical bit (used by tests and fuzzing to round-trip exactly).
	CriticalFlags uint16
}

// ParseMessage decodes one whole message: records up to End of Message,
// which must end b. Errors: ErrUnrecognizedCritical for an unknown record
// with the critical bit; otherwise ones that wrap ErrMalformed (truncation,
// limits, a record twice, a body of the wrong shape).
func ParseMessage(b []byte) (*Message, error) {
	if len(b) > MaxMessageLen {
		return nil, ErrTooLarge
	}
	m := &Message{}
	seen := uint16(0)
	for records := 0; ; records++ {
		if records >= MaxRecords {
			return nil, ErrTooLarge
		}
		r, l, err := ParseRecord(b)
		if err != nil {
			return nil, err
		}
		b = b[l:]
		if r.Type <= RecordPortNegotiation {
			bit := uint16(1) << r.Type
			if r.Type != RecordNewCookie && r.Type != RecordError && r.Type != RecordWarning {
				if seen&bit != 0 {
					return nil, fmt.Errorf("%w: two %v records", ErrMalformed, r.Type)
				}
				seen |= bit
			}
			if r.Critical {
				m.CriticalFlags |= bit
			}
		}
		switch r.Type {
		case RecordEndOfMessage:
			if len(r.Body) != 0 {
				return nil, fmt.Errorf("%w: end of message with a body", ErrMalformed)
			}
			if len(b) != 0 {
				return nil, fmt.Errorf("%w: %d bytes after end of message", ErrMalformed, len(b))
			}
			return m, nil
		case RecordNextProtocol:
			ids, err := uint16List(r)
			if err != nil {
				return nil, err
			}
			m.NextProtocols, m.HasNextProtocol = ids, true
		case RecordAEADAlgorithm:
			ids, err := uint16List(r)
			if err != nil {
				return nil, err
			}
			m.AEADs = make([]AEADAlgorithm, len(ids))
			for i, id := range ids {
				m.AEADs[i] = AEADAlgorithm(id)
			}
			m.HasAEAD = true
		case RecordError, RecordWarning:
			if len(r.Body) != 2 {
				return nil, fmt.Errorf("%w: %v record of %d bytes", ErrMalformed, r.Type, len(r.Body))
			}
			code := binary.BigEndian.Uint16(r.Body)
			if r.Type == RecordError {
				m.Errors = append(m.Errors, code)
			} else {
				m.Warnings = append(m.Warnings, code)
			}
		case RecordNewCookie:
			if len(r.Body) == 0 {
				return nil, fmt.Errorf("%w: empty cookie", ErrMalformed)
			}
			m.Cookies = append(m.Cookies, r.Body)
		case RecordServerNegotiation:
			if len(r.Body) == 0 || len(r.Body) > MaxServerName {
				return nil, fmt.Errorf("%w: server name of %d bytes", ErrMalformed, len(r.Body))
			}
			for _, c := range r.Body {
				if c <= ' ' || c > '~' {
					return nil, fmt.Errorf("%w: server name is not printable ASCII", ErrMalformed)
				}
			}
			m.Server = string(r.Body)
		case RecordPortNegotiation:
			if len(r.Body) != 2 {
				return nil, fmt.Errorf("%w: port record of %d bytes", ErrMalformed, len(r.Body))
			}
			m.Port, m.HasPort = binary.BigEndian.Uint16(r.Body), true
		default:
			if r.Critical {
				return nil, fmt.Errorf("%w: type %d", ErrUnrecognizedCritical, r.Type)
			}
		}
	}
}

func uint16List(r Record) ([]uint16, error) {
	if len(r.Body)%2 != 0 {
		return nil, fmt.Errorf("%w: %v record of odd length %d", ErrMalformed, r.Type, len(r.Body))
	}
	ids := make([]uint16, len(r.Body)/2)
	for i := range ids {
		ids[i] = binary.BigEndian.Uint16(r.Body[2*i:])
	}
	return ids, nil
}

func uint16Body(ids ...uint16) []byte {
	b := make([]byte, 0, 2*len(ids))
	for _, id := range ids {
		b = binary.BigEndian.AppendUint16(b, id)
	}
	return b
}

// Append encodes m as records in the order RFC 8915 shows (errors and
// warnings, next protocol, AEAD, server, port, cookies, end of message)
// and appends them to b. Error, warning, next protocol and end of message
// records are always critical; AEAD, server and port are critical when
// their bit is set in CriticalFlags (RFC 8915 leaves that to the sender);
// cookies never are.
func (m *Message) Append(b []byte) ([]byte, error) {
	var err error
	add := func(t RecordType, critical bool, body []byte) {
		if err == nil {
			b, err = AppendRecord(b, Record{Critical: critical, Type: t, Body: body})
		}
	}
	crit := func(t RecordType) bool { return m.CriticalFlags&(1<<t) != 0 }
	for _, c := range m.Errors {
		add(RecordError, true, uint16Body(c))
	}
	for _, c := range m.Warnings {
		add(RecordWarning, true, uint16Body(c))
	}
	if m.HasNextProtocol {
		add(RecordNextProtocol, true, uint16Body(m.NextProtocols...))
	}
	if m.HasAEAD {
		ids := make([]uint16, len(m.AEADs))
		for i, a := range m.AEADs {
			ids[i] = uint16(a)
		}
		add(RecordAEADAlgorithm, crit(RecordAEADAlgorithm), uint16Body(ids...))
	}
	if m.Server != "" {
		add(RecordServerNegotiation, crit(RecordServerNegotiation), []byte(m.Server))
	}
	if m.HasPort {
		add(RecordPortNegotiation, crit(RecordPortNegotiation), uint16Body(m.Port))
	}
	for _, c := range m.Cookies {
		add(RecordNewCookie, false, c)
	}
	add(RecordEndOfMessage, true, nil)
	if err == nil && len(b) > MaxMessageLen {
		err = ErrTooLarge
	}
	return b, err
}

// KEError is an Error record received from the peer.
type KEError struct{ Code uint16 }

func (e *KEError) Error() string {
	switch e.Code {
	case ErrorUnrecognizedCritical:
		return "nts: NTS-KE peer sent error: unrecognized critical record"
	case ErrorBadRequest:
		return "nts: NTS-KE peer sent error: bad request"
	case ErrorInternalServer:
		return "nts: NTS-KE peer sent error: internal server error"
	}
	return "nts: NTS-KE peer sent error " + strconv.Itoa(int(e.Code))
}
