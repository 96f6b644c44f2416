package ntp

import (
	"bufio"
	"encoding/hex"
	"errors"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"gnomon.dev/gnomon/engine/sample"
)

// Identifiers in this file start with "src" so they cannot collide with the
// other test files of the package.

var srcT0 = time.Date(2026, 8, 20, 9, 0, 0, 0, time.UTC)

// srcState is the simulated server's own state in its replies.
var srcState = ServerState{
	Leap:           sample.LeapNone,
	Stratum:        2,
	Precision:      -20,
	RootDelay:      2 * time.Millisecond,
	RootDispersion: 3 * time.Millisecond,
	ReferenceID:    0xC0000201,
	ReferenceTime:  srcT0.Add(-time.Minute),
}

// srcPrecision is the measurement precision of a reply with precision
// -20 to a source with no local precision configured: 2^-20 s.
var srcPrecision = time.Duration(math.Ldexp(1e9, -20))

// srcRequest makes the source's request at t1 with rnd and parses it.
func srcRequest(t testing.TB, s *Source, t1 time.Time, rnd uint64) Header {
	t.Helper()
	var b [HeaderLen]byte
	n := s.MakeRequest(t1, rnd, b[:])
	if n != HeaderLen {
		t.Fatalf("MakeRequest returned %d", n)
	}
	var p Packet
	if err := Parse(b[:n], &p); err != nil {
		t.Fatalf("own request does not parse: %v", err)
	}
	return p.Header
}

// srcReply is the server's answer to req, received at t2 and sent at t3,
// with mod applied to the header before encoding.
func srcReply(t testing.TB, req Header, t2, t3 time.Time, mod func(*Header)) []byte {
	t.Helper()
	st := srcState
	var h Header
	if !Respond(&req, t2, t3, &st, &h) {
		t.Fatal("Respond refused our request")
	}
	if mod != nil {
		mod(&h)
	}
	b := make([]byte, HeaderLen)
	if _, err := h.MarshalTo(b); err != nil {
		t.Fatal(err)
	}
	return b
}

// srcExchange runs one exchange: request at local t1, the server (whose
// clock is `offset` ahead of ours) holds it from local t1+delay/2 for
// `hold`, and the reply arrives at local t1+delay+hold.
func srcExchange(t testing.TB, s *Source, t1 time.Time, offset, delay, hold time.Duration) (sample.Sample, bool, error) {
	t.Helper()
	req := srcRequest(t, s, t1, uint64(t1.UnixNano())|1)
	t2 := t1.Add(delay/2 + offset)
	data := srcReply(t, req, t2, t2.Add(hold), nil)
	return s.Receive(t1.Add(delay+hold), data)
}

func TestSourceRequest(t *testing.T) {
	tests := []struct {
		name        string
		cfg         SourceConfig
		rnd         uint64
		wantVersion uint8
		wantXmt     Timestamp
	}{
		{"default-v4", SourceConfig{MinPoll: 6, MaxPoll: 10}, 0x0123456789abcdef, 4, 0x0123456789abcdef},
		{"v3", SourceConfig{MinPoll: 6, MaxPoll: 10, Version: 3}, 0xfedcba9876543210, 3, 0xfedcba9876543210},
		{"explicit-v4", SourceConfig{MinPoll: 4, MaxPoll: 4, Version: 4}, 1, 4, 1},
		{"max-rnd", SourceConfig{MinPoll: -2, MaxPoll: 3}, math.MaxUint64, 4, math.MaxUint64},
		// A zero transmit timestamp means "not set": never send it.
		{"zero-rnd", SourceConfig{MinPoll: 6, MaxPoll: 10}, 0, 4, 1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := NewSource(tc.cfg, srcT0)
			h := srcRequest(t, s, srcT0, tc.rnd)
			if h.Mode != ModeClient {
				t.Errorf("mode %v, want client", h.Mode)
			}
			if h.Version != tc.wantVersion {
				t.Errorf("version %d, want %d", h.Version, tc.wantVersion)
			}
			if h.TransmitTime != tc.wantXmt {
				t.Errorf("transmit %#x, want %#x", uint64(h.TransmitTime), uint64(tc.wantXmt))
			}
			if h.Poll != s.Poll() {
				t.Errorf("poll %d, want the source's %d", h.Poll, s.Poll())
			}
			// Nothing about our clock is revealed.
			if h.OriginTime != 0 || h.ReceiveTime != 0 || h.ReferenceTime != 0 ||
				h.Stratum != 0 || h.Precision != 0 || h.RootDelay != 0 || h.RootDispersion != 0 || h.ReferenceID != 0 {
				t.Errorf("request reveals state: %+v", h)
			}
			if sent, _ := s.Counts(); sent != 1 {
				t.Errorf("sent = %d", sent)
			}
			// The reply must echo exactly what was sent.
			data := srcReply(t, h, srcT0.Add(time.Millisecond), srcT0.Add(time.Millisecond), nil)
			if _, _, err := s.Receive(srcT0.Add(2*time.Millisecond), data); err != nil {
				t.Errorf("reply echoing our transmit rejected: %v", err)
			}
		})
	}
}

func TestSourceRequestBuffer(t *testing.T) {
	s := NewSource(SourceConfig{MinPoll: 6, MaxPoll: 10}, srcT0)
	if n := s.MakeRequest(srcT0, 5, make([]byte, HeaderLen-1)); n != 0 {
		t.Errorf("short buffer: n = %d", n)
	}
	if sent, _ := s.Counts(); sent != 0 || s.Reach() != 0 || !s.NextPoll().Equal(srcT0) {
		t.Errorf("a failed MakeRequest changed state: sent %d reach %b next %v", sent, s.Reach(), s.NextPoll())
	}
	if n := s.MakeRequest(srcT0, 5, make([]byte, 1500)); n != HeaderLen {
		t.Errorf("large buffer: n = %d, want %d", n, HeaderLen)
	}
}

// TestSourceReach: the register shifts at every poll and bit 0 is set by
// a valid reply.
func TestSourceReach(t *testing.T) {
	tests := []struct {
		name     string
		answered string // one char per poll: 1 answered, 0 not
	}{
		{"all", "1111111111"},
		{"none", "000000000000"},
		{"alternate", "1010101010"},
		{"lost-then-back", "11100000000111"},
		{"one-then-silence", "10000000000"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := NewSource(SourceConfig{MinPoll: 6, MaxPoll: 6}, srcT0)
			var want uint8
			now := srcT0
			for i, c := range tc.answered {
				want <<= 1
				if c == '1' {
					want |= 1
					if _, _, err := srcExchange(t, s, now, 0, 10*time.Millisecond, 0); err != nil {
						t.Fatalf("poll %d: %v", i, err)
					}
				} else {
					srcRequest(t, s, now, uint64(i+1))
				}
				if s.Reach() != want {
					t.Errorf("poll %d: reach %08b, want %08b", i, s.Reach(), want)
				}
				now = now.Add(64 * time.Second)
			}
		})
	}
}

