package nts

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"testing"
	"time"
)

func testKeys(alg AEADAlgorithm, seed byte) Keys {
	n := alg.KeyLen()
	return Keys{Algorithm: alg, C2S: bytes.Repeat([]byte{seed}, n), S2C: bytes.Repeat([]byte{seed + 1}, n)}
}

func TestCookieRoundTrip(t *testing.T) {
	ring := testRing(t, 3)
	for _, alg := range []AEADAlgorithm{AEADAESSIVCMAC256, AEADAESSIVCMAC384, AEADAESSIVCMAC512} {
		k := testKeys(alg, 0x40)
		c, err := ring.SealCookie(k)
		if err != nil {
			t.Fatal(err)
		}
		if want := 4 + 12 + 4 + 2*alg.KeyLen() + 16; len(c) != want || len(c)%4 != 0 {
			t.Errorf("%v: cookie of %d bytes, want %d", alg, len(c), want)
		}
		got, err := ring.OpenCookie(c)
		if err != nil || got.Algorithm != alg || !bytes.Equal(got.C2S, k.C2S) || !bytes.Equal(got.S2C, k.S2C) {
			t.Fatalf("%v: OpenCookie = %+v, %v", alg, got, err)
		}
		c2, _ := ring.SealCookie(k)
		if bytes.Equal(c, c2) {
			t.Errorf("%v: two cookies for the same keys are equal (nonce reuse)", alg)
		}
	}
	if _, err := ring.SealCookie(Keys{Algorithm: 15, C2S: make([]byte, 16), S2C: make([]byte, 32)}); err == nil {
		t.Error("SealCookie accepted a short key")
	}
}

// TestCookieForged: any change to a cookie, or a cookie of another ring,
// is ErrCookie.
func TestCookieForged(t *testing.T) {
	ring := testRing(t, 4)
	c, _ := ring.SealCookie(testKeys(15, 1))
	for i := range c {
		bad := bytes.Clone(c)
		bad[i] ^= 0x10
		if _, err := ring.OpenCookie(bad); !errors.Is(err, ErrCookie) {
			t.Fatalf("byte %d changed: %v", i, err)
		}
	}
	for _, n := range []int{0, 4, 20, 39, len(c) - 1} {
		if _, err := ring.OpenCookie(c[:n]); !errors.Is(err, ErrCookie) {
			t.Fatalf("truncated to %d: %v", n, err)
		}
	}
	other := testRing(t, 5)
	oc, _ := other.SealCookie(testKeys(15, 1))
	if _, err := ring.OpenCookie(oc); !errors.Is(err, ErrCookie) {
		t.Fatalf("cookie of another ring: %v", err)
	}
}

