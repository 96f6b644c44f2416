// Package atomicfile is the one way gnomon replaces a file it keeps: the
// state files in /var/lib/gnomon (drift, NTS master keys, ntp-disabled)
// and the system files timedate1 edits (/etc/localtime, /etc/adjtime).
//
// Every change is all or nothing: the new content goes to a temporary
// file beside the target (".NAME.tmp-RANDOM"), is synced, and is renamed
// over the target; then the directory is synced so that the rename itself
// survives a power loss. On any error before the rename the temporary
// file is removed and the target is left as it was, so a caller that
// reports an error to its client has changed nothing. The rename is the
// commit: once it is done the call succeeds, and the directory sync after
// it is best effort (a sandbox may forbid opening the directory; the new
// file is in place either way, and reporting failure then would tell the
// caller that nothing changed when it did). A process killed in the middle leaves the
// old file or the new one, never a torn one; at worst a temporary file,
// which Clean removes.
package atomicfile

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// tempInfix marks a temporary name: "." + base + ".tmp-" + hex.
const tempInfix = ".tmp-"

func tempName(path string) (string, error) {
	var b [8]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", err
	}
	dir, base := filepath.Split(path)
	return filepath.Join(dir, "."+base+tempInfix+hex.EncodeToString(b[:])), nil
}

func dirOf(path string) string {
	dir := filepath.Dir(path)
	if dir == "" {
		return "."
	}
	return dir
}

// WriteFile replaces path with data, mode perm (set on the descriptor, so
// the umask does not narrow it). The file at path is the old one until the
// rename, the new one after; on error it is unchanged and no temporary
// file is left.
func WriteFile(path string, data []byte, perm fs.FileMode) (err error) {
	tmp, err := tempName(path)
	if err != nil {
		return err
	}
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL, perm)
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	renamed := false
	defer func() {
		if !renamed {
			f.Close()
			os.Remove(tmp)
		}
	}()
	if _, err := f.Write(data); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	// fchmod: the umask may have narrowed the mode, and the seccomp
	// filter allows no path-based chmod.
	if err := f.Chmod(perm); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := f.Sync(); err != nil {
		return fmt.Errorf("write %s: sync: %w", path, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	renamed = true
	_ = SyncDir(dirOf(path))
	return nil
}

// Symlink makes path a symbolic link to target, replacing what was there
// in one rename.
func Symlink(target, path string) error {
	tmp, err := tempName(path)
	if err != nil {
		return err
	}
	if err := os.Symlink(target, tmp); err != nil {
		return fmt.Errorf("link %s: %w", path, err)
	}
	if err := os.Rename(tmp, path); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("link %s: %w", path, err)
	}
	_ = SyncDir(dirOf(path))
	return nil
}

// Remove removes path; a path that does not exist is no error. The
// directory is synced so that the removal survives a crash.
func Remove(path string) error {
	if err := os.Remove(path); err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		return err
	}
	_ = SyncDir(dirOf(path)) // best effort, as after a rename
	return nil
}

// SyncDir makes the renames and removals in dir durable.
func SyncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("sync %s: %w", dir, err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("sync %s: %w", dir, err)
	}
	return nil
}

// IsTemp reports whether name (a base name) is one of WriteFile's or
// Symlink's temporary files.
func IsTemp(name string) bool {
	return strings.HasPrefix(name, ".") && strings.Contains(name, tempInfix)
}

// Clean removes from dir the temporary files a killed writer left behind
// and returns how many it removed. Call it at start-up, before any writer
// of dir runs.
func Clean(dir string) (int, error) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return 0, err
	}
	n := 0
	var errs []error
	for _, e := range ents {
		if e.IsDir() || !IsTemp(e.Name()) {
			continue
		}
		if err := os.Remove(filepath.Join(dir, e.Name())); err != nil && !errors.Is(err, fs.ErrNotExist) {
			errs = append(errs, err)
			continue
		}
		n++
	}
	return n, errors.Join(errs...)
}
