package nts

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"sync"
	"sync/atomic"
	"time"
)

// Server cookies (RFC 8915 section 6) made by this package. A cookie is
// opaque to clients and read only by the server that made it, so its
// format is this server's own choice; RFC 8915 only suggests one. Since
// 2026-12 the ring seals them with AES-128-GCM:
//
//	key id (4) | nonce (12) | AES-128-GCM(cookie key of the master key;
//	    AD: key id; plaintext: algorithm (2), reserved (2), C2S, S2C) | tag (16)
//
// 100 bytes for AEAD_AES_SIV_CMAC_256 keys. The cookie key is derived from
// the master key with HKDF-SHA-256 (info "gnomon nts cookie aes-128-gcm"),
// so the master key file is unchanged. The nonce is never drawn at random
// per cookie (at 100 000 cookies a second a 96-bit random nonce would come
// close to GCM's 2^32 limit within a key's life): it is RFC 5116 section
// 3.2's "fixed field and counter", a 32-bit field and a 64-bit counter, both
// drawn from the ring's random source whenever a master key is made or
// loaded, the counter then incremented atomically for every cookie. Within
// one process a nonce cannot repeat (2^64 cookies); two processes (a
// restart, a copied key file) repeat one only if their fixed fields are
// equal (2^-32) and their counter ranges overlap (about n/2^63 for n
// cookies each).
//
// Cookies of the format before, which a ring still opens for as long as
// their master key is kept (so an upgrade does not NAK every client):
//
//	key id (4) | nonce (16) | AES-SIV-CMAC-256(master key;
//	    AD: key id, nonce; plaintext: algorithm (2), reserved (2), C2S, S2C)
//
// 104 bytes for AEAD_AES_SIV_CMAC_256 keys. The two formats tell
// themselves apart by length: 36+2n bytes (GCM) against 40+2n (SIV) for
// keys of n = 32, 48 or 64 bytes, sets that do not overlap
// (TestCookieFormatsDisjoint). Both are multiples of 4, so cookie and
// placeholder extension fields need no padding.

// MaxCookieLen is the longest cookie a client accepts and a server opens.
const MaxCookieLen = 512

const (
	cookieNonceLen = 16 // the SIV format's
	cookieHeadLen  = 4 + cookieNonceLen
	gcmNonceLen    = 12
	gcmHeadLen     = 4 + gcmNonceLen
	gcmTagLen      = 16
	masterKeyLen   = 32 // AEAD_AES_SIV_CMAC_256

	// cookieKeyInfo is HKDF's info for the GCM cookie key.
	cookieKeyInfo = "gnomon nts cookie aes-128-gcm"
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
	siv     *SIV        // opens cookies of the SIV format
	gcm     cipher.AEAD // AES-128-GCM under the derived cookie key: seals and opens
	fixed   [4]byte     // the nonces' fixed field
	counter atomic.Uint64
}

// newMasterKey expands key and draws the nonces' fixed field and the
// counter's start from rand.
func newMasterKey(id uint32, created time.Time, key *[masterKeyLen]byte, rand io.Reader) (*masterKey, error) {
	mk := &masterKey{id: id, created: created, key: *key}
	var err error
	if mk.siv, err = NewSIV(mk.key[:]); err != nil {
		return nil, err
	}
	ck, err := hkdf.Key(sha256.New, mk.key[:], nil, cookieKeyInfo, 16)
	if err != nil {
		return nil, err
	}
	b, err := aes.NewCipher(ck)
	clear(ck)
	if err != nil {
		return nil, err
	}
	if mk.gcm, err = cipher.NewGCM(b); err != nil {
		return nil, err
	}
	var start [12]byte
	if err := readFull(rand, start[:]); err != nil {
		return nil, err
	}
	copy(mk.fixed[:], start[:4])
	mk.counter.Store(binary.BigEndian.Uint64(start[4:]))
	return mk, nil
}