// TestKeyRotation: after a rotation the previous key still opens its
// cookies; once it has left the kept keys, it does not.
func TestKeyRotation(t *testing.T) {
	ring, err := NewKeyRing(newRand(6), t0, 3, 24*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	old, _ := ring.SealCookie(testKeys(15, 9))
	now := t0
	for i, wantOK := range []bool{true, true, false, false} {
		now = now.Add(24 * time.Hour)
		rotated, err := ring.RotateIfDue(now)
		if err != nil || !rotated {
			t.Fatalf("rotation %d: %v %v", i+1, rotated, err)
		}
		_, err = ring.OpenCookie(old)
		if wantOK != (err == nil) {
			t.Fatalf("after %d rotations: OpenCookie error %v, want ok=%v", i+1, err, wantOK)
		}
		if len(ring.KeyIDs()) != min(i+2, 3) {
			t.Fatalf("after %d rotations: %d keys", i+1, len(ring.KeyIDs()))
		}
	}
	// Not yet due: no rotation.
	if rotated, _ := ring.RotateIfDue(now.Add(23 * time.Hour)); rotated {
		t.Fatal("rotated before the period")
	}
	if got := ring.NextRotation(); !got.Equal(now.Add(24 * time.Hour)) {
		t.Fatalf("NextRotation %v", got)
	}
	// The clock went back by more than a period: rotate (the current
	// key's age is unknowable).
	if rotated, _ := ring.RotateIfDue(now.Add(-48 * time.Hour)); !rotated {
		t.Fatal("no rotation after the clock went back two days")
	}
}

func TestKeyRingPersistence(t *testing.T) {
	ring := testRing(t, 7)
	c1, _ := ring.SealCookie(testKeys(15, 1))
	if err := ring.Rotate(t0.Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	c2, _ := ring.SealCookie(testKeys(17, 2))
	b, err := ring.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	back, err := UnmarshalKeyRing(b, newRand(8))
	if err != nil {
		t.Fatal(err)
	}
	for i, c := range [][]byte{c1, c2} {
		if _, err := back.OpenCookie(c); err != nil {
			t.Fatalf("cookie %d after reload: %v", i, err)
		}
	}
	if !back.NextRotation().Equal(ring.NextRotation()) {
		t.Fatalf("NextRotation %v, want %v", back.NextRotation(), ring.NextRotation())
	}
	b2, _ := back.MarshalBinary()
	if !bytes.Equal(b, b2) {
		t.Fatal("marshal, unmarshal, marshal changed the bytes")
	}
	bad := map[string][]byte{
		"empty":       nil,
		"magic":       append([]byte("X"), b[1:]...),
		"truncated":   b[:len(b)-1],
		"trailing":    append(bytes.Clone(b), 0),
		"zero keys":   append(bytes.Clone(b[:16]), 0, 0, 0, 3, 0, 1, 0x51, 0x80),
		"count>keep":  func() []byte { x := bytes.Clone(b); x[19] = 1; return x }(),
		"duplicate":   func() []byte { x := bytes.Clone(b); copy(x[24+44:24+48], x[24:28]); return x }(),
		"zero period": func() []byte { x := bytes.Clone(b); copy(x[20:24], []byte{0, 0, 0, 0}); return x }(),
	}
	for name, in := range bad {
		if _, err := UnmarshalKeyRing(in, newRand(9)); !errors.Is(err, ErrKeyRing) {
			t.Errorf("%s: %v", name, err)
		}
	}
}

// sealSIVCookie makes a cookie of the format before GCM (AES-SIV under
// the master key itself, a random 16-byte nonce) under ring's current
// key, as a gnomond of before 2026-12 did.
func sealSIVCookie(t testing.TB, ring *KeyRing, keys Keys, nonce byte) []byte {
	t.Helper()
	n := keys.Algorithm.KeyLen()
	mk := ring.keys[0]
	c := binary.BigEndian.AppendUint32(nil, mk.id)
	c = append(c, bytes.Repeat([]byte{nonce}, cookieNonceLen)...)
	pt := binary.BigEndian.AppendUint16(nil, uint16(keys.Algorithm))
	pt = append(pt, 0, 0)
	pt = append(pt, keys.C2S...)
	pt = append(pt, keys.S2C...)
	c = mk.siv.Seal(c, pt, c[:4], c[4:cookieHeadLen])
	if len(c) != 4+16+16+4+2*n {
		t.Fatalf("SIV cookie of %d bytes", len(c))
	}
	return c
}

// TestCookieGCMFormat: the cookie is what the format at the top of
// cookie.go says, checked with the standard library's HKDF and GCM
// directly: id, nonce (fixed field and counter, one more per cookie),
// AES-128-GCM under HKDF-SHA-256(master key) with the id as AD.
func TestCookieGCMFormat(t *testing.T) {
	ring := testRing(t, 31)
	mk := ring.keys[0]
	ck, err := hkdf.Key(sha256.New, mk.key[:], nil, "gnomon nts cookie aes-128-gcm", 16)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := aes.NewCipher(ck)
	g, _ := cipher.NewGCM(b)
	k := testKeys(AEADAESSIVCMAC256, 0x21)
	var prev []byte
	for i := range 3 {
		c, err := ring.SealCookie(k)
		if err != nil {
			t.Fatal(err)
		}
		if len(c) != 100 || binary.BigEndian.Uint32(c) != mk.id {
			t.Fatalf("cookie %d: %d bytes, id %x", i, len(c), c[:4])
		}
		pt, err := g.Open(nil, c[4:16], c[16:], c[:4])
		if err != nil {
			t.Fatalf("cookie %d does not open with the documented key: %v", i, err)
		}
		want := append([]byte{0, 15, 0, 0}, k.C2S...)
		if !bytes.Equal(pt, append(want, k.S2C...)) {
			t.Fatalf("cookie %d plaintext %x", i, pt)
		}
		if prev != nil {
			if !bytes.Equal(c[4:8], prev[4:8]) || binary.BigEndian.Uint64(c[8:16]) != binary.BigEndian.Uint64(prev[8:16])+1 {
				t.Fatalf("nonce %x after %x: not the next counter value", c[4:16], prev[4:16])
			}
		}
		prev = c
	}
	// Another ring with the same keys (a restart: the key file read
	// again) starts its nonces elsewhere.
	raw, _ := ring.MarshalBinary()
	again, err := UnmarshalKeyRing(raw, newRand(32))
	if err != nil {
		t.Fatal(err)
	}
	c, _ := again.SealCookie(k)
	if bytes.Equal(c[4:16], prev[4:16]) || bytes.Equal(c[4:8], prev[4:8]) {
		t.Fatalf("the reloaded ring's nonce %x repeats the fixed field of %x", c[4:16], prev[4:16])
	}
	if _, err := ring.OpenCookie(c); err != nil {
		t.Fatalf("the first ring does not open the reloaded ring's cookie: %v", err)
	}
}

// TestCookieFormatsDisjoint: no cookie length belongs to both formats.
func TestCookieFormatsDisjoint(t *testing.T) {
	for _, a := range []AEADAlgorithm{AEADAESSIVCMAC256, AEADAESSIVCMAC384, AEADAESSIVCMAC512} {
		for _, b := range []AEADAlgorithm{AEADAESSIVCMAC256, AEADAESSIVCMAC384, AEADAESSIVCMAC512} {
			if cookieLen(a.KeyLen()) == sivCookieLen(b.KeyLen()) {
				t.Errorf("a GCM cookie for %v is as long as a SIV cookie for %v", a, b)
			}
		}
		if cookieLen(a.KeyLen())%4 != 0 || sivCookieLen(a.KeyLen())%4 != 0 {
			t.Errorf("%v: cookie lengths not multiples of 4", a)
		}
	}
}

// TestCookieSIVFormatStillOpens: cookies of the format before keep opening
// while their master key is kept (an upgrade does not NAK every client),
// any change to one is refused, and they stop opening when the key leaves
// the ring.
func TestCookieSIVFormatStillOpens(t *testing.T) {
	ring, err := NewKeyRing(newRand(33), t0, 3, 24*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	olds := map[AEADAlgorithm][]byte{}
	for _, alg := range []AEADAlgorithm{AEADAESSIVCMAC256, AEADAESSIVCMAC384, AEADAESSIVCMAC512} {
		k := testKeys(alg, 0x50)
		c := sealSIVCookie(t, ring, k, 7)
		got, err := ring.OpenCookie(c)
		if err != nil || got.Algorithm != alg || !bytes.Equal(got.C2S, k.C2S) || !bytes.Equal(got.S2C, k.S2C) {
			t.Fatalf("%v: SIV cookie: %+v, %v", alg, got, err)
		}
		for i := range c {
			bad := bytes.Clone(c)
			bad[i] ^= 0x01
			if _, err := ring.OpenCookie(bad); !errors.Is(err, ErrCookie) {
				t.Fatalf("%v: SIV cookie with byte %d changed: %v", alg, i, err)
			}
		}
		olds[alg] = c
	}
	now := t0
	for i, wantOK := range []bool{true, true, false} {
		now = now.Add(24 * time.Hour)
		if _, err := ring.RotateIfDue(now); err != nil {
			t.Fatal(err)
		}
		for alg, c := range olds {
			if _, err := ring.OpenCookie(c); wantOK != (err == nil) {
				t.Fatalf("%v after %d rotations: %v, want ok=%v", alg, i+1, err, wantOK)
			}
		}
	}
}

// BenchmarkCookie: sealing and opening a cookie of each format (the server
// does one of each per answer).
func BenchmarkCookie(b *testing.B) {
	ring := testRing(b, 34)
	k := testKeys(AEADAESSIVCMAC256, 3)
	gcmC, _ := ring.SealCookie(k)
	sivC := sealSIVCookie(b, ring, k, 1)
	var sc scratch
	buf := make([]byte, 0, 256)
	b.Run("seal GCM", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := ring.appendCookie(buf[:0], k); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("seal SIV (before)", func(b *testing.B) {
		b.ReportAllocs()
		mk := ring.keys[0]
		var pt [68]byte
		for b.Loop() {
			mk.siv.seal(&sc, buf[:20], pt[:], sivC[:4], sivC[4:20])
		}
	})
	for name, c := range map[string][]byte{"open GCM": gcmC, "open SIV (before)": sivC} {
		b.Run(name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, _, err := ring.openCookie(&sc, buf, c); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