// TestSourceUnreachable: a source that answered becomes unreachable when
// its last 8 polls (the one just sent included) have no answer; one that
// never answered once it has been polled 8 times without answer. A reply
// makes it reachable again.
func TestSourceUnreachable(t *testing.T) {
	s := NewSource(SourceConfig{MinPoll: 6, MaxPoll: 6}, srcT0)
	now := srcT0
	if _, _, err := srcExchange(t, s, now, 0, 10*time.Millisecond, 0); err != nil {
		t.Fatal(err)
	}
	if s.State() != StateReachable {
		t.Fatalf("state %v after a reply", s.State())
	}
	for i := 1; i <= 8; i++ {
		now = now.Add(64 * time.Second)
		srcRequest(t, s, now, uint64(i))
		want := StateReachable
		if i == 8 {
			want = StateUnreachable
		}
		if s.State() != want {
			t.Errorf("after %d unanswered polls: %v, want %v (reach %08b)", i, s.State(), want, s.Reach())
		}
	}
	if _, _, err := srcExchange(t, s, now.Add(64*time.Second), 0, 10*time.Millisecond, 0); err != nil {
		t.Fatal(err)
	}
	if s.State() != StateReachable || s.Reach() != 1 {
		t.Errorf("after a new reply: %v reach %08b", s.State(), s.Reach())
	}

	// Never answered.
	s = NewSource(SourceConfig{MinPoll: 6, MaxPoll: 6}, srcT0)
	for i := 1; i <= 9; i++ {
		srcRequest(t, s, srcT0.Add(time.Duration(i)*64*time.Second), uint64(i))
		if i <= 7 && s.State() != StateInit {
			t.Errorf("never answered, poll %d: %v, want init", i, s.State())
		}
	}
	if s.State() != StateUnreachable {
		t.Errorf("never answered after 9 polls: %v, want unreachable", s.State())
	}
}

// TestSourceOriginMismatch: a reply with a wrong origin is rejected and
// does not cancel the pending request; the genuine reply is accepted.
func TestSourceOriginMismatch(t *testing.T) {
	tests := []struct {
		name string
		mod  func(*Header)
	}{
		{"off-by-one", func(h *Header) { h.OriginTime++ }},
		{"zero", func(h *Header) { h.OriginTime = 0 }},
		{"kiss-deny-forged", func(h *Header) { h.OriginTime ^= 1 << 40; h.Stratum = 0; h.ReferenceID = KissDeny }},
		{"kiss-rate-forged", func(h *Header) { h.OriginTime = 12345; h.Stratum = 0; h.ReferenceID = KissRate }},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := NewSource(SourceConfig{MinPoll: 6, MaxPoll: 10}, srcT0)
			req := srcRequest(t, s, srcT0, 0xabcdef)
			t2 := srcT0.Add(5 * time.Millisecond)
			bogus := srcReply(t, req, t2, t2, tc.mod)
			if _, ok, err := s.Receive(srcT0.Add(9*time.Millisecond), bogus); !errors.Is(err, ErrOriginMismatch) || ok {
				t.Fatalf("bogus reply: ok=%v err=%v, want ErrOriginMismatch", ok, err)
			}
			if s.Reach() != 0 || s.State() != StateInit || s.Poll() != 6 || s.NextPoll().IsZero() {
				t.Errorf("bogus reply changed state: reach %b state %v poll %d next %v", s.Reach(), s.State(), s.Poll(), s.NextPoll())
			}
			good := srcReply(t, req, t2, t2, nil)
			smp, ok, err := s.Receive(srcT0.Add(10*time.Millisecond), good)
			if err != nil || !ok {
				t.Fatalf("genuine reply after a bogus one: ok=%v err=%v", ok, err)
			}
			if smp.Delay != 10*time.Millisecond || smp.Offset != 0 {
				t.Errorf("sample %+v", smp)
			}
		})
	}
}

// TestSourceNotPending: a reply without a pending request (duplicate,
// late, or unsolicited) is rejected with ErrNotPending.
func TestSourceNotPending(t *testing.T) {
	s := NewSource(SourceConfig{MinPoll: 6, MaxPoll: 10}, srcT0)
	req := srcRequest(t, s, srcT0, 77)
	data := srcReply(t, req, srcT0.Add(time.Millisecond), srcT0.Add(time.Millisecond), nil)

	other := NewSource(SourceConfig{MinPoll: 6, MaxPoll: 10}, srcT0)
	if _, _, err := other.Receive(srcT0.Add(2*time.Millisecond), data); !errors.Is(err, ErrNotPending) {
		t.Errorf("unsolicited: %v, want ErrNotPending", err)
	}
	if _, _, err := s.Receive(srcT0.Add(2*time.Millisecond), data); err != nil {
		t.Fatal(err)
	}
	if _, ok, err := s.Receive(srcT0.Add(3*time.Millisecond), data); !errors.Is(err, ErrNotPending) || ok {
		t.Errorf("duplicate: ok=%v err=%v, want ErrNotPending", ok, err)
	}
	if _, valid := s.Counts(); valid != 1 {
		t.Errorf("valid = %d, want 1", valid)
	}
	// A reply to an earlier request, after a new one went out, matches
	// neither: rejected as bogus.
	srcRequest(t, s, srcT0.Add(64*time.Second), 78)
	if _, _, err := s.Receive(srcT0.Add(64*time.Second+time.Millisecond), data); !errors.Is(err, ErrOriginMismatch) {
		t.Errorf("stale reply: %v, want ErrOriginMismatch", err)
	}
	// ResetFilter forgets the pending request.
	s.ResetFilter()
	late := srcReply(t, Header{Version: 4, Mode: ModeClient, TransmitTime: 78}, srcT0.Add(64*time.Second), srcT0.Add(64*time.Second), nil)
	if _, _, err := s.Receive(srcT0.Add(64*time.Second+2*time.Millisecond), late); !errors.Is(err, ErrNotPending) {
		t.Errorf("after ResetFilter: %v, want ErrNotPending", err)
	}
}

