package ptp

import (
	"errors"
	"testing"
	"time"
)

var t0 = time.Date(2026, 6, 1, 0, 0, 0, 0, time.UTC)

func encode(t *testing.T, m Message) []byte {
	t.Helper()
	b := make([]byte, MaxLen)
	n, err := m.MarshalTo(b)
	if err != nil {
		t.Fatal(err)
	}
	return b[:n]
}

func announceFrom(src PortIdentity, seq uint16, prio uint8) *Announce {
	return &Announce{Header: Header{Version: 2, MinorVersion: 1, Source: src, Sequence: seq, LogInterval: 1},
		CurrentUTCOffset: 37, GMPriority1: prio, GMQuality: ClockQuality{248, 0xfe, 0xffff}, GMPriority2: 128,
		GMIdentity: src.Clock, TimeSource: TimeSourceInternalOsc}
}

func newSlave(t *testing.T) *Clock {
	t.Helper()
	c, err := NewClock(Config{Identity: cid(50), SlaveOnly: true}, t0)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// master drives a slave Clock by hand: Announces, two-step Syncs and
// Delay_Resps, with the master's clock offset from the slave's by
// offset and a symmetric path delay.
type master struct {
	id          PortIdentity
	seq         uint16
	offset      time.Duration // master minus slave
	delay       time.Duration
	flags       uint16
	utcOffset   int16
	fupFirst    bool
	respBeforeT bool
}

func (m *master) round(t *testing.T, c *Clock, now time.Time) {
	t.Helper()
	m.seq++
	a := announceFrom(m.id, m.seq, 100)
	a.Flags = m.flags
	a.CurrentUTCOffset = m.utcOffset
	if _, err := c.Receive(now, encode(t, a), now); err != nil {
		t.Fatal(err)
	}
	shift := time.Duration(0)
	if m.flags&FlagPTPTimescale != 0 {
		shift = time.Duration(m.utcOffset) * time.Second
	}
	t1 := now.Add(m.offset).Add(shift)
	sync := encode(t, &Sync{Header: Header{Version: 2, Source: m.id, Sequence: m.seq, Flags: FlagTwoStep}})
	fup := encode(t, &FollowUp{Header: Header{Version: 2, Source: m.id, Sequence: m.seq}, PreciseOrigin: TimestampOf(t1)})
	t2 := now.Add(m.delay)
	if m.fupFirst {
		c.Receive(t2, fup, time.Time{})
		c.Receive(t2, sync, t2)
	} else {
		c.Receive(t2, sync, t2)
		c.Receive(t2, fup, time.Time{})
	}
	out := c.Wakeup(t2.Add(time.Second))
	for _, s := range out.Sends {
		if s.Type != MsgDelayReq {
			continue
		}
		t3 := t2.Add(time.Second)
		t4 := t3.Add(m.delay).Add(m.offset).Add(shift)
		resp := encode(t, &DelayResp{Header: Header{Version: 2, Source: m.id, Sequence: s.Seq}, Receive: TimestampOf(t4), Requesting: c.port.Identity})
		if m.respBeforeT {
			c.Receive(t3, resp, time.Time{})
			c.TxTimestamp(t3, MsgDelayReq, s.Seq, t3)
		} else {
			c.TxTimestamp(t3, MsgDelayReq, s.Seq, t3)
			c.Receive(t3, resp, time.Time{})
		}
	}
}

func TestSlaveMeasures(t *testing.T) {
	for _, m := range []*master{
		{offset: 5 * time.Microsecond, delay: 3 * time.Microsecond},
		{offset: -7 * time.Microsecond, delay: 30 * time.Microsecond, fupFirst: true, respBeforeT: true},
		{offset: 2 * time.Microsecond, delay: time.Microsecond, flags: FlagPTPTimescale | FlagUTCOffsetValid, utcOffset: 37},
	} {
		m.id = PortIdentity{cid(1), 1}
		c := newSlave(t)
		now := t0
		for i := 0; i < 8; i++ {
			m.round(t, c, now)
			now = now.Add(2 * time.Second)
		}
		st := c.Status()
		if st.Port.State != StateUncalibrated && st.Port.State != StateSlave {
			t.Fatalf("%+v: state %s", m, st.Port.State)
		}
		if st.Parent.GMIdentity != cid(1) || st.Current.StepsRemoved != 1 {
			t.Errorf("parent %s steps %d", st.Parent.GMIdentity, st.Current.StepsRemoved)
		}
		if st.MeanPathDelay != m.delay {
			t.Errorf("%+v: path delay %v", m, st.MeanPathDelay)
		}
		// The servo steers nothing here (the test does not apply its
		// output), so each measurement is the master's offset.
		if st.Offset != m.offset {
			t.Errorf("%+v: offset %v", m, st.Offset)
		}
		if st.TimeProperties.CurrentUTCOffset != m.utcOffset {
			t.Errorf("UTC offset %d", st.TimeProperties.CurrentUTCOffset)
		}
	}
}

func TestLeapFromAnnounce(t *testing.T) {
	c := newSlave(t)
	m := &master{id: PortIdentity{cid(1), 1}, flags: FlagLeap61 | FlagUTCOffsetValid | FlagPTPTimescale, utcOffset: 37}
	m.round(t, c, t0)
	m.round(t, c, t0.Add(2*time.Second))
	st := c.Status()
	if st.Leap() != 1 || !st.TimeProperties.UTCOffsetValid() {
		t.Errorf("leap %v, flags %#x", st.Leap(), st.TimeProperties.Flags)
	}
}

func TestManagementGet(t *testing.T) {
	c, err := NewClock(Config{Identity: cid(7), Domain: 3, Priority1: 90}, t0)
	if err != nil {
		t.Fatal(err)
	}
	pmc := PortIdentity{cid(200), 0x1234}
	for _, id := range []uint16{MgmtDefaultDS, MgmtCurrentDS, MgmtParentDS, MgmtTimePropertiesDS, MgmtPortDS, 0x7777} {
		req := &Management{Header: Header{Version: 2, Domain: 3, Source: pmc, Sequence: id}, Target: WildcardPort,
			StartingBoundaryHops: 1, BoundaryHops: 1, Action: ActionGet, ID: id}
		out, err := c.Receive(t0, encode(t, req), t0)
		if err != nil {
			t.Fatal(err)
		}
		if len(out.Sends) != 1 {
			t.Fatalf("%#x: %d answers", id, len(out.Sends))
		}
		m, err := Parse(out.Sends[0].Data)
		if err != nil {
			t.Fatal(err)
		}
		r := m.(*Management)
		if r.Action != ActionResponse || r.Target != pmc || r.Sequence != id || r.ID != id || r.Domain != 3 {
			t.Errorf("%#x: response %+v", id, r)
		}
		switch id {
		case MgmtDefaultDS:
			var d DefaultDS
			if err := d.UnmarshalBinary(r.Data); err != nil || d.Priority1 != 90 || d.Identity != cid(7) || d.Domain != 3 {
				t.Errorf("DEFAULT_DATA_SET %+v %v", d, err)
			}
		case MgmtPortDS:
			var p PortDS
			if err := p.UnmarshalBinary(r.Data); err != nil || p.State != StateListening || p.Identity.Clock != cid(7) {
				t.Errorf("PORT_DATA_SET %+v %v", p, err)
			}
		case 0x7777:
			if r.Error != MgmtErrNoSuchID {
				t.Errorf("unknown id answered with error %#x", r.Error)
			}
		}
	}
	// another clock's target, another domain: no answer
	req := &Management{Header: Header{Version: 2, Domain: 3, Source: pmc}, Target: PortIdentity{cid(8), 1}, Action: ActionGet, ID: MgmtDefaultDS}
	if out, _ := c.Receive(t0, encode(t, req), t0); len(out.Sends) != 0 {
		t.Error("answered a GET for another clock")
	}
	req.Target, req.Domain = WildcardPort, 4
	if out, err := c.Receive(t0, encode(t, req), t0); len(out.Sends) != 0 || err == nil || c.Status().Counters.WrongDomain != 1 {
		t.Error("answered a GET for another domain")
	}
}

// TestAnnounceFlood: thousands of fake masters, each heard once (better
// than the real one), never qualify, never grow the list beyond its
// bound, and never displace the real master.
func TestAnnounceFlood(t *testing.T) {
	c := newSlave(t)
	m := &master{id: PortIdentity{cid(1), 1}, delay: time.Microsecond}
	now := t0
	for i := 0; i < 30; i++ {
		m.round(t, c, now)
		for j := 0; j < 200; j++ {
			fake := PortIdentity{ClockIdentity{9, 9, byte(j >> 8), byte(j), byte(i), 0, 0, 1}, 1}
			c.Receive(now, encode(t, announceFrom(fake, 1, 1)), now)
		}
		now = now.Add(time.Second)
	}
	st := c.Status()
	if st.Port.State != StateSlave && st.Port.State != StateUncalibrated {
		t.Errorf("state %s", st.Port.State)
	}
	if st.Parent.GMIdentity != cid(1) {
		t.Errorf("grandmaster %s, the real master is %s", st.Parent.GMIdentity, cid(1))
	}
	if st.ForeignMasters > 1024 {
		t.Errorf("%d foreign masters kept", st.ForeignMasters)
	}
	if st.Counters.ForeignDropped != 0 && st.ForeignMasters < 1024 {
		t.Errorf("dropped %d while the list had room", st.Counters.ForeignDropped)
	}
	if st.Counters.Rx[MsgAnnounce] != 30*201 {
		t.Errorf("counted %d Announces", st.Counters.Rx[MsgAnnounce])
	}
}

func TestBadInputCounted(t *testing.T) {
	c := newSlave(t)
	good := encode(t, announceFrom(PortIdentity{cid(1), 1}, 1, 100))
	bad := [][]byte{good[:20], append([]byte{good[0], 0x01}, good[2:]...), append(append([]byte(nil), good...), make([]byte, 2000)...)}
	tlvPast := append(append([]byte(nil), good...), 0, 8, 0, 40)
	tlvPast[2], tlvPast[3] = 0, byte(len(tlvPast))
	bad = append(bad, tlvPast)
	for _, b := range bad {
		if _, err := c.Receive(t0, b, t0); err == nil {
			t.Errorf("accepted %x", b)
		}
	}
	st := c.Status().Counters
	if st.Malformed != 3 || st.WrongVersion != 1 {
		t.Errorf("counters %+v", st)
	}
	var steps Announce = *announceFrom(PortIdentity{cid(1), 1}, 2, 100)
	steps.StepsRemoved = 255
	if _, err := c.Receive(t0, encode(t, &steps), t0); err == nil || c.Status().Counters.AnnounceRejected != 1 {
		t.Error("stepsRemoved 255 accepted")
	}
	// our own messages are not foreign masters
	own := announceFrom(PortIdentity{cid(50), 1}, 1, 1)
	c.Receive(t0, encode(t, own), t0)
	c.Receive(t0, encode(t, own), t0)
	if c.Status().ForeignMasters != 0 || c.Status().Counters.Own != 2 {
		t.Error("own Announce recorded")
	}
	_, err := c.Receive(t0, good[:20], t0)
	if !errors.Is(err, ErrShort) {
		t.Errorf("%v", err)
	}
}

// TestListeningToMaster: with nobody else, the port leaves LISTENING at
// the announce receipt timeout, qualifies in PRE_MASTER and sends
// Announce, Sync and (given the transmit timestamp) Follow_Up.
func TestListeningToMaster(t *testing.T) {
	c, err := NewClock(Config{Identity: cid(7)}, t0)
	if err != nil {
		t.Fatal(err)
	}
	now := t0
	var types []MessageType
	for i := 0; i < 200 && len(types) < 3; i++ {
		now = c.NextWakeup()
		out := c.Wakeup(now)
		sends := append([]Send(nil), out.Sends...)
		for _, s := range sends {
			types = append(types, s.Type)
			if s.WantTimestamp {
				out := c.TxTimestamp(now, s.Type, s.Seq, now)
				for _, f := range out.Sends {
					types = append(types, f.Type)
				}
			}
		}
	}
	if c.State() != StateMaster {
		t.Fatalf("state %s", c.State())
	}
	if d := now.Sub(t0); d != 6*time.Second+2*time.Second {
		t.Errorf("master after %v, want 6 s (3 announce intervals of 2 s) + 2 s qualification", d)
	}
	want := []MessageType{MsgAnnounce, MsgSync, MsgFollowUp}
	for i := range want {
		if i >= len(types) || types[i] != want[i] {
			t.Fatalf("sent %v, want %v first", types, want)
		}
	}
}

func TestMasterAnswersDelayReqAndPdelay(t *testing.T) {
	c, _ := NewClock(Config{Identity: cid(7), MasterOnly: true}, t0)
	for c.State() != StateMaster {
		c.Wakeup(c.NextWakeup())
	}
	slave := PortIdentity{cid(9), 1}
	rx := t0.Add(time.Hour + 123*time.Nanosecond)
	out, _ := c.Receive(rx, encode(t, &DelayReq{Header: Header{Version: 2, Source: slave, Sequence: 42, Correction: Interval(5)}}), rx)
	if len(out.Sends) != 1 {
		t.Fatal("no Delay_Resp")
	}
	m, _ := Parse(out.Sends[0].Data)
	r := m.(*DelayResp)
	if r.Requesting != slave || r.Sequence != 42 || r.Receive != TimestampOf(rx) || r.Correction != Interval(5) {
		t.Errorf("%+v", r)
	}
	// P2P responder (a P2P clock answers in any state)
	p, _ := NewClock(Config{Identity: cid(8), Profile: DefaultP2P}, t0)
	out, _ = p.Receive(rx, encode(t, &PdelayReq{Header: Header{Version: 2, Source: slave, Sequence: 7}}), rx)
	if len(out.Sends) != 1 || out.Sends[0].Type != MsgPdelayResp || !out.Sends[0].Peer || !out.Sends[0].WantTimestamp {
		t.Fatalf("%+v", out.Sends)
	}
	t3 := rx.Add(40 * time.Microsecond)
	out = p.TxTimestamp(t3, MsgPdelayResp, 7, t3)
	if len(out.Sends) != 1 {
		t.Fatal("no Pdelay_Resp_Follow_Up")
	}
	m, _ = Parse(out.Sends[0].Data)
	f := m.(*PdelayRespFollowUp)
	if f.ResponseOrigin != TimestampOf(t3) || f.Requesting != slave || f.Sequence != 7 {
		t.Errorf("%+v", f)
	}
}
