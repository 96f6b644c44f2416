package nts

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/subtle"
	"encoding/binary"
	"errors"
	"sync"
)

// SIV is AES-SIV (RFC 5297): S2V over AES-CMAC for the synthetic IV, then
// AES-CTR. The key is two AES keys of equal length, K1 (CMAC) then K2
// (CTR): 32 bytes for AEAD_AES_SIV_CMAC_256, 48 for _384, 64 for _512.
//
// Output layout is RFC 5297's: the 16-byte synthetic IV (the tag) first,
// then the ciphertext, which is as long as the plaintext.
//
// A SIV holds only expanded keys and never changes after NewSIV, so one
// value may be used by many goroutines at once.
type SIV struct {
	mac    cipher.Block // K1
	ctr    cipher.Block // K2
	k1, k2 [16]byte     // CMAC subkeys
	zero   [16]byte     // CMAC(K1, 0^128), the start of every S2V
}

// TagSize is the length of the synthetic IV that precedes the ciphertext.
const TagSize = 16

// Errors of the SIV.
var (
	ErrKeySize = errors.New("nts: AES-SIV key must be 32, 48 or 64 bytes")
	ErrOpen    = errors.New("nts: message authentication failed")
)

// NewSIV expands key (32, 48 or 64 bytes).
func NewSIV(key []byte) (*SIV, error) {
	switch len(key) {
	case 32, 48, 64:
	default:
		return nil, ErrKeySize
	}
	half := len(key) / 2
	mac, err := aes.NewCipher(key[:half])
	if err != nil {
		return nil, err
	}
	ctr, err := aes.NewCipher(key[half:])
	if err != nil {
		return nil, err
	}
	s := &SIV{mac: mac, ctr: ctr}
	sc := new(scratch)
	mac.Encrypt(sc.m[:], sc.m[:]) // L = AES(K1, 0^128)
	s.k1 = dbl(sc.m)
	s.k2 = dbl(s.k1)
	var z [16]byte
	s.cmac(sc, &s.zero, z[:], nil)
	return s, nil
}

// dbl is multiplication by x in GF(2^128) with RFC 5297's polynomial
// (the block as one big-endian 128-bit number; constant time).
func dbl(v [16]byte) [16]byte {
	hi := binary.BigEndian.Uint64(v[:8])
	lo := binary.BigEndian.Uint64(v[8:])
	carry := hi >> 63
	hi = hi<<1 | lo>>63
	lo = lo<<1 ^ (0x87 & -carry)
	var out [16]byte
	binary.BigEndian.PutUint64(out[:8], hi)
	binary.BigEndian.PutUint64(out[8:], lo)
	return out
}

// xor16 XORs the first 16 bytes of src into dst, as two 64-bit words: a
// call of subtle.XORBytes per block cost more than the XOR itself.
func xor16(dst *[16]byte, src []byte) {
	_ = src[15]
	a := binary.LittleEndian.Uint64(dst[:8]) ^ binary.LittleEndian.Uint64(src[:8])
	b := binary.LittleEndian.Uint64(dst[8:]) ^ binary.LittleEndian.Uint64(src[8:16])
	binary.LittleEndian.PutUint64(dst[:8], a)
	binary.LittleEndian.PutUint64(dst[8:], b)
}

// scratch holds every block one Seal or Open works on. The block cipher is
// an interface, so whatever is handed to it lives on the heap; one scratch
// per call instead of a dozen small arrays keeps a packet's cost to one
// allocation (the SIV itself is shared between goroutines, so the scratch
// cannot live in it).
type scratch struct {
	x, blk, m [16]byte
	v, t      [16]byte // the synthetic IV, made or checked
	ks, ctr   [ctrBatch * 16]byte
	lanes     [maxLanes][16]byte // the chaining values of s2v's CMACs
}

// ctrBatch is how many counter blocks ctrXOR encrypts back to back before
// XORing them in: independent block encryptions, which the CPU overlaps.
const ctrBatch = 8

// maxLanes is how many CMACs s2v runs side by side (the associated data
// strings and the plaintext's first blocks); with more strings than
// maxLanes-1 it computes them one after the other.
const maxLanes = 4

// scratches recycles scratch space between calls; a server answering
// tens of thousands of NTS requests a second would otherwise feed the
// garbage collector two of them per request.
var scratches = sync.Pool{New: func() any { return new(scratch) }}

