package ptp

import (
	"encoding/binary"
	"fmt"
)

// TLVType is a tlvType (1588-2019 table 52).
type TLVType uint16

// The TLV types gnomon knows by name.
const (
	TLVManagement                TLVType = 0x0001
	TLVManagementErrorStatus     TLVType = 0x0002
	TLVOrganizationExtension     TLVType = 0x0003
	TLVRequestUnicast            TLVType = 0x0004
	TLVGrantUnicast              TLVType = 0x0005
	TLVCancelUnicast             TLVType = 0x0006
	TLVAckCancelUnicast          TLVType = 0x0007
	TLVPathTrace                 TLVType = 0x0008
	TLVAlternateTimeOffset       TLVType = 0x0009
	TLVOrgExtensionPropagate     TLVType = 0x4000
	TLVEnhancedAccuracyMetrics   TLVType = 0x4001
	TLVOrgExtensionDoNotPropagte TLVType = 0x8000
	TLVL1Sync                    TLVType = 0x8001
	TLVPortCommunication         TLVType = 0x8002
	TLVProtocolAddress           TLVType = 0x8003
	TLVSlaveRxSyncTiming         TLVType = 0x8004
	TLVSlaveRxSyncComputed       TLVType = 0x8005
	TLVSlaveTxEventTimestamps    TLVType = 0x8006
	TLVCumulativeRateRatio       TLVType = 0x8007
	TLVPad                       TLVType = 0x8008
	TLVAuthentication            TLVType = 0x8009
)

// TLV is one type-length-value triple. Value is the value field as it
// is on the wire (its length is the lengthField).
type TLV struct {
	Type  TLVType
	Value []byte
}

func tlvLen(tlvs []TLV) int {
	n := 0
	for _, t := range tlvs {
		n += 4 + len(t.Value)
	}
	return n
}

func putTLVs(b []byte, tlvs []TLV) error {
	for _, t := range tlvs {
		if len(t.Value) > 0xffff {
			return fmt.Errorf("%w: TLV %#04x value of %d octets", ErrTLV, uint16(t.Type), len(t.Value))
		}
		binary.BigEndian.PutUint16(b[0:2], uint16(t.Type))
		binary.BigEndian.PutUint16(b[2:4], uint16(len(t.Value)))
		copy(b[4:], t.Value)
		b = b[4+len(t.Value):]
	}
	return nil
}

// maxTLVs bounds how many TLVs one message may carry (a flood of empty
// TLVs must not cost allocations).
const maxTLVs = 64

// parseTLVs decodes the TLVs filling b exactly. A trailing single octet
// (seen from some stacks as padding) is an error like any other.
func parseTLVs(b []byte) ([]TLV, error) {
	var out []TLV
	for len(b) > 0 {
		if len(b) < 4 {
			return nil, fmt.Errorf("%w: %d octets left after the last TLV, a TLV header is 4", ErrTLV, len(b))
		}
		t := TLVType(binary.BigEndian.Uint16(b[0:2]))
		n := int(binary.BigEndian.Uint16(b[2:4]))
		if 4+n > len(b) {
			return nil, fmt.Errorf("%w: TLV %#04x lengthField %d past the end of the message (%d octets left)", ErrTLV, uint16(t), n, len(b)-4)
		}
		if len(out) == maxTLVs {
			return nil, fmt.Errorf("%w: more than %d TLVs", ErrTLV, maxTLVs)
		}
		out = append(out, TLV{Type: t, Value: append([]byte(nil), b[4:4+n]...)})
		b = b[4+n:]
	}
	return out, nil
}

// PathTrace returns the clock identities of a PATH_TRACE TLV (1588-2019
// §16.2), or nil.
func PathTrace(tlvs []TLV) []ClockIdentity {
	for _, t := range tlvs {
		if t.Type != TLVPathTrace {
			continue
		}
		out := make([]ClockIdentity, 0, len(t.Value)/8)
		for v := t.Value; len(v) >= 8; v = v[8:] {
			var c ClockIdentity
			copy(c[:], v[:8])
			out = append(out, c)
		}
		return out
	}
	return nil
}

// PathTraceTLV builds a PATH_TRACE TLV.
func PathTraceTLV(path []ClockIdentity) TLV {
	v := make([]byte, 0, 8*len(path))
	for _, c := range path {
		v = append(v, c[:]...)
	}
	return TLV{Type: TLVPathTrace, Value: v}
}

// OrgTLV is an ORGANIZATION_EXTENSION TLV's parts (1588-2019 §14.3):
// the organizationId (OUI), organizationSubType and the data. The
// profiles (802.1AS's follow-up information TLV, for one) are carried in
// these.
type OrgTLV struct {
	OUI     [3]byte
	SubType [3]byte
	Data    []byte
}

// ParseOrgTLV decodes the value of an organization extension TLV.
func ParseOrgTLV(t TLV) (OrgTLV, error) {
	var o OrgTLV
	switch t.Type {
	case TLVOrganizationExtension, TLVOrgExtensionPropagate, TLVOrgExtensionDoNotPropagte:
	default:
		return o, fmt.Errorf("%w: TLV %#04x is not an organization extension", ErrTLV, uint16(t.Type))
	}
	if len(t.Value) < 6 {
		return o, fmt.Errorf("%w: organization extension of %d octets, at least 6 needed", ErrTLV, len(t.Value))
	}
	copy(o.OUI[:], t.Value[0:3])
	copy(o.SubType[:], t.Value[3:6])
	o.Data = append([]byte(nil), t.Value[6:]...)
	return o, nil
}

// TLV encodes the organization extension as a TLV of type typ.
func (o OrgTLV) TLV(typ TLVType) TLV {
	v := make([]byte, 6+len(o.Data))
	copy(v[0:3], o.OUI[:])
	copy(v[3:6], o.SubType[:])
	copy(v[6:], o.Data)
	return TLV{Type: typ, Value: v}
}
