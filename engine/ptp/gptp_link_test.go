package ptp

import (
	"math"
	"testing"
	"time"
)

// lab is a simulated 802.1AS link: ports (Clocks) joined by one wire on
// which every message reaches every other port after delay, each port
// reading its own clock (a rate and an offset from true time). Transmit
// timestamps are the send time. The servos' adjustments are not applied:
// each port's clock runs free, so the offsets measured are the true ones.
type lab struct {
	t      *testing.T
	nodes  []*labNode
	delay  time.Duration
	now    time.Time // true time
	q      []labMsg
	mutate func(from int, m Message) // rewrite a message on the wire (nil: none)
	sent   func(from int, s Send, m Message)
	drop   func(from, to int, m Message) bool
}

type labNode struct {
	c      *Clock
	rate   float64
	off    time.Duration
	states []PortState
	meas   []Measurement
}

type labMsg struct {
	at       time.Time
	from, to int
	data     []byte
}

func (n *labNode) local(T time.Time) time.Time {
	return t0.Add(n.off + time.Duration(float64(T.Sub(t0))*n.rate))
}

func newLab(t *testing.T, delay time.Duration, cfgs ...Config) *lab {
	t.Helper()
	l := &lab{t: t, delay: delay, now: t0}
	for _, cfg := range cfgs {
		c, err := NewClock(cfg, t0)
		if err != nil {
			t.Fatal(err)
		}
		l.nodes = append(l.nodes, &labNode{c: c, rate: 1, states: []PortState{c.State()}})
	}
	return l
}

// out carries what node i's port asked for.
func (l *lab) out(i int, o *Output) {
	n := l.nodes[i]
	n.meas = append(n.meas, o.Measurements...)
	if o.StateChanged {
		n.states = append(n.states, n.c.State())
	}
	for _, s := range append([]Send(nil), o.Sends...) {
		m, err := Parse(s.Data)
		if err != nil {
			l.t.Fatalf("node %d sent an undecodable %s: %v", i, s.Type, err)
		}
		if l.sent != nil {
			l.sent(i, s, m)
		}
		if l.mutate != nil {
			l.mutate(i, m)
		}
		b := make([]byte, MaxLen)
		k, err := m.MarshalTo(b)
		if err != nil {
			l.t.Fatal(err)
		}
		for j := range l.nodes {
			if j != i && (l.drop == nil || !l.drop(i, j, m)) {
				l.q = append(l.q, labMsg{at: l.now.Add(l.delay), from: i, to: j, data: b[:k]})
			}
		}
		if s.WantTimestamp {
			at := n.local(l.now)
			l.out(i, n.c.TxTimestamp(at, s.Type, s.Seq, at))
		}
	}
}

// run advances true time by d, event by event: deliveries at their
// arrival, each port's wake-ups when its clock reaches them.
func (l *lab) run(d time.Duration) {
	end := l.now.Add(d)
	for {
		next := end
		for _, m := range l.q {
			if m.at.Before(next) {
				next = m.at
			}
		}
		for _, n := range l.nodes {
			if w := n.c.NextWakeup(); !w.IsZero() {
				// the true time n's clock reads w, rounded up
				T := t0.Add(time.Duration(float64(w.Sub(t0)-n.off)/n.rate) + 1)
				if T.Before(next) {
					next = T
				}
			}
		}
		if next.After(end) {
			l.now = end
			return
		}
		if next.After(l.now) {
			l.now = next
		}
		acted := false
		q := l.q
		l.q = nil
		var later []labMsg
		for _, m := range q {
			if m.at.After(l.now) {
				later = append(later, m)
				continue
			}
			acted = true
			n := l.nodes[m.to]
			at := n.local(l.now)
			o, _ := n.c.Receive(at, m.data, at)
			l.out(m.to, o)
		}
		l.q = append(later, l.q...)
		for i, n := range l.nodes {
			if w := n.c.NextWakeup(); !w.IsZero() && !n.local(l.now).Before(w) {
				acted = true
				l.out(i, n.c.Wakeup(n.local(l.now)))
			}
		}
		if !acted {
			l.now = l.now.Add(time.Nanosecond)
		}
		if !l.now.Before(end) {
			return
		}
	}
}

func gptpPort(id byte, prio uint8, thresh time.Duration) Config {
	p := GPTP
	p.NeighborPropDelayThresh = thresh
	return Config{Identity: cid(id), Priority1: prio, Profile: p}
}

func hasState(states []PortState, s PortState) bool {
	for _, x := range states {
		if x == s {
			return true
		}
	}
	return false
}

