package sysfiles

import (
	"context"
	"errors"
	"io/fs"
	"os"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// WriteAdjtime records in /etc/adjtime whether the RTC keeps local time,
// by RewriteAdjtime's rules: the file is replaced atomically (mode 0644),
// removed when it would hold only the defaults, left alone when there is
// nothing to say.
func (p Paths) WriteAdjtime(local bool) error {
	path := p.Adjtime()
	old, err := os.ReadFile(path)
	exists := err == nil
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	content, write, remove := RewriteAdjtime(old, exists, local)
	switch {
	case remove:
		if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return err
		}
	case write:
		return AtomicWrite(path, content, 0o644)
	}
	return nil
}

// Location is the zone /etc/localtime names under the root, loaded from the
// root's zone database; UTC when it names none or cannot be loaded. Unlike
// time.Local it is read afresh on every call, so it follows SetTimezone.
func (p Paths) Location() *time.Location {
	name := p.ReadTimezone()
	if name == "" || name == "UTC" {
		return time.UTC
	}
	data, err := os.ReadFile(p.join("usr/share/zoneinfo/" + name))
	if err != nil {
		return time.UTC
	}
	loc, err := time.LoadLocationFromTZData(name, data)
	if err != nil {
		return time.UTC
	}
	return loc
}

// ReadRTCRaw reads the RTC's broken-down time and returns it as UTC.
func ReadRTCRaw(path string) (time.Time, error) {
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

// ReadRTC reads the RTC, interpreting it in the root's zone when local.
func (p Paths) ReadRTC(local bool) (time.Time, error) {
	t, err := ReadRTCRaw(p.RTC())
	if err != nil || !local {
		return t, err
	}
	return time.Date(t.Year(), t.Month(), t.Day(), t.Hour(), t.Minute(), t.Second(), 0, p.Location()), nil
}

// RTCBrokenDown is t as the RTC holds it: in loc's wall clock, seconds
// truncated.
func RTCBrokenDown(t time.Time, loc *time.Location) unix.RTCTime {
	t = t.In(loc)
	return unix.RTCTime{Sec: int32(t.Second()), Min: int32(t.Minute()), Hour: int32(t.Hour()),
		Mday: int32(t.Day()), Mon: int32(t.Month()) - 1, Year: int32(t.Year() - 1900),
		Wday: int32(t.Weekday()), Yday: int32(t.YearDay() - 1)}
}

// WriteRTC sets the RTC to t, in the root's zone when local, else UTC
// (RTC_SET_TIME works on a read-only descriptor and needs CAP_SYS_TIME).
// With no RTC the error wraps fs.ErrNotExist.
func (p Paths) WriteRTC(t time.Time, local bool) error {
	loc := time.UTC
	if local {
		loc = p.Location()
	}
	f, err := os.OpenFile(p.RTC(), os.O_RDONLY|syscall.O_CLOEXEC, 0)
	if err != nil {
		return err
	}
	defer f.Close()
	rt := RTCBrokenDown(t, loc)
	return unix.IoctlSetRTCTime(int(f.Fd()), &rt)
}

// Direct writes the files itself: what gnomond does when it runs as root
// (and in tests), and what gnomon-timedate-helper does for it otherwise.
// Its methods match dbus.SystemFiles.
type Direct struct {
	Paths Paths
}

// SetTimezone points /etc/localtime at zone (validated again here).
func (d Direct) SetTimezone(_ context.Context, zone string) error {
	return d.Paths.WriteTimezone(zone)
}

// SetLocalRTC rewrites /etc/adjtime.
func (d Direct) SetLocalRTC(_ context.Context, local bool) error {
	return d.Paths.WriteAdjtime(local)
}

// SetRTC sets the RTC to t (local time when local).
func (d Direct) SetRTC(_ context.Context, t time.Time, local bool) error {
	return d.Paths.WriteRTC(t, local)
}
