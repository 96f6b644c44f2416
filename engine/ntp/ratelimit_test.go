package ntp

import (
	"encoding/binary"
	"net/netip"
	"testing"
	"time"
)

var t0 = date(2026, 11, 25, 22, 0, 0, 0)

func addr(s string) netip.Addr { return netip.MustParseAddr(s) }

func TestRateLimiterBurstThenInterval(t *testing.T) {
	r := NewRateLimiter(RateLimitConfig{Interval: 2 * time.Second, Burst: 4, TableSize: 64})
	c := addr("192.0.2.1")
	// A quiet client gets Burst answers back to back ...
	for i := range 4 {
		if v := r.checkAddr(c, t0); v != Answer {
			t.Fatalf("request %d of the burst: %v", i, v)
		}
	}
	// ... then nothing until an Interval has passed ...
	if v := r.checkAddr(c, t0.Add(time.Second)); v != Drop {
		t.Fatalf("fifth request: %v", v)
	}
	if v := r.checkAddr(c, t0.Add(2*time.Second)); v != Answer {
		t.Fatalf("after one interval: %v", v)
	}
	if v := r.checkAddr(c, t0.Add(2*time.Second)); v != Drop {
		t.Fatalf("second request after one interval: %v", v)
	}
	// ... and after a long pause the whole burst again.
	later := t0.Add(time.Hour)
	for i := range 4 {
		if v := r.checkAddr(c, later); v != Answer {
			t.Fatalf("request %d of the second burst: %v", i, v)
		}
	}
	if v := r.checkAddr(c, later); v != Drop {
		t.Fatalf("after the second burst: %v", v)
	}
}

func TestRateLimiterFloodAndWellBehaved(t *testing.T) {
	const interval = 8 * time.Second
	r := NewRateLimiter(RateLimitConfig{Interval: interval, Burst: 8, KoDEvery: 10, TableSize: 256})
	flooder, good := addr("198.51.100.7"), addr("2001:db8:1:2::53")
	counts := map[string]map[Verdict]int{"flooder": {}, "good": {}}
	const duration = 10 * time.Minute
	// The flooder sends 100 requests a second, the good client one every
	// 64 s (an ordinary poll interval).
	for ms := time.Duration(0); ms < duration; ms += 10 * time.Millisecond {
		now := t0.Add(ms)
		counts["flooder"][r.checkAddr(flooder, now)]++
		if ms%(64*time.Second) == 0 {
			counts["good"][r.checkAddr(good, now)]++
		}
	}
	f, g := counts["flooder"], counts["good"]
	if g[Drop] != 0 || g[Kiss] != 0 || g[Answer] != int(duration/(64*time.Second))+1 {
		t.Errorf("well-behaved client: %v", g)
	}
	// The flooder is answered Burst times, then once per Interval.
	if want := 8 + int(duration/interval) - 1; f[Answer] < want-1 || f[Answer] > want+1 {
		t.Errorf("flooder answered %d times, want about %d", f[Answer], want)
	}
	dropped := f[Drop] + f[Kiss]
	if want := (dropped + 9) / 10; f[Kiss] != want {
		t.Errorf("flooder got %d KoDs for %d dropped requests, want %d (1 in 10)", f[Kiss], dropped, want)
	}
	total := f[Answer] + dropped
	if total != int(duration/(10*time.Millisecond)) || f[Answer]*100 > total {
		t.Errorf("flooder: %v", f)
	}
}

func TestRateLimiterKoDEvery(t *testing.T) {
	for _, every := range []int{0, 1, 3} {
		r := NewRateLimiter(RateLimitConfig{Interval: time.Minute, Burst: 1, KoDEvery: every, TableSize: 8})
		c := addr("192.0.2.9")
		var got []Verdict
		for range 8 {
			got = append(got, r.checkAddr(c, t0))
		}
		for i, v := range got {
			want := Drop
			switch {
			case i == 0:
				want = Answer
			case every > 0 && (i-1)%every == 0:
				want = Kiss
			}
			if v != want {
				t.Errorf("KoDEvery %d: verdicts %v", every, got)
				break
			}
		}
	}
}

func TestRateLimiterKeys(t *testing.T) {
	r := NewRateLimiter(RateLimitConfig{Interval: time.Minute, Burst: 1, TableSize: 1024})
	first := func(a string) Verdict { return r.checkAddr(addr(a), t0) }
	tests := []struct {
		addr string
		want Verdict
		why  string
	}{
		{"192.0.2.1", Answer, "new client"},
		{"192.0.2.1", Drop, "same client"},
		{"192.0.2.2", Answer, "IPv4 clients are single addresses"},
		{"::ffff:192.0.2.1", Drop, "IPv4-mapped IPv6 is the IPv4 client"},
		{"2001:db8:aa:bb::1", Answer, "new /64"},
		{"2001:db8:aa:bb:ffff:1:2:3", Drop, "same /64"},
		{"fe80::1%eth0", Answer, "new /64, with a zone"},
		{"fe80::2%eth1", Drop, "zones are ignored"},
		{"2001:db8:aa:bc::1", Answer, "the next /64"},
		{"::", Answer, "the unspecified address is a client too"},
	}
	for _, tc := range tests {
		if got := first(tc.addr); got != tc.want {
			t.Errorf("%s: %v, want %v (%s)", tc.addr, got, tc.want, tc.why)
		}
	}
	// The limiter takes 16-byte addresses (IPv4 as IPv4-mapped); the
	// zero value is "::", which the table above already used.
	if r.checkAddr(netip.Addr{}, t0) != Drop {
		t.Error("the zero address should be the same client as ::")
	}
}

