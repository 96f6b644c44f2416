package ntp

import (
	"errors"
	"testing"
	"time"
)

// xlServer answers like service/daemon's worker: Respond, then the
// interleaved table; its replies leave txLag after the transmit timestamp
// it writes (the error the interleaved mode removes).
type xlServer struct {
	table  *InterleavedTable
	offset time.Duration // server clock minus client clock
	txLag  time.Duration
}

func (sv *xlServer) answer(t *testing.T, req []byte, arrive time.Time) ([]byte, time.Time) {
	t.Helper()
	var p Packet
	if err := Parse(req, &p); err != nil {
		t.Fatal(err)
	}
	rx := arrive.Add(sv.offset)
	var h Header
	if !Respond(&p.Header, rx, rx.Add(time.Microsecond), &ServerState{Stratum: 1, Leap: 0, Precision: -24}, &h) {
		t.Fatal("not answered")
	}
	client := [16]byte{1}
	if sv.table != nil {
		h.ReceiveTime = sv.table.Unique(h.ReceiveTime)
		if IsInterleavedRequest(&p.Header) {
			if prev, ok := sv.table.Lookup(client, p.OriginTime); ok {
				MakeInterleaved(&h, &p.Header, prev)
			}
		}
	}
	b := make([]byte, 48)
	if _, err := h.MarshalTo(b); err != nil {
		t.Fatal(err)
	}
	sent := rx.Add(time.Microsecond + sv.txLag) // when it really left (server clock)
	if sv.table != nil {
		sv.table.Save(client, h.ReceiveTime, TimestampFromTime(rx.Add(time.Microsecond)))
		sv.table.SetTransmit(h.ReceiveTime, TimestampFromTime(sent)) // the kernel's timestamp
	}
	return b, sent.Add(-sv.offset)
}

func runXleave(t *testing.T, sv *xlServer, interleaved bool, polls int) (*Source, []time.Duration) {
	t.Helper()
	now := time.Date(2026, 12, 7, 10, 0, 0, 0, time.UTC)
	src := NewSource(SourceConfig{MinPoll: 0, MaxPoll: 0, Interleaved: interleaved}, now)
	var offsets []time.Duration
	const oneWay = 100 * time.Microsecond
	for i := range polls {
		buf := make([]byte, 256)
		n := src.MakeRequest(now, 0x1234567890+uint64(i)*7919, buf)
		src.SetTransmitTime(now)
		reply, left := sv.answer(t, buf[:n], now.Add(oneWay))
		_, _, err := src.Receive(left.Add(oneWay), reply)
		if interleaved && i == 1 && sv.table != nil {
			// the exchange measured by poll 0's basic reply
			if !errors.Is(err, ErrNoSample) {
				t.Fatalf("poll 1 (completing the basic poll 0): %v, want ErrNoSample", err)
			}
			now = now.Add(time.Second)
			continue
		}
		if err != nil {
			t.Fatalf("poll %d: %v", i, err)
		}
		offsets = append(offsets, src.Last().Offset)
		now = now.Add(time.Second)
	}
	return src, offsets
}

func TestInterleavedRemovesTransmitLag(t *testing.T) {
	const lag = 40 * time.Microsecond
	const off = 3 * time.Millisecond
	// Basic mode: the transmit timestamp is lag early, the offset lag/2 off.
	_, basic := runXleave(t, &xlServer{table: NewInterleavedTable(8), offset: off, txLag: lag}, false, 4)
	for i, o := range basic {
		if d := (o - off).Abs(); d < lag/2-time.Microsecond {
			t.Errorf("basic poll %d: offset %v, want about %v off %v", i, o, lag/2, off)
		}
	}
	// Interleaved: the first exchange is basic, every later one exact.
	src, xl := runXleave(t, &xlServer{table: NewInterleavedTable(8), offset: off, txLag: lag}, true, 6)
	for i, o := range xl[1:] {
		if d := (o - off).Abs(); d > 100*time.Nanosecond {
			t.Errorf("interleaved poll %d: offset %v, want %v within 100 ns", i+1, o, off)
		}
	}
	if got, held := src.InterleavedCount(), src.HeldCount(); got != 5 || held != 1 || len(xl) != 5 {
		t.Errorf("%d interleaved replies, %d held, %d samples; want 5, 1 (the basic first exchange's), 5", got, held, len(xl))
	}
	// A server without the mode answers basic, and the source takes it.
	src, plain := runXleave(t, &xlServer{offset: off, txLag: lag}, true, 4)
	if src.InterleavedCount() != 0 || len(plain) != 4 {
		t.Errorf("against a basic server: %d interleaved samples, %d samples", src.InterleavedCount(), len(plain))
	}
}

