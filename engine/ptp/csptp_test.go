package ptp

import (
	"errors"
	"testing"
	"time"
)

// exchangeOnce runs one client request through a responder whose clock is
// ahead of the client's by offset, with the given one-way delays.
func exchangeOnce(t *testing.T, c *CSPTPClient, r *CSPTPResponder, now time.Time, offset, up, down time.Duration, reorder bool) *Measurement {
	t.Helper()
	s, ok := c.Poll(now)
	if !ok {
		t.Fatal("no request due")
	}
	req := append([]byte(nil), s.Data...)
	if m, ok := c.TxTimestamp(s.Seq, now); ok || m != nil {
		t.Fatal("measurement before any answer")
	}
	rx := now.Add(up).Add(offset) // server clock
	tx := rx.Add(20 * time.Microsecond)
	first := make([]byte, MaxLen)
	n, rep, err := r.Answer(req, rx, tx.Add(-time.Microsecond), IPv4Address([4]byte{192, 0, 2, 1}), first)
	if err != nil {
		t.Fatal(err)
	}
	if rep.Variant == CSPTP1588_1 && n > len(req) {
		t.Fatalf("1588.1 answer of %d octets to a request of %d", n, len(req))
	}
	second := make([]byte, MaxLen)
	n2, err := r.Second(&rep, tx, second)
	if err != nil {
		t.Fatal(err)
	}
	d := tx.Add(-offset).Add(down) // client clock
	msgs := [][]byte{first[:n], second[:n2]}
	if reorder {
		msgs[0], msgs[1] = msgs[1], msgs[0]
	}
	var got *Measurement
	for _, b := range msgs {
		m, ok, err := c.Receive(d, b, d)
		if err != nil {
			t.Fatal(err)
		}
		if ok {
			got = m
		}
	}
	if got == nil {
		t.Fatalf("no measurement (status %+v)", c.Status())
	}
	return got
}

func TestCSPTPExchange(t *testing.T) {
	t0 := time.Unix(1_800_000_000, 0)
	id := ClockIdentity{1, 2, 3, 0xff, 0xfe, 4, 5, 6}
	srvID := ClockIdentity{9, 9, 9, 0xff, 0xfe, 9, 9, 9}
	for _, variant := range []CSPTPVariant{CSPTP1588_1, CSPTPSPTP} {
		for _, tai := range []bool{false, true} {
			for _, reorder := range []bool{false, true} {
				c, err := NewCSPTPClient(CSPTPClientConfig{Variant: variant, Identity: id, DelayFilter: 1}, t0)
				if err != nil {
					t.Fatal(err)
				}
				r := NewCSPTPResponder(CSPTPServerConfig{Identity: srvID, PTPTimescale: tai, Quality: ClockQuality{Class: 6, Accuracy: 0x21}})
				now := t0
				for i, off := range []time.Duration{3 * time.Millisecond, -250 * time.Microsecond, 0} {
					m := exchangeOnce(t, c, r, now, off, 40*time.Microsecond, 40*time.Microsecond, reorder)
					if m.Offset != off || m.PathDelay != 40*time.Microsecond {
						t.Errorf("%s tai=%v reorder=%v #%d: offset %v delay %v, want %v and 40µs", variant, tai, reorder, i, m.Offset, m.PathDelay, off)
					}
					now = now.Add(time.Second)
				}
				st := c.Status()
				if st.GMIdentity != srvID || st.GMQuality.Class != 6 || st.Server.Clock != srvID || st.PTPTimescale != tai {
					t.Errorf("%s: status %+v", variant, st)
				}
				if st.Counters.Measurements != 3 || st.Counters.Unmatched != 0 {
					t.Errorf("%s: counters %+v", variant, st.Counters)
				}
			}
		}
	}
}

func TestCSPTPAsymmetricDelay(t *testing.T) {
	t0 := time.Unix(1_800_000_000, 0)
	c, _ := NewCSPTPClient(CSPTPClientConfig{Identity: ClockIdentity{1}}, t0)
	r := NewCSPTPResponder(CSPTPServerConfig{Identity: ClockIdentity{2}})
	m := exchangeOnce(t, c, r, t0, time.Millisecond, 100*time.Microsecond, 50*time.Microsecond, false)
	// an asymmetry of 50 µs is seen as an offset error of half of it
	if m.PathDelay != 75*time.Microsecond || m.Offset != time.Millisecond+25*time.Microsecond {
		t.Errorf("offset %v delay %v", m.Offset, m.PathDelay)
	}
}