// TestSourceRejectedReply: replies that fail the checks are not samples,
// end the exchange, and are remembered in LastError.
func TestSourceRejectedReply(t *testing.T) {
	tests := []struct {
		name string
		mod  func(*Header)
		want error
	}{
		{"unsynchronized", func(h *Header) { h.Leap = sample.LeapUnsync }, ErrUnsynchronized},
		{"stratum-16", func(h *Header) { h.Stratum = 16 }, ErrStratum},
		{"zero-receive", func(h *Header) { h.ReceiveTime = 0 }, ErrZeroTimestamp},
		{"zero-transmit", func(h *Header) { h.TransmitTime = 0 }, ErrZeroTimestamp},
		{"mode", func(h *Header) { h.Mode = ModeBroadcast }, ErrMode},
		{"root-distance", func(h *Header) { h.RootDispersion = ShortFromDuration(2 * time.Second) }, ErrRootDistance},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := NewSource(SourceConfig{MinPoll: 6, MaxPoll: 10, MaxRootDistance: time.Second}, srcT0)
			req := srcRequest(t, s, srcT0, 99)
			data := srcReply(t, req, srcT0.Add(time.Millisecond), srcT0.Add(time.Millisecond), tc.mod)
			_, ok, err := s.Receive(srcT0.Add(2*time.Millisecond), data)
			if !errors.Is(err, tc.want) || ok {
				t.Fatalf("ok=%v err=%v, want %v", ok, err, tc.want)
			}
			if !errors.Is(s.LastError(), tc.want) {
				t.Errorf("LastError %v", s.LastError())
			}
			if s.Reach() != 0 || s.State() != StateInit {
				t.Errorf("reach %b state %v", s.Reach(), s.State())
			}
			good := srcReply(t, req, srcT0.Add(time.Millisecond), srcT0.Add(time.Millisecond), nil)
			if _, _, err := s.Receive(srcT0.Add(3*time.Millisecond), good); !errors.Is(err, ErrNotPending) {
				t.Errorf("after a rejected reply the exchange is over: %v", err)
			}
		})
	}
}

// TestSourceKissRate: RATE raises the poll (once per kiss, up to MaxPoll)
// and postpones the next request by the new interval; a burst is
// cancelled.
func TestSourceKissRate(t *testing.T) {
	tests := []struct {
		name     string
		min, max int8
		burst    bool
		kisses   int
		want     []int8 // poll after each kiss
	}{
		{"one", 6, 10, false, 1, []int8{7}},
		{"three", 4, 10, true, 3, []int8{5, 6, 7}},
		{"capped", 6, 7, false, 3, []int8{7, 7, 7}},
		{"min-eq-max", 8, 8, false, 2, []int8{8, 8}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := NewSource(SourceConfig{MinPoll: tc.min, MaxPoll: tc.max, IBurst: tc.burst}, srcT0)
			now := srcT0
			for i := 0; i < tc.kisses; i++ {
				req := srcRequest(t, s, now, uint64(100+i))
				var kod Header
				RespondKiss(&req, KissRate, &kod)
				b := make([]byte, HeaderLen)
				if _, err := kod.MarshalTo(b); err != nil {
					t.Fatal(err)
				}
				rx := now.Add(5 * time.Millisecond)
				_, ok, err := s.Receive(rx, b)
				var kiss *KissError
				if !errors.As(err, &kiss) || kiss.Code != KissRate || ok {
					t.Fatalf("kiss %d: ok=%v err=%v, want a RATE KissError", i, ok, err)
				}
				if s.Poll() != tc.want[i] {
					t.Errorf("kiss %d: poll %d, want %d", i, s.Poll(), tc.want[i])
				}
				if want := rx.Add(pollDuration(tc.want[i])); !s.NextPoll().Equal(want) {
					t.Errorf("kiss %d: next poll %v, want %v", i, s.NextPoll(), want)
				}
				if s.State() == StateDenied {
					t.Error("RATE denied the source")
				}
				now = s.NextPoll()
			}
			// The backoff holds: asking for the minimum poll keeps it up.
			s.SetPoll(tc.min)
			if s.Poll() <= tc.min && tc.max > tc.min {
				t.Errorf("SetPoll(%d) right after RATE gave poll %d: the backoff must hold", tc.min, s.Poll())
			}
		})
	}
}

// TestSourceKissDeny: DENY and RSTR stop polling for good.
func TestSourceKissDeny(t *testing.T) {
	for _, code := range []uint32{KissDeny, KissRstr} {
		t.Run(KissCodeString(code), func(t *testing.T) {
			s := NewSource(SourceConfig{MinPoll: 6, MaxPoll: 10, IBurst: true}, srcT0)
			req := srcRequest(t, s, srcT0, 5)
			var kod Header
			RespondKiss(&req, code, &kod)
			b := make([]byte, HeaderLen)
			_, _ = kod.MarshalTo(b)
			_, _, err := s.Receive(srcT0.Add(time.Millisecond), b)
			var kiss *KissError
			if !errors.As(err, &kiss) || kiss.Code != code {
				t.Fatalf("err %v", err)
			}
			if s.State() != StateDenied || s.State().String() != "denied" {
				t.Errorf("state %v", s.State())
			}
			if !s.NextPoll().IsZero() {
				t.Errorf("NextPoll %v, want zero", s.NextPoll())
			}
			if n := s.MakeRequest(srcT0.Add(time.Hour), 6, make([]byte, HeaderLen)); n != 0 {
				t.Errorf("denied source made a request (%d bytes)", n)
			}
			s.Burst(srcT0.Add(time.Hour))
			if !s.NextPoll().IsZero() {
				t.Error("Burst revived a denied source")
			}
		})
	}
}

// TestSourceBurst: iburst sends BurstCount requests BurstInterval apart,
// then polls at the poll interval; Burst does the same on demand.
func TestSourceBurst(t *testing.T) {
	tests := []struct {
		name   string
		iburst bool
		poll   int8
	}{
		{"iburst", true, 6},
		{"no-iburst", false, 6},
		{"iburst-fast-poll", true, 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			start := srcT0.Add(300 * time.Millisecond)
			s := NewSource(SourceConfig{MinPoll: tc.poll, MaxPoll: 10, IBurst: tc.iburst}, start)
			if !s.NextPoll().Equal(start) {
				t.Fatalf("first poll at %v, want %v", s.NextPoll(), start)
			}
			quick := 1
			if tc.iburst {
				quick = BurstCount
			}
			now := start
			var gaps []time.Duration
			for i := 0; i < quick+2; i++ {
				// The first replies arrive, so the burst is not merely
				// retransmission.
				if _, _, err := srcExchange(t, s, now, 0, 20*time.Millisecond, 0); err != nil {
					t.Fatal(err)
				}
				next := s.NextPoll()
				gaps = append(gaps, next.Sub(now))
				now = next
			}
			for i, g := range gaps {
				want := pollDuration(tc.poll)
				if i < quick-1 {
					want = BurstInterval
				}
				if g != want {
					t.Errorf("gap after request %d: %v, want %v (all gaps %v)", i+1, g, want, gaps)
				}
			}
			// On demand.
			s.Burst(now)
			if !s.NextPoll().Equal(now) {
				t.Errorf("Burst: next poll %v, want now %v", s.NextPoll(), now)
			}
			gaps = gaps[:0]
			for i := 0; i < BurstCount+1; i++ {
				srcRequest(t, s, now, uint64(i+1))
				next := s.NextPoll()
				gaps = append(gaps, next.Sub(now))
				now = next
			}
			for i, g := range gaps {
				want := BurstInterval
				if i >= BurstCount-1 {
					want = pollDuration(tc.poll)
				}
				if g != want {
					t.Errorf("Burst: gap after request %d: %v, want %v", i+1, g, want)
				}
			}
		})
	}
}

