package nts

import (
	"bytes"
	"encoding/hex"
	"errors"
	"strings"
	"testing"
)

func unhex(t testing.TB, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(strings.ReplaceAll(s, " ", ""))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestSIVRFC5297 checks the two examples of RFC 5297 appendix A, both ways.
func TestSIVRFC5297(t *testing.T) {
	tests := []struct {
		name, key, plaintext, output string
		ad                           []string
	}{
		{
			name:      "A.1 deterministic",
			key:       "fffefdfc fbfaf9f8 f7f6f5f4 f3f2f1f0 f0f1f2f3 f4f5f6f7 f8f9fafb fcfdfeff",
			ad:        []string{"10111213 14151617 18191a1b 1c1d1e1f 20212223 24252627"},
			plaintext: "11223344 55667788 99aabbcc ddee",
			output:    "85632d07 c6e8f37f 950acd32 0a2ecc93 40c02b96 90c4dc04 daef7f6a fe5c",
		},
		{
			name: "A.2 nonce-based",
			key:  "7f7e7d7c 7b7a7978 77767574 73727170 40414243 44454647 48494a4b 4c4d4e4f",
			ad: []string{
				"00112233 44556677 8899aabb ccddeeff deaddada deaddada ffeeddcc bbaa9988 77665544 33221100",
				"10203040 50607080 90a0",
				"09f91102 9d74e35b d84156c5 635688c0", // the nonce
			},
			plaintext: "74686973 20697320 736f6d65 20706c61 696e7465 78742074 6f20656e 63727970 74207573 696e6720 5349562d 414553",
			output: "7bdb6e3b 432667eb 06f4d14b ff2fbd0f cb900f2f ddbe4043 26601965 c889bf17" +
				"dba77ceb 094fa663 b7a3f748 ba8af829 ea64ad54 4a272e9c 485b62a3 fd5c0d",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := NewSIV(unhex(t, tt.key))
			if err != nil {
				t.Fatal(err)
			}
			var ad [][]byte
			for _, a := range tt.ad {
				ad = append(ad, unhex(t, a))
			}
			pt, want := unhex(t, tt.plaintext), unhex(t, tt.output)
			got := s.Seal([]byte("prefix"), pt, ad...)
			if !bytes.Equal(got[:6], []byte("prefix")) || !bytes.Equal(got[6:], want) {
				t.Fatalf("Seal = %x, want prefix + %x", got, want)
			}
			back, err := s.Open(nil, want, ad...)
			if err != nil || !bytes.Equal(back, pt) {
				t.Fatalf("Open = %x, %v; want %x", back, err, pt)
			}
			// Any flipped bit, in the tag, the ciphertext or the
			// associated data, fails.
			for i := range want {
				bad := bytes.Clone(want)
				bad[i] ^= 1 << (i % 8)
				if _, err := s.Open(nil, bad, ad...); !errors.Is(err, ErrOpen) {
					t.Fatalf("Open with byte %d flipped: %v", i, err)
				}
			}
			ad[0][0] ^= 0x80
			if _, err := s.Open(nil, want, ad...); !errors.Is(err, ErrOpen) {
				t.Fatalf("Open with changed AD: %v", err)
			}
		})
	}
}

// TestCMACRFC4493 checks CMAC (the S2V building block) against RFC 4493's
// AES-128 examples.
func TestCMACRFC4493(t *testing.T) {
	key := unhex(t, "2b7e1516 28aed2a6 abf71588 09cf4f3c")
	msg := unhex(t, "6bc1bee2 2e409f96 e93d7e11 7393172a ae2d8a57 1e03ac9c 9eb76fac 45af8e51"+
		"30c81c46 a35ce411 e5fbc119 1a0a52ef f69f2445 df4f9b17 ad2b417b e66c3710")
	s, err := NewSIV(append(bytes.Clone(key), make([]byte, 16)...))
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		n    int
		want string
	}{
		{0, "bb1d6929 e9593728 7fa37d12 9b756746"},
		{16, "070a16b4 6b4d4144 f79bdd9d d04a287c"},
		{40, "dfa66747 de9ae630 30ca3261 1497c827"},
		{64, "51f0bebf 7e3b9d92 fc497417 79363cfe"},
	} {
		var got [16]byte
		s.cmac(new(scratch), &got, msg[:tt.n], nil)
		if w := unhex(t, tt.want); !bytes.Equal(got[:], w) {
			t.Errorf("CMAC of %d bytes = %x, want %x", tt.n, got, w)
		}
	}
}

