package nts

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"sync"
	"time"
)

// Server cookies (RFC 8915 section 6) made by this package:
//
//	key id (4) | nonce (16) | AES-SIV-CMAC-256(master key;
//	    AD: key id, nonce; plaintext: algorithm (2), reserved (2), C2S, S2C)
//
// 104 bytes for AEAD_AES_SIV_CMAC_256, a multiple of 4 for every
// algorithm, so cookie and placeholder extension fields need no padding.

// MaxCookieLen is the longest cookie a client accepts and a server opens.
const MaxCookieLen = 512

const (
	cookieNonceLen = 16
	cookieHeadLen  = 4 + cookieNonceLen
	masterKeyLen   = 32 // AEAD_AES_SIV_CMAC_256
)

// Defaults of a KeyRing.
const (
	DefaultRotation = 24 * time.Hour
	// DefaultKeep keeps the current key and two previous ones: a cookie
	// stays good for two to three rotation periods.
	DefaultKeep = 3
)

// Errors of cookies and key rings.
var (
	// ErrCookie: the cookie is malformed, was made under a key that is
	// no longer kept (or never was), or fails authentication. A server
	// answers it with an NTS NAK.
	ErrCookie  = errors.New("nts: cookie not recognized (unknown key, forged or damaged)")
	ErrKeyRing = errors.New("nts: malformed master key file")
)

type masterKey struct {
	id      uint32
	created time.Time
	key     [masterKeyLen]byte
	siv     *SIV
}

// KeyRing holds a server's master keys: the newest seals cookies, the
// newest Keep open them. It is safe for concurrent use (every NTS-KE
// connection and the NTP server share one), provided Rand is.
type KeyRing struct {
	mu     sync.RWMutex
	keys   []*masterKey // newest first
	rand   io.Reader
	keep   int
	period time.Duration
}

// NewKeyRing makes a ring with one fresh key created at now. rand is the
// source of keys and nonces (crypto/rand.Reader in production); keep and
// period of 0 mean DefaultKeep and DefaultRotation.
func NewKeyRing(rand io.Reader, now time.Time, keep int, period time.Duration) (*KeyRing, error) {
	k := newRing(rand, keep, period)
	if err := k.Rotate(now); err != nil {
		return nil, err
	}
	return k, nil
}

func newRing(rand io.Reader, keep int, period time.Duration) *KeyRing {
	if keep <= 0 {
		keep = DefaultKeep
	}
	if period <= 0 {
		period = DefaultRotation
	}
	return &KeyRing{rand: rand, keep: keep, period: period}
}

// Rotate makes a new current key created at now and drops the keys beyond
// the newest Keep. Cookies sealed under a dropped key no longer open.
func (k *KeyRing) Rotate(now time.Time) error {
	mk := &masterKey{created: now}
	var idb [4]byte
	k.mu.Lock()
	defer k.mu.Unlock()
	for {
		if err := readFull(k.rand, idb[:]); err != nil {
			return err
		}
		mk.id = binary.BigEndian.Uint32(idb[:])
		if k.find(mk.id) == nil {
			break
		}
	}
	if err := readFull(k.rand, mk.key[:]); err != nil {
		return err
	}
	var err error
	if mk.siv, err = NewSIV(mk.key[:]); err != nil {
		return err
	}
	k.keys = append([]*masterKey{mk}, k.keys...)
	if len(k.keys) > k.keep {
		clear(k.keys[k.keep:])
		k.keys = k.keys[:k.keep]
	}
	return nil
}

// NextRotation is when the current key is due to be replaced.
func (k *KeyRing) NextRotation() time.Time {
	k.mu.RLock()
	defer k.mu.RUnlock()
	if len(k.keys) == 0 {
		return time.Time{}
	}
	return k.keys[0].created.Add(k.period)
}

// RotateIfDue rotates when now has reached NextRotation, or when the
// current key claims to be from the future (the clock was stepped back by
// more than a period), and says whether it did.
func (k *KeyRing) RotateIfDue(now time.Time) (bool, error) {
	next := k.NextRotation()
	k.mu.RLock()
	created := next.Add(-k.period)
	k.mu.RUnlock()
	if now.Before(next) && !created.After(now.Add(k.period)) {
		return false, nil
	}
	return true, k.Rotate(now)
}

// KeyIDs lists the kept key ids, newest first.
func (k *KeyRing) KeyIDs() []uint32 {
	k.mu.RLock()
	defer k.mu.RUnlock()
	ids := make([]uint32, len(k.keys))
	for i, mk := range k.keys {
		ids[i] = mk.id
	}
	return ids
}

func (k *KeyRing) find(id uint32) *masterKey {
	for _, mk := range k.keys {
		if mk.id == id {
			return mk
		}
	}
	return nil
}

// SealCookie makes a cookie carrying keys under the current master key.
func (k *KeyRing) SealCookie(keys Keys) ([]byte, error) {
	var nonce [cookieNonceLen]byte
	if err := readFull(k.rand, nonce[:]); err != nil {
		return nil, err
	}
	sc := scratches.Get().(*scratch)
	defer scratches.Put(sc)
	return k.appendCookie(sc, make([]byte, 0, cookieLen(keys.Algorithm.KeyLen())), keys, &nonce)
}

// cookieLen is the length of a cookie carrying keys of n bytes each.
func cookieLen(n int) int { return cookieHeadLen + TagSize + 4 + 2*n }

// maxKeyLen is the longest key of a supported algorithm (AES-SIV-CMAC-512).
const maxKeyLen = 64