// cmac computes AES-CMAC (RFC 4493) under K1 of msg into out. If xorEnd
// is not nil (and len(msg) >= 16), it is XORed into the last 16 bytes of
// msg first, without modifying msg: S2V's "xorend".
func (s *SIV) cmac(sc *scratch, out *[16]byte, msg []byte, xorEnd *[16]byte) {
	sc.x = [16]byte{}
	s.cmacFrom(sc, out, &sc.x, msg, 0, xorEnd)
}

// cmacLast is where the last block of a CMAC over n bytes begins.
func cmacLast(n int) int {
	if n == 0 {
		return 0
	}
	return (n - 1) / 16 * 16
}

// cmacFrom finishes a CMAC of msg whose chaining value after the blocks
// before from (a multiple of 16, at most cmacLast(len(msg))) is x, into
// out (which may be x).
func (s *SIV) cmacFrom(sc *scratch, out, x *[16]byte, msg []byte, from int, xorEnd *[16]byte) {
	blk := &sc.blk
	n := len(msg)
	// The last block is full only when n is a non-zero multiple of 16.
	full := n > 0 && n%16 == 0
	last := cmacLast(n)
	tailStart := n - 16 // where xorEnd begins
	for off := from; off < last; off += 16 {
		if xorEnd != nil && off+16 > tailStart {
			copy(blk[:], msg[off:off+16])
			applyXorEnd(blk, off, tailStart, xorEnd)
			xor16(x, blk[:])
		} else {
			xor16(x, msg[off:off+16])
		}
		s.mac.Encrypt(x[:], x[:])
	}
	*blk = [16]byte{}
	copy(blk[:], msg[last:])
	if xorEnd != nil {
		applyXorEnd(blk, last, tailStart, xorEnd)
	}
	if full {
		xor16(blk, s.k1[:])
	} else {
		blk[n-last] = 0x80
		xor16(blk, s.k2[:])
	}
	xor16(x, blk[:])
	s.mac.Encrypt(out[:], x[:])
}

// applyXorEnd XORs the bytes of xorEnd that fall into the block starting at
// message offset off (xorEnd covers message bytes tail..tail+15).
func applyXorEnd(blk *[16]byte, off, tail int, xorEnd *[16]byte) {
	for i := range 16 {
		j := off + i - tail
		if j >= 0 && j < 16 {
			blk[i] ^= xorEnd[j]
		}
	}
}

// s2v is RFC 5297's S2V over the strings ad... followed by p, into v.
//
// Each string's CMAC is a chain of dependent block encryptions, but the
// chains are independent of each other, and so are the blocks of p that
// S2V's xorend does not reach: s2v advances them side by side, one block
// of each in turn, so that the CPU overlaps the encryptions (AES-NI's
// latency, not its throughput, bounds one chain).
func (s *SIV) s2v(sc *scratch, v *[16]byte, p []byte, ad ...[]byte) {
	if len(ad) > maxLanes-1 {
		s.s2vSerial(sc, v, p, ad...)
		return
	}
	// Lane i runs the CMAC of msgs[i] up to stops[i] (a multiple of 16),
	// its chaining value in sc.lanes[i] (the messages stay out of the
	// scratch: they may live on the caller's stack).
	var msgs [maxLanes][]byte
	var stops [maxLanes]int
	n := 0
	for _, a := range ad {
		msgs[n], stops[n] = a, cmacLast(len(a))
		n++
	}
	if len(p) >= 32 {
		// The blocks of p before the first one xorend reaches.
		msgs[n], stops[n] = p, (len(p)-16)/16*16
		n++
	}
	for i := range n {
		sc.lanes[i] = [16]byte{}
	}
	off := 0
	for ; ; off += 16 {
		busy := false
		for i := range n {
			if off < stops[i] {
				x := &sc.lanes[i]
				xor16(x, msgs[i][off:])
				s.mac.Encrypt(x[:], x[:])
				busy = true
			}
		}
		if !busy {
			break
		}
	}
	d := s.zero
	for i, a := range ad {
		x := &sc.lanes[i]
		s.cmacFrom(sc, x, x, a, min(off, stops[i]), nil)
		d = dbl(d)
		xor16(&d, x[:])
	}
	switch {
	case len(p) >= 32:
		x := &sc.lanes[len(ad)]
		s.cmacFrom(sc, v, x, p, min(off, stops[len(ad)]), &d)
	case len(p) >= 16:
		s.cmac(sc, v, p, &d)
	default:
		s.s2vShort(sc, v, p, &d)
	}
}

