package ntp

import (
	"math"
	"testing"
	"time"
)

func date(y int, mo time.Month, d, h, mi, s, ns int) time.Time {
	return time.Date(y, mo, d, h, mi, s, ns, time.UTC)
}

// era1Start is 2036-02-07 06:28:16 UTC, where the 32-bit seconds wrap.
var era1Start = date(2036, 2, 7, 6, 28, 16, 0)

func TestTimestampKnownValues(t *testing.T) {
	tests := []struct {
		name string
		t    time.Time
		want Timestamp
	}{
		{"unix epoch", time.Unix(0, 0), Timestamp(2208988800) << 32},
		{"ntp epoch", date(1900, 1, 1, 0, 0, 0, 0), 0},
		{"half second", time.Unix(0, 500_000_000), Timestamp(2208988800)<<32 | 1<<31},
		{"last second of era 0", era1Start.Add(-time.Second), Timestamp(math.MaxUint32) << 32},
		{"era 1 start folds to 0", era1Start, 0},
		{"era 1 plus 1.25 s", era1Start.Add(1250 * time.Millisecond), 1<<32 | 1<<30},
		// 999999999 ns is 4294967291.7 units: it rounds to ...FC and
		// never carries into the next second.
		{"last nanosecond", time.Unix(10, 999_999_999), Timestamp(2208988810)<<32 | 0xFFFFFFFC},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := TimestampFromTime(tc.t); got != tc.want {
				t.Errorf("TimestampFromTime(%v) = %#016x, want %#016x", tc.t, uint64(got), uint64(tc.want))
			}
		})
	}
}

func TestTimestampRoundsToNearest(t *testing.T) {
	// 2^-32 s is about 0.2328 ns; 1 ns is 4.294967296 units.
	base := time.Unix(1_000_000_000, 0)
	for ns := 0; ns < 1000; ns++ {
		got := TimestampFromTime(base.Add(time.Duration(ns)))
		want := uint32(math.Round(float64(ns) * 4.294967296))
		if got.Fraction() != want {
			t.Fatalf("ns=%d: fraction %d, want %d", ns, got.Fraction(), want)
		}
	}
}

func TestTimestampEra(t *testing.T) {
	tests := []struct {
		name  string
		ts    Timestamp
		pivot time.Time
		want  time.Time
	}{
		{
			name:  "just after the 2036 rollover, pivot in 2035",
			ts:    TimestampFromTime(era1Start.Add(3 * time.Second)),
			pivot: date(2035, 6, 1, 0, 0, 0, 0),
			want:  era1Start.Add(3 * time.Second),
		},
		{
			name:  "late 2035 (era 0), pivot in 2037",
			ts:    TimestampFromTime(date(2035, 12, 31, 23, 59, 59, 0)),
			pivot: date(2037, 1, 1, 0, 0, 0, 0),
			want:  date(2035, 12, 31, 23, 59, 59, 0),
		},
		{
			name:  "the rollover itself, pivot just before",
			ts:    0,
			pivot: era1Start.Add(-time.Second),
			want:  era1Start,
		},
		{
			name:  "zero timestamp with a pivot in 1950 is 1900",
			ts:    0,
			pivot: date(1950, 1, 1, 0, 0, 0, 0),
			want:  date(1900, 1, 1, 0, 0, 0, 0),
		},
		{
			name:  "zero timestamp with a pivot in 1990 is 2036 (nearer than 1900)",
			ts:    0,
			pivot: date(1990, 1, 1, 0, 0, 0, 0),
			want:  era1Start,
		},
		{
			name:  "today with a pivot today",
			ts:    TimestampFromTime(date(2026, 11, 25, 22, 0, 0, 123_456_789)),
			pivot: date(2026, 11, 25, 21, 0, 0, 0),
			want:  date(2026, 11, 25, 22, 0, 0, 123_456_789),
		},
		{
			name:  "2105 (era 1), pivot in 2100",
			ts:    TimestampFromTime(date(2105, 3, 1, 0, 0, 0, 0)),
			pivot: date(2100, 1, 1, 0, 0, 0, 0),
			want:  date(2105, 3, 1, 0, 0, 0, 0),
		},
		{
			name:  "far in era 2 (2200)",
			ts:    TimestampFromTime(date(2200, 1, 1, 0, 0, 0, 0)),
			pivot: date(2190, 1, 1, 0, 0, 0, 0),
			want:  date(2200, 1, 1, 0, 0, 0, 0),
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := tc.ts.Time(tc.pivot)
			if !got.Equal(tc.want) {
				t.Errorf("Time(%v) of %#016x = %v, want %v", tc.pivot, uint64(tc.ts), got, tc.want)
			}
		})
	}
}