// TestSourceOffsetDelay: offset and delay from hand-made T1..T4, exactly.
func TestSourceOffsetDelay(t *testing.T) {
	ms := time.Millisecond
	tests := []struct {
		name           string
		t2, t3, t4     time.Duration // after T1
		offset, delay  time.Duration
		serverPrecBits int8
	}{
		// Server 100 ms ahead, 20 ms round trip, symmetric.
		{"ahead", 110 * ms, 110 * ms, 20 * ms, 100 * ms, 20 * ms, -20},
		// Server 1.5 s behind, holds the request 3 ms.
		{"behind-hold", -1500*ms + 10*ms, -1500*ms + 13*ms, 23 * ms, -1500 * ms, 20 * ms, -20},
		// Asymmetric path: 15 ms out, 5 ms back, no offset: shows as +5 ms.
		{"asymmetric", 15 * ms, 15 * ms, 20 * ms, 5 * ms, 20 * ms, -20},
		// Odd nanoseconds: (1234567 + 1334567 - 2000001)/2 = 284566.5 ns,
		// truncated to 284566.
		{"odd-ns", 1234567, 1334567, 2000001, 284566, 1900001, -20},
		// Faster than the precision: delay is raised to it.
		{"below-precision", 100, 100, 200, 0, time.Duration(math.Ldexp(1e9, -10)), -10},
		// Slightly negative delay within the precision is allowed.
		{"tiny-negative", 0, 1500, 1000, 250, time.Duration(math.Ldexp(1e9, -10)), -10},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := NewSource(SourceConfig{MinPoll: 6, MaxPoll: 10}, srcT0)
			t1 := srcT0.Add(17 * time.Second)
			req := srcRequest(t, s, t1, 4242)
			data := srcReply(t, req, t1.Add(tc.t2), t1.Add(tc.t3), func(h *Header) { h.Precision = tc.serverPrecBits })
			smp, ok, err := s.Receive(t1.Add(tc.t4), data)
			if err != nil || !ok {
				t.Fatalf("ok=%v err=%v", ok, err)
			}
			if smp.Offset != tc.offset {
				t.Errorf("offset %v, want %v", smp.Offset, tc.offset)
			}
			if smp.Delay != tc.delay {
				t.Errorf("delay %v, want %v", smp.Delay, tc.delay)
			}
			if want := t1.Add(tc.t4 / 2); !smp.Time.Equal(want) {
				t.Errorf("time %v, want the midpoint %v", smp.Time, want)
			}
			prec := time.Duration(math.Ldexp(1e9, int(tc.serverPrecBits)))
			if want := prec + time.Duration(PHI*float64(tc.t4)); smp.Dispersion != want {
				t.Errorf("dispersion %v, want %v", smp.Dispersion, want)
			}
			if smp.RootDelay != ShortFromDuration(srcState.RootDelay).Duration() ||
				smp.RootDispersion != ShortFromDuration(srcState.RootDispersion).Duration() ||
				smp.Stratum != 2 || smp.RefID != srcState.ReferenceID || smp.Leap != sample.LeapNone {
				t.Errorf("server fields %+v", smp)
			}
			if s.Last() != smp {
				t.Errorf("Last %+v != released %+v", s.Last(), smp)
			}
		})
	}
}

// TestSourceServerPrecision: whatever precision a server claims, the
// dispersion is non-negative and grows with it, up to one second.
func TestSourceServerPrecision(t *testing.T) {
	tests := []struct {
		prec int8
		want time.Duration // precision part of the dispersion
	}{
		{-128, 0},
		{-20, time.Duration(math.Ldexp(1e9, -20))},
		{-1, 500 * time.Millisecond},
		{0, time.Second},
		{5, time.Second},
		{33, time.Second},
		{34, time.Second},
		{48, time.Second},
		{127, time.Second},
	}
	for _, tc := range tests {
		s := NewSource(SourceConfig{MinPoll: 6, MaxPoll: 10}, srcT0)
		req := srcRequest(t, s, srcT0, 3)
		data := srcReply(t, req, srcT0.Add(time.Millisecond), srcT0.Add(time.Millisecond), func(h *Header) { h.Precision = tc.prec })
		smp, ok, err := s.Receive(srcT0.Add(2*time.Millisecond), data)
		if err != nil || !ok {
			t.Errorf("precision %d: ok=%v err=%v", tc.prec, ok, err)
			continue
		}
		if want := tc.want + time.Duration(PHI*float64(2*time.Millisecond)); smp.Dispersion != want {
			t.Errorf("precision %d: dispersion %v, want %v", tc.prec, smp.Dispersion, want)
		}
		if smp.Delay < 2*time.Millisecond {
			t.Errorf("precision %d: delay %v", tc.prec, smp.Delay)
		}
	}
}

// TestSourceNegativeDelay: a delay more negative than the precision is
// rejected.
func TestSourceNegativeDelay(t *testing.T) {
	s := NewSource(SourceConfig{MinPoll: 6, MaxPoll: 10}, srcT0)
	req := srcRequest(t, s, srcT0, 1)
	// The server claims to have held the request 50 ms; we saw 10 ms.
	data := srcReply(t, req, srcT0.Add(time.Millisecond), srcT0.Add(51*time.Millisecond), nil)
	if _, ok, err := s.Receive(srcT0.Add(10*time.Millisecond), data); !errors.Is(err, ErrNegativeDelay) || ok {
		t.Errorf("ok=%v err=%v, want ErrNegativeDelay", ok, err)
	}
	if s.Reach() != 0 {
		t.Errorf("reach %b after a rejected reply", s.Reach())
	}
}