// s2vSerial is s2v one CMAC after the other.
func (s *SIV) s2vSerial(sc *scratch, v *[16]byte, p []byte, ad ...[]byte) {
	d := s.zero
	m := &sc.m
	for _, a := range ad {
		d = dbl(d)
		s.cmac(sc, m, a, nil)
		xor16(&d, m[:])
	}
	if len(p) >= 16 {
		s.cmac(sc, v, p, &d)
		return
	}
	s.s2vShort(sc, v, p, &d)
}

// s2vShort ends S2V for a p shorter than 16 bytes: CMAC of dbl(d) XOR
// pad(p).
func (s *SIV) s2vShort(sc *scratch, v *[16]byte, p []byte, d *[16]byte) {
	dd := dbl(*d)
	var t [16]byte
	copy(t[:], p)
	t[len(p)] = 0x80
	xor16(&dd, t[:])
	s.cmac(sc, v, dd[:], nil)
}

// ctrXOR runs AES-CTR under K2 from the synthetic IV v (with bits 31 and
// 63 cleared) over src into dst: the counter is the whole 128-bit block,
// big-endian, as RFC 5297 says. Up to ctrBatch keystream blocks are made
// back to back, then XORed in at once.
func (s *SIV) ctrXOR(sc *scratch, dst, src []byte, v *[16]byte) {
	hi := binary.BigEndian.Uint64(v[:8])
	lo := binary.BigEndian.Uint64(v[8:]) &^ (1<<63 | 1<<31) // RFC 5297's bits 63 and 31 of the 128
	dst = dst[:len(src)]
	for len(src) > 0 {
		n := min(len(src), ctrBatch*16)
		for off := 0; off < n; off += 16 {
			binary.BigEndian.PutUint64(sc.ctr[off:], hi)
			binary.BigEndian.PutUint64(sc.ctr[off+8:], lo)
			lo++
			if lo == 0 {
				hi++
			}
		}
		for off := 0; off < n; off += 16 {
			s.ctr.Encrypt(sc.ks[off:off+16], sc.ctr[off:off+16])
		}
		subtle.XORBytes(dst[:n], src[:n], sc.ks[:n])
		src, dst = src[n:], dst[n:]
	}
}

// Seal encrypts and authenticates plaintext and the associated data
// strings ad (in order; RFC 5297 allows up to 126 of them, and a nonce is
// simply the last one) and appends IV||ciphertext to dst.
func (s *SIV) Seal(dst, plaintext []byte, ad ...[]byte) []byte {
	sc := scratches.Get().(*scratch)
	defer scratches.Put(sc)
	return s.seal(sc, dst, plaintext, ad...)
}

// seal is Seal with the caller's scratch space (a server worker keeps
// its own and skips the pool).
func (s *SIV) seal(sc *scratch, dst, plaintext []byte, ad ...[]byte) []byte {
	v := &sc.v
	s.s2v(sc, v, plaintext, ad...)
	ret, out := sliceForAppend(dst, TagSize+len(plaintext))
	copy(out, v[:])
	s.ctrXOR(sc, out[TagSize:], plaintext, v)
	return ret
}

// Open checks and decrypts IV||ciphertext and appends the plaintext to dst.
// The tag is compared in constant time; on failure nothing is appended
// and ErrOpen is returned.
func (s *SIV) Open(dst, ciphertext []byte, ad ...[]byte) ([]byte, error) {
	sc := scratches.Get().(*scratch)
	defer scratches.Put(sc)
	return s.open(sc, dst, ciphertext, ad...)
}

// open is Open with the caller's scratch space.
func (s *SIV) open(sc *scratch, dst, ciphertext []byte, ad ...[]byte) ([]byte, error) {
	if len(ciphertext) < TagSize {
		return nil, ErrOpen
	}
	v, t := &sc.v, &sc.t
	copy(v[:], ciphertext[:TagSize])
	ct := ciphertext[TagSize:]
	ret, out := sliceForAppend(dst, len(ct))
	s.ctrXOR(sc, out, ct, v)
	s.s2v(sc, t, out, ad...)
	if subtle.ConstantTimeCompare(t[:], v[:]) != 1 {
		clear(out)
		return nil, ErrOpen
	}
	return ret, nil
}

// sliceForAppend extends in by n bytes, returning the whole slice and the
// new tail.
func sliceForAppend(in []byte, n int) (head, tail []byte) {
	if total := len(in) + n; cap(in) >= total {
		head = in[:total]
	} else {
		head = make([]byte, total)
		copy(head, in)
	}
	tail = head[len(in):]
	return
}