func TestTimestampWithinHalfEraOfPivot(t *testing.T) {
	pivots := []time.Time{date(1970, 1, 1, 0, 0, 0, 0), date(2026, 1, 1, 0, 0, 0, 0), era1Start, date(2100, 7, 4, 1, 2, 3, 4)}
	seconds := []uint32{0, 1, 1 << 31, 1<<31 + 1, math.MaxUint32, 0xEEB1DE0B}
	for _, p := range pivots {
		for _, s := range seconds {
			ts := Timestamp(uint64(s)<<32 | 0x80000000)
			got := ts.Time(p)
			if d := got.Sub(p); d < -(1<<31)*time.Second-time.Second || d > (1<<31)*time.Second {
				t.Errorf("pivot %v, seconds %#x: %v is %v from pivot", p, s, got, d)
			}
			if TimestampFromTime(got) != ts {
				t.Errorf("pivot %v, seconds %#x: %v does not convert back", p, s, got)
			}
		}
	}
}

func TestShort(t *testing.T) {
	tests := []struct {
		name string
		d    time.Duration
		want Short
	}{
		{"zero", 0, 0},
		{"negative saturates to 0", -time.Second, 0},
		{"most negative", math.MinInt64, 0},
		{"one second", time.Second, 1 << 16},
		{"half second", 500 * time.Millisecond, 1 << 15},
		{"1 ns rounds up", 1, 1},
		{"one unit exactly (15258.7890625 ns) rounds up from 15258 ns", 15258 * time.Nanosecond, 1},
		{"15259 ns rounds up to 2 units", 15259 * time.Nanosecond, 2},
		{"just under the top", 65535*time.Second + 999_984_741, math.MaxUint32},
		{"65536 s saturates", 65536 * time.Second, math.MaxUint32},
		{"huge saturates", math.MaxInt64, math.MaxUint32},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := ShortFromDuration(tc.d); got != tc.want {
				t.Errorf("ShortFromDuration(%v) = %#x, want %#x", tc.d, uint32(got), uint32(tc.want))
			}
		})
	}
	durations := []struct {
		s    Short
		want time.Duration
	}{
		{0, 0},
		{1 << 16, time.Second},
		{1, 15258 * time.Nanosecond},
		{0x00010800, 1031250 * time.Microsecond},
		{math.MaxUint32, 65535*time.Second + 999_984_741},
	}
	for _, tc := range durations {
		if got := tc.s.Duration(); got != tc.want {
			t.Errorf("Short(%#x).Duration() = %v, want %v", uint32(tc.s), got, tc.want)
		}
	}
	for _, s := range []Short{0, 1, 2, 3, 0x7FFF, 0x8000, 0x10000, 0x10001, 0x12345678, math.MaxUint32 - 1, math.MaxUint32} {
		if got := ShortFromDuration(s.Duration()); got != s {
			t.Errorf("round trip of %#x gave %#x", uint32(s), uint32(got))
		}
	}
}

// FuzzTimestamp checks the era handling: a time converts to a timestamp and
// back exactly given any pivot within 2^31 s of it, and any timestamp
// resolves to within 2^31 s of the pivot and converts back to itself (to
// within the 2-unit loss of the nanosecond rounding).
func FuzzTimestamp(f *testing.F) {
	f.Add(int64(0xEEB1DE0B)-ntpEpochOffset, int64(123456789), int64(0), uint64(0xEEB1DE0BE34BD2C7))
	f.Add(era1Start.Unix()+3, int64(0), int64(-5_000_000), uint64(3)<<32)
	f.Add(date(2035, 12, 31, 23, 59, 59, 0).Unix(), int64(999_999_999), int64(40_000_000), uint64(math.MaxUint64))
	f.Add(int64(-ntpEpochOffset), int64(0), int64(1<<31-1), uint64(0))
	f.Fuzz(func(t *testing.T, sec, nsec, pivotDelta int64, raw uint64) {
		// Keep to times time.Time handles with room (years 0001..9999).
		const lo, hi = -62135596800 + 1<<32, 253402300799 - 1<<32
		if sec < lo || sec > hi {
			sec = lo + int64(uint64(sec)%uint64(hi-lo))
		}
		nsec = int64(uint64(nsec) % 1_000_000_000)
		pivotDelta %= 1<<31 - 1
		tm := time.Unix(sec, nsec).UTC()
		pivot := tm.Add(time.Duration(pivotDelta) * time.Second)

		ts := TimestampFromTime(tm)
		if back := ts.Time(pivot); !back.Equal(tm) {
			t.Fatalf("%v -> %#016x -> %v (pivot %v)", tm, uint64(ts), back, pivot)
		}

		ts = Timestamp(raw)
		got := ts.Time(pivot)
		if d := got.Sub(pivot); d < -(1<<31+1)*time.Second || d > (1<<31)*time.Second {
			t.Fatalf("%#016x with pivot %v gave %v, %v away", raw, pivot, got, d)
		}
		again := TimestampFromTime(got)
		if diff := int64(again - ts); diff < -2 || diff > 2 {
			t.Fatalf("%#016x -> %v -> %#016x", raw, got, uint64(again))
		}
	})
}
