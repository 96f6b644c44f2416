package nts

import (
	"encoding/binary"
	"errors"
	"fmt"

	"gnomon.dev/gnomon/engine/ntp"
)

// NTP extension field types of RFC 8915 section 5.
const (
	EFUniqueIdentifier  uint16 = 0x0104
	EFCookie            uint16 = 0x0204
	EFCookiePlaceholder uint16 = 0x0304
	EFAuthenticator     uint16 = 0x0404 // NTS Authenticator and Encrypted Extension Fields
)

// UniqueIDLen is the length of the unique identifiers this package sends
// (RFC 8915 asks for at least 32 bytes).
const UniqueIDLen = 32

// NonceLen is the nonce length this package sends; RFC 8915 section 5.6
// requires at least 16 bytes of nonce (plus padding) for AES-SIV.
const NonceLen = 16

// ErrAuthField: the NTS Authenticator and Encrypted Extension Fields field
// is malformed.
var ErrAuthField = errors.New("nts: malformed NTS authenticator extension field")

// pad4 rounds n up to a multiple of 4.
func pad4(n int) int { return (n + 3) &^ 3 }

// AuthField is a decoded NTS Authenticator and Encrypted Extension Fields
// body. Nonce and Ciphertext alias the packet.
type AuthField struct {
	Nonce      []byte
	Ciphertext []byte // synthetic IV (tag) and encrypted extension fields
}

// ParseAuthField decodes the body (value) of an EFAuthenticator field.
// It checks that the nonce and ciphertext fit, that the nonce is not
// empty, that the ciphertext holds at least a tag, and that the nonce with
// padding takes at least 16 bytes (RFC 8915 section 5.6).
func ParseAuthField(v []byte) (AuthField, error) {
	if len(v) < 4 {
		return AuthField{}, ErrAuthField
	}
	nl := int(binary.BigEndian.Uint16(v))
	cl := int(binary.BigEndian.Uint16(v[2:]))
	v = v[4:]
	if nl == 0 || cl < TagSize || pad4(nl)+pad4(cl) > len(v) {
		return AuthField{}, ErrAuthField
	}
	if max(pad4(nl), NonceLen)+pad4(cl) > len(v) {
		return AuthField{}, fmt.Errorf("%w: missing nonce padding", ErrAuthField)
	}
	return AuthField{Nonce: v[:nl:nl], Ciphertext: v[pad4(nl) : pad4(nl)+cl : pad4(nl)+cl]}, nil
}

// appendAuthField appends an EFAuthenticator extension field to the packet
// pkt (the associated data is pkt as it is), sealing plaintext (encrypted
// extension fields) with siv and nonce, in the scratch space sc. The
// field is padded so that it is at least minLen bytes long in total.
func appendAuthField(sc *scratch, pkt []byte, siv *SIV, nonce, plaintext []byte, minLen int) []byte {
	ad := pkt
	cl := TagSize + len(plaintext)
	bodyLen := 4 + pad4(len(nonce)) + pad4(cl)
	if bodyLen+4 < minLen {
		bodyLen = pad4(minLen - 4)
	}
	start := len(pkt)
	pkt = binary.BigEndian.AppendUint16(pkt, EFAuthenticator)
	pkt = binary.BigEndian.AppendUint16(pkt, uint16(4+bodyLen))
	pkt = binary.BigEndian.AppendUint16(pkt, uint16(len(nonce)))
	pkt = binary.BigEndian.AppendUint16(pkt, uint16(cl))
	pkt = append(pkt, nonce...)
	for len(pkt)-start < 8+pad4(len(nonce)) {
		pkt = append(pkt, 0)
	}
	pkt = siv.seal(sc, pkt, plaintext, ad[:start], nonce)
	for len(pkt)-start < 4+bodyLen {
		pkt = append(pkt, 0)
	}
	return pkt
}

// authFieldLen is the total length of the field appendAuthField makes.
func authFieldLen(nonceLen, plaintextLen, minLen int) int {
	n := 8 + pad4(nonceLen) + pad4(TagSize+plaintextLen)
	return max(n, pad4(minLen))
}

// ntsFields is what a packet's NTS extension fields say.
type ntsFields struct {
	uid          []byte
	uids         int
	cookie       []byte
	cookies      int
	placeholders int
	placeLen     int // body length of the placeholders (-1 if they differ)
	authOff      int // offset of the authenticator field in the packet, 0 if none
	auth         []byte
	afterAuth    bool // an extension field follows the authenticator
}

// scanFields walks the extension fields of p (a parsed packet).
func scanFields(p *ntp.Packet) ntsFields {
	var f ntsFields
	f.placeLen = 0
	off := ntp.HeaderLen
	it := p.ExtensionFields()
	for ef, ok := it.Next(); ok; ef, ok = it.Next() {
		if f.authOff != 0 {
			f.afterAuth = true
		}
		switch ef.Type {
		case EFUniqueIdentifier:
			f.uids++
			f.uid = ef.Value
		case EFCookie:
			f.cookies++
			f.cookie = ef.Value
		case EFCookiePlaceholder:
			if f.placeholders == 0 {
				f.placeLen = len(ef.Value)
			} else if f.placeLen != len(ef.Value) {
				f.placeLen = -1
			}
			f.placeholders++
		case EFAuthenticator:
			if f.authOff == 0 {
				f.authOff = off
				f.auth = ef.Value
			} else {
				f.afterAuth = true
			}
		}
		off += 4 + len(ef.Value)
	}
	return f
}

// IsNTS reports whether the packet carries any NTS extension field.
func IsNTS(p *ntp.Packet) bool {
	it := p.ExtensionFields()
	for ef, ok := it.Next(); ok; ef, ok = it.Next() {
		switch ef.Type {
		case EFUniqueIdentifier, EFCookie, EFCookiePlaceholder, EFAuthenticator:
			return true
		}
	}
	return false
}

// walkPlaintext calls fn for each extension field of decrypted plaintext.
// Inside the authenticator every field must be well formed (RFC 7822
// lengths) and fill the plaintext exactly.
func walkPlaintext(pt []byte, fn func(ntp.ExtensionField)) error {
	p := ntp.Packet{Extensions: pt}
	it := p.ExtensionFields()
	for ef, ok := it.Next(); ok; ef, ok = it.Next() {
		fn(ef)
	}
	if err := it.Err(); err != nil {
		return fmt.Errorf("nts: encrypted extension fields: %w", err)
	}
	return nil
}
