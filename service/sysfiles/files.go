package sysfiles

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"gnomon.dev/gnomon/service/atomicfile"
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
		if err := atomicfile.Remove(path); err != nil {
			return err
		}
	case write:
		return atomicfile.WriteFile(path, content, 0o644)
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

// InterpretRTC is the instant an RTC reading means: raw (the broken-down
// time as if it were UTC, as ReadRTCRaw and Direct.ReadRTC give it) as
// is, or, when local, the same wall clock in the root's zone (read afresh).
func (p Paths) InterpretRTC(raw time.Time, local bool) time.Time {
	if !local {
		return raw
	}
	raw = raw.UTC()
	return time.Date(raw.Year(), raw.Month(), raw.Day(), raw.Hour(), raw.Minute(), raw.Second(), raw.Nanosecond(), p.Location())
}

// ErrRTCRange is an RTC reading outside what RTCTimeUSec can say: before
// 1970 or past the range of int64 microseconds. It wraps syscall.EINVAL,
// the kernel's answer for an RTC without a valid time, which timedate1
// reports as no RTC time.
var ErrRTCRange = fmt.Errorf("RTC time outside 1970 to 294247: %w", syscall.EINVAL)

// CheckRTCTime refuses with ErrRTCRange a reading that is not a whole
// number of microseconds in [0, MaxInt64] since the epoch.
func CheckRTCTime(t time.Time) error {
	us := t.UnixMicro()
	if us < 0 || !time.UnixMicro(us).Equal(t) {
		return ErrRTCRange
	}
	return nil
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

// Direct writes the files and reads the RTC itself: what gnomond does when
// it runs as root (and in tests), and what gnomon-timedate-helper does for
// it otherwise.
// Its methods match dbus.SystemFiles and dbus.RTCReader.
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

// ReadRTC reads the RTC's broken-down time as if it kept UTC (timegm):
// RTCTimeUSec's reading, and SetLocalRTC's before InterpretRTC. With no
// RTC the error wraps fs.ErrNotExist; a reading CheckRTCTime refuses is
// ErrRTCRange (EINVAL).
func (d Direct) ReadRTC(_ context.Context) (time.Time, error) {
	t, err := ReadRTCRaw(d.Paths.RTC())
	if err != nil {
		return time.Time{}, err
	}
	if err := CheckRTCTime(t); err != nil {
		return time.Time{}, fmt.Errorf("%s: %v: %w", d.Paths.RTC(), t.Format(time.DateTime), err)
	}
	return t, nil
}
