package ntp

import (
	"os"
	"strings"
	"testing"
	"time"

	"gnomon.dev/gnomon/engine/sample"
)

func readLeapFile(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile("testdata/" + name)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestParseLeapFile(t *testing.T) {
	// tzdata 2025b's file (Debian 12): no hash, expires 28 June 2026.
	lt, err := ParseLeapFile(readLeapFile(t, "leap-seconds-2025.list"))
	if err != nil {
		t.Fatal(err)
	}
	if len(lt.Entries) != 28 || lt.Entries[27].TAIOffset != 37 || !lt.Entries[27].At.Equal(time.Date(2017, 1, 1, 0, 0, 0, 0, time.UTC)) {
		t.Errorf("entries %d, last %+v", len(lt.Entries), lt.Entries[len(lt.Entries)-1])
	}
	if !lt.Expires.Equal(time.Date(2026, 6, 28, 0, 0, 0, 0, time.UTC)) {
		t.Errorf("expires %v", lt.Expires)
	}
	if !lt.Expired(time.Date(2026, 12, 7, 0, 0, 0, 0, time.UTC)) || lt.Expired(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)) {
		t.Error("Expired")
	}
	for _, tc := range []struct {
		at   time.Time
		want int
	}{
		{time.Date(1971, 1, 1, 0, 0, 0, 0, time.UTC), 0},
		{time.Date(2016, 12, 31, 23, 59, 59, 0, time.UTC), 36},
		{time.Date(2017, 1, 1, 0, 0, 0, 0, time.UTC), 37},
		{time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC), 37},
	} {
		if got := lt.TAIOffset(tc.at); got != tc.want {
			t.Errorf("TAIOffset(%v) = %d, want %d", tc.at, got, tc.want)
		}
	}
	// The leap of 31 December 2016, and none the day before or in 2025.
	for _, tc := range []struct {
		at   time.Time
		leap sample.Leap
		ok   bool
	}{
		{time.Date(2016, 12, 31, 10, 0, 0, 0, time.UTC), sample.LeapInsert, true},
		{time.Date(2016, 12, 30, 10, 0, 0, 0, time.UTC), sample.LeapNone, true},
		{time.Date(2025, 12, 31, 10, 0, 0, 0, time.UTC), sample.LeapNone, true},
		{time.Date(2026, 12, 31, 10, 0, 0, 0, time.UTC), sample.LeapNone, false}, // expired
	} {
		leap, ok := lt.LeapTonight(tc.at)
		if leap != tc.leap || ok != tc.ok {
			t.Errorf("LeapTonight(%v) = %v %v, want %v %v", tc.at, leap, ok, tc.leap, tc.ok)
		}
	}
	// A source announcing a leap the file denies is ignored; one the file
	// confirms is kept; an expired file confirms nothing and denies nothing.
	if got := lt.Check(sample.LeapInsert, time.Date(2025, 12, 31, 10, 0, 0, 0, time.UTC)); got != sample.LeapNone {
		t.Errorf("denied leap kept: %v", got)
	}
	if got := lt.Check(sample.LeapInsert, time.Date(2016, 12, 31, 10, 0, 0, 0, time.UTC)); got != sample.LeapInsert {
		t.Errorf("confirmed leap dropped: %v", got)
	}
	if got := lt.Check(sample.LeapDelete, time.Date(2016, 12, 31, 10, 0, 0, 0, time.UTC)); got != sample.LeapNone {
		t.Errorf("a deletion on an insertion night kept: %v", got)
	}
	if got := lt.Check(sample.LeapInsert, time.Date(2026, 12, 31, 10, 0, 0, 0, time.UTC)); got != sample.LeapInsert {
		t.Errorf("expired file denied: %v", got)
	}
	// The system's status: the file's while valid, else the vote.
	if got := lt.Resolve(sample.LeapNone, time.Date(2016, 12, 31, 10, 0, 0, 0, time.UTC)); got != sample.LeapInsert {
		t.Errorf("Resolve on a leap night without votes: %v", got)
	}
	if got := lt.Resolve(sample.LeapInsert, time.Date(2025, 12, 31, 10, 0, 0, 0, time.UTC)); got != sample.LeapNone {
		t.Errorf("Resolve with a vote the file denies: %v", got)
	}
	if got := lt.Resolve(sample.LeapInsert, time.Date(2026, 12, 31, 10, 0, 0, 0, time.UTC)); got != sample.LeapInsert {
		t.Errorf("Resolve with an expired file: %v", got)
	}
	if got := (*LeapTable)(nil).Resolve(sample.LeapDelete, time.Now()); got != sample.LeapDelete {
		t.Errorf("nil table: %v", got)
	}

	// The older format with update time and hash: the hash verifies, and
	// any change to a value breaks it.
	old := readLeapFile(t, "leap-seconds-2021.list")
	lt, err = ParseLeapFile(old)
	if err != nil {
		t.Fatal(err)
	}
	if !lt.Updated.Equal(time.Date(2016, 7, 8, 0, 0, 0, 0, time.UTC)) || !lt.Expires.Equal(time.Date(2022, 6, 28, 0, 0, 0, 0, time.UTC)) {
		t.Errorf("updated %v expires %v", lt.Updated, lt.Expires)
	}
	edited := strings.Replace(string(old), "3865363200", "3865363201", 1)
	if _, err := ParseLeapFile([]byte(edited)); err == nil || !strings.Contains(err.Error(), "hash") {
		t.Errorf("edited expiry: %v, want a hash error", err)
	}
}

func TestParseLeapFileErrors(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"#@ 3865363200\n", "no leap second lines"},
		{"2272060800 10\n", "no expiry line"},
		{"#@ x\n", "line 1: #@ \"x\" is not NTP seconds"},
		{"#@ 3865363200\n2272060800 10\n2287785600 12\n", "line 3: TAI-UTC goes from 10 to 12"},
		{"#@ 3865363200\n2287785600 11\n2272060800 10\n", "line 3: 1972-01-01 is not after"},
		{"#@ 3865363200\n2272060800 10\n2287785601 11\n", "is not the start of a month"},
		{"#@ 3865363200\n2272060800\n", "line 2: want \"NTPSECONDS OFFSET\""},
		{"#@ 3865363200\n2272060800 -5\n", "line 2: bad leap second line"},
		{"#@ 3865363200\n2272060800 10\n#h 1 2 3\n", "hash (#h) does not match"},
	} {
		_, err := ParseLeapFile([]byte(tc.in))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q: %v, want %q", tc.in, err, tc.want)
		}
	}
}

func FuzzParseLeapFile(f *testing.F) {
	f.Add(readLeapFile(f, "leap-seconds-2025.list"))
	f.Add(readLeapFile(f, "leap-seconds-2021.list"))
	f.Add([]byte("#@ 3865363200\n2272060800 10\n#h 1 2 3 4 5\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		lt, err := ParseLeapFile(b)
		if err != nil {
			return
		}
		for i := 1; i < len(lt.Entries); i++ {
			if !lt.Entries[i].At.After(lt.Entries[i-1].At) {
				t.Fatal("entries out of order")
			}
		}
		lt.LeapTonight(lt.Expires.Add(-48 * time.Hour))
		lt.TAIOffset(lt.Expires)
	})
}