// TestSourceClockFilter feeds samples with known delays: the filter
// releases the minimum-delay sample of the last eight, only when it is
// newer than the last released, never twice.
func TestSourceClockFilter(t *testing.T) {
	ms := time.Millisecond
	tests := []struct {
		name   string
		delays []time.Duration
	}{
		{"decreasing-then-up", []time.Duration{50 * ms, 40 * ms, 30 * ms, 10 * ms, 60 * ms, 70 * ms, 80 * ms, 90 * ms, 100 * ms, 95 * ms, 85 * ms, 75 * ms, 65 * ms}},
		{"increasing", []time.Duration{10 * ms, 20 * ms, 30 * ms, 40 * ms, 50 * ms, 60 * ms, 70 * ms, 80 * ms, 90 * ms, 100 * ms}},
		{"one-fast-in-the-middle", []time.Duration{30 * ms, 31 * ms, 32 * ms, 5 * ms, 33 * ms, 34 * ms, 35 * ms, 36 * ms, 37 * ms, 38 * ms, 39 * ms, 40 * ms, 41 * ms, 42 * ms}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := NewSource(SourceConfig{MinPoll: 6, MaxPoll: 6}, srcT0)
			if _, ok := s.Filtered(); ok {
				t.Error("Filtered before any reply")
			}
			type meas struct {
				t1            time.Time
				offset, delay time.Duration
				mid           time.Time
				disp          time.Duration
				timesReleased int
			}
			var all []*meas
			var lastReleased time.Time
			for i, d := range tc.delays {
				m := &meas{t1: srcT0.Add(time.Duration(i) * 64 * time.Second), delay: d}
				m.offset = time.Duration(i+1)*ms + 7*time.Microsecond // tells samples apart
				m.mid = m.t1.Add(d / 2)
				m.disp = srcPrecision + time.Duration(PHI*float64(d))
				all = append(all, m)
				smp, ok, err := srcExchange(t, s, m.t1, m.offset, d, 0)
				if err != nil {
					t.Fatalf("sample %d: %v", i, err)
				}
				// Model: the minimum delay of the last eight.
				lo := max(0, len(all)-8)
				best := all[lo]
				for _, x := range all[lo:] {
					if x.delay < best.delay {
						best = x
					}
				}
				wantRelease := best.mid.After(lastReleased)
				if ok != wantRelease {
					t.Fatalf("sample %d (delay %v): released=%v, want %v", i, d, ok, wantRelease)
				}
				if ok {
					lastReleased = best.mid
					best.timesReleased++
					if smp.Offset != best.offset || smp.Delay != best.delay || !smp.Time.Equal(best.mid) {
						t.Errorf("sample %d: released offset %v delay %v time %v, want the min-delay one: %v %v %v",
							i, smp.Offset, smp.Delay, smp.Time, best.offset, best.delay, best.mid)
					}
					age := m.mid.Sub(best.mid)
					if want := best.disp + time.Duration(PHI*float64(age)); smp.Dispersion != want {
						t.Errorf("sample %d: dispersion %v, want %v (aged %v)", i, smp.Dispersion, want, age)
					}
				}
				// Jitter: RMS of the held offsets about the chosen one.
				var sum float64
				for _, x := range all[lo:] {
					e := float64(x.offset - best.offset)
					sum += e * e
				}
				var wantJ time.Duration
				if n := len(all) - lo; n > 1 {
					wantJ = time.Duration(math.Sqrt(sum / float64(n-1)))
				}
				if dj := s.Jitter() - wantJ; dj < -1 || dj > 1 {
					t.Errorf("sample %d: jitter %v, want %v", i, s.Jitter(), wantJ)
				}
				// Filtered is the current pick, released or not, with
				// its dispersion aged to the newest measurement.
				f, fok := s.Filtered()
				wantDisp := best.disp + time.Duration(PHI*float64(m.mid.Sub(best.mid)))
				if !fok || f.Offset != best.offset || f.Delay != best.delay || !f.Time.Equal(best.mid) || f.Dispersion != wantDisp {
					t.Errorf("sample %d: Filtered %+v ok=%v, want offset %v delay %v time %v dispersion %v",
						i, f, fok, best.offset, best.delay, best.mid, wantDisp)
				}
				// Last is always the newest, filtered or not.
				if s.Last().Offset != m.offset || s.Last().Delay != m.delay {
					t.Errorf("sample %d: Last %+v", i, s.Last())
				}
			}
			s.ResetFilter()
			if _, ok := s.Filtered(); ok {
				t.Error("Filtered after ResetFilter")
			}
			for i, m := range all {
				if m.timesReleased > 1 {
					t.Errorf("sample %d released %d times", i, m.timesReleased)
				}
			}
		})
	}
}

// TestSourceAdjust: a clock change between request and reply is carried
// into the pending T1, so the offset is that of the changed clock.
func TestSourceAdjust(t *testing.T) {
	tests := []struct {
		name    string
		e0      time.Duration // local minus true before the change
		step    time.Duration // the change's jump
		freqPPM float64       // and frequency change
		atAfter time.Duration // change made this long after T1
	}{
		{"step-corrects", -500 * time.Millisecond, 500 * time.Millisecond, 0, 10 * time.Millisecond},
		{"step-overshoots", 0, 2 * time.Second, 0, 5 * time.Millisecond},
		{"step-back", 3 * time.Second, -3 * time.Second, 0, 30 * time.Millisecond},
		{"freq", 0, 0, 200, 0},
		{"freq-and-step-later", 10 * time.Millisecond, -10 * time.Millisecond, -50, 20 * time.Millisecond},
		// A change dated before the request (the samples are rewritten as
		// though the clock had always run with the new parameters).
		{"change-before-request", 0, 40 * time.Millisecond, 100, -time.Second},
	}
	const delay = 40 * time.Millisecond
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			// True times: request at T1, server at T1+delay/2, reply
			// at T1+delay. The server's clock is right.
			T1 := srcT0.Add(time.Minute)
			Ta := T1.Add(tc.atAfter)
			f := tc.freqPPM * 1e-6
			// local reading at true time T, after the change
			after := func(T time.Time) time.Time {
				return T.Add(tc.e0 + tc.step + time.Duration(f*float64(T.Sub(Ta))))
			}
			before := func(T time.Time) time.Time { return T.Add(tc.e0) }
			s := NewSource(SourceConfig{MinPoll: 6, MaxPoll: 10}, srcT0)
			t1 := before(T1)
			req := srcRequest(t, s, t1, 31337)
			next := s.NextPoll()
			s.Adjust(before(Ta), tc.step, tc.freqPPM)
			wantShift := tc.step + time.Duration(f*float64(next.Sub(before(Ta))))
			if d := s.NextPoll().Sub(next) - wantShift; d < -2 || d > 2 {
				t.Errorf("NextPoll moved by %v, want %v", s.NextPoll().Sub(next), wantShift)
			}
			Ts := T1.Add(delay / 2)
			data := srcReply(t, req, Ts, Ts, nil)
			T4 := T1.Add(delay)
			smp, ok, err := s.Receive(after(T4), data)
			if err != nil || !ok {
				t.Fatalf("ok=%v err=%v", ok, err)
			}
			// The changed clock's offset at the midpoint.
			want := -(tc.e0 + tc.step + time.Duration(f*float64(Ts.Sub(Ta))))
			if d := smp.Offset - want; d < -2 || d > 2 {
				t.Errorf("offset %v, want %v (without Adjust it would be about %v)", smp.Offset, want,
					(Ts.Sub(t1)+Ts.Sub(after(T4)))/2)
			}
			wantDelay := delay + time.Duration(f*float64(delay))
			if d := smp.Delay - wantDelay; d < -2 || d > 2 {
				t.Errorf("delay %v, want %v", smp.Delay, wantDelay)
			}
		})
	}
}

