package ptp

import (
	"testing"
	"time"
)

// FuzzGPTPPort feeds one datagram, whatever it is, to 802.1AS ports in
// the states where the per-link rules (gptp_link.go) read it: a gPTP
// slave with a link peer and a parent, a gPTP grandmaster, and an
// automotive grandmaster and slave. Nothing panics, what they send
// decodes, and the link's counters stay within their rules.
func FuzzGPTPPort(f *testing.F) {
	seedGolden(f)
	h := Header{Version: 2, MajorSdoID: 1, Source: PortIdentity{cid(1), 1}, Sequence: 1}
	add := func(m Message) {
		b := make([]byte, MaxLen)
		if n, err := m.MarshalTo(b); err == nil {
			f.Add(b[:n])
		}
	}
	add(&FollowUp{Header: h, TLVs: []TLV{FollowUpInfo{CumulativeScaledRateOffset: 1 << 30, GMTimeBaseIndicator: 9}.TLV()}})
	add(&Signaling{Header: h, Target: WildcardPort, TLVs: []TLV{IntervalRequest{LinkDelay: 126, TimeSync: 127, Announce: -128}.TLV()}})
	add(&PdelayResp{Header: h, Requesting: PortIdentity{cid(2), 1}})
	add(&Announce{Header: h, GMIdentity: cid(1), GMPriority1: 1, TLVs: []TLV{PathTraceTLV([]ClockIdentity{cid(1)})}})

	f.Fuzz(func(t *testing.T, b []byte) {
		slave := gptpPort(2, 200, 0)
		slave.SlaveOnly = true
		gm := gptpPort(1, 100, 0)
		agm := Config{Identity: cid(1), MasterOnly: true, Profile: Automotive}
		asl := Config{Identity: cid(2), SlaveOnly: true, Profile: Automotive}
		for _, pair := range [][2]Config{{gm, slave}, {agm, asl}} {
			l := newLab(t, 500*time.Nanosecond, pair[0], pair[1])
			l.run(3 * time.Second)
			for i, n := range l.nodes {
				at := n.local(l.now)
				o, _ := n.c.Receive(at, b, at)
				for _, s := range o.Sends {
					if _, err := Parse(s.Data); err != nil {
						t.Fatalf("node %d sent an undecodable %s: %v", i, s.Type, err)
					}
				}
				l.out(i, o)
			}
			l.run(2 * time.Second)
			for i, n := range l.nodes {
				lk := n.c.GPTPLink()
				if lk.LostResponses < 0 || lk.MultipleSequential < 0 || lk.AsCapable != (lk.NotCapable == "") ||
					(lk.NeighborRateRatioValid && (lk.NeighborRateRatio < 0.999 || lk.NeighborRateRatio > 1.001)) {
					t.Fatalf("node %d: %+v", i, lk)
				}
			}
		}
	})
}
