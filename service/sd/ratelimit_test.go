package sd

import (
	"bytes"
	"context"
	"log/slog"
	"strings"
	"testing"
	"time"
)

func TestRateLimitedAllow(t *testing.T) {
	t0 := time.Unix(1700000000, 0)
	at := func(d time.Duration) time.Time { return t0.Add(d) }
	type step struct {
		key        string
		at         time.Duration
		ok         bool
		suppressed int
	}
	tests := []struct {
		name  string
		steps []step
	}{
		{"first line passes, repeats within the interval are held", []step{
			{"a", 0, true, 0},
			{"a", time.Second, false, 0},
			{"a", 9 * time.Second, false, 0},
			{"a", 10 * time.Second, true, 2},
			{"a", 11 * time.Second, false, 0},
			{"a", 25 * time.Second, true, 1},
			{"a", 40 * time.Second, true, 0},
		}},
		{"keys are independent", []step{
			{"a", 0, true, 0},
			{"b", 0, true, 0},
			{"a", time.Second, false, 0},
			{"b", 2 * time.Second, false, 0},
			{"b", 3 * time.Second, false, 0},
			{"a", 10 * time.Second, true, 1},
			{"b", 10 * time.Second, true, 2},
		}},
		{"clock going back starts a new interval", []step{
			{"a", time.Hour, true, 0},
			{"a", time.Hour + time.Second, false, 0},
			{"a", 0, true, 1},
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := NewRateLimited(10*time.Second, 100)
			for i, s := range tc.steps {
				ok, n := r.Allow(s.key, at(s.at))
				if ok != s.ok || n != s.suppressed {
					t.Errorf("step %d (%s at %v): %t, %d; want %t, %d", i, s.key, s.at, ok, n, s.ok, s.suppressed)
				}
			}
		})
	}
}

func TestRateLimitedBoundsKeys(t *testing.T) {
	t0 := time.Unix(1700000000, 0)
	r := NewRateLimited(time.Minute, 3)
	for _, k := range []string{"a", "b", "c"} {
		if ok, _ := r.Allow(k, t0); !ok {
			t.Fatalf("%s held", k)
		}
	}
	// Full: new keys share the overflow allowance.
	if ok, _ := r.Allow("d", t0); !ok {
		t.Error("first overflow line held")
	}
	if ok, _ := r.Allow("e", t0); ok {
		t.Error("second overflow line passed")
	}
	if ok, _ := r.Allow("a", t0); ok {
		t.Error("tracked key a passed twice")
	}
	if len(r.keys) != 3 {
		t.Errorf("%d keys tracked", len(r.keys))
	}
	// A flood of distinct keys stays bounded.
	for i := range 10000 {
		r.Allow(strings.Repeat("x", i%50)+string(rune('A'+i%26)), t0.Add(time.Duration(i)*time.Millisecond))
	}
	if len(r.keys) > 3 {
		t.Errorf("%d keys tracked after a flood", len(r.keys))
	}
	// Once the interval is over, old keys make room for new ones, and
	// what they held back goes to the overflow count.
	later := t0.Add(time.Hour)
	if ok, n := r.Allow("fresh", later); !ok || n != 0 {
		t.Errorf("fresh key after the interval: %t, %d", ok, n)
	}
	if _, ok := r.keys["fresh"]; !ok || len(r.keys) != 1 {
		t.Errorf("keys %v after the sweep", r.keys)
	}
	// The flood's 10000 lines, a's repeat and e: all counted, none lost.
	got := r.Expire(later)
	if len(got) != 1 || got[0].Key != OverflowKey || got[0].Count != 10000+2 {
		t.Errorf("Expire = %v", got)
	}
}

