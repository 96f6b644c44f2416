package ntp

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"crypto/md5"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/sha3"
	"crypto/sha512"
	"crypto/subtle"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"slices"
	"strconv"
	"strings"
)

// Symmetric-key authentication: the legacy NTP MAC (RFC 5905 section 7.3,
// key ID + digest after the header and extension fields), with the digests
// and ciphers chrony 4.3 accepts in its key file, AES-CMAC-128 of RFC 8573
// among them.
//
// For a hash type the digest is H(key || packet), for a cipher type it is
// AES-CMAC(key, packet) (RFC 4493), where packet is everything before the
// MAC. As chrony does, digests longer than 20 bytes are truncated to 20 in
// NTPv4 (RFC 7822 caps an NTPv4 MAC at 24 bytes); NTPv1..3 carry them
// whole.

// KeyType is the MAC algorithm of a symmetric key.
type KeyType uint8

// The key types of chrony's key file (TIGER and WHIRLPOOL, which chrony
// has only with some crypto libraries, are not supported).
const (
	KeyMD5 KeyType = iota + 1
	KeySHA1
	KeySHA256
	KeySHA384
	KeySHA512
	KeySHA3_224
	KeySHA3_256
	KeySHA3_384
	KeySHA3_512
	KeyAES128 // AES-CMAC-128, RFC 8573: the one a new deployment should use
	KeyAES256 // AES-CMAC with a 256-bit key
)

var keyTypeNames = [...]string{
	KeyMD5: "MD5", KeySHA1: "SHA1", KeySHA256: "SHA256", KeySHA384: "SHA384", KeySHA512: "SHA512",
	KeySHA3_224: "SHA3-224", KeySHA3_256: "SHA3-256", KeySHA3_384: "SHA3-384", KeySHA3_512: "SHA3-512",
	KeyAES128: "AES128", KeyAES256: "AES256",
}

func (t KeyType) String() string {
	if int(t) < len(keyTypeNames) && keyTypeNames[t] != "" {
		return keyTypeNames[t]
	}
	return "keytype(" + strconv.Itoa(int(t)) + ")"
}

// ParseKeyType reads a type name as chrony writes it (case does not
// matter).
func ParseKeyType(s string) (KeyType, error) {
	for t, n := range keyTypeNames {
		if n != "" && strings.EqualFold(s, n) {
			return KeyType(t), nil
		}
	}
	if strings.EqualFold(s, "TIGER") || strings.EqualFold(s, "WHIRLPOOL") {
		return 0, fmt.Errorf("key type %s is not supported (use AES128)", s)
	}
	return 0, fmt.Errorf("unknown key type %q (want one of %s)", s, strings.Join(keyTypeNames[1:], ", "))
}

// IsCipher reports whether the type is a CMAC cipher rather than a hash.
func (t KeyType) IsCipher() bool { return t == KeyAES128 || t == KeyAES256 }

func (t KeyType) newHash() hash.Hash {
	switch t {
	case KeyMD5:
		return md5.New()
	case KeySHA1:
		return sha1.New()
	case KeySHA256:
		return sha256.New()
	case KeySHA384:
		return sha512.New384()
	case KeySHA512:
		return sha512.New()
	case KeySHA3_224:
		return sha3.New224()
	case KeySHA3_256:
		return sha3.New256()
	case KeySHA3_384:
		return sha3.New384()
	case KeySHA3_512:
		return sha3.New512()
	}
	return nil
}

// digestLen is the full digest length of the type.
func (t KeyType) digestLen() int {
	if t.IsCipher() {
		return 16
	}
	if h := t.newHash(); h != nil {
		return h.Size()
	}
	return 0
}

// Key is one symmetric key.
type Key struct {
	ID   uint32
	Type KeyType
	// secret is the key material; for a cipher, block and the CMAC
	// subkeys are derived from it.
	secret []byte
	block  cipher.Block
	k1, k2 [16]byte
}