func TestCSPTPTimeoutAndStray(t *testing.T) {
	t0 := time.Unix(1_800_000_000, 0)
	c, _ := NewCSPTPClient(CSPTPClientConfig{Identity: ClockIdentity{1}, Interval: 2 * time.Second, Timeout: 500 * time.Millisecond}, t0)
	s, ok := c.Poll(t0)
	if !ok || s.Type != MsgSync || len(s.Data) != CSPTPRequestLen {
		t.Fatalf("request %+v", s)
	}
	if w := c.NextWake(); !w.Equal(t0.Add(500 * time.Millisecond)) {
		t.Errorf("next wake %v", w)
	}
	if _, ok := c.Poll(t0.Add(600 * time.Millisecond)); ok {
		t.Error("request before the interval")
	}
	if c.Status().Counters.Timeouts != 1 {
		t.Errorf("counters %+v", c.Status().Counters)
	}
	// a reply to the abandoned exchange is counted, not used
	r := NewCSPTPResponder(CSPTPServerConfig{Identity: ClockIdentity{2}})
	out := make([]byte, MaxLen)
	n, _, err := r.Answer(s.Data, t0, t0, PortAddress{}, out)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok, err := c.Receive(t0, out[:n], t0); ok || err != nil {
		t.Fatal("stray answer used")
	}
	if c.Status().Counters.Unmatched != 1 {
		t.Errorf("counters %+v", c.Status().Counters)
	}
	if _, _, err := c.Receive(t0, []byte{1, 2, 3}, t0); err == nil {
		t.Error("garbage accepted")
	}
}

func TestCSPTPServerRefuses(t *testing.T) {
	r := NewCSPTPResponder(CSPTPServerConfig{Identity: ClockIdentity{2}, Domain: 0})
	out := make([]byte, MaxLen)
	now := time.Unix(1_800_000_000, 0)
	enc := func(m Message) []byte {
		b := make([]byte, MaxLen)
		n, err := m.MarshalTo(b)
		if err != nil {
			t.Fatal(err)
		}
		return b[:n]
	}
	req := []TLV{{Type: TLVCSPTPRequest, Value: []byte{1, 0, 0, 0}}}
	for name, b := range map[string][]byte{
		"plain Sync":         enc(&Sync{Header: Header{Flags: FlagUnicast}}),
		"short request":      enc(&Sync{Header: Header{Flags: FlagUnicast}, TLVs: req}),
		"other domain":       enc(&Sync{Header: Header{Domain: 4, Flags: FlagUnicast}, TLVs: append(req, padTLV(100))}),
		"multicast DelayReq": enc(&DelayReq{}),
		"Announce":           enc(&Announce{}),
		"truncated":          {0x00, 0x12, 0x00},
	} {
		if _, _, err := r.Answer(b, now, now, PortAddress{}, out); err == nil {
			t.Errorf("%s answered", name)
		} else if name != "truncated" && !errors.Is(err, ErrCSPTP) {
			t.Errorf("%s: %v", name, err)
		}
	}
	// a request just long enough gets the answer without the status TLV
	b := enc(&Sync{Header: Header{Flags: FlagUnicast}, TLVs: append(req, padTLV(SyncLen+28-SyncLen-8))})
	n, _, err := r.Answer(b, now, now, IPv6Address([16]byte{0x20, 0x01, 0x0d, 0xb8, 15: 1}), out)
	if err != nil || n != len(b) {
		t.Fatalf("answer %d octets to %d: %v", n, len(b), err)
	}
}

func TestCSPTPStatusRoundTrip(t *testing.T) {
	for _, a := range []PortAddress{{}, IPv4Address([4]byte{192, 0, 2, 7}), IPv6Address([16]byte{0x20, 0x01, 0x0d, 0xb8, 15: 7})} {
		in := CSPTPStatusTLV{GMPriority1: 1, GMQuality: ClockQuality{6, 0x21, 0x4e5d}, GMPriority2: 2, StepsRemoved: 3,
			CurrentUTCOffset: 37, GMIdentity: ClockIdentity{1, 2, 3, 4, 5, 6, 7, 8}, Parent: a}
		tl := in.tlv()
		out, err := ParseCSPTPStatus(tl.Value)
		if err != nil || out != in {
			t.Errorf("%v: %+v, %v", a, out, err)
		}
	}
	if _, err := ParseCSPTPStatus(make([]byte, 27)); err == nil {
		t.Error("short status accepted")
	}
	v := CSPTPStatusTLV{Parent: IPv4Address([4]byte{192, 0, 2, 7})}.tlv().Value
	if _, err := ParseCSPTPStatus(v[:len(v)-1]); err == nil {
		t.Error("address past the end accepted")
	}
}