// Two gPTP ports on a 500 ns link: both become asCapable, the better one
// MASTER without PRE_MASTER, the other its slave after a single
// Announce, and the slave measures the master's offset.
func TestGPTPLinkCapable(t *testing.T) {
	l := newLab(t, 500*time.Nanosecond, gptpPort(1, 100, 0), gptpPort(2, 200, 0))
	l.nodes[1].off = 3 * time.Millisecond
	l.run(5 * time.Second)
	gm, sl := l.nodes[0].c, l.nodes[1].c
	for i, n := range l.nodes {
		if lk := n.c.GPTPLink(); !lk.AsCapable || lk.NeighborPropDelay != 500*time.Nanosecond || lk.NeighborRateRatio != 1 ||
			lk.Peer.Clock != cid(byte(2-i)) || lk.NeighborPropDelayThresh != DefaultNeighborPropDelayThresh {
			t.Errorf("node %d: %+v", i, lk)
		}
	}
	if gm.State() != StateMaster || hasState(l.nodes[0].states, StatePreMaster) {
		t.Errorf("grandmaster went %v", l.nodes[0].states)
	}
	if !sl.isSlave() || sl.Status().Parent.GMIdentity != cid(1) {
		t.Fatalf("slave went %v, parent %s", l.nodes[1].states, sl.Status().Parent.GMIdentity)
	}
	ms := l.nodes[1].meas
	if len(ms) < 10 || ms[len(ms)-1].Offset != -3*time.Millisecond {
		t.Fatalf("%d measurements, last %+v; want offset −3 ms", len(ms), ms[len(ms)-1])
	}
}

// One Announce qualifies a master (802.1AS has no foreign master
// qualification): the slave leaves LISTENING on the first it takes.
func TestGPTPNoQualification(t *testing.T) {
	l := newLab(t, 500*time.Nanosecond, gptpPort(1, 100, 0), gptpPort(2, 200, 0))
	var rxAtChange uint64
	for i := 0; i < 5000 && rxAtChange == 0; i++ {
		l.run(time.Millisecond)
		if l.nodes[1].c.isSlave() {
			rxAtChange = l.nodes[1].c.Status().Counters.Rx[MsgAnnounce]
		}
	}
	// Announces dropped before the link was asCapable are counted in Rx
	// too: what matters is that the first one taken qualified.
	if rxAtChange == 0 || l.nodes[1].c.GPTPLink().IncapableDropped+1 < rxAtChange {
		t.Errorf("slave after %d Announces (%d dropped while not asCapable)", rxAtChange, l.nodes[1].c.GPTPLink().IncapableDropped)
	}
}

// A link delay above neighborPropDelayThresh: neither port is asCapable,
// the grandmaster sends neither Announce nor Sync, the other measures
// nothing. With the threshold raised, the same link works.
func TestGPTPNeighborPropDelayThresh(t *testing.T) {
	l := newLab(t, 2*time.Microsecond, gptpPort(1, 100, 0), gptpPort(2, 200, 0))
	l.run(5 * time.Second)
	for i, n := range l.nodes {
		lk := n.c.GPTPLink()
		if lk.AsCapable || lk.NotCapable != "neighborPropDelay above neighborPropDelayThresh" || lk.NeighborPropDelay != 2*time.Microsecond {
			t.Errorf("node %d: %+v", i, lk)
		}
	}
	st := l.nodes[0].c.Status()
	if st.Counters.Tx[MsgSync] != 0 || st.Counters.Tx[MsgAnnounce] != 0 || len(l.nodes[1].meas) != 0 {
		t.Errorf("not asCapable, yet %d Syncs and %d Announces sent, %d measurements", st.Counters.Tx[MsgSync], st.Counters.Tx[MsgAnnounce], len(l.nodes[1].meas))
	}
	l = newLab(t, 2*time.Microsecond, gptpPort(1, 100, 5*time.Microsecond), gptpPort(2, 200, 5*time.Microsecond))
	l.run(5 * time.Second)
	if !l.nodes[0].c.AsCapable(l.now) || len(l.nodes[1].meas) < 10 {
		t.Errorf("threshold 5 µs: %+v, %d measurements", l.nodes[1].c.GPTPLink(), len(l.nodes[1].meas))
	}
}