func TestRateLimitedExpire(t *testing.T) {
	t0 := time.Unix(1700000000, 0)
	r := NewRateLimited(10*time.Second, 100)
	r.Allow("a", t0)
	r.Allow("a", t0.Add(time.Second))
	r.Allow("a", t0.Add(2*time.Second))
	r.Allow("b", t0)
	r.Allow("c", t0.Add(5*time.Second))
	r.Allow("c", t0.Add(6*time.Second))
	if got := r.Expire(t0.Add(9 * time.Second)); len(got) != 0 {
		t.Errorf("expired early: %v", got)
	}
	got := r.Expire(t0.Add(10 * time.Second))
	if len(got) != 1 || got[0] != (Suppressed{"a", 2}) {
		t.Errorf("Expire = %v, want [{a 2}]", got)
	}
	if _, ok := r.keys["b"]; ok {
		t.Error("quiet key b kept")
	}
	got = r.Expire(t0.Add(20 * time.Second))
	if len(got) != 1 || got[0] != (Suppressed{"c", 1}) {
		t.Errorf("Expire = %v, want [{c 1}]", got)
	}
	if len(r.keys) != 0 {
		t.Errorf("keys left: %v", r.keys)
	}
}

func TestRateLimitedLog(t *testing.T) {
	var buf bytes.Buffer
	log := slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{
		ReplaceAttr: func(_ []string, a slog.Attr) slog.Attr {
			if a.Key == slog.TimeKey {
				return slog.Attr{}
			}
			return a
		},
	}))
	t0 := time.Unix(1700000000, 0)
	r := NewRateLimited(time.Minute, 10)
	ctx := t.Context()
	logged := []bool{
		r.Log(ctx, log, t0, slog.LevelWarn, "192.0.2.1", "bad packet", "len", 3),
		r.Log(ctx, log, t0.Add(time.Second), slog.LevelWarn, "192.0.2.1", "bad packet", "len", 4),
		r.Log(ctx, log, t0.Add(2*time.Second), slog.LevelWarn, "192.0.2.1", "bad packet", "len", 5),
		r.Log(ctx, log, t0.Add(time.Minute), slog.LevelWarn, "192.0.2.1", "bad packet", "len", 6),
	}
	if want := []bool{true, false, false, true}; !equalBools(logged, want) {
		t.Errorf("logged %v, want %v", logged, want)
	}
	want := "level=WARN msg=\"bad packet\" len=3\n" +
		"level=WARN msg=\"bad packet (suppressed 2 similar messages)\" len=6 suppressed=2\n"
	if buf.String() != want {
		t.Errorf("log:\n%s\nwant:\n%s", buf.String(), want)
	}
}

func equalBools(a, b []bool) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// A new state always gets through; repetitions of one are limited.
func TestRateLimitedStateChanges(t *testing.T) {
	r := NewRateLimited(time.Minute, 16)
	now := time.Unix(1000, 0)
	if ok, _ := r.AllowState("src", "connection refused", now); !ok {
		t.Fatal("first line held back")
	}
	if ok, _ := r.AllowState("src", "connection refused", now.Add(time.Second)); ok {
		t.Error("a repetition within the interval got through")
	}
	ok, n := r.AllowState("src", "no such host", now.Add(2*time.Second))
	if !ok || n != 1 {
		t.Errorf("a changed state: ok %v, suppressed %d; want through, 1", ok, n)
	}
	if ok, _ := r.AllowState("src", "connection refused", now.Add(3*time.Second)); !ok {
		t.Error("a change back was held back")
	}
}

// Lines held back are still logged at debug level.
func TestRateLimitedDebugHidesNothing(t *testing.T) {
	var buf bytes.Buffer
	l := slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug}))
	r := NewRateLimited(time.Minute, 16)
	now := time.Unix(1000, 0)
	for i := range 6 {
		r.Log(context.Background(), l, now.Add(time.Duration(i)*time.Second), slog.LevelWarn, "k", "retry")
	}
	if got := strings.Count(buf.String(), "msg=retry"); got != 6 {
		t.Errorf("%d of 6 lines in a debug log:\n%s", got, buf.String())
	}
	if got := strings.Count(buf.String(), "level=WARN"); got != 1 {
		t.Errorf("%d warnings, want 1 (the rest at debug):\n%s", got, buf.String())
	}
	buf.Reset()
	l = slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelInfo}))
	r = NewRateLimited(time.Minute, 16)
	for i := range 6 {
		r.Log(context.Background(), l, now.Add(time.Duration(i)*time.Second), slog.LevelWarn, "k", "retry")
	}
	if got := strings.Count(buf.String(), "msg=retry"); got != 1 {
		t.Errorf("%d of 6 lines at info level, want 1:\n%s", got, buf.String())
	}
}
