package nts

import (
	"bytes"
	"testing"
)

// TestSIVCache: the same keys give the same expanded SIVs (no work per
// request), different keys different ones, the expansion is the right one,
// and the cache never grows past its bound.
func TestSIVCache(t *testing.T) {
	var c sivCache
	key := func(i int) Keys {
		k := Keys{Algorithm: AEADAESSIVCMAC256, C2S: bytes.Repeat([]byte{byte(i)}, 32), S2C: bytes.Repeat([]byte{byte(i >> 8), 1}, 16)}
		k.C2S[0], k.C2S[1] = byte(i), byte(i>>8)
		return k
	}
	a1, err := c.get(key(1))
	if err != nil {
		t.Fatal(err)
	}
	a2, _ := c.get(key(1))
	b, _ := c.get(key(2))
	if a1 != a2 {
		t.Error("the same keys expanded twice")
	}
	if a1 == b {
		t.Error("different keys share an entry")
	}
	direct, _ := NewSIV(key(1).C2S)
	msg := []byte("an NTP request's extension fields")
	if got, want := a1.c2s.Seal(nil, msg, []byte("ad")), direct.Seal(nil, msg, []byte("ad")); !bytes.Equal(got, want) {
		t.Error("the cached SIV does not seal like a fresh one")
	}
	for i := 0; i < sivCacheSize+100; i++ {
		if _, err := c.get(key(i)); err != nil {
			t.Fatal(err)
		}
	}
	if n := len(c.m); n > sivCacheSize {
		t.Errorf("cache holds %d entries, bound %d", n, sivCacheSize)
	}
}
