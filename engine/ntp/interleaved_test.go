package ntp

import (
	"errors"
	"testing"
	"time"
)

// ilvServer is a server whose clock is `offset` ahead of ours, that stamps
// its replies `lead` before they leave, and that answers interleaved
// requests (as chronyd does) when interleaved is set.
type ilvServer struct {
	offset, lead time.Duration
	interleaved  bool
	lastRx       Timestamp
	lastTx       time.Time // when its last reply really left (server clock)
}

// exchange sends a request at local t1 over a path of delay/2 each way
// and returns the request as sent, the server's receive timestamp of the
// previous request, and what Receive said.
func (v *ilvServer) exchange(t *testing.T, s *Source, t1 time.Time, delay time.Duration) (Header, Timestamp, error) {
	t.Helper()
	prevRx := v.lastRx
	req := srcRequest(t, s, t1, uint64(t1.UnixNano())|1)
	t2 := t1.Add(delay/2 + v.offset)
	data := srcReply(t, req, t2, t2, func(h *Header) {
		if v.interleaved && req.OriginTime == v.lastRx && !req.OriginTime.IsZero() && req.ReceiveTime != req.TransmitTime {
			h.OriginTime = req.ReceiveTime
			h.TransmitTime = TimestampFromTime(v.lastTx)
		}
		v.lastRx = h.ReceiveTime
		v.lastTx = t2.Add(v.lead)
	})
	_, _, err := s.Receive(t1.Add(delay+v.lead), data)
	return req, prevRx, err
}

// TestInterleaved: against a server that stamps its replies 8 µs before
// they leave, a basic exchange is off by half of that; from the second
// exchange on the interleaved mode measures the exact offset (from the
// previous exchange, completed by the server's true transmit time), and
// requests reveal nothing of our clock.
func TestInterleaved(t *testing.T) {
	const lead = 8 * time.Microsecond
	srv := &ilvServer{offset: 3 * time.Millisecond, lead: lead, interleaved: true}
	s := NewSource(SourceConfig{MinPoll: 4, MaxPoll: 4, Interleaved: true}, srcT0)
	t1 := srcT0
	req, _, err := srv.exchange(t, s, t1, 200*time.Microsecond)
	if err != nil {
		t.Fatal(err)
	}
	if !req.OriginTime.IsZero() || !req.ReceiveTime.IsZero() {
		t.Errorf("first request carries origin %v receive %v, want zero", req.OriginTime, req.ReceiveTime)
	}
	if got, want := s.Last().Offset, srv.offset-lead/2; got != want {
		t.Errorf("basic exchange: offset %v, want %v (biased by half the lead)", got, want)
	}
	for i := 1; i <= 3; i++ {
		t1 = t1.Add(16 * time.Second)
		req, prevRx, err := srv.exchange(t, s, t1, 200*time.Microsecond)
		if i == 1 {
			// It completes the first exchange, already measured (basic):
			// one sample per exchange.
			if !errors.Is(err, ErrNoSample) {
				t.Fatalf("exchange 1: %v, want ErrNoSample", err)
			}
			if got, want := s.Last().Offset, srv.offset-lead/2; got != want {
				t.Errorf("exchange 1 changed the sample: offset %v, want still %v", got, want)
			}
			continue
		}
		if err != nil {
			t.Fatalf("exchange %d: %v", i, err)
		}
		if req.OriginTime != prevRx {
			t.Errorf("exchange %d: origin %v, want the server's previous receive time %v", i, req.OriginTime, prevRx)
		}
		if req.ReceiveTime == req.TransmitTime || req.ReceiveTime.IsZero() {
			t.Errorf("exchange %d: receive field %v, transmit %v: want a distinct cookie", i, req.ReceiveTime, req.TransmitTime)
		}
		if got := s.Last().Offset; got != srv.offset {
			t.Errorf("exchange %d: offset %v, want the exact %v", i, got, srv.offset)
		}
		if got, want := s.Last().Time, t1.Add(-16*time.Second).Add(100*time.Microsecond+lead/2); got != want {
			t.Errorf("exchange %d: sample time %v, want the previous exchange's midpoint %v", i, got, want)
		}
	}
}

