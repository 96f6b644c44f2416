package ntp

import (
	"bytes"
	"crypto/sha1"
	"encoding/binary"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"gnomon.dev/gnomon/engine/sample"
)

// The leap-seconds file of IERS/NIST as tzdata ships it
// (/usr/share/zoneinfo/leap-seconds.list): data lines "NTPSECONDS OFFSET
// [# comment]" give TAI - UTC from that instant (NTP era 0 seconds) on;
// "#@ NTPSECONDS" is when the file expires, "#$ NTPSECONDS" when it was
// last updated, and "#h" five groups of 8 hex digits, a SHA-1 of the
// digits of the update, expiry and data lines (older files only; checked
// when present). Other "#" lines are comments.

// LeapEntry is one line of the file: from At on, TAI - UTC is TAIOffset
// seconds.
type LeapEntry struct {
	At        time.Time
	TAIOffset int
}

// LeapTable is a parsed leap-seconds file.
type LeapTable struct {
	Entries []LeapEntry // in time order, offsets changing by one
	Expires time.Time
	Updated time.Time // zero when the file does not say
}

// maxLeapFile bounds what ParseLeapFile reads.
const maxLeapFile = 1 << 20

// ntpToTime converts era-0 NTP seconds.
func ntpToTime(s uint64) time.Time {
	return time.Unix(int64(s)-ntpEpochOffset, 0).UTC()
}

// ParseLeapFile reads a leap-seconds file. Errors name the line.
func ParseLeapFile(b []byte) (*LeapTable, error) {
	if len(b) > maxLeapFile {
		return nil, fmt.Errorf("larger than %d bytes", maxLeapFile)
	}
	t := &LeapTable{}
	var digits []byte // what the #h hash covers
	var hashLine []string
	var updateDigits, expiryDigits []byte
	lineNo := 0
	for len(b) > 0 {
		lineNo++
		var line []byte
		if i := bytes.IndexByte(b, '\n'); i >= 0 {
			line, b = b[:i], b[i+1:]
		} else {
			line, b = b, nil
		}
		s := strings.TrimRight(string(line), "\r")
		switch {
		case strings.HasPrefix(s, "#@"), strings.HasPrefix(s, "#$"):
			f := strings.Fields(s[2:])
			if len(f) < 1 {
				return nil, fmt.Errorf("line %d: %s without a time", lineNo, s[:2])
			}
			v, err := strconv.ParseUint(f[0], 10, 32)
			if err != nil {
				return nil, fmt.Errorf("line %d: %s %q is not NTP seconds", lineNo, s[:2], clip(f[0]))
			}
			if s[1] == '@' {
				t.Expires, expiryDigits = ntpToTime(v), []byte(f[0])
			} else {
				t.Updated, updateDigits = ntpToTime(v), []byte(f[0])
			}
		case strings.HasPrefix(s, "#h"):
			hashLine = strings.Fields(s[2:])
		case strings.HasPrefix(s, "#"), strings.TrimSpace(s) == "":
		default:
			data, _, _ := strings.Cut(s, "#")
			f := strings.Fields(data)
			if len(f) != 2 {
				return nil, fmt.Errorf("line %d: want \"NTPSECONDS OFFSET\", got %q", lineNo, clip(strings.TrimSpace(s)))
			}
			at, err1 := strconv.ParseUint(f[0], 10, 32)
			off, err2 := strconv.Atoi(f[1])
			if err1 != nil || err2 != nil || off < 0 || off > 1000 {
				return nil, fmt.Errorf("line %d: bad leap second line %q", lineNo, clip(strings.TrimSpace(data)))
			}
			e := LeapEntry{At: ntpToTime(at), TAIOffset: off}
			if n := len(t.Entries); n > 0 {
				prev := t.Entries[n-1]
				if !e.At.After(prev.At) {
					return nil, fmt.Errorf("line %d: %s is not after the line before", lineNo, e.At.Format(time.DateOnly))
				}
				if d := e.TAIOffset - prev.TAIOffset; d != 1 && d != -1 {
					return nil, fmt.Errorf("line %d: TAI-UTC goes from %d to %d (a leap is one second)", lineNo, prev.TAIOffset, e.TAIOffset)
				}
				if y, m, d := e.At.Date(); d != 1 || e.At.Hour() != 0 || e.At.Minute() != 0 || e.At.Second() != 0 {
					return nil, fmt.Errorf("line %d: %d-%02d-%02d %s is not the start of a month", lineNo, y, m, d, e.At.Format("15:04:05"))
				}
			}
			t.Entries = append(t.Entries, e)
			digits = append(digits, f[0]...)
			digits = append(digits, f[1]...)
		}
	}
	if len(t.Entries) == 0 {
		return nil, errors.New("no leap second lines")
	}
	if t.Expires.IsZero() {
		return nil, errors.New("no expiry line (#@)")
	}
	if len(hashLine) > 0 {
		sum := sha1.Sum(append(append(updateDigits, expiryDigits...), digits...))
		ok := len(hashLine) == 5
		for i := 0; ok && i < 5; i++ {
			// Five 32-bit words in hex, written without leading zeros.
			v, err := strconv.ParseUint(hashLine[i], 16, 32)
			ok = err == nil && uint32(v) == binary.BigEndian.Uint32(sum[4*i:])
		}
		if !ok {
			return nil, errors.New("hash (#h) does not match the file's contents: damaged or edited")
		}
	}
	return t, nil
}

// Expired reports whether the file is past its expiry at now: it then
// says nothing about leaps after its expiry.
func (t *LeapTable) Expired(now time.Time) bool { return !now.Before(t.Expires) }

// TAIOffset is TAI - UTC in seconds at now (0 before the first entry).
func (t *LeapTable) TAIOffset(now time.Time) int {
	off := 0
	for _, e := range t.Entries {
		if now.Before(e.At) {
			break
		}
		off = e.TAIOffset
	}
	return off
}

// LeapTonight is the leap at the midnight ending now's UTC day: insert,
// delete or none. ok is false when the file cannot say (expired before
// that midnight).
func (t *LeapTable) LeapTonight(now time.Time) (leap sample.Leap, ok bool) {
	y, m, d := now.UTC().Date()
	midnight := time.Date(y, m, d+1, 0, 0, 0, 0, time.UTC)
	if midnight.After(t.Expires) {
		return sample.LeapNone, false
	}
	before := t.TAIOffset(midnight.Add(-time.Second))
	switch t.TAIOffset(midnight) - before {
	case 1:
		return sample.LeapInsert, true
	case -1:
		return sample.LeapDelete, true
	}
	return sample.LeapNone, true
}

// Resolve is the system's leap status given the sources' vote: the
// file's answer for tonight while it can give one (so the kernel is armed
// for a leap the file has even when the sources say nothing, as chrony's
// leapsectz does), else the vote.
func (t *LeapTable) Resolve(voted sample.Leap, now time.Time) sample.Leap {
	if t == nil {
		return voted
	}
	if leap, ok := t.LeapTonight(now); ok {
		return leap
	}
	return voted
}

// Check says what a source's leap announcement is worth at now: leap
// unchanged when the file agrees or cannot say (expired), LeapNone when
// the file denies a leap tonight. An unsynchronized (3) or absent
// announcement is left alone.
func (t *LeapTable) Check(announced sample.Leap, now time.Time) sample.Leap {
	if t == nil || (announced != sample.LeapInsert && announced != sample.LeapDelete) {
		return announced
	}
	if want, ok := t.LeapTonight(now); ok && want != announced {
		return sample.LeapNone
	}
	return announced
}