// TestSourceAdjustFilter: held filter entries are corrected too: after a
// step that removes a measured offset, a new sample agreeing with the
// corrected clock shows no jitter against the old one.
func TestSourceAdjustFilter(t *testing.T) {
	s := NewSource(SourceConfig{MinPoll: 6, MaxPoll: 6}, srcT0)
	if _, ok, err := srcExchange(t, s, srcT0, 5*time.Millisecond, 10*time.Millisecond, 0); err != nil || !ok {
		t.Fatalf("ok=%v err=%v", ok, err)
	}
	s.Adjust(srcT0.Add(time.Second), 5*time.Millisecond, 0)
	// A slower sample, after the step: offset now 0. The first sample is
	// still the filter's pick and must not be released again.
	t1 := srcT0.Add(64*time.Second + 5*time.Millisecond)
	if _, ok, err := srcExchange(t, s, t1, 0, 20*time.Millisecond, 0); err != nil || ok {
		t.Fatalf("ok=%v err=%v, want held", ok, err)
	}
	if j := s.Jitter(); j > time.Nanosecond || j < -time.Nanosecond {
		t.Errorf("jitter %v: the held sample's offset was not corrected", j)
	}
}

// TestSourceSetPoll: SetPoll stays within MinPoll..MaxPoll and reschedules
// from the last request.
func TestSourceSetPoll(t *testing.T) {
	tests := []struct {
		name     string
		min, max int8
		set      int8
		want     int8
	}{
		{"within", 4, 10, 7, 7},
		{"below-min", 4, 10, 2, 4},
		{"above-max", 4, 10, 12, 10},
		{"negative", -4, 2, -5, -4},
		{"equal", 6, 6, 9, 6},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := NewSource(SourceConfig{MinPoll: tc.min, MaxPoll: tc.max}, srcT0)
			t1 := srcT0.Add(3 * time.Second)
			srcRequest(t, s, t1, 1)
			s.SetPoll(tc.set)
			if s.Poll() != tc.want {
				t.Errorf("SetPoll(%d) = %d, want %d", tc.set, s.Poll(), tc.want)
			}
			if s.PollInterval() != pollDuration(tc.want) {
				t.Errorf("PollInterval %v", s.PollInterval())
			}
			if want := t1.Add(pollDuration(tc.want)); !s.NextPoll().Equal(want) {
				t.Errorf("NextPoll %v, want %v", s.NextPoll(), want)
			}
		})
	}
}

// TestSourceConfigLimits: poll limits are clamped to what NTP allows.
func TestSourceConfigLimits(t *testing.T) {
	tests := []struct {
		min, max         int8
		wantMin, wantMax int8
	}{
		{-10, 20, MinPollLimit, MaxPollLimit},
		{8, 4, 8, 8},
		{0, 0, 0, 0},
	}
	for _, tc := range tests {
		s := NewSource(SourceConfig{MinPoll: tc.min, MaxPoll: tc.max}, srcT0)
		c := s.Config()
		if c.MinPoll != tc.wantMin || c.MaxPoll != tc.wantMax || s.Poll() != tc.wantMin || c.Version != 4 {
			t.Errorf("NewSource(min %d, max %d): config %+v poll %d", tc.min, tc.max, c, s.Poll())
		}
	}
	if pollDuration(-2) != 250*time.Millisecond || pollDuration(3) != 8*time.Second {
		t.Error("pollDuration")
	}
}

// TestSourceTransmitTime: the kernel's transmit timestamp replaces T1.
func TestSourceTransmitTime(t *testing.T) {
	s := NewSource(SourceConfig{MinPoll: 6, MaxPoll: 6}, srcT0)
	req := srcRequest(t, s, srcT0, 9)
	s.SetTransmitTime(srcT0.Add(3 * time.Millisecond))
	data := srcReply(t, req, srcT0.Add(8*time.Millisecond), srcT0.Add(8*time.Millisecond), nil)
	smp, _, err := s.Receive(srcT0.Add(13*time.Millisecond), data)
	if err != nil {
		t.Fatal(err)
	}
	if smp.Delay != 10*time.Millisecond || smp.Offset != 0 {
		t.Errorf("delay %v offset %v, want 10ms and 0", smp.Delay, smp.Offset)
	}
}

func TestSourceStateString(t *testing.T) {
	for st, want := range map[SourceState]string{StateInit: "init", StateReachable: "reachable", StateUnreachable: "unreachable", StateDenied: "denied", 9: "?"} {
		if st.String() != want {
			t.Errorf("%d: %q, want %q", st, st.String(), want)
		}
	}
}

// srcReadHex reads a testdata file: '#' comment lines, then hex.
func srcReadHex(tb testing.TB, path string) []byte {
	tb.Helper()
	f, err := os.Open(path)
	if err != nil {
		tb.Fatal(err)
	}
	defer f.Close()
	var sb strings.Builder
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		sb.WriteString(strings.ReplaceAll(line, " ", ""))
	}
	b, err := hex.DecodeString(sb.String())
	if err != nil {
		tb.Fatalf("%s: %v", path, err)
	}
	return b
}

