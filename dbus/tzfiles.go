package dbus

import (
	"context"
	"time"

	"gnomon.dev/gnomon/service/sysfiles"
)

// Paths are the files timedate1 reads and writes, under a root directory
// (package sysfiles, shared with gnomon-timedate-helper).
type Paths = sysfiles.Paths

// SystemFiles makes the changes timedate1's methods make to root's files
// and devices. sysfiles.Direct writes them itself (gnomond running as
// root, and tests); tdhelper.Client asks gnomon-timedate-helper, which runs
// as root, to write them for gnomond running as the gnomon user. The zone
// and /etc/adjtime are read directly; the RTC through RTCReader (rtc.go)
// when the SystemFiles implements it, as both of these do.
type SystemFiles interface {
	// SetTimezone points /etc/localtime at zone.
	SetTimezone(ctx context.Context, zone string) error
	// SetLocalRTC records in /etc/adjtime whether the RTC keeps local time.
	SetLocalRTC(ctx context.Context, local bool) error
	// SetRTC sets the RTC to t, as local time when local, else UTC; with
	// no RTC the error wraps fs.ErrNotExist.
	SetRTC(ctx context.Context, t time.Time, local bool) error
}

var _ SystemFiles = sysfiles.Direct{}

// ValidTimezoneName checks a zone name's syntax (sysfiles.ValidTimezoneName).
func ValidTimezoneName(name string) bool { return sysfiles.ValidTimezoneName(name) }

// ParseTzdataZi returns the zone names of a tzdata.zi (sysfiles.ParseTzdataZi).
func ParseTzdataZi(data []byte) []string { return sysfiles.ParseTzdataZi(data) }

// ParseZoneTab returns the zone names of a zone1970.tab (sysfiles.ParseZoneTab).
func ParseZoneTab(data []byte) []string { return sysfiles.ParseZoneTab(data) }

// AdjtimeLocal reports whether an /etc/adjtime says LOCAL (sysfiles.AdjtimeLocal).
func AdjtimeLocal(data []byte) bool { return sysfiles.AdjtimeLocal(data) }

// RewriteAdjtime computes the new /etc/adjtime (sysfiles.RewriteAdjtime).
func RewriteAdjtime(old []byte, exists, local bool) (content []byte, write, remove bool) {
	return sysfiles.RewriteAdjtime(old, exists, local)
}
