package ptp

import (
	"testing"
	"time"
)

// An automotive grandmaster is MASTER at once, sends Sync (with the
// follow-up information TLV) and never an Announce; a message interval
// request slows its Sync.
func TestAutomotiveGrandmaster(t *testing.T) {
	c, err := NewClock(Config{Identity: cid(7), MasterOnly: true, Profile: Automotive}, t0)
	if err != nil {
		t.Fatal(err)
	}
	if c.State() != StateMaster {
		t.Fatalf("state %s at start, want MASTER (static role)", c.State())
	}
	count := map[MessageType]int{}
	run := func(until time.Time) []time.Time {
		var syncs []time.Time
		for now := c.NextWakeup(); now.Before(until); now = c.NextWakeup() {
			for _, s := range append([]Send(nil), c.Wakeup(now).Sends...) {
				count[s.Type]++
				if s.Type == MsgSync {
					syncs = append(syncs, now)
					c.TxTimestamp(now, MsgSync, s.Seq, now)
				}
			}
		}
		return syncs
	}
	syncs := run(t0.Add(2 * time.Second))
	if count[MsgAnnounce] != 0 || len(syncs) != 16 || count[MsgPdelayReq] != 0 {
		t.Fatalf("in 2 s: %v, %d Syncs; want no Announce, 16 Syncs, no Pdelay_Req (inhibit_delay_req)", count, len(syncs))
	}
	// the slave asks for Sync every 1 s and Pdelay every 4 s
	now := t0.Add(2 * time.Second)
	sig := &Signaling{Header: Header{Version: 2, MajorSdoID: 1, Source: PortIdentity{cid(9), 1}}, Target: WildcardPort,
		TLVs: []TLV{IntervalRequest{LinkDelay: 2, TimeSync: 0, Announce: -128}.TLV()}}
	if _, err := c.Receive(now, encode(t, sig), now); err != nil {
		t.Fatal(err)
	}
	if st := c.Status(); st.Port.LogSyncInterval != 0 || st.Port.LogMinPdelayReqInterval != 2 || st.Counters.IntervalRequests != 1 {
		t.Fatalf("after the request: sync %d pdelay %d (%d requests)", st.Port.LogSyncInterval, st.Port.LogMinPdelayReqInterval, st.Counters.IntervalRequests)
	}
	syncs = run(now.Add(4 * time.Second))
	if len(syncs) < 4 || len(syncs) > 5 {
		t.Errorf("%d Syncs in 4 s after asking for 1 s", len(syncs))
	}
	// 126: back to the initial interval (−128: no change)
	sig.TLVs = []TLV{IntervalRequest{LinkDelay: -128, TimeSync: 126, Announce: -128}.TLV()}
	c.Receive(now, encode(t, sig), now)
	if st := c.Status(); st.Port.LogSyncInterval != -3 || st.Port.LogMinPdelayReqInterval != 2 {
		t.Errorf("after 126: sync %d pdelay %d", st.Port.LogSyncInterval, st.Port.LogMinPdelayReqInterval)
	}
}

// An automotive slave is SLAVE at once and measures a master it never
// heard an Announce from.
func TestAutomotiveSlave(t *testing.T) {
	c, err := NewClock(Config{Identity: cid(50), SlaveOnly: true, Profile: Automotive}, t0)
	if err != nil {
		t.Fatal(err)
	}
	if c.State() != StateSlave {
		t.Fatalf("state %s at start", c.State())
	}
	m := PortIdentity{cid(1), 1}
	// a peer delay exchange with the master: 1 µs each way
	out := c.Wakeup(t0)
	if len(out.Sends) != 1 || out.Sends[0].Type != MsgPdelayReq {
		t.Fatalf("sends %+v, want a Pdelay_Req", out.Sends)
	}
	seq := out.Sends[0].Seq
	c.TxTimestamp(t0, MsgPdelayReq, seq, t0)
	me := PortIdentity{cid(50), 1}
	ph := Header{Version: 2, MajorSdoID: 1, Source: m, Sequence: seq, Flags: FlagTwoStep}
	rt := t0.Add(2 * time.Microsecond)
	c.Receive(rt, encode(t, &PdelayResp{Header: ph, RequestReceipt: TimestampOf(t0.Add(time.Microsecond)), Requesting: me}), rt)
	ph.Flags = 0
	c.Receive(rt, encode(t, &PdelayRespFollowUp{Header: ph, ResponseOrigin: TimestampOf(t0.Add(time.Microsecond)), Requesting: me}), time.Time{})
	var got []Measurement
	for i := range 4 {
		now := t0.Add(time.Duration(i+1) * time.Second)
		t2 := now.Add(time.Microsecond)
		h := Header{Version: 2, MajorSdoID: 1, Source: m, Sequence: uint16(i + 1)}
		hs := h
		hs.Flags = FlagTwoStep
		c.Receive(t2, encode(t, &Sync{Header: hs}), t2)
		out, err := c.Receive(t2, encode(t, &FollowUp{Header: h, PreciseOrigin: TimestampOf(now.Add(3 * time.Millisecond)), TLVs: []TLV{FollowUpInfo{}.TLV()}}), time.Time{})
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, out.Measurements...)
	}
	st := c.Status()
	if len(got) != 4 || st.Parent.ParentPort != m || st.Parent.GMIdentity != m.Clock || st.Counters.NotFromParent != 0 {
		t.Fatalf("%d measurements, parent %s, counters %+v", len(got), st.Parent.ParentPort, st.Counters)
	}
	if got[3].Offset != 3*time.Millisecond || got[3].PathDelay != time.Microsecond {
		t.Errorf("offset %v path delay %v", got[3].Offset, got[3].PathDelay)
	}
	if w := c.NextWakeup(); w.After(t0.Add(2 * time.Second)) {
		t.Errorf("next wake-up %v: the Pdelay timer must run", w)
	}
}

func TestIntervalRequestTLV(t *testing.T) {
	r := IntervalRequest{LinkDelay: -3, TimeSync: 127, Announce: -128, Flags: 3}
	got, ok, err := ParseIntervalRequest([]TLV{FollowUpInfo{}.TLV(), r.TLV()})
	if !ok || err != nil || got != r {
		t.Errorf("%v %v %v", got, ok, err)
	}
	bad := r.TLV()
	bad.Value = bad.Value[:8]
	if _, _, err := ParseIntervalRequest([]TLV{bad}); err == nil {
		t.Error("short TLV accepted")
	}
}