// Pdelay responses lost: after allowedLostResponses (3) in a row the
// slave's link is not asCapable; it drops the master's Sync and Announce
// and leaves SLAVE; when responses come back it is asCapable again.
func TestGPTPLostResponses(t *testing.T) {
	l := newLab(t, 500*time.Nanosecond, gptpPort(1, 100, 0), gptpPort(2, 200, 0))
	l.run(5 * time.Second)
	sl := l.nodes[1].c
	if !sl.isSlave() {
		t.Fatalf("not a slave: %v", l.nodes[1].states)
	}
	lose := true
	l.drop = func(from, to int, m Message) bool {
		_, resp := m.(*PdelayResp)
		return lose && from == 0 && resp
	}
	l.run(3500 * time.Millisecond) // 3 lost: still capable
	if lk := sl.GPTPLink(); !lk.AsCapable || lk.LostResponses != 3 {
		t.Fatalf("after 3 lost: %+v", lk)
	}
	l.run(time.Second)
	lk := sl.GPTPLink()
	if lk.AsCapable || lk.NotCapable != "Pdelay responses lost" || lk.LostTotal < 4 {
		t.Fatalf("after 4 lost: %+v", lk)
	}
	n := len(l.nodes[1].meas)
	l.run(4 * time.Second)
	if len(l.nodes[1].meas) != n || sl.isSlave() || sl.GPTPLink().IncapableDropped == 0 {
		t.Errorf("not asCapable: %d more measurements, state %s, %d dropped", len(l.nodes[1].meas)-n, sl.State(), sl.GPTPLink().IncapableDropped)
	}
	lose = false
	l.run(5 * time.Second)
	if lk := sl.GPTPLink(); !lk.AsCapable || lk.LostResponses != 0 || !sl.isSlave() {
		t.Errorf("responses back: %+v, state %s", lk, sl.State())
	}
}

// Two ports answer each Pdelay_Req (a link that is not point to point):
// counted; after allowedLostResponses+1 requests in a row the link is not
// asCapable and the port stops sending Pdelay_Req for 5 minutes.
func TestGPTPMultipleResponders(t *testing.T) {
	slave := gptpPort(3, 200, 0)
	slave.SlaveOnly = true
	a, b := gptpPort(1, 100, 0), gptpPort(2, 100, 0)
	a.MasterOnly, b.MasterOnly = true, true
	l := newLab(t, 500*time.Nanosecond, slave, a, b)
	l.run(10 * time.Second)
	sl := l.nodes[0].c
	lk := sl.GPTPLink()
	if lk.AsCapable || lk.MultipleResponses < 4 || lk.PdelayPausedUntil.IsZero() {
		t.Fatalf("two responders: %+v", lk)
	}
	sent, meas := sl.Status().Counters.Tx[MsgPdelayReq], len(l.nodes[0].meas)
	l.run(60 * time.Second)
	if n := sl.Status().Counters.Tx[MsgPdelayReq]; n != sent {
		t.Errorf("%d Pdelay_Req sent while paused", n-sent)
	}
	if n := len(l.nodes[0].meas) - meas; n != 0 || sl.isSlave() {
		t.Errorf("%d measurements, state %s, on a link with two responders", n, sl.State())
	}
}

// The slave gives its parent up when Sync stops for syncReceiptTimeout (3
// Sync intervals), though its Announces still come.
func TestGPTPSyncReceiptTimeout(t *testing.T) {
	l := newLab(t, 500*time.Nanosecond, gptpPort(1, 100, 0), gptpPort(2, 200, 0))
	l.run(5 * time.Second)
	sl := l.nodes[1].c
	if !sl.isSlave() {
		t.Fatalf("not a slave: %v", l.nodes[1].states)
	}
	l.drop = func(from, to int, m Message) bool {
		_, sync := m.(*Sync)
		return sync
	}
	states, ato := len(l.nodes[1].states), sl.Status().Counters.AnnounceTimeouts
	l.run(500 * time.Millisecond) // 3 × 125 ms, then the next wake-up
	if lk := sl.GPTPLink(); lk.SyncReceiptTimeouts != 1 || sl.isSlave() {
		t.Errorf("after 0.5 s without Sync: %d timeouts, state %s (%v)", lk.SyncReceiptTimeouts, sl.State(), l.nodes[1].states[states:])
	}
	if sl.Status().Counters.AnnounceTimeouts != ato {
		t.Error("an announce receipt timeout, not a sync receipt timeout")
	}
}

