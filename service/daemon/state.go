package daemon

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/user"
	"strconv"

	"gnomon.dev/gnomon/service/atomicfile"
)

// prepareStateDir makes sure the state directory (--state-dir) exists
// before anything is kept in it: a missing one is created (0750, owned by
// the user gnomond becomes, as systemd's StateDirectory= would), and the
// temporary files of a writer killed mid-write are removed. What cannot be
// done is logged, naming the flag; time keeping goes on either way.
func (d *Daemon) prepareStateDir() {
	dir := d.opts.StateDir
	if dir == "" {
		return
	}
	fi, err := os.Stat(dir)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		if err := os.MkdirAll(dir, 0o750); err != nil {
			d.log.Error("state directory missing and cannot be created: settings (SetNTP) and NTS master keys "+
				"are not kept across restarts; create it or pass another --state-dir",
				"state_dir", dir, "err", err)
			return
		}
		if err := d.chownToUser(dir); err != nil {
			d.log.Warn("state directory created, but not given to the service user", "state_dir", dir, "user", d.opts.User, "err", err)
		}
		d.log.Info("created the state directory", "state_dir", dir)
	case err != nil:
		d.log.Error("state directory unusable (--state-dir)", "state_dir", dir, "err", err)
		return
	case !fi.IsDir():
		d.log.Error("state directory is not a directory (--state-dir)", "state_dir", dir)
		return
	}
	if n, err := atomicfile.Clean(dir); err != nil {
		d.log.Warn("cannot remove temporary files left in the state directory", "state_dir", dir, "err", err)
	} else if n > 0 {
		d.log.Info("removed temporary files an interrupted write left in the state directory", "state_dir", dir, "count", n)
	}
}

// chownToUser gives path to d.opts.User when running as root and about
// to become that user.
func (d *Daemon) chownToUser(path string) error {
	if d.opts.User == "" || os.Geteuid() != 0 {
		return nil
	}
	u, err := user.Lookup(d.opts.User)
	if err != nil {
		return err
	}
	uid, err := strconv.Atoi(u.Uid)
	if err != nil {
		return err
	}
	gid, err := strconv.Atoi(u.Gid)
	if err != nil {
		return err
	}
	return os.Chown(path, uid, gid)
}

// stateError explains a failed write in the state directory: which
// directory and flag, when it is the directory itself that is missing.
func (d *Daemon) stateError(err error) error {
	if d.opts.StateDir == "" || !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	if _, serr := os.Stat(d.opts.StateDir); errors.Is(serr, fs.ErrNotExist) {
		return fmt.Errorf("the state directory %s does not exist (create it, owned by the service user, or start gnomond with another --state-dir): %w",
			d.opts.StateDir, err)
	}
	return err
}
