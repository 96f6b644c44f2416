package ntsio

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"gnomon.dev/gnomon/engine/nts"
)

// KeyFileName is the master key file in the state directory
// (/var/lib/gnomon/).
const KeyFileName = "nts-master-keys"

// LoadKeyRing reads the master keys from dir, rotating them if the
// current one is due, or makes and saves a fresh ring when there is no
// file. A file that does not decode is moved aside (KeyFileName +
// ".corrupt") and replaced: the only loss is that clients re-key. keep and
// period of 0 mean nts.DefaultKeep and nts.DefaultRotation (daily); they
// apply to a new ring, a loaded one keeps its own.
func LoadKeyRing(dir string, now time.Time, rand io.Reader, keep int, period time.Duration, log *slog.Logger) (*nts.KeyRing, error) {
	if log == nil {
		log = slog.Default()
	}
	path := filepath.Join(dir, KeyFileName)
	b, err := os.ReadFile(path)
	switch {
	case err == nil:
		ring, uerr := nts.UnmarshalKeyRing(b, rand)
		if uerr == nil {
			rotated, err := ring.RotateIfDue(now)
			if err != nil {
				return nil, err
			}
			if rotated {
				if err := SaveKeyRing(dir, ring); err != nil {
					return nil, err
				}
			}
			return ring, nil
		}
		log.Warn("NTS master key file unreadable; making new keys (clients will re-key)", "path", path, "err", uerr)
		if err := os.Rename(path, path+".corrupt"); err != nil {
			return nil, fmt.Errorf("ntsio: moving aside %s: %w", path, err)
		}
	case !errors.Is(err, fs.ErrNotExist):
		return nil, fmt.Errorf("ntsio: reading NTS master keys: %w", err)
	}
	ring, err := nts.NewKeyRing(rand, now, keep, period)
	if err != nil {
		return nil, err
	}
	if err := SaveKeyRing(dir, ring); err != nil {
		return nil, err
	}
	return ring, nil
}

// SaveKeyRing writes the ring to dir/KeyFileName, mode 0600, atomically: a
// temporary file in dir, synced, then renamed over the old one, and the
// directory synced.
func SaveKeyRing(dir string, ring *nts.KeyRing) error {
	b, err := ring.MarshalBinary()
	if err != nil {
		return err
	}
	f, err := os.CreateTemp(dir, "."+KeyFileName+".*")
	if err != nil {
		return fmt.Errorf("ntsio: saving NTS master keys: %w", err)
	}
	tmp := f.Name()
	ok := false
	defer func() {
		if !ok {
			f.Close()
			os.Remove(tmp)
		}
	}()
	if err := f.Chmod(0o600); err != nil {
		return fmt.Errorf("ntsio: saving NTS master keys: %w", err)
	}
	if _, err := f.Write(b); err != nil {
		return fmt.Errorf("ntsio: saving NTS master keys: %w", err)
	}
	if err := f.Sync(); err != nil {
		return fmt.Errorf("ntsio: saving NTS master keys: %w", err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("ntsio: saving NTS master keys: %w", err)
	}
	if err := os.Rename(tmp, filepath.Join(dir, KeyFileName)); err != nil {
		return fmt.Errorf("ntsio: saving NTS master keys: %w", err)
	}
	ok = true
	if d, err := os.Open(dir); err == nil {
		d.Sync()
		d.Close()
	}
	return nil
}

// RotateKeys rotates the ring when its current key is due and saves it,
// until ctx ends. now is the wall clock (time.Now in the daemon). A failed
// save is logged and retried at the next check; the new key is in use
// either way.
func RotateKeys(ctx context.Context, dir string, ring *nts.KeyRing, now func() time.Time, log *slog.Logger) error {
	if log == nil {
		log = slog.Default()
	}
	const maxSleep = time.Hour // re-check hourly: the clock may be stepped
	dirty := false
	for {
		wait := min(max(ring.NextRotation().Sub(now()), time.Second), maxSleep)
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil
		case <-t.C:
		}
		rotated, err := ring.RotateIfDue(now())
		if err != nil {
			log.Error("NTS master key rotation failed", "err", err)
			continue
		}
		if rotated || dirty {
			if err := SaveKeyRing(dir, ring); err != nil {
				log.Error("saving NTS master keys failed", "err", err)
				dirty = true
				continue
			}
			dirty = false
			if rotated {
				log.Info("NTS master key rotated", "next", ring.NextRotation())
			}
		}
	}
}
