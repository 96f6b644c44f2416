package sysfiles

import (
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"
)

func TestCheckRTCTime(t *testing.T) {
	for _, tc := range []struct {
		at time.Time
		ok bool
	}{
		{time.Unix(0, 0), true},
		{time.Date(2025, 11, 25, 12, 0, 0, 0, time.UTC), true},
		{time.UnixMicro(1<<63 - 1), true},
		{time.Unix(-1, 0), false},
		{time.Unix(0, 1), false},
		{time.Date(300000, 1, 1, 0, 0, 0, 0, time.UTC), false},
	} {
		err := CheckRTCTime(tc.at)
		if (err == nil) != tc.ok || (err != nil && (!errors.Is(err, syscall.EINVAL) || !errors.Is(err, ErrRTCRange))) {
			t.Errorf("%v: %v, want ok=%v", tc.at, err, tc.ok)
		}
	}
}

func TestInterpretRTC(t *testing.T) {
	if _, err := os.Stat("/usr/share/zoneinfo/Europe/Berlin"); err != nil {
		t.Fatalf("this test needs the system's zoneinfo: %v", err)
	}
	root := t.TempDir()
	os.MkdirAll(filepath.Join(root, "etc"), 0o755)
	os.MkdirAll(filepath.Join(root, "usr/share"), 0o755)
	os.Symlink("/usr/share/zoneinfo", filepath.Join(root, "usr/share/zoneinfo"))
	os.Symlink("../usr/share/zoneinfo/Europe/Berlin", filepath.Join(root, "etc/localtime"))
	p := Paths{Root: root}
	raw := time.Date(2025, 7, 1, 12, 0, 0, 0, time.UTC) // Berlin is UTC+2 then
	if got := p.InterpretRTC(raw, false); !got.Equal(raw) {
		t.Errorf("UTC: %v", got)
	}
	if got := p.InterpretRTC(raw, true); !got.Equal(raw.Add(-2 * time.Hour)) {
		t.Errorf("local: %v, want %v", got, raw.Add(-2*time.Hour))
	}
}

// Without an RTC the read is ENOENT; something that is no RTC fails the
// ioctl (there is no /dev/rtc on the test machines to read for real).
func TestDirectReadRTC(t *testing.T) {
	root := t.TempDir()
	d := Direct{Paths: Paths{Root: root}}
	if at, err := d.ReadRTC(context.Background()); !errors.Is(err, fs.ErrNotExist) || !at.IsZero() {
		t.Errorf("no RTC: %v, %v", at, err)
	}
	os.MkdirAll(filepath.Join(root, "dev"), 0o755)
	os.WriteFile(filepath.Join(root, "dev/rtc"), nil, 0o644)
	if at, err := d.ReadRTC(context.Background()); !errors.Is(err, syscall.ENOTTY) || !at.IsZero() {
		t.Errorf("a plain file: %v, %v", at, err)
	}
}
