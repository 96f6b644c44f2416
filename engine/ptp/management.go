package ptp

import (
	"encoding/binary"
	"fmt"
)

// Action is a management message's actionField (1588-2019 table 57).
type Action uint8

// The actions.
const (
	ActionGet         Action = 0
	ActionSet         Action = 1
	ActionResponse    Action = 2
	ActionCommand     Action = 3
	ActionAcknowledge Action = 4
)

func (a Action) String() string {
	switch a {
	case ActionGet:
		return "GET"
	case ActionSet:
		return "SET"
	case ActionResponse:
		return "RESPONSE"
	case ActionCommand:
		return "COMMAND"
	case ActionAcknowledge:
		return "ACKNOWLEDGE"
	}
	return fmt.Sprintf("action(%d)", uint8(a))
}

// Management error IDs (1588-2019 table 109).
const (
	MgmtErrResponseTooBig uint16 = 0x0001
	MgmtErrNoSuchID       uint16 = 0x0002
	MgmtErrWrongLength    uint16 = 0x0003
	MgmtErrWrongValue     uint16 = 0x0004
	MgmtErrNotSetable     uint16 = 0x0005
	MgmtErrNotSupported   uint16 = 0x0006
	MgmtErrGeneral        uint16 = 0xfffe
)

// Management is a management message (1588-2019 §15.4) with at most one
// management TLV (MANAGEMENT or MANAGEMENT_ERROR_STATUS) first among its
// TLVs, as every implementation sends it.
type Management struct {
	Header
	Target               PortIdentity
	StartingBoundaryHops uint8
	BoundaryHops         uint8
	Action               Action
	// ID is the managementId of the MANAGEMENT TLV, Data its dataField.
	ID   uint16
	Data []byte
	// Error, when non-zero, makes the TLV a MANAGEMENT_ERROR_STATUS with
	// this managementErrorId about ID (Data is then ignored).
	Error uint16
	// Other TLVs after the management TLV.
	TLVs []TLV
}

// MarshalTo encodes the message.
func (m *Management) MarshalTo(b []byte) (int, error) {
	var first TLV
	if m.Error != 0 {
		v := make([]byte, 8) // error id, management id, 4 reserved; empty displayData omitted
		binary.BigEndian.PutUint16(v[0:2], m.Error)
		binary.BigEndian.PutUint16(v[2:4], m.ID)
		first = TLV{Type: TLVManagementErrorStatus, Value: v}
	} else {
		v := make([]byte, 2+len(m.Data)+len(m.Data)%2)
		binary.BigEndian.PutUint16(v[0:2], m.ID)
		copy(v[2:], m.Data)
		first = TLV{Type: TLVManagement, Value: v}
	}
	if m.Action > ActionAcknowledge {
		return 0, fmt.Errorf("%w: management action %d", ErrField, m.Action)
	}
	tlvs := append([]TLV{first}, m.TLVs...)
	n, err := begin(b, &m.Header, MsgManagement, ManagementLen, tlvs)
	if err != nil {
		return 0, err
	}
	p := b[HeaderLen:]
	putPortID(p[0:10], m.Target)
	p[10] = m.StartingBoundaryHops
	p[11] = m.BoundaryHops
	p[12] = uint8(m.Action) & 0x0f
	return n, nil
}

func parseManagement(h Header, b []byte) (*Management, error) {
	if len(b) < ManagementLen {
		return nil, fmt.Errorf("%w: Management of %d octets, at least %d needed", ErrShort, len(b), ManagementLen)
	}
	p := b[HeaderLen:]
	m := &Management{Header: h, Target: getPortID(p[0:10]), StartingBoundaryHops: p[10],
		BoundaryHops: p[11], Action: Action(p[12] & 0x0f)}
	if m.Action > ActionAcknowledge {
		return nil, fmt.Errorf("%w: management action %d", ErrField, m.Action)
	}
	tlvs, err := parseTLVs(b[ManagementLen:])
	if err != nil {
		return nil, err
	}
	if len(tlvs) == 0 {
		return nil, fmt.Errorf("%w: management message without a management TLV", ErrTLV)
	}
	t := tlvs[0]
	switch t.Type {
	case TLVManagement:
		if len(t.Value) < 2 {
			return nil, fmt.Errorf("%w: MANAGEMENT TLV of %d octets", ErrTLV, len(t.Value))
		}
		m.ID = binary.BigEndian.Uint16(t.Value[0:2])
		m.Data = t.Value[2:]
	case TLVManagementErrorStatus:
		if len(t.Value) < 8 {
			return nil, fmt.Errorf("%w: MANAGEMENT_ERROR_STATUS TLV of %d octets", ErrTLV, len(t.Value))
		}
		m.Error = binary.BigEndian.Uint16(t.Value[0:2])
		m.ID = binary.BigEndian.Uint16(t.Value[2:4])
		if m.Error == 0 {
			return nil, fmt.Errorf("%w: MANAGEMENT_ERROR_STATUS with error id 0", ErrTLV)
		}
	default:
		return nil, fmt.Errorf("%w: management message starts with TLV %#04x", ErrTLV, uint16(t.Type))
	}
	m.TLVs = tlvs[1:]
	if len(m.TLVs) == 0 {
		m.TLVs = nil
	}
	return m, nil
}