// The follow-up information TLV's cumulativeScaledRateOffset scales the
// path delay into the grandmaster's time base in the Sync path, and a
// change of the gmTimeBaseIndicator is counted.
func TestGPTPRateRatioInSyncPath(t *testing.T) {
	const delay = 100 * time.Microsecond
	l := newLab(t, delay, gptpPort(1, 100, time.Millisecond), gptpPort(2, 200, time.Millisecond))
	tbi := uint16(5)
	const ppm = 500
	csro := int32(math.Round(ppm * 1e-6 * (1 << 41)))
	l.mutate = func(from int, m Message) {
		if f, ok := m.(*FollowUp); ok {
			// as if a bridge between the two had accumulated the
			// grandmaster's rate 500 ppm above its own
			f.TLVs = []TLV{FollowUpInfo{CumulativeScaledRateOffset: csro, GMTimeBaseIndicator: tbi}.TLV()}
		}
	}
	l.run(5 * time.Second)
	ms := l.nodes[1].meas
	lk := l.nodes[1].c.GPTPLink()
	if len(ms) < 10 || lk.GMTimeBaseIndicator != 5 || lk.GMTimeBaseChanges != 0 {
		t.Fatalf("%d measurements, %+v", len(ms), lk)
	}
	if r := lk.RateRatio; r < 1+ppm*1e-6-1e-9 || r > 1+ppm*1e-6+1e-9 {
		t.Errorf("rateRatio %.9f, want 1.0005", r)
	}
	// the path delay in the grandmaster's time is 100 µs × 1.0005: the
	// slave's clock, as true as the master's, looks 50 ns behind
	if got, want := ms[len(ms)-1].Offset, delay*ppm/1e6; got < want-2 || got > want+2 {
		t.Errorf("offset %v, want %v", got, want)
	}
	tbi = 6
	l.run(time.Second)
	if lk := l.nodes[1].c.GPTPLink(); lk.GMTimeBaseChanges != 1 || lk.GMTimeBaseIndicator != 6 {
		t.Errorf("after the grandmaster's time base changed: %+v", lk)
	}
}

// An automotive slave, once its servo locks, asks the grandmaster for the
// operational Sync interval (1 s) and runs its own Pdelay_Req every 4 s;
// the grandmaster honours the request and sends no Pdelay_Req
// (inhibit_delay_req).
func TestAutomotiveOperationalIntervals(t *testing.T) {
	gm := Config{Identity: cid(1), MasterOnly: true, Profile: Automotive}
	sl := Config{Identity: cid(2), SlaveOnly: true, Profile: Automotive}
	l := newLab(t, 500*time.Nanosecond, gm, sl)
	var asked []int8 // timeSyncInterval of each request on the wire
	l.mutate = func(from int, m Message) {
		if sg, ok := m.(*Signaling); ok {
			if r, ok, _ := ParseIntervalRequest(sg.TLVs); ok && from == 1 && r.LinkDelay == -128 && r.Announce == -128 {
				asked = append(asked, r.TimeSync)
			}
		}
	}
	l.run(10 * time.Second)
	g, s := l.nodes[0].c, l.nodes[1].c
	if s.servo.State() != ServoLocked {
		t.Fatalf("slave servo %s", s.servo.State())
	}
	lk := s.GPTPLink()
	if !lk.OperationalIntervals || lk.IntervalRequestsSent != 1 || s.Status().Port.LogMinPdelayReqInterval != 2 {
		t.Fatalf("slave: %+v, Pdelay_Req interval %d", lk, s.Status().Port.LogMinPdelayReqInterval)
	}
	if st := g.Status(); st.Port.LogSyncInterval != 0 || st.Counters.IntervalRequests != 1 || st.Counters.Tx[MsgPdelayReq] != 0 {
		t.Fatalf("grandmaster: Sync interval %d, %d requests, %d Pdelay_Req", st.Port.LogSyncInterval, st.Counters.IntervalRequests, st.Counters.Tx[MsgPdelayReq])
	}
	syncs, pdreqs := g.Status().Counters.Tx[MsgSync], s.Status().Counters.Tx[MsgPdelayReq]
	l.run(16 * time.Second)
	if n := g.Status().Counters.Tx[MsgSync] - syncs; n < 15 || n > 17 {
		t.Errorf("%d Syncs in 16 s at the operational interval", n)
	}
	if n := s.Status().Counters.Tx[MsgPdelayReq] - pdreqs; n < 3 || n > 5 {
		t.Errorf("%d Pdelay_Req in 16 s at the operational interval", n)
	}
	// a step unlocks the servo: the initial Sync interval is asked for
	// (126), and the operational one again once locked
	s.Stepped(time.Second)
	l.run(5 * time.Second)
	if len(asked) != 3 || asked[0] != 0 || asked[1] != 126 || asked[2] != 0 {
		t.Errorf("requests on the wire: %v, want [0 126 0]", asked)
	}
	if g.Status().Counters.IntervalRequests != 3 || g.Status().Port.LogSyncInterval != 0 || !s.GPTPLink().OperationalIntervals {
		t.Errorf("after the step: grandmaster %d requests, Sync interval %d", g.Status().Counters.IntervalRequests, g.Status().Port.LogSyncInterval)
	}
	// the grandmaster starts over at its initial interval: its Syncs
	// say so, and the slave asks again (once)
	g.port.LogSyncInterval = -3
	l.run(5 * time.Second)
	if len(asked) != 4 || asked[3] != 0 || g.Status().Port.LogSyncInterval != 0 {
		t.Errorf("after the grandmaster forgot: requests %v, its Sync interval %d", asked, g.Status().Port.LogSyncInterval)
	}
}