// FuzzSourceReceive: whatever arrives after a request, Receive never
// panics, a sample it accepts is sane, and the same datagram is never
// accepted twice. matchOrigin patches the datagram's origin to our
// request's transmit timestamp so the fuzzer gets past that check;
// a transmit value with the top bit set puts an Authenticator that accepts
// everything in the path.
func FuzzSourceReceive(f *testing.F) {
	paths, _ := filepath.Glob(filepath.Join("testdata", "*-reply.hex"))
	for _, p := range paths {
		f.Add(srcReadHex(f, p), true, int64(20*time.Millisecond), uint64(0x1122334455667788))
		f.Add(srcReadHex(f, p), false, int64(0), uint64(1))
	}
	// A genuine reply and a RATE kiss to the request the target makes.
	var req Header
	{
		s := NewSource(SourceConfig{MinPoll: 6, MaxPoll: 10}, srcT0)
		req = srcRequest(f, s, srcT0, 0xdeadbeef)
	}
	f.Add(srcReply(f, req, srcT0.Add(time.Millisecond), srcT0.Add(2*time.Millisecond), nil), false, int64(3*time.Millisecond), uint64(0xdeadbeef))
	var kod Header
	RespondKiss(&req, KissRate, &kod)
	kb := make([]byte, HeaderLen)
	_, _ = kod.MarshalTo(kb)
	f.Add(kb, false, int64(time.Millisecond), uint64(0xdeadbeef))
	f.Add([]byte{}, false, int64(0), uint64(0))
	f.Add(srcReply(f, req, srcT0.Add(time.Millisecond), srcT0.Add(2*time.Millisecond), nil), true, int64(3*time.Millisecond), uint64(1<<63|0xdeadbeef))
	// Found by this target: a reply claiming precision +48 (2^48 s)
	// overflowed the dispersion to a negative duration.
	f.Add([]byte("$\x0100\x00\x0000\x00\x0000000000000000000000000000000000000000"), true, int64(20000028), uint64(1234605616436508552))

	f.Fuzz(func(t *testing.T, data []byte, matchOrigin bool, rxAfter int64, rnd uint64) {
		cfg := SourceConfig{MinPoll: 4, MaxPoll: 10, IBurst: true, MaxRootDistance: time.Second}
		if rnd>>63 == 1 { // (keeps the corpus format of testdata/fuzz)
			cfg.Auth = &srcAuth{all: true}
		}
		s := NewSource(cfg, srcT0)
		var b [1024]byte
		if s.MakeRequest(srcT0, rnd, b[:]) < HeaderLen {
			t.Fatal("MakeRequest failed")
		}
		if matchOrigin && len(data) >= HeaderLen {
			data = append([]byte(nil), data...)
			copy(data[24:32], b[40:48])
		}
		rx := srcT0.Add(time.Duration(rxAfter))
		smp, ok, err := s.Receive(rx, data)
		if err == nil {
			if s.Reach()&1 != 1 || s.State() != StateReachable {
				t.Errorf("accepted, but reach %08b state %v", s.Reach(), s.State())
			}
			if smp.Delay < 0 || smp.Dispersion < 0 {
				t.Errorf("accepted sample with delay %v dispersion %v", smp.Delay, smp.Dispersion)
			}
			if !ok {
				t.Error("the first accepted sample must be released")
			}
			if _, ok2, err2 := s.Receive(rx, data); err2 == nil || ok2 {
				t.Errorf("the same datagram accepted twice (err %v)", err2)
			}
		} else if ok {
			t.Errorf("ok with error %v", err)
		}
		if s.State() != StateDenied && s.NextPoll().IsZero() {
			t.Error("not denied but no next poll")
		}
		if p := s.Poll(); p < 4 || p > 10 {
			t.Errorf("poll %d outside 4..10", p)
		}
	})
}

// srcAuth is a stand-in Authenticator: Seal appends one 16-byte extension
// field (a unique identifier), Open accepts exactly the replies it was
// told are genuine, and Nak counts NTS NAKs.
type srcAuth struct {
	all      bool // accept every reply
	genuine  map[string]bool
	sealErr  error
	seals    int
	opens    int
	naks     int
	lastOpen *Packet
}

var errSrcNoCookie = errors.New("no cookie")

func (a *srcAuth) Seal(b []byte, n int) (int, error) {
	if a.sealErr != nil {
		return 0, a.sealErr
	}
	a.seals++
	ef := AppendExtension(nil, 0x0104, []byte("uniq-id-12345678"), 0)
	if len(b) < n+len(ef) {
		return 0, errors.New("short buffer")
	}
	return n + copy(b[n:], ef), nil
}

func (a *srcAuth) Open(reply []byte, p *Packet) error {
	a.opens++
	a.lastOpen = p
	if !a.all && !a.genuine[string(reply)] {
		return errors.New("bad authenticator")
	}
	return nil
}

func (a *srcAuth) Nak() { a.naks++ }

// srcAuthRequest makes an authenticated request and parses its header.
func srcAuthRequest(t *testing.T, s *Source, t1 time.Time, rnd uint64) (Header, int) {
	t.Helper()
	b := make([]byte, 1024)
	n := s.MakeRequest(t1, rnd, b)
	if n == 0 {
		t.Fatal("MakeRequest sent nothing")
	}
	var p Packet
	if err := Parse(b[:n], &p); err != nil {
		t.Fatalf("sealed request does not parse: %v", err)
	}
	return p.Header, n
}

func srcMarshal(t *testing.T, h *Header) []byte {
	t.Helper()
	b := make([]byte, HeaderLen)
	if _, err := h.MarshalTo(b); err != nil {
		t.Fatal(err)
	}
	return b
}

// TestSourceAuthSealOpen: with an Authenticator every request is sealed
// and every reply opened; an authentic reply is a sample, one that fails
// authentication is not and leaves the request pending.
func TestSourceAuthSealOpen(t *testing.T) {
	auth := &srcAuth{genuine: map[string]bool{}}
	s := NewSource(SourceConfig{MinPoll: 6, MaxPoll: 10, Auth: auth}, srcT0)
	req, n := srcAuthRequest(t, s, srcT0, 0x1234)
	if auth.seals != 1 || n <= HeaderLen {
		t.Errorf("seals %d, request length %d", auth.seals, n)
	}
	t2 := srcT0.Add(5 * time.Millisecond)
	forged := srcReply(t, req, t2.Add(time.Second), t2.Add(time.Second), nil)
	if _, ok, err := s.Receive(srcT0.Add(10*time.Millisecond), forged); err == nil || ok {
		t.Fatalf("unauthenticated reply accepted (ok=%v err=%v)", ok, err)
	}
	if s.Reach() != 0 || s.LastError() == nil {
		t.Errorf("reach %b lastErr %v", s.Reach(), s.LastError())
	}
	good := srcReply(t, req, t2, t2, nil)
	auth.genuine[string(good)] = true
	smp, ok, err := s.Receive(srcT0.Add(10*time.Millisecond), good)
	if err != nil || !ok || smp.Offset != 0 || smp.Delay != 10*time.Millisecond {
		t.Fatalf("authentic reply after a forged one: ok=%v err=%v sample %+v", ok, err, smp)
	}
	if auth.opens != 2 || auth.lastOpen == nil || auth.lastOpen.TransmitTime != TimestampFromTime(t2) {
		t.Errorf("Open called %d times, last with %+v", auth.opens, auth.lastOpen)
	}
}