// TestCMACXorEnd: the in-place "xorend" of S2V equals CMAC over an
// explicitly XORed copy, for every length and alignment.
func TestCMACXorEnd(t *testing.T) {
	s, err := NewSIV(bytes.Repeat([]byte{7}, 32))
	if err != nil {
		t.Fatal(err)
	}
	var d [16]byte
	for i := range d {
		d[i] = byte(0xa0 + i)
	}
	for n := 16; n <= 80; n++ {
		msg := make([]byte, n)
		for i := range msg {
			msg[i] = byte(i * 13)
		}
		ref := bytes.Clone(msg)
		for i := range 16 {
			ref[n-16+i] ^= d[i]
		}
		var got, want [16]byte
		s.cmac(new(scratch), &got, msg, &d)
		s.cmac(new(scratch), &want, ref, nil)
		if got != want {
			t.Fatalf("n=%d: xorend CMAC %x, reference %x", n, got, want)
		}
	}
}

func TestSIVKeySizes(t *testing.T) {
	for _, n := range []int{0, 16, 31, 32, 48, 64, 65} {
		_, err := NewSIV(make([]byte, n))
		if ok := n == 32 || n == 48 || n == 64; ok != (err == nil) {
			t.Errorf("NewSIV(%d bytes): %v", n, err)
		}
	}
	s, _ := NewSIV(make([]byte, 32))
	if _, err := s.Open(nil, make([]byte, 15)); !errors.Is(err, ErrOpen) {
		t.Errorf("Open of 15 bytes: %v", err)
	}
}

func BenchmarkSIVSeal(b *testing.B) {
	s, _ := NewSIV(make([]byte, 32))
	ad := make([]byte, 200)
	pt := make([]byte, 900)
	nonce := make([]byte, 16)
	buf := make([]byte, 0, 1024)
	b.SetBytes(int64(len(pt)))
	for b.Loop() {
		buf = s.Seal(buf[:0], pt, ad, nonce)
	}
}

// TestS2VLanes: s2v, which runs the CMACs side by side, equals the plain
// one-after-the-other S2V for every plaintext length from 0 to 100 bytes
// and zero to five associated data strings of assorted lengths (more than
// maxLanes-1 take the serial path inside s2v itself).
func TestS2VLanes(t *testing.T) {
	for _, keyLen := range []int{32, 48, 64} {
		key := make([]byte, keyLen)
		for i := range key {
			key[i] = byte(i*7 + keyLen)
		}
		s, err := NewSIV(key)
		if err != nil {
			t.Fatal(err)
		}
		buf := make([]byte, 300)
		for i := range buf {
			buf[i] = byte(i*13 + 5)
		}
		adLens := []int{0, 1, 15, 16, 17, 31, 32, 33, 192, 4}
		sc := new(scratch)
		for n := 0; n <= 100; n++ {
			for nad := 0; nad <= 5; nad++ {
				var ad [][]byte
				for j := range nad {
					l := adLens[(n+j*3)%len(adLens)]
					ad = append(ad, buf[j*20:j*20+l])
				}
				p := buf[100 : 100+n]
				var got, want [16]byte
				s.s2v(sc, &got, p, ad...)
				s.s2vSerial(sc, &want, p, ad...)
				if got != want {
					t.Fatalf("key %d bytes, plaintext %d bytes, %d AD strings: s2v %x, serial %x", keyLen, n, nad, got, want)
				}
			}
		}
	}
}
