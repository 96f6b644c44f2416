package nts

import (
	"crypto/hmac"
	"crypto/sha256"
	"math/rand/v2"
	"sync"
	"testing"
	"time"
)

// lockedRand is a deterministic randomness source for tests.
type lockedRand struct {
	mu sync.Mutex
	c  *rand.ChaCha8
}

func newRand(seed byte) *lockedRand {
	var s [32]byte
	s[0] = seed
	return &lockedRand{c: rand.NewChaCha8(s)}
}

func (r *lockedRand) Read(b []byte) (int, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.c.Read(b)
}

// fakeExporter stands in for a TLS session's exporter: both ends of one
// "session" share secret, and the output depends on label and context.
func fakeExporter(secret string) Exporter {
	return func(label string, context []byte, length int) ([]byte, error) {
		var out []byte
		for i := byte(0); len(out) < length; i++ {
			key := sha256.Sum256([]byte(secret)) // long enough for FIPS mode
			m := hmac.New(sha256.New, key[:])
			m.Write([]byte(label))
			m.Write([]byte{0})
			m.Write(context)
			m.Write([]byte{i})
			out = m.Sum(out)
		}
		return out[:length], nil
	}
}

var t0 = time.Date(2026, 11, 25, 22, 0, 0, 0, time.UTC)

func testRing(t testing.TB, seed byte) *KeyRing {
	t.Helper()
	k, err := NewKeyRing(newRand(seed), t0, 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	return k
}
