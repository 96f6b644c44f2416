package dbus

import (
	"errors"
	"io/fs"
	"os"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// readRTCUSec is timedate1's RTCTimeUSec: the RTC read as if it kept UTC,
// in µs; 0 when there is no RTC (ENOENT), it is busy (EBUSY) or holds no
// valid time (EINVAL). Other errors fail the read.
func readRTCUSec(path string) (any, error) {
	t, err := readRTCRaw(path)
	if err != nil {
		var errno syscall.Errno
		if errors.Is(err, fs.ErrNotExist) || (errors.As(err, &errno) && (errno == syscall.EBUSY || errno == syscall.EINVAL)) {
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

// readRTCRaw reads the RTC's broken-down time and returns it as UTC.
func readRTCRaw(path string) (time.Time, error) {
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_CLOEXEC, 0)
	if err != nil {
		return time.Time{}, err
	}
	defer f.Close()
	rt, err := unix.IoctlGetRTCTime(int(f.Fd()))
	if err != nil {
		return time.Time{}, err
	}
	return time.Date(int(rt.Year)+1900, time.Month(rt.Mon+1), int(rt.Mday), int(rt.Hour), int(rt.Min), int(rt.Sec), 0, time.UTC), nil
}

// readRTC reads the RTC, interpreting it as local time when local.
func readRTC(path string, local bool) (time.Time, error) {
	t, err := readRTCRaw(path)
	if err != nil || !local {
		return t, err
	}
	return time.Date(t.Year(), t.Month(), t.Day(), t.Hour(), t.Minute(), t.Second(), 0, time.Local), nil
}

// writeRTC sets the RTC to t, as local time when local, else UTC
// (RTC_SET_TIME works on a read-only descriptor). With no RTC the error
// wraps fs.ErrNotExist.
func writeRTC(path string, t time.Time, local bool) error {
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_CLOEXEC, 0)
	if err != nil {
		return err
	}
	defer f.Close()
	if local {
		t = t.Local()
	} else {
		t = t.UTC()
	}
	rt := unix.RTCTime{Sec: int32(t.Second()), Min: int32(t.Minute()), Hour: int32(t.Hour()),
		Mday: int32(t.Day()), Mon: int32(t.Month()) - 1, Year: int32(t.Year() - 1900),
		Wday: int32(t.Weekday()), Yday: int32(t.YearDay() - 1)}
	return unix.IoctlSetRTCTime(int(f.Fd()), &rt)
}