// TestInterleavedFallsBack: a server that does not support the mode
// answers in basic mode, which is used as before; a reply whose origin is
// our receive cookie when we sent none, or someone else's, is refused; and
// an authenticated source never asks for the mode.
func TestInterleavedFallsBack(t *testing.T) {
	srv := &ilvServer{offset: time.Millisecond, lead: 8 * time.Microsecond}
	s := NewSource(SourceConfig{MinPoll: 4, MaxPoll: 4, Interleaved: true}, srcT0)
	for i := range 3 {
		if _, _, err := srv.exchange(t, s, srcT0.Add(time.Duration(i)*16*time.Second), 200*time.Microsecond); err != nil {
			t.Fatalf("exchange %d: %v", i, err)
		}
		if got, want := s.Last().Offset, srv.offset-srv.lead/2; got != want {
			t.Errorf("exchange %d: offset %v, want the basic %v", i, got, want)
		}
	}
	// A reply echoing the wrong value is refused.
	req := srcRequest(t, s, srcT0.Add(time.Minute), 77)
	data := srcReply(t, req, srcT0.Add(time.Minute), srcT0.Add(time.Minute), func(h *Header) { h.OriginTime = req.ReceiveTime + 1 })
	if _, _, err := s.Receive(srcT0.Add(time.Minute+time.Millisecond), data); !errors.Is(err, ErrOriginMismatch) {
		t.Errorf("reply with a wrong origin: %v, want ErrOriginMismatch", err)
	}
	// Not asked for: a reply with the receive field as origin is refused.
	b := NewSource(SourceConfig{MinPoll: 4, MaxPoll: 4}, srcT0)
	for i := range 2 {
		req := srcRequest(t, b, srcT0.Add(time.Duration(i)*16*time.Second), uint64(i)+5)
		if !req.OriginTime.IsZero() || !req.ReceiveTime.IsZero() {
			t.Fatalf("a basic source sent origin %v receive %v", req.OriginTime, req.ReceiveTime)
		}
		at := srcT0.Add(time.Duration(i) * 16 * time.Second)
		data := srcReply(t, req, at, at, func(h *Header) {
			if i == 1 {
				h.OriginTime = 0x1234
			}
		})
		_, _, err := b.Receive(at.Add(time.Millisecond), data)
		if i == 1 && !errors.Is(err, ErrOriginMismatch) {
			t.Errorf("basic source took a reply with a foreign origin: %v", err)
		}
	}
}

// TestInterleavedLateTransmitTime: a kernel transmit timestamp that comes
// after the reply still counts: the interleaved mode measures that
// exchange with the next reply, from the better transmit time.
func TestInterleavedLateTransmitTime(t *testing.T) {
	srv := &ilvServer{offset: 2 * time.Millisecond, interleaved: true}
	s := NewSource(SourceConfig{MinPoll: 4, MaxPoll: 4, Interleaved: true}, srcT0)
	if _, _, err := srv.exchange(t, s, srcT0.Add(-16*time.Second), 200*time.Microsecond); err != nil {
		t.Fatal(err)
	}
	// Our user-space send time was 10 µs early; the kernel's comes late.
	const early = 10 * time.Microsecond
	req := srcRequest(t, s, srcT0.Add(-early), 99)
	t2 := srcT0.Add(100*time.Microsecond + srv.offset)
	data := srcReply(t, req, t2, t2, func(h *Header) {
		h.OriginTime, h.TransmitTime = req.ReceiveTime, TimestampFromTime(srv.lastTx)
		srv.lastRx, srv.lastTx = h.ReceiveTime, t2
	})
	if _, _, err := s.Receive(srcT0.Add(200*time.Microsecond), data); !errors.Is(err, ErrNoSample) {
		t.Fatalf("interleaved reply completing the basic first exchange: %v, want ErrNoSample", err)
	}
	s.SetTransmitTime(srcT0) // the kernel's, after the reply
	if _, _, err := srv.exchange(t, s, srcT0.Add(16*time.Second), 200*time.Microsecond); err != nil {
		t.Fatal(err)
	}
	if got := s.Last().Offset; got != srv.offset {
		t.Errorf("interleaved offset %v, want %v: the late kernel transmit time was not used", got, srv.offset)
	}
}