// TestSourceAuthSealFails: without a cookie nothing is sent, nothing is
// pending, and the source tries again a poll interval later.
func TestSourceAuthSealFails(t *testing.T) {
	auth := &srcAuth{sealErr: errSrcNoCookie}
	s := NewSource(SourceConfig{MinPoll: 5, MaxPoll: 10, Auth: auth}, srcT0)
	b := make([]byte, 1024)
	if n := s.MakeRequest(srcT0, 7, b); n != 0 {
		t.Fatalf("request of %d bytes sent without a seal", n)
	}
	if !errors.Is(s.LastError(), errSrcNoCookie) {
		t.Errorf("LastError %v", s.LastError())
	}
	if want := srcT0.Add(32 * time.Second); !s.NextPoll().Equal(want) {
		t.Errorf("NextPoll %v, want %v", s.NextPoll(), want)
	}
	if sent, _ := s.Counts(); sent != 0 {
		t.Errorf("sent %d", sent)
	}
	reply := srcReply(t, Header{Version: 4, Mode: ModeClient, TransmitTime: 7}, srcT0, srcT0, nil)
	if _, _, err := s.Receive(srcT0.Add(time.Millisecond), reply); !errors.Is(err, ErrNotPending) {
		t.Errorf("reply to an unsent request: %v, want ErrNotPending", err)
	}
}

// TestSourceAuthUnauthenticatedVerdicts: on an authenticated association
// the origin check is no protection against an attacker on the path (it
// sees our transmit timestamp), so nothing in an unauthenticated reply may
// act on the source: no Kiss-o'-Death (chrony honours KoD RATE only with
// test5, authentication, passed), and no rejection that ends the exchange
// before the genuine reply arrives.
func TestSourceAuthUnauthenticatedVerdicts(t *testing.T) {
	tests := []struct {
		name string
		mod  func(*Header)
	}{
		{"deny", func(h *Header) { h.Stratum, h.ReferenceID, h.Leap = 0, KissDeny, sample.LeapUnsync }},
		{"rstr", func(h *Header) { h.Stratum, h.ReferenceID, h.Leap = 0, KissRstr, sample.LeapUnsync }},
		{"rate", func(h *Header) { h.Stratum, h.ReferenceID, h.Leap = 0, KissRate, sample.LeapUnsync }},
		{"unsynchronized", func(h *Header) { h.Leap = sample.LeapUnsync }},
		{"stratum-16", func(h *Header) { h.Stratum = 16 }},
		{"zero-transmit", func(h *Header) { h.TransmitTime = 0 }},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			auth := &srcAuth{genuine: map[string]bool{}}
			s := NewSource(SourceConfig{MinPoll: 6, MaxPoll: 10, Auth: auth}, srcT0)
			req, _ := srcAuthRequest(t, s, srcT0, 0xfeed)
			t2 := srcT0.Add(5 * time.Millisecond)
			forged := srcReply(t, req, t2, t2, tc.mod)
			_, ok, err := s.Receive(srcT0.Add(8*time.Millisecond), forged)
			if err == nil || ok {
				t.Fatalf("forged reply accepted: ok=%v err=%v", ok, err)
			}
			if s.State() == StateDenied || s.NextPoll().IsZero() {
				t.Errorf("an unauthenticated %s stopped the source (state %v)", tc.name, s.State())
			}
			if s.Poll() != 6 {
				t.Errorf("an unauthenticated %s changed the poll to %d", tc.name, s.Poll())
			}
			good := srcReply(t, req, t2, t2, nil)
			auth.genuine[string(good)] = true
			if _, ok, err := s.Receive(srcT0.Add(10*time.Millisecond), good); err != nil || !ok {
				t.Errorf("the genuine reply after an unauthenticated %s: ok=%v err=%v", tc.name, ok, err)
			}
		})
	}
}

// TestSourceAuthKiss: an authenticated KoD is acted on; an NTS NAK tells
// the authenticator, but only when it checks out (RFC 8915 5.7: the NAK
// carries the request's Unique Identifier, which the client must verify;
// chrony's NNC_CheckResponseAuth does).
func TestSourceAuthKiss(t *testing.T) {
	t.Run("authentic-deny", func(t *testing.T) {
		auth := &srcAuth{genuine: map[string]bool{}}
		s := NewSource(SourceConfig{MinPoll: 6, MaxPoll: 10, Auth: auth}, srcT0)
		req, _ := srcAuthRequest(t, s, srcT0, 0xbeef)
		var kod Header
		RespondKiss(&req, KissDeny, &kod)
		b := srcMarshal(t, &kod)
		auth.genuine[string(b)] = true
		if _, _, err := s.Receive(srcT0.Add(time.Millisecond), b); err == nil {
			t.Fatal("KoD returned no error")
		}
		if s.State() != StateDenied {
			t.Errorf("authentic DENY: state %v", s.State())
		}
	})
	t.Run("ntsn", func(t *testing.T) {
		for _, authentic := range []bool{true, false} {
			auth := &srcAuth{genuine: map[string]bool{}}
			s := NewSource(SourceConfig{MinPoll: 6, MaxPoll: 10, Auth: auth}, srcT0)
			req, _ := srcAuthRequest(t, s, srcT0, 0xbeef)
			var kod Header
			RespondKiss(&req, KissNTSN, &kod)
			b := srcMarshal(t, &kod)
			auth.genuine[string(b)] = authentic
			_, _, err := s.Receive(srcT0.Add(time.Millisecond), b)
			var kiss *KissError
			if authentic && (!errors.As(err, &kiss) || kiss.Code != KissNTSN) {
				t.Errorf("NTS NAK: err %v", err)
			}
			want := 0
			if authentic {
				want = 1
			}
			if auth.naks != want {
				t.Errorf("NAK checked out %v: Nak called %d times, want %d", authentic, auth.naks, want)
			}
			if s.State() == StateDenied {
				t.Error("NTS NAK denied the source")
			}
		}
	})
}
