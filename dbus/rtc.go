package dbus

import (
	"errors"
	"io/fs"
	"syscall"

	"gnomon.dev/gnomon/service/sysfiles"
)

// readRTCUSec is timedate1's RTCTimeUSec: the RTC read as if it kept UTC,
// in µs; 0 when there is no RTC (ENOENT), it is busy (EBUSY) or holds no
// valid time (EINVAL). Other errors fail the read.
func readRTCUSec(path string) (any, error) {
	t, err := sysfiles.ReadRTCRaw(path)
	if err != nil {
		var errno syscall.Errno
		if errors.Is(err, fs.ErrNotExist) || (errors.As(err, &errno) && (errno == syscall.EBUSY || errno == syscall.EINVAL)) {
			return uint64(0), nil
		}
		// Under User=gnomon the RTC device is usually root's alone. A
		// property read that fails makes the whole GetAll fail, and
		// "timedatectl status" with it, so report no RTC time (as for a
		// missing RTC) instead of an error.
		if errors.Is(err, fs.ErrPermission) {
			return uint64(0), nil
		}
		return nil, errnoError("Failed to read RTC", err)
	}
	us := t.UnixMicro()
	if us < 0 {
		return uint64(0), nil
	}
	return uint64(us), nil
}
