package ptp

import (
	"testing"
	"time"
)

// A gPTP master (with a link peer, so that it is asCapable):
// transportSpecific 1 on everything, every message to the 802.1AS
// address, PATH_TRACE on Announce, the follow-up information TLV on
// Follow_Up, Sync every 1/8 s.
func TestGPTPMaster(t *testing.T) {
	gm := gptpPort(7, 100, 0)
	gm.MasterOnly = true
	peer := gptpPort(8, 200, 0)
	peer.SlaveOnly = true
	l := newLab(t, 500*time.Nanosecond, gm, peer)
	var syncs []time.Time
	seen := map[MessageType]bool{}
	l.sent = func(from int, s Send, m Message) {
		if from != 0 {
			return
		}
		if h := m.Hdr(); h.MajorSdoID != 1 {
			t.Fatalf("%s with majorSdoId %d", h.Type, h.MajorSdoID)
		}
		seen[s.Type] = true
		if !s.Peer {
			t.Errorf("%s not to the 802.1AS address", s.Type)
		}
		switch m := m.(type) {
		case *Announce:
			if p := PathTrace(m.TLVs); len(p) != 1 || p[0] != cid(7) {
				t.Errorf("Announce path trace %v", p)
			}
		case *Sync:
			syncs = append(syncs, l.now)
		case *FollowUp:
			fui, ok, err := ParseFollowUpInfo(m.TLVs)
			if !ok || err != nil || fui != (FollowUpInfo{}) {
				t.Fatalf("Follow_Up TLVs %+v: %v %v", m.TLVs, ok, err)
			}
		}
	}
	l.run(5 * time.Second)
	if len(syncs) < 9 || !seen[MsgAnnounce] || !seen[MsgPdelayReq] || !seen[MsgFollowUp] {
		t.Fatalf("sent %v, %d Syncs", seen, len(syncs))
	}
	if d := syncs[8].Sub(syncs[0]); d < time.Second-time.Microsecond || d > time.Second+time.Microsecond {
		t.Errorf("8 Sync intervals took %v, want 1 s", d)
	}
	// messages of the default profile (majorSdoId 0) are not for a gPTP port
	c := l.nodes[0].c
	rx := t0.Add(time.Hour)
	if _, err := c.Receive(rx, encode(t, &PdelayReq{Header: Header{Version: 2, Source: PortIdentity{cid(9), 1}}}), rx); err == nil {
		t.Error("a transportSpecific 0 Pdelay_Req was taken")
	}
}

func TestFollowUpInfoTLV(t *testing.T) {
	in := FollowUpInfo{CumulativeScaledRateOffset: -12345, GMTimeBaseIndicator: 3, ScaledLastGMFreqChange: 99}
	in.LastGMPhaseChange[11] = 7
	tl := in.TLV()
	if len(tl.Value) != 28 || tl.Type != TLVOrganizationExtension {
		t.Fatalf("TLV %+v (802.1AS: 28 octets)", tl)
	}
	out, ok, err := ParseFollowUpInfo([]TLV{PathTraceTLV(nil), tl})
	if !ok || err != nil || out != in {
		t.Errorf("%+v %v %v", out, ok, err)
	}
	short := tl
	short.Value = short.Value[:20]
	if _, _, err := ParseFollowUpInfo([]TLV{short}); err == nil {
		t.Error("short TLV accepted")
	}
	for _, n := range []string{"", "default", "gptp", "automotive"} {
		if _, err := ProfileNamed(n, true); err != nil {
			t.Error(err)
		}
	}
	if _, err := ProfileNamed("automotive-ish", false); err == nil {
		t.Error("unknown profile accepted")
	}
}

// The neighborRateRatio of a peer 100 ppm fast is measured, and the path
// delay takes its turnaround in our time: without it a 10 ms turnaround
// would make a 1 µs link look 0.5 µs.
func TestGPTPNeighborRateRatio(t *testing.T) {
	prof := GPTP
	prof.NeighborPropDelayThresh = 2 * time.Microsecond // the 1 µs link is above 802.1AS's 800 ns
	c, err := NewClock(Config{Identity: cid(50), SlaveOnly: true, Profile: prof}, t0)
	if err != nil {
		t.Fatal(err)
	}
	if c.AsCapable(t0) {
		t.Error("asCapable before any Pdelay exchange")
	}
	peer := PortIdentity{cid(1), 1}
	me := PortIdentity{cid(50), 1}
	const d, turn = time.Microsecond, 10 * time.Millisecond
	rate := 1 + 100e-6
	peerTime := func(local time.Time) Timestamp { // the peer's clock: 100 ppm fast, 5 s ahead
		return TimestampOf(t0.Add(5*time.Second + time.Duration(float64(local.Sub(t0))*rate)))
	}
	var now time.Time
	for i := 0; i < 5; i++ {
		now = t0.Add(time.Duration(i) * time.Second)
		var seq uint16
		found := false
		for w := c.NextWakeup(); !w.After(now); w = c.NextWakeup() {
			for _, s := range c.Wakeup(w).Sends {
				if s.Type == MsgPdelayReq {
					seq, found = s.Seq, true
				}
			}
		}
		if !found {
			t.Fatalf("exchange %d: no Pdelay_Req", i)
		}
		t1 := now
		c.TxTimestamp(t1, MsgPdelayReq, seq, t1)
		t2 := peerTime(t1.Add(d))
		t3 := peerTime(t1.Add(d + turn))
		t4 := t1.Add(2*d + turn)
		h := Header{Version: 2, MajorSdoID: 1, Source: peer, Sequence: seq, Flags: FlagTwoStep}
		c.Receive(t4, encode(t, &PdelayResp{Header: h, RequestReceipt: t2, Requesting: me}), t4)
		h.Flags = 0
		c.Receive(t4, encode(t, &PdelayRespFollowUp{Header: h, ResponseOrigin: t3, Requesting: me}), time.Time{})
	}
	r, ok := c.NeighborRateRatio()
	if !ok || r < rate-1e-8 || r > rate+1e-8 {
		t.Errorf("neighborRateRatio %.9f (%v), want %.9f", r, ok, rate)
	}
	if pd := c.Status().MeanPathDelay; pd < d-2*time.Nanosecond || pd > d+2*time.Nanosecond {
		t.Errorf("path delay %v, want %v", pd, d)
	}
	if !c.AsCapable(now) {
		t.Errorf("not asCapable after the exchanges: %+v", c.GPTPLink())
	}
	// four requests unanswered (allowedLostResponses is 3)
	for i := 0; i < 5; i++ {
		c.Wakeup(c.NextWakeup())
	}
	if lk := c.GPTPLink(); lk.AsCapable || lk.LostResponses != 4 {
		t.Errorf("after 4 lost responses: %+v", lk)
	}
}