// appendCookie appends a cookie carrying keys, sealed under the current
// master key with nonce, to dst: SealCookie without allocations when dst
// has room (a server worker's reply buffer).
func (k *KeyRing) appendCookie(sc *scratch, dst []byte, keys Keys, nonce *[cookieNonceLen]byte) ([]byte, error) {
	n := keys.Algorithm.KeyLen()
	if n == 0 || len(keys.C2S) != n || len(keys.S2C) != n {
		return nil, fmt.Errorf("nts: cannot seal keys of algorithm %v with lengths %d, %d", keys.Algorithm, len(keys.C2S), len(keys.S2C))
	}
	var ptBuf [4 + 2*maxKeyLen]byte
	binary.BigEndian.PutUint16(ptBuf[:], uint16(keys.Algorithm))
	copy(ptBuf[4:], keys.C2S)
	copy(ptBuf[4+n:], keys.S2C)
	pt := ptBuf[:4+2*n]

	k.mu.RLock()
	if len(k.keys) == 0 {
		k.mu.RUnlock()
		return nil, errors.New("nts: key ring has no keys")
	}
	mk := k.keys[0]
	k.mu.RUnlock()
	start := len(dst)
	dst = binary.BigEndian.AppendUint32(dst, mk.id)
	dst = append(dst, nonce[:]...)
	head := dst[start : start+cookieHeadLen]
	dst = mk.siv.seal(sc, dst, pt, head[:4], head[4:])
	clear(ptBuf[:])
	return dst, nil
}

// OpenCookie recovers the keys from a cookie made by SealCookie under any
// kept key. Every failure is ErrCookie.
func (k *KeyRing) OpenCookie(c []byte) (Keys, error) {
	sc := scratches.Get().(*scratch)
	defer scratches.Put(sc)
	keys, _, err := k.openCookie(sc, nil, c)
	return keys, err
}

// openCookie is OpenCookie decrypting into buf[:0] (its capacity reused
// when large enough; the returned keys alias it), which it also returns.
func (k *KeyRing) openCookie(sc *scratch, buf, c []byte) (Keys, []byte, error) {
	if len(c) < cookieHeadLen+TagSize+4 || len(c) > MaxCookieLen {
		return Keys{}, buf, ErrCookie
	}
	id := binary.BigEndian.Uint32(c)
	k.mu.RLock()
	mk := k.find(id)
	k.mu.RUnlock()
	if mk == nil {
		return Keys{}, buf, ErrCookie
	}
	pt, err := mk.siv.open(sc, buf[:0], c[cookieHeadLen:], c[:4], c[4:cookieHeadLen])
	if err != nil {
		return Keys{}, buf, ErrCookie
	}
	alg := AEADAlgorithm(binary.BigEndian.Uint16(pt))
	n := alg.KeyLen()
	if n == 0 || len(pt) != 4+2*n {
		clear(pt)
		return Keys{}, pt, ErrCookie
	}
	return Keys{Algorithm: alg, C2S: pt[4 : 4+n : 4+n], S2C: pt[4+n : 4+2*n : 4+2*n]}, pt, nil
}

// The persisted form of a key ring:
//
//	"GNOMON-NTS-KEYS\x01" (16 bytes) | count (2) | keep (2) | period s (4) |
//	count × (id (4) | created, Unix ns (8) | key (32))
var keyFileMagic = []byte("GNOMON-NTS-KEYS\x01")

const keyRecordLen = 4 + 8 + masterKeyLen

// MarshalBinary serializes the ring (keys are secret: store it 0600).
func (k *KeyRing) MarshalBinary() ([]byte, error) {
	k.mu.RLock()
	defer k.mu.RUnlock()
	b := make([]byte, 0, len(keyFileMagic)+8+len(k.keys)*keyRecordLen)
	b = append(b, keyFileMagic...)
	b = binary.BigEndian.AppendUint16(b, uint16(len(k.keys)))
	b = binary.BigEndian.AppendUint16(b, uint16(k.keep))
	b = binary.BigEndian.AppendUint32(b, uint32(k.period/time.Second))
	for _, mk := range k.keys {
		b = binary.BigEndian.AppendUint32(b, mk.id)
		b = binary.BigEndian.AppendUint64(b, uint64(mk.created.UnixNano()))
		b = append(b, mk.key[:]...)
	}
	return b, nil
}

// UnmarshalKeyRing restores a ring saved by MarshalBinary; rand is the
// randomness for its future keys and nonces. Any malformation is
// ErrKeyRing.
func UnmarshalKeyRing(b []byte, rand io.Reader) (*KeyRing, error) {
	if len(b) < len(keyFileMagic)+8 || !bytes.Equal(b[:len(keyFileMagic)], keyFileMagic) {
		return nil, ErrKeyRing
	}
	b = b[len(keyFileMagic):]
	count := int(binary.BigEndian.Uint16(b))
	keep := int(binary.BigEndian.Uint16(b[2:]))
	period := time.Duration(binary.BigEndian.Uint32(b[4:])) * time.Second
	b = b[8:]
	if count == 0 || keep == 0 || count > keep || period <= 0 || len(b) != count*keyRecordLen {
		return nil, ErrKeyRing
	}
	k := newRing(rand, keep, period)
	for i := range count {
		r := b[i*keyRecordLen:]
		mk := &masterKey{
			id:      binary.BigEndian.Uint32(r),
			created: time.Unix(0, int64(binary.BigEndian.Uint64(r[4:]))),
		}
		copy(mk.key[:], r[12:keyRecordLen])
		if k.find(mk.id) != nil {
			return nil, ErrKeyRing
		}
		var err error
		if mk.siv, err = NewSIV(mk.key[:]); err != nil {
			return nil, ErrKeyRing
		}
		k.keys = append(k.keys, mk)
	}
	return k, nil
}
