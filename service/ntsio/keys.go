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
	"gnomon.dev/gnomon/service/atomicfile"
)

// KeyFileName is the master key file in the state directory
// (/var/lib/gnomon/).
const KeyFileName = "nts-master-keys"

// ErrNotSaved is wrapped by LoadKeyRing's error when the ring it returns
// is good but could not be written to the state directory (full,
// read-only, missing): serve with it, and keep trying to save it
// (RotateKeysUnsaved).
var ErrNotSaved = errors.New("NTS master keys held in memory only")

// LoadKeyRing reads the master keys from dir, rotating them if the
// current one is due, or makes and saves a fresh ring when there is no
// file. A file that does not decode is moved aside (KeyFileName +
// ".corrupt") and replaced: the only loss is that clients re-key. keep and
// period of 0 mean nts.DefaultKeep and nts.DefaultRotation (daily); they
// apply to a new ring, a loaded one keeps its own.
//
// When the ring is good but cannot be saved (a full or read-only
// directory), LoadKeyRing returns it with an error wrapping ErrNotSaved;
// any other error comes with a nil ring.
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
					return ring, fmt.Errorf("%w: %w", ErrNotSaved, err)
				}
			}
			return ring, nil
		}
		log.Warn("NTS master key file unreadable; making new keys (clients will re-key)", "path", path, "err", uerr)
		if err := os.Rename(path, path+".corrupt"); err != nil {
			log.Warn("cannot move the unreadable NTS master key file aside", "path", path, "err", err)
		}
	case !errors.Is(err, fs.ErrNotExist):
		log.Warn("cannot read the NTS master key file; making new keys (clients will re-key)", "path", path, "err", err)
	}
	ring, err := nts.NewKeyRing(rand, now, keep, period)
	if err != nil {
		return nil, err
	}
	if err := SaveKeyRing(dir, ring); err != nil {
		return ring, fmt.Errorf("%w: %w", ErrNotSaved, err)
	}
	return ring, nil
}

// SaveKeyRing writes the ring to dir/KeyFileName, mode 0600, atomically
// (atomicfile.WriteFile): on error the old file stays as it was.
func SaveKeyRing(dir string, ring *nts.KeyRing) error {
	b, err := ring.MarshalBinary()
	if err != nil {
		return err
	}
	if err := atomicfile.WriteFile(filepath.Join(dir, KeyFileName), b, 0o600); err != nil {
		return fmt.Errorf("ntsio: saving NTS master keys: %w", err)
	}
	return nil
}

// SaveRetry is how often RotateKeysUnsaved tries again to save a ring it
// could not save.
const SaveRetry = 30 * time.Second

// RotateKeys rotates the ring when its current key is due and saves it,
// until ctx ends. now is the wall clock (time.Now in the daemon). A failed
// save is logged and retried every SaveRetry; the new key is in use
// either way.
func RotateKeys(ctx context.Context, dir string, ring *nts.KeyRing, now func() time.Time, log *slog.Logger) error {
	return RotateKeysUnsaved(ctx, dir, ring, now, log, false, 0)
}

// RotateKeysUnsaved is RotateKeys for a ring that is not saved yet
// (unsaved: LoadKeyRing returned ErrNotSaved): it tries to save it every
// retry (0: SaveRetry) until that works, logging the first failure, then
// hourly, and the success.
func RotateKeysUnsaved(ctx context.Context, dir string, ring *nts.KeyRing, now func() time.Time, log *slog.Logger, unsaved bool, retry time.Duration) error {
	if log == nil {
		log = slog.Default()
	}
	if retry <= 0 {
		retry = SaveRetry
	}
	logEvery := max(int(time.Hour/retry), 1)
	const maxSleep = time.Hour // re-check hourly: the clock may be stepped
	dirty := unsaved
	failures := 0
	for {
		wait := min(max(ring.NextRotation().Sub(now()), time.Second), maxSleep)
		if dirty {
			wait = min(wait, retry)
		}
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
				if !dirty || failures%logEvery == 0 {
					// Once, then hourly: every retry would flood the log.
					log.Error("saving NTS master keys failed; serving with keys held in memory, retrying",
						"dir", dir, "retry_every", retry, "err", err)
				}
				failures++
				dirty = true
				continue
			}
			if dirty {
				log.Info("NTS master keys saved", "dir", dir, "after_failures", failures)
			}
			dirty, failures = false, 0
			if rotated {
				log.Info("NTS master key rotated", "next", ring.NextRotation())
			}
		}
	}
}
