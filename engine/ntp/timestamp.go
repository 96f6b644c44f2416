package ntp

import (
	"math"
	"time"
)

// ntpEpochOffset is the number of seconds from the NTP prime epoch
// (1900-01-01 00:00:00 UTC, the start of era 0) to the Unix epoch.
const ntpEpochOffset = 2208988800

// Timestamp is the 64-bit NTP timestamp: seconds since the start of the era
// (1900, 2036, ...) in the high 32 bits, binary fraction in the low 32.
//
// A Timestamp does not carry its era; Time resolves it against a pivot.
type Timestamp uint64

// TimestampFromTime converts t, rounding to the nearest 2^-32 s. The era is
// folded away: times in 2036 and later wrap to small second counts, exactly
// as they go on the wire.
func TimestampFromTime(t time.Time) Timestamp {
	sec := t.Unix() + ntpEpochOffset
	nsec := uint64(t.Nanosecond()) // 0 <= nsec < 1e9
	// Round nsec*2^32/1e9 to nearest; nsec<<32 < 2^62 cannot overflow.
	frac := (nsec<<32 + 500_000_000) / 1_000_000_000
	if frac == 1<<32 { // rounded up to the next second
		frac = 0
		sec++
	}
	// uint32(sec) keeps sec modulo 2^32, also for sec < 0 (times before
	// 1900 land in era -1, as they would on the wire).
	return Timestamp(uint64(uint32(sec))<<32 | frac)
}

// Time converts ts to a time.Time. The era is chosen so that the result lies
// within ±2^31 s (about 68 years) of pivot, as RFC 5905 section 6 requires:
// a timestamp near 0 seen with a pivot in 2035 is in 2036 (era 1), and one
// near 2^32-1 seen with a pivot in 2037 is in late 2035 (era 0). The
// fraction is rounded to the nearest nanosecond.
//
// The zero Timestamp is not special here: check IsZero first where it means
// "not set".
func (ts Timestamp) Time(pivot time.Time) time.Time {
	pivotSec := pivot.Unix() + ntpEpochOffset
	// Signed distance, modulo 2^32, from the pivot's seconds to ours.
	diff := int64(int32(ts.Seconds() - uint32(pivotSec)))
	sec := pivotSec + diff - ntpEpochOffset
	nsec := (uint64(ts.Fraction())*1_000_000_000 + 1<<31) >> 32
	return time.Unix(sec, int64(nsec)).UTC()
}

// IsZero reports whether ts is the all-zero timestamp that NTP uses for
// "unknown" or "not set".
func (ts Timestamp) IsZero() bool { return ts == 0 }

// Seconds is the seconds field (seconds in the era).
func (ts Timestamp) Seconds() uint32 { return uint32(ts >> 32) }

// Fraction is the fraction field, in units of 2^-32 s.
func (ts Timestamp) Fraction() uint32 { return uint32(ts) }

// Short is the 32-bit NTP short format: unsigned 16.16 fixed-point seconds,
// used for root delay and root dispersion. Its range is [0, 65536) s with a
// resolution of about 15.3 µs.
type Short uint32

// maxShortDuration is the first duration that no longer fits in a Short.
const maxShortDuration = 65536 * time.Second

// ShortFromDuration converts d, rounding up to the next 2^-16 s so that an
// error bound never shrinks on the wire. It saturates: a negative d gives 0,
// and a d at or beyond 65536 s gives 0xFFFFFFFF.
func ShortFromDuration(d time.Duration) Short {
	if d <= 0 {
		return 0
	}
	if d >= maxShortDuration {
		return math.MaxUint32
	}
	// d < 65536e9, so d<<16 < 2^62.
	v := (uint64(d)<<16 + 999_999_999) / 1_000_000_000
	if v > math.MaxUint32 {
		return math.MaxUint32
	}
	return Short(v)
}

// Duration converts s to a time.Duration, truncating to the nanosecond (the
// error is below 1 ns, and ShortFromDuration(s.Duration()) == s).
func (s Short) Duration() time.Duration {
	return time.Duration(uint64(s) * 1_000_000_000 >> 16)
}
