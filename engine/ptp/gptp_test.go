package ptp

import (
	"testing"
	"time"
)

// A gPTP master: transportSpecific 1 on everything, PATH_TRACE on
// Announce, the follow-up information TLV on Follow_Up, Sync every 1/8 s.
func TestGPTPMaster(t *testing.T) {
	c, err := NewClock(Config{Identity: cid(7), MasterOnly: true, Profile: GPTP}, t0)
	if err != nil {
		t.Fatal(err)
	}
	var syncs []time.Time
	seen := map[MessageType]bool{}
	for i := 0; i < 400 && len(syncs) < 9; i++ {
		now := c.NextWakeup()
		out := c.Wakeup(now)
		for _, s := range append([]Send(nil), out.Sends...) {
			m, err := Parse(s.Data)
			if err != nil {
				t.Fatal(err)
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
				syncs = append(syncs, now)
				out := c.TxTimestamp(now, MsgSync, s.Seq, now)
				if len(out.Sends) != 1 {
					t.Fatal("no Follow_Up")
				}
				f, _ := Parse(out.Sends[0].Data)
				fui, ok, err := ParseFollowUpInfo(f.(*FollowUp).TLVs)
				if !ok || err != nil || fui != (FollowUpInfo{}) || f.Hdr().MajorSdoID != 1 {
					t.Fatalf("Follow_Up TLVs %+v: %v %v", f.(*FollowUp).TLVs, ok, err)
				}
			}
		}
	}
	if len(syncs) < 9 || !seen[MsgAnnounce] || !seen[MsgPdelayReq] {
		t.Fatalf("sent %v, %d Syncs", seen, len(syncs))
	}
	if d := syncs[8].Sub(syncs[0]); d != time.Second {
		t.Errorf("8 Sync intervals took %v, want 1 s", d)
	}
	// messages of the default profile (majorSdoId 0) are not for a gPTP port
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
	c, err := NewClock(Config{Identity: cid(50), SlaveOnly: true, Profile: GPTP}, t0)
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
	if !c.AsCapable(now) || c.AsCapable(now.Add(4*time.Second)) {
		t.Error("asCapable: want true just after an exchange, false 4 Pdelay intervals later")
	}
}