func TestInterleavedTable(t *testing.T) {
	tb := NewInterleavedTable(2)
	a, b := [16]byte{1}, [16]byte{2}
	tb.Save(a, 10, 100)
	tb.Save(b, 11, 110)
	if tx, ok := tb.Lookup(a, 10); !ok || tx != 100 {
		t.Errorf("lookup 10: %v %v", tx, ok)
	}
	if _, ok := tb.Lookup(b, 10); ok {
		t.Error("another client got a's timestamp")
	}
	if tb.Unique(10) != 12 {
		t.Errorf("Unique(10) = %d, want 12", tb.Unique(10))
	}
	tb.Save(a, 12, 120) // evicts 10
	if _, ok := tb.Lookup(a, 10); ok || tb.Len() != 2 {
		t.Errorf("oldest not evicted: len %d", tb.Len())
	}
	if !tb.SetTransmit(12, 121) || tb.SetTransmit(10, 1) {
		t.Error("SetTransmit")
	}
	if tx, _ := tb.Lookup(a, 12); tx != 121 {
		t.Errorf("after SetTransmit: %d", tx)
	}
}

// FuzzSourceInterleaved: after one genuine exchange, an interleaved source
// gets any datagram as the reply to its second (interleaved) request,
// optionally made to echo its transmit field (basic) or its receive field
// (interleaved). It never panics, and an accepted sample has a
// non-negative delay and dispersion.
func FuzzSourceInterleaved(f *testing.F) {
	f.Add(make([]byte, HeaderLen), uint8(0), int64(time.Millisecond), uint64(42))
	f.Add(make([]byte, HeaderLen), uint8(1), int64(3*time.Millisecond), uint64(7))
	f.Add(make([]byte, HeaderLen), uint8(2), int64(-time.Second), uint64(1<<40))
	f.Fuzz(func(t *testing.T, data []byte, echo uint8, rxAfter int64, rnd uint64) {
		s := NewSource(SourceConfig{MinPoll: 0, MaxPoll: 4, Interleaved: true}, srcT0)
		req := srcRequest(t, s, srcT0, 0xdeadbeef)
		if _, _, err := s.Receive(srcT0.Add(2*time.Millisecond), srcReply(t, req, srcT0.Add(time.Millisecond), srcT0.Add(time.Millisecond), nil)); err != nil {
			t.Fatal(err)
		}
		t1 := srcT0.Add(time.Second)
		var b [256]byte
		n := s.MakeRequest(t1, rnd, b[:])
		if n < HeaderLen {
			t.Fatal("MakeRequest failed")
		}
		if len(data) >= HeaderLen {
			data = append([]byte(nil), data...)
			switch echo % 3 {
			case 1:
				copy(data[24:32], b[40:48]) // our transmit field: basic
			case 2:
				copy(data[24:32], b[32:40]) // our receive field: interleaved
			}
		}
		smp, ok, err := s.Receive(t1.Add(time.Duration(rxAfter)), data)
		if err == nil && (smp.Delay < 0 || smp.Dispersion < 0) {
			t.Errorf("accepted sample with delay %v dispersion %v", smp.Delay, smp.Dispersion)
		}
		if err != nil && ok {
			t.Errorf("ok with error %v", err)
		}
	})
}