// NewKey makes a key. A cipher type needs a key of exactly its size (16
// bytes for AES128, 32 for AES256); a hash type any non-empty key.
func NewKey(id uint32, t KeyType, secret []byte) (*Key, error) {
	if id == 0 {
		return nil, errors.New("key ID 0 is reserved (use 1 to 4294967295)")
	}
	if len(secret) == 0 {
		return nil, errors.New("empty key")
	}
	k := &Key{ID: id, Type: t, secret: slices.Clone(secret)}
	switch t {
	case KeyAES128, KeyAES256:
		want := 16
		if t == KeyAES256 {
			want = 32
		}
		if len(secret) != want {
			return nil, fmt.Errorf("an %s key must be %d bits, this one is %d", t, want*8, len(secret)*8)
		}
		b, err := aes.NewCipher(k.secret)
		if err != nil {
			return nil, err
		}
		k.block = b
		var l [16]byte
		b.Encrypt(l[:], l[:])
		k.k1 = cmacDouble(l)
		k.k2 = cmacDouble(k.k1)
	default:
		if t.newHash() == nil {
			return nil, fmt.Errorf("unknown key type %d", t)
		}
	}
	return k, nil
}

// Bits is the key's length in bits (chrony warns below 80).
func (k *Key) Bits() int { return len(k.secret) * 8 }

// MACLen is the length of the MAC (key ID and digest) this key adds to a
// packet of the given version.
func (k *Key) MACLen(version uint8) int { return 4 + k.digestLenFor(version) }

func (k *Key) digestLenFor(version uint8) int {
	n := k.Type.digestLen()
	if version >= 4 && n > maxV4MACLen-4 {
		n = maxV4MACLen - 4
	}
	return n
}

// digest writes the full digest of data into out (its length is the
// key type's, digestLenFor).
func (k *Key) digest(data []byte, out *[64]byte) {
	if k.block != nil {
		var t [16]byte
		k.cmac(data, &t)
		copy(out[:], t[:])
		return
	}
	h := k.Type.newHash()
	h.Write(k.secret)
	h.Write(data)
	h.Sum(out[:0])
}

// AppendMAC signs the packet b[:n]: it writes the key ID and digest at
// b[n:] and returns the new length, or io.ErrShortBuffer. The version is
// read from the header (it decides the truncation).
func (k *Key) AppendMAC(b []byte, n int) (int, error) {
	if n < HeaderLen || n > len(b) {
		return 0, io.ErrShortBuffer
	}
	dl := k.digestLenFor(b[0] >> 3 & 7)
	if len(b)-n < 4+dl {
		return 0, io.ErrShortBuffer
	}
	var d [64]byte
	k.digest(b[:n], &d)
	binary.BigEndian.PutUint32(b[n:], k.ID)
	copy(b[n+4:], d[:dl])
	return n + 4 + dl, nil
}

// Errors of MAC verification; every one rejects the packet.
var (
	ErrNoMAC      = errors.New("ntp: packet has no MAC but a key is required")
	ErrCryptoNAK  = errors.New("ntp: crypto-NAK: the peer did not accept our key")
	ErrUnknownKey = errors.New("ntp: MAC with an unknown or unexpected key ID")
	ErrBadMAC     = errors.New("ntp: MAC does not verify (wrong key, altered or truncated)")
)

// verify checks the MAC mac (key ID and digest) over data.
func (k *Key) verify(data, mac []byte, version uint8) error {
	if len(mac) != 4+k.digestLenFor(version) {
		return ErrBadMAC
	}
	var d [64]byte
	k.digest(data, &d)
	if subtle.ConstantTimeCompare(d[:len(mac)-4], mac[4:]) != 1 {
		return ErrBadMAC
	}
	return nil
}

// MACKeyID is the key ID of p's MAC; ok is false when p has none or a
// crypto-NAK.
func MACKeyID(p *Packet) (id uint32, ok bool) {
	if len(p.MAC) <= cryptoNAKLen {
		return 0, false
	}
	return binary.BigEndian.Uint32(p.MAC), true
}