func TestRateLimiterDisabled(t *testing.T) {
	r := NewRateLimiter(RateLimitConfig{Interval: 0, Burst: 1, KoDEvery: 1})
	for range 100 {
		if r.checkAddr(addr("192.0.2.1"), t0) != Answer {
			t.Fatal("a limiter with no interval dropped a request")
		}
	}
}

// A flood from random spoofed sources must neither grow the table nor
// make the limiter forget a heavy sender.
func TestRateLimiterSpoofedFlood(t *testing.T) {
	r := NewRateLimiter(RateLimitConfig{Interval: 10 * time.Second, Burst: 2, TableSize: 1000})
	if len(r.entries) != 1024 {
		t.Fatalf("table of %d entries for TableSize 1000, want 1024", len(r.entries))
	}
	heavy := addr("203.0.113.66")
	now := t0
	r.checkAddr(heavy, now)
	r.checkAddr(heavy, now) // burst used up: the heavy client now owes one interval
	answered := 0
	var a [4]byte
	for i := range 200_000 {
		now = now.Add(20 * time.Microsecond)
		binary.BigEndian.PutUint32(a[:], uint32(i)*2654435761) // spread over the address space
		r.checkAddr(netip.AddrFrom4(a), now)
		if i%1000 == 0 && r.checkAddr(heavy, now) == Answer {
			answered++
		}
	}
	// 4 s passed: the heavy client may not get a single answer.
	if answered != 0 {
		t.Errorf("heavy client answered %d times during a spoofed flood", answered)
	}
	if len(r.entries) != 1024 {
		t.Errorf("table grew to %d", len(r.entries))
	}
}

func TestRateLimiterClockGoesBack(t *testing.T) {
	r := NewRateLimiter(RateLimitConfig{Interval: time.Second, Burst: 2, TableSize: 8})
	c := addr("192.0.2.1")
	r.checkAddr(c, t0)
	r.checkAddr(c, t0)
	past := t0.Add(-time.Hour)
	if v := r.checkAddr(c, past); v != Drop {
		t.Fatalf("right after a backwards jump: %v", v)
	}
	// Debt is capped: recovered one interval later, not an hour later.
	if v := r.checkAddr(c, past.Add(time.Second)); v != Answer {
		t.Errorf("one interval after a backwards jump: %v", v)
	}
}

func TestRateLimiterTableSizes(t *testing.T) {
	tests := []struct{ size, want int }{
		{0, DefaultRateLimitTableSize},
		{1, 8},
		{8, 8},
		{9, 16},
		{4096, 4096},
		{-5, 8},
	}
	for _, tc := range tests {
		r := NewRateLimiter(RateLimitConfig{Interval: time.Second, TableSize: tc.size})
		if len(r.entries) != tc.want {
			t.Errorf("TableSize %d: %d entries, want %d", tc.size, len(r.entries), tc.want)
		}
	}
}

func TestRateLimiterDoesNotAllocate(t *testing.T) {
	r := NewRateLimiter(RateLimitConfig{Interval: time.Second, Burst: 3, KoDEvery: 2, TableSize: 64})
	addrs := []netip.Addr{addr("192.0.2.1"), addr("2001:db8::1"), addr("::ffff:10.0.0.1")}
	now := t0
	i := 0
	if n := testing.AllocsPerRun(1000, func() {
		now = now.Add(time.Millisecond)
		r.checkAddr(addrs[i%len(addrs)], now)
		i++
	}); n != 0 {
		t.Errorf("%v allocations per Check", n)
	}
}

func BenchmarkRateLimiterCheck(b *testing.B) {
	r := NewRateLimiter(RateLimitConfig{Interval: time.Second, Burst: 8, KoDEvery: 4})
	var a [4]byte
	now := t0
	b.ReportAllocs()
	i := uint32(0)
	for b.Loop() {
		binary.BigEndian.PutUint32(a[:], i%50000)
		now = now.Add(time.Microsecond)
		r.checkAddr(netip.AddrFrom4(a), now)
		i++
	}
}

// FuzzRateLimiter drives a limiter with an arbitrary stream of requests
// and checks the promise it makes: per client, answers never exceed Burst
// plus one per Interval, whatever the table does.
func FuzzRateLimiter(f *testing.F) {
	f.Add([]byte{0, 1, 2, 3, 0, 0, 0, 0, 255, 255}, uint8(3), uint8(2))
	f.Add([]byte("a flood of requests from a few clients, all at once"), uint8(1), uint8(0))
	f.Fuzz(func(t *testing.T, script []byte, burst, kod uint8) {
		const interval = time.Second
		r := NewRateLimiter(RateLimitConfig{Interval: interval, Burst: int(burst%8) + 1, KoDEvery: int(kod % 5), TableSize: 16})
		now := t0
		answers := map[netip.Addr]int{}
		for i := 0; i+1 < len(script); i += 2 {
			client := netip.AddrFrom4([4]byte{10, 0, 0, script[i] % 32})
			now = now.Add(time.Duration(script[i+1]) * 10 * time.Millisecond)
			if r.checkAddr(client, now) == Answer {
				answers[client]++
			}
		}
		limit := int(burst%8) + 1 + int(now.Sub(t0)/interval) + 1
		for c, n := range answers {
			// With only 16 entries a forgotten client starts afresh, so
			// allow one extra burst per eviction; without eviction
			// pressure (few clients) the bound is exact.
			if len(answers) <= 8 && n > limit {
				t.Fatalf("%v answered %d times, limit %d", c, n, limit)
			}
		}
	})
}

// checkAddr is Check for a netip.Addr, as the daemon calls it.
func (r *RateLimiter) checkAddr(a netip.Addr, now time.Time) Verdict { return r.Check(a.As16(), now) }