// TestInterleavedLostReply: when a reply is lost, the server (chronyd
// forgets a receive timestamp once it answered it) answers the next
// request in basic mode, its transmit timestamp taken before sending. That
// sample would be off by half the server's lead; it is held back, and the
// next (interleaved) reply measures the same exchange exactly. Before,
// every lost reply put one such biased sample among the exact ones — on a
// lossy path a bias of a few µs.
func TestInterleavedLostReply(t *testing.T) {
	const lead = 8 * time.Microsecond
	srv := &ilvServer{offset: time.Millisecond, lead: lead, interleaved: true}
	s := NewSource(SourceConfig{MinPoll: 4, MaxPoll: 4, Interleaved: true}, srcT0)
	at := func(i int) time.Time { return srcT0.Add(time.Duration(i) * 16 * time.Second) }
	var offsets []time.Duration
	take := func(i int, wantHeld bool) {
		t.Helper()
		_, _, err := srv.exchange(t, s, at(i), 200*time.Microsecond)
		switch {
		case wantHeld && !errors.Is(err, ErrNoSample):
			t.Fatalf("exchange %d: %v, want ErrNoSample", i, err)
		case !wantHeld && err != nil:
			t.Fatalf("exchange %d: %v", i, err)
		case !wantHeld:
			offsets = append(offsets, s.Last().Offset)
		}
	}
	take(0, false) // basic
	take(1, true)  // completes exchange 0: already measured
	take(2, false)
	take(3, false)
	// Exchange 4's reply is lost: the server saw the request.
	req := srcRequest(t, s, at(4), 4242)
	t2 := at(4).Add(100*time.Microsecond + srv.offset)
	srcReply(t, req, t2, t2, func(h *Header) { srv.lastRx, srv.lastTx = h.ReceiveTime, t2.Add(lead) })
	take(5, true) // basic again (the server no longer knows our origin): held
	take(6, false)
	take(7, false)
	if got, want := offsets[0], srv.offset-lead/2; got != want {
		t.Errorf("first (basic) offset %v, want %v", got, want)
	}
	for i, o := range offsets[1:] {
		if o != srv.offset {
			t.Errorf("sample %d: offset %v, want the exact %v", i+1, o, srv.offset)
		}
	}
	if len(offsets) != 5 || s.HeldCount() != 2 {
		t.Errorf("%d samples, %d held; want 5 and 2", len(offsets), s.HeldCount())
	}
}

// TestSetInterleaved: a source configured for the mode sends basic
// requests while the engine turns it off (start-up, long polls), and asks
// for it again from the next request once turned on; a basic reply to a
// basic request is used even right after interleaved ones.
func TestSetInterleaved(t *testing.T) {
	srv := &ilvServer{offset: time.Millisecond, lead: 8 * time.Microsecond, interleaved: true}
	s := NewSource(SourceConfig{MinPoll: 4, MaxPoll: 4, Interleaved: true}, srcT0)
	at := func(i int) time.Time { return srcT0.Add(time.Duration(i) * 16 * time.Second) }
	s.SetInterleaved(false)
	for i := range 2 {
		req, _, err := srv.exchange(t, s, at(i), 200*time.Microsecond)
		if err != nil {
			t.Fatalf("exchange %d: %v", i, err)
		}
		if !req.OriginTime.IsZero() || !req.ReceiveTime.IsZero() {
			t.Errorf("exchange %d, mode off: origin %v receive %v, want a basic request", i, req.OriginTime, req.ReceiveTime)
		}
	}
	s.SetInterleaved(true)
	req, _, err := srv.exchange(t, s, at(2), 200*time.Microsecond)
	if req.OriginTime.IsZero() || !errors.Is(err, ErrNoSample) {
		t.Fatalf("mode on: origin %v, err %v; want an interleaved request completing the basic exchange 1", req.OriginTime, err)
	}
	if _, _, err := srv.exchange(t, s, at(3), 200*time.Microsecond); err != nil || s.Last().Offset != srv.offset {
		t.Fatalf("interleaved: err %v offset %v, want %v", err, s.Last().Offset, srv.offset)
	}
	s.SetInterleaved(false)
	if _, _, err := srv.exchange(t, s, at(4), 200*time.Microsecond); err != nil {
		t.Fatalf("basic again after interleaved replies: %v, want it used", err)
	}
	if got, want := s.Last().Offset, srv.offset-srv.lead/2; got != want {
		t.Errorf("basic again: offset %v, want %v", got, want)
	}
}
