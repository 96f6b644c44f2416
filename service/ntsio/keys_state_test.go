package ntsio

import (
	"context"
	"crypto/rand"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// A state directory the keys cannot be saved in still gives a ring to
// serve with, and the error says so (ErrNotSaved).
func TestLoadKeyRingUnsaved(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "missing")
	ring, err := LoadKeyRing(dir, time.Now(), rand.Reader, 0, 0, quiet)
	if ring == nil || !errors.Is(err, ErrNotSaved) {
		t.Fatalf("LoadKeyRing in a missing directory = %v, %v; want a ring and ErrNotSaved", ring, err)
	}
	// Once the directory exists, the retry saves the ring.
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	// A clock past the next rotation makes the loop wake at once.
	go func() {
		done <- RotateKeysUnsaved(ctx, dir, ring, func() time.Time { return time.Now().Add(72 * time.Hour) }, quiet, true, 0)
	}()
	deadline := time.Now().Add(10 * time.Second)
	for {
		if _, err := os.Stat(filepath.Join(dir, KeyFileName)); err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the unsaved ring was not saved once the directory existed")
		}
		time.Sleep(50 * time.Millisecond)
	}
	cancel()
	<-done
	again, err := LoadKeyRing(dir, time.Now().Add(72*time.Hour), rand.Reader, 0, 0, quiet)
	if err != nil || again == nil {
		t.Fatalf("reloading the saved ring: %v", err)
	}
}