// nonce is the next cookie nonce under mk: never the same twice.
func (mk *masterKey) nonce(n *[gcmNonceLen]byte) {
	copy(n[:4], mk.fixed[:])
	binary.BigEndian.PutUint64(n[4:], mk.counter.Add(1))
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
	var idb [4]byte
	var id uint32
	k.mu.Lock()
	defer k.mu.Unlock()
	for {
		if err := readFull(k.rand, idb[:]); err != nil {
			return err
		}
		id = binary.BigEndian.Uint32(idb[:])
		if k.find(id) == nil {
			break
		}
	}
	var key [masterKeyLen]byte
	if err := readFull(k.rand, key[:]); err != nil {
		return err
	}
	mk, err := newMasterKey(id, now, &key, k.rand)
	clear(key[:])
	if err != nil {
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
	return k.appendCookie(make([]byte, 0, cookieLen(keys.Algorithm.KeyLen())), keys)
}

// cookieLen is the length of a cookie carrying keys of n bytes each, in
// the format SealCookie makes.
func cookieLen(n int) int { return gcmHeadLen + 4 + 2*n + gcmTagLen }

// sivCookieLen is the length of a cookie of the SIV format (the one
// before) carrying keys of n bytes each.
func sivCookieLen(n int) int { return cookieHeadLen + TagSize + 4 + 2*n }

// appendCookie appends a cookie carrying keys, sealed under the current
// master key, to dst: SealCookie without allocations when dst has room (a
// server worker's reply buffer).
func (k *KeyRing) appendCookie(dst []byte, keys Keys) ([]byte, error) {
	n := keys.Algorithm.KeyLen()
	if n == 0 || len(keys.C2S) != n || len(keys.S2C) != n {
		return nil, fmt.Errorf("nts: cannot seal keys of algorithm %v with lengths %d, %d", keys.Algorithm, len(keys.C2S), len(keys.S2C))
	}
	k.mu.RLock()
	if len(k.keys) == 0 {
		k.mu.RUnlock()
		return nil, errors.New("nts: key ring has no keys")
	}
	mk := k.keys[0]
	k.mu.RUnlock()
	start := len(dst)
	dst = binary.BigEndian.AppendUint32(dst, mk.id)
	dst = append(dst, make([]byte, gcmNonceLen)...)
	mk.nonce((*[gcmNonceLen]byte)(dst[start+4:]))
	// The plaintext is written where its ciphertext goes and sealed in
	// place (GCM allows exact overlap). The id and nonce are passed as
	// slices of dst: arrays of this frame would escape to the heap
	// through the cipher.AEAD interface.
	ptStart := len(dst)
	dst = binary.BigEndian.AppendUint16(dst, uint16(keys.Algorithm))
	dst = append(dst, 0, 0)
	dst = append(dst, keys.C2S...)
	dst = append(dst, keys.S2C...)
	pt := dst[ptStart:]
	out := mk.gcm.Seal(dst[:ptStart], dst[start+4:ptStart], pt, dst[start:start+4])
	if &out[ptStart] != &pt[0] {
		clear(pt) // Seal grew the slice: no keys left behind in the old one
	}
	return out, nil
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
// It opens cookies of both formats (see the top of this file).
func (k *KeyRing) openCookie(sc *scratch, buf, c []byte) (Keys, []byte, error) {
	gcm := isCookieLen(len(c), cookieLen)
	if !gcm && !isCookieLen(len(c), sivCookieLen) {
		return Keys{}, buf, ErrCookie
	}
	id := binary.BigEndian.Uint32(c)
	k.mu.RLock()
	mk := k.find(id)
	k.mu.RUnlock()
	if mk == nil {
		return Keys{}, buf, ErrCookie
	}
	var pt []byte
	var err error
	if gcm {
		pt, err = mk.gcm.Open(buf[:0], c[4:gcmHeadLen], c[gcmHeadLen:], c[:4])
	} else {
		pt, err = mk.siv.open(sc, buf[:0], c[cookieHeadLen:], c[:4], c[4:cookieHeadLen])
	}
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

// isCookieLen says whether l is lenOf(n) for the key length n of a
// supported algorithm.
func isCookieLen(l int, lenOf func(int) int) bool {
	for _, n := range [...]int{32, 48, 64} {
		if l == lenOf(n) {
			return true
		}
	}
	return false
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
		id := binary.BigEndian.Uint32(r)
		if k.find(id) != nil {
			return nil, ErrKeyRing
		}
		var key [masterKeyLen]byte
		copy(key[:], r[12:keyRecordLen])
		mk, err := newMasterKey(id, time.Unix(0, int64(binary.BigEndian.Uint64(r[4:]))), &key, rand)
		clear(key[:])
		if err != nil {
			return nil, fmt.Errorf("%w: %w", ErrKeyRing, err)
		}
		k.keys = append(k.keys, mk)
	}
	return k, nil
}
