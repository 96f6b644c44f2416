package ntp

import (
	"encoding/binary"
	"strconv"
)

// ExtensionField is one RFC 7822 extension field. Value aliases the packet
// and includes the field's zero padding (the wire format does not say how
// much of it is padding; each field type's own encoding does).
type ExtensionField struct {
	Type  uint16
	Value []byte
}

// ExtensionIter walks the extension fields of a packet. The zero value is
// an iterator over no fields.
type ExtensionIter struct {
	rest []byte
	err  error
}

// ExtensionFields returns an iterator over p.Extensions.
func (p *Packet) ExtensionFields() ExtensionIter {
	return ExtensionIter{rest: p.Extensions}
}

// Next returns the next field, or false at the end or on a malformed field
// (then Err says what was wrong). For a Packet filled by a successful Parse
// it never fails.
func (it *ExtensionIter) Next() (ExtensionField, bool) {
	if it.err != nil || len(it.rest) == 0 {
		return ExtensionField{}, false
	}
	n, err := extensionLen(it.rest)
	if err != nil {
		it.err = err
		it.rest = nil
		return ExtensionField{}, false
	}
	f := ExtensionField{
		Type:  binary.BigEndian.Uint16(it.rest),
		Value: it.rest[4:n:n],
	}
	it.rest = it.rest[n:]
	return f, true
}

// Err returns the error that stopped the iteration, or nil. It matches
// ErrExtension under errors.Is.
func (it *ExtensionIter) Err() error { return it.err }

// extensionLen checks the field at the start of b and returns its length.
func extensionLen(b []byte) (int, error) {
	if len(b) < 4 {
		return 0, errEFHeader
	}
	n := int(binary.BigEndian.Uint16(b[2:]))
	switch {
	case n < minExtensionLen:
		return 0, errEFTooShort
	case n%4 != 0:
		return 0, errEFAlign
	case n > len(b):
		return 0, errEFOverrun
	}
	return n, nil
}

// maxExtensionLen is the largest length the 16-bit length field can hold
// that is a multiple of 4.
const maxExtensionLen = 65532

// AppendExtension appends one field to b: the 4-byte header (type, length)
// and value, zero-padded to a multiple of 4 and to at least minLen bytes in
// total (minLen < 16 means 16; RFC 7822 wants 28 for a last field sent
// without a MAC, and NTS fields set their own). It panics if the field would
// exceed the 16-bit length field (65532 bytes): that is a programming error,
// not input.
func AppendExtension(b []byte, typ uint16, value []byte, minLen int) []byte {
	n := 4 + len(value)
	if minLen < minExtensionLen {
		minLen = minExtensionLen
	}
	if n < minLen {
		n = minLen
	}
	if n > maxExtensionLen { // checked before rounding: no overflow
		panic("ntp: extension field of " + strconv.Itoa(n) + " bytes exceeds the 16-bit length")
	}
	n = (n + 3) &^ 3
	b = binary.BigEndian.AppendUint16(b, typ)
	b = binary.BigEndian.AppendUint16(b, uint16(n))
	b = append(b, value...)
	for i := 4 + len(value); i < n; i++ {
		b = append(b, 0)
	}
	return b
}