// macBody is what p's MAC covers: b up to the MAC.
func macBody(b []byte, p *Packet) []byte { return b[:len(b)-len(p.MAC)] }

// KeySet is the keys of a key file, by ID.
type KeySet struct {
	keys map[uint32]*Key
}

// NewKeySet holds the given keys; a repeated ID is an error.
func NewKeySet(keys ...*Key) (*KeySet, error) {
	s := &KeySet{keys: map[uint32]*Key{}}
	for _, k := range keys {
		if _, dup := s.keys[k.ID]; dup {
			return nil, fmt.Errorf("key %d is defined twice", k.ID)
		}
		s.keys[k.ID] = k
	}
	return s, nil
}

// Key returns the key with that ID, or nil.
func (s *KeySet) Key(id uint32) *Key {
	if s == nil {
		return nil
	}
	return s.keys[id]
}

// IDs are the key IDs, sorted.
func (s *KeySet) IDs() []uint32 {
	if s == nil {
		return nil
	}
	ids := make([]uint32, 0, len(s.keys))
	for id := range s.keys {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	return ids
}

// Len is the number of keys.
func (s *KeySet) Len() int {
	if s == nil {
		return 0
	}
	return len(s.keys)
}

// Verify checks the MAC of the datagram b (parsed into p) against the
// set's keys and returns the key that signed it. A packet without MAC
// gives ErrNoMAC, a crypto-NAK ErrCryptoNAK, a key ID not in the set
// ErrUnknownKey, a wrong or truncated digest ErrBadMAC.
func (s *KeySet) Verify(b []byte, p *Packet) (*Key, error) {
	if p.MAC == nil {
		return nil, ErrNoMAC
	}
	id, ok := MACKeyID(p)
	if !ok {
		return nil, ErrCryptoNAK
	}
	k := s.Key(id)
	if k == nil {
		return nil, ErrUnknownKey
	}
	if err := k.verify(macBody(b, p), p.MAC, p.Version); err != nil {
		return nil, err
	}
	return k, nil
}

// maxKeyLine is chrony's limit on a key file line.
const maxKeyLine = 2047

// ParseKeyFile reads a key file in chrony's format: one key a line, "ID
// [TYPE] KEY", TYPE MD5 when left out, KEY ASCII (optionally prefixed
// "ASCII:") or hexadecimal with the prefix "HEX:". Lines starting with #,
// !, ; or % are comments, as in chrony. Unlike chrony, which skips a line
// it cannot read, every bad line is an error ("line N: ...", all of them
// joined), so a key the administrator meant to use never silently goes
// missing.
func ParseKeyFile(b []byte) (*KeySet, error) {
	s := &KeySet{keys: map[uint32]*Key{}}
	var errs []error
	lineNo := 0
	for len(b) > 0 {
		lineNo++
		var line []byte
		if i := bytes.IndexByte(b, '\n'); i >= 0 {
			line, b = b[:i], b[i+1:]
		} else {
			line, b = b, nil
		}
		if len(errs) >= 20 {
			errs = append(errs, errors.New("too many errors"))
			break
		}
		k, err := parseKeyLine(line)
		if err != nil {
			errs = append(errs, fmt.Errorf("line %d: %w", lineNo, err))
			continue
		}
		if k == nil {
			continue
		}
		if _, dup := s.keys[k.ID]; dup {
			errs = append(errs, fmt.Errorf("line %d: key %d is defined twice", lineNo, k.ID))
			continue
		}
		s.keys[k.ID] = k
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return s, nil
}

// parseKeyLine reads one line; nil, nil for a blank or comment line.
func parseKeyLine(line []byte) (*Key, error) {
	if len(line) > maxKeyLine {
		return nil, fmt.Errorf("longer than %d characters", maxKeyLine)
	}
	f := strings.Fields(string(line))
	if len(f) == 0 || strings.ContainsAny(f[0][:1], "#!;%") {
		return nil, nil
	}
	id, err := strconv.ParseUint(f[0], 10, 32)
	if err != nil || id == 0 {
		return nil, fmt.Errorf("key ID %q is not a number from 1 to 4294967295", clip(f[0]))
	}
	t := KeyMD5
	var key string
	switch len(f) {
	case 2:
		key = f[1]
	case 3:
		if t, err = ParseKeyType(clip(f[1])); err != nil {
			return nil, fmt.Errorf("key %d: %w", id, err)
		}
		key = f[2]
	default:
		return nil, fmt.Errorf("key %d: want \"ID [TYPE] KEY\", got %d fields", id, len(f))
	}
	var secret []byte
	switch {
	case len(key) >= 4 && strings.EqualFold(key[:4], "HEX:"):
		if secret, err = hex.DecodeString(key[4:]); err != nil {
			return nil, fmt.Errorf("key %d: bad hexadecimal key after HEX: (%v)", id, err)
		}
	case len(key) >= 6 && strings.EqualFold(key[:6], "ASCII:"):
		secret = []byte(key[6:])
	default:
		secret = []byte(key)
	}
	k, err := NewKey(uint32(id), t, secret)
	if err != nil {
		return nil, fmt.Errorf("key %d: %w", id, err)
	}
	return k, nil
}

func clip(s string) string {
	if len(s) > 40 {
		return s[:40] + "..."
	}
	return s
}

// SymmetricAuth authenticates a source's exchanges with one key: requests
// are signed, replies must carry a MAC by the same key. It implements
// Authenticator.
type SymmetricAuth struct {
	Key *Key
	// Rejected counts replies refused for their MAC, by reason.
	NoMAC, CryptoNAK, WrongKey, BadMAC uint64
}

// Seal signs the request b[:n].
func (a *SymmetricAuth) Seal(b []byte, n int) (int, error) { return a.Key.AppendMAC(b, n) }

// Open verifies a reply's MAC.
func (a *SymmetricAuth) Open(reply []byte, p *Packet) error {
	switch id, ok := MACKeyID(p); {
	case p.MAC == nil:
		a.NoMAC++
		return ErrNoMAC
	case !ok:
		a.CryptoNAK++
		return ErrCryptoNAK
	case id != a.Key.ID:
		a.WrongKey++
		return ErrUnknownKey
	}
	if err := a.Key.verify(macBody(reply, p), p.MAC, p.Version); err != nil {
		a.BadMAC++
		return err
	}
	return nil
}

// Nak does nothing: a symmetric key has nothing to renew.
func (a *SymmetricAuth) Nak() {}

// cmacDouble is the doubling in GF(2^128) of RFC 4493's subkey generation.
func cmacDouble(v [16]byte) [16]byte {
	var out [16]byte
	carry := v[0] >> 7
	for i := 0; i < 15; i++ {
		out[i] = v[i]<<1 | v[i+1]>>7
	}
	out[15] = v[15] << 1
	if carry != 0 {
		out[15] ^= 0x87
	}
	return out
}

// cmac is AES-CMAC (RFC 4493) of msg under the key.
func (k *Key) cmac(msg []byte, out *[16]byte) {
	var x [16]byte
	n := (len(msg) + 15) / 16
	complete := n > 0 && len(msg)%16 == 0
	if n == 0 {
		n = 1
	}
	for i := 0; i < n-1; i++ {
		subtle.XORBytes(x[:], x[:], msg[16*i:16*i+16])
		k.block.Encrypt(x[:], x[:])
	}
	var last [16]byte
	rest := msg[16*(n-1):]
	if complete {
		subtle.XORBytes(last[:], rest, k.k1[:])
	} else {
		copy(last[:], rest)
		last[len(rest)] = 0x80
		subtle.XORBytes(last[:], last[:], k.k2[:])
	}
	subtle.XORBytes(x[:], x[:], last[:])
	k.block.Encrypt(out[:], x[:])
}
