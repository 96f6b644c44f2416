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
