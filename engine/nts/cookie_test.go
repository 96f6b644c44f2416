package nts

import (
	"bytes"
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
		if want := 4 + 16 + 16 + 4 + 2*alg.KeyLen(); len(c) != want || len(c)%4 != 0 {
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
