package ptp

import (
	"testing"
	"time"
)

// FuzzCSPTP: the client-server decoders (and 802.1AS's follow-up
// information TLV) (the responder's request path,
// the client's answer path and the CSPTP TLVs) never panic, and an answer
// in the 1588.1 layout is never longer than its request.
func FuzzCSPTP(f *testing.F) {
	t0 := time.Unix(1_800_000_000, 0)
	for _, v := range []CSPTPVariant{CSPTP1588_1, CSPTPSPTP} {
		c, _ := NewCSPTPClient(CSPTPClientConfig{Variant: v, Identity: ClockIdentity{1}}, t0)
		s, _ := c.Poll(t0)
		f.Add(append([]byte(nil), s.Data...))
		r := NewCSPTPResponder(CSPTPServerConfig{Identity: ClockIdentity{2}})
		out := make([]byte, MaxLen)
		n, rep, _ := r.Answer(s.Data, t0, t0, IPv4Address([4]byte{192, 0, 2, 1}), out)
		f.Add(append([]byte(nil), out[:n]...))
		n, _ = r.Second(&rep, t0, out)
		f.Add(append([]byte(nil), out[:n]...))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		r := NewCSPTPResponder(CSPTPServerConfig{Identity: ClockIdentity{2}})
		out := make([]byte, MaxLen)
		if n, rep, err := r.Answer(b, t0, t0, IPv6Address([16]byte{0x20, 0x01, 0x0d, 0xb8, 15: 1}), out); err == nil {
			if rep.Variant == CSPTP1588_1 && n > len(b) {
				t.Fatalf("answer of %d octets to %d", n, len(b))
			}
			if _, err := r.Second(&rep, t0, out); err != nil {
				t.Fatal(err)
			}
		}
		for _, v := range []CSPTPVariant{CSPTP1588_1, CSPTPSPTP} {
			c, _ := NewCSPTPClient(CSPTPClientConfig{Variant: v, Identity: ClockIdentity{1}}, t0)
			s, _ := c.Poll(t0)
			c.TxTimestamp(s.Seq, t0)
			c.Receive(t0, b, t0)
		}
		ParseCSPTPStatus(b)
		ParseCSPTPResponse(b)
		if m, err := Parse(b); err == nil {
			if f, ok := m.(*FollowUp); ok {
				ParseFollowUpInfo(f.TLVs) // gptp.go
			}
			if s, ok := m.(*Signaling); ok {
				ParseIntervalRequest(s.TLVs) // automotive.go
			}
		}
	})
}
