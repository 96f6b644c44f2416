package system

import (
	"errors"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"

	"gnomon.dev/gnomon/engine/clock"
	"gnomon.dev/gnomon/engine/discipline"
	"gnomon.dev/gnomon/engine/ntp"
	"gnomon.dev/gnomon/engine/sample"
)

var start = time.Date(2026, 5, 12, 14, 0, 0, 0, time.UTC)

// server is a hand-driven NTP server: its clock is Offset ahead of true
// time, it answers after Delay/2 and the answer takes Delay/2 back.
type server struct {
	Offset  time.Duration
	Delay   time.Duration
	Stratum uint8
	RefID   uint32
	Leap    sample.Leap
}

// harness drives a System on a simulated clock. True time only moves
// forward; Mono is true time since the start.
type harness struct {
	t       *testing.T
	clk     *clock.Sim
	t0      time.Time // true time at the start
	sys     *System
	servers map[ID]*server
	out     []Transmit
}

func newHarness(t *testing.T, simCfg clock.SimConfig, cfg Config) *harness {
	t.Helper()
	if simCfg.Start.IsZero() {
		simCfg.Start = start
	}
	clk := clock.NewSim(simCfg)
	if cfg.Random == nil {
		cfg.Random = rand.New(rand.NewPCG(1, 2))
	}
	sys, err := New(cfg, clk)
	if err != nil {
		t.Fatal(err)
	}
	return &harness{t: t, clk: clk, t0: simCfg.Start, sys: sys, servers: map[ID]*server{}}
}

func (h *harness) instant() Instant {
	return Instant{Wall: h.clk.Now(), Mono: h.clk.TrueNow().Sub(h.t0)}
}

func (h *harness) add(name string, refID uint32, srv *server, nc ntp.SourceConfig) ID {
	h.t.Helper()
	id := h.sys.AddSource(SourceConfig{Name: name, Address: name + ":123", Kind: "server", RefID: refID, NTP: nc}, h.instant())
	h.servers[id] = srv
	return id
}

// advanceTrue moves true time forward by d.
func (h *harness) advanceTrue(d time.Duration) { h.clk.AdvanceTo(h.clk.TrueNow().Add(d)) }

// untilWakeup advances true time until the clock reads NextWakeup (or at
// most max), and calls Wakeup. It returns the transmits.
func (h *harness) untilWakeup(max time.Duration) []Transmit {
	h.t.Helper()
	deadline := h.clk.TrueNow().Add(max)
	for {
		w := h.sys.NextWakeup()
		if w.IsZero() {
			h.t.Fatal("no wakeup scheduled")
		}
		d := w.Sub(h.clk.Now())
		if d <= 0 {
			break
		}
		if h.clk.TrueNow().Add(d).After(deadline) {
			h.clk.AdvanceTo(deadline)
			return nil
		}
		h.advanceTrue(d)
	}
	h.out = h.sys.Wakeup(h.instant(), h.out[:0])
	return h.out
}

// answer delivers the server's reply to tx (sent just now) and returns
// what Receive said.
func (h *harness) answer(tx Transmit) error {
	h.t.Helper()
	srv := h.servers[tx.Source]
	if srv == nil {
		h.t.Fatalf("transmit for unknown source %d", tx.Source)
	}
	var req ntp.Packet
	if err := ntp.Parse(tx.Data, &req); err != nil {
		h.t.Fatalf("engine sent an unparsable request: %v", err)
	}
	if req.Mode != ntp.ModeClient {
		h.t.Fatalf("request mode %v", req.Mode)
	}
	h.advanceTrue(srv.Delay / 2)
	at := h.clk.TrueNow().Add(srv.Offset)
	st := ntp.ServerState{Leap: srv.Leap, Stratum: srv.Stratum, Precision: -20, ReferenceID: srv.RefID, ReferenceTime: at.Add(-time.Minute)}
	var resp ntp.Header
	if !ntp.Respond(&req.Header, at, at, &st, &resp) {
		h.t.Fatal("Respond refused")
	}
	data := make([]byte, ntp.HeaderLen)
	if _, err := resp.MarshalTo(data); err != nil {
		h.t.Fatal(err)
	}
	h.advanceTrue(srv.Delay / 2)
	return h.sys.Receive(tx.Source, h.instant(), h.clk.Now(), data)
}

// poll runs wakeups (answering every transmit) for the given true time.
func (h *harness) poll(d time.Duration) {
	h.t.Helper()
	end := h.clk.TrueNow().Add(d)
	for h.clk.TrueNow().Before(end) {
		for _, tx := range slices.Clone(h.untilWakeup(end.Sub(h.clk.TrueNow()))) {
			if err := h.answer(tx); err != nil {
				h.t.Fatalf("source %d: %v", tx.Source, err)
			}
		}
	}
}

func (h *harness) snapshot() Snapshot { return h.sys.Snapshot(h.clk.Now()) }

func TestNewRequiresRandom(t *testing.T) {
	clk := clock.NewSim(clock.SimConfig{Start: start})
	if _, err := New(Config{}, clk); err == nil {
		t.Error("New without Random succeeded")
	}
	if _, err := New(Config{Random: rand.New(rand.NewPCG(1, 1))}, clk); err != nil {
		t.Errorf("New with Random: %v", err)
	}
	// An initial frequency the clock refuses is an error too.
	small := clock.NewSim(clock.SimConfig{Start: start, MaxFrequencyPPM: 10})
	if _, err := New(Config{Random: rand.New(rand.NewPCG(1, 1)), Discipline: discipline.Config{InitialFreqPPM: 50, MaxFreqPPM: 100}}, small); !errors.Is(err, clock.ErrFrequencyRange) {
		t.Errorf("New with an impossible initial frequency: %v", err)
	}
}

func TestAddRemoveSource(t *testing.T) {
	h := newHarness(t, clock.SimConfig{}, Config{})
	if !h.sys.NextWakeup().IsZero() {
		t.Errorf("NextWakeup %v with no sources", h.sys.NextWakeup())
	}
	now := h.clk.Now()
	nc := ntp.SourceConfig{MinPoll: 6, MaxPoll: 10}
	ids := []ID{
		h.add("a", 1, &server{Stratum: 1, Delay: time.Millisecond}, nc),
		h.add("b", 2, &server{Stratum: 1, Delay: time.Millisecond}, nc),
		h.add("c", 3, &server{Stratum: 1, Delay: time.Millisecond}, nc),
	}
	if ids[0] == ids[1] || ids[1] == ids[2] || ids[0] == ids[2] || ids[0] == 0 {
		t.Fatalf("IDs %v not distinct and non-zero", ids)
	}
	w := h.sys.NextWakeup()
	if w.IsZero() || w.Before(now) || !w.Before(now.Add(time.Second)) {
		t.Errorf("NextWakeup %v, want within a second of %v", w, now)
	}
	if !h.sys.RemoveSource(ids[1]) {
		t.Error("RemoveSource of an existing source false")
	}
	if h.sys.RemoveSource(ids[1]) || h.sys.RemoveSource(999) {
		t.Error("RemoveSource of a missing source true")
	}
	var names []string
	for _, s := range h.snapshot().Sources {
		names = append(names, s.Name)
		if s.Address != s.Name+":123" || s.Kind != "server" {
			t.Errorf("source %+v", s)
		}
	}
	if strings.Join(names, ",") != "a,c" {
		t.Errorf("sources %v, want a,c", names)
	}
	// Only the remaining sources send.
	sent := map[ID]bool{}
	for i := 0; i < 4; i++ {
		for _, tx := range h.untilWakeup(2 * time.Second) {
			sent[tx.Source] = true
		}
	}
	if !sent[ids[0]] || sent[ids[1]] || !sent[ids[2]] {
		t.Errorf("sent from %v, want from %d and %d only", sent, ids[0], ids[2])
	}
	// A new source gets a fresh ID.
	if id := h.add("d", 4, &server{}, nc); id == ids[1] || id <= ids[2] {
		t.Errorf("new ID %d reuses an old one", id)
	}
}

// TestWakeupTransmits: Wakeup returns requests exactly for the sources
// that are due, as client-mode packets, and nothing more when called again.
func TestWakeupTransmits(t *testing.T) {
	h := newHarness(t, clock.SimConfig{}, Config{})
	nc := ntp.SourceConfig{MinPoll: 6, MaxPoll: 10}
	a := h.add("a", 1, &server{}, nc)
	b := h.add("b", 2, &server{}, nc)
	// Early calls are harmless: nothing is sent before a source is due.
	if w := h.sys.NextWakeup(); w.After(h.clk.Now()) {
		if out := h.sys.Wakeup(h.instant(), nil); len(out) != 0 {
			t.Errorf("Wakeup before NextWakeup sent %d requests", len(out))
		}
	}
	got := map[ID]int{}
	for len(got) < 2 {
		out := h.untilWakeup(2 * time.Second)
		if len(out) == 0 {
			t.Fatal("wakeup at NextWakeup sent nothing")
		}
		for _, tx := range out {
			got[tx.Source]++
			var p ntp.Packet
			if err := ntp.Parse(tx.Data, &p); err != nil || p.Mode != ntp.ModeClient || p.Version != 4 || p.TransmitTime == 0 {
				t.Errorf("source %d sent %x (%v)", tx.Source, tx.Data, err)
			}
		}
		if again := h.sys.Wakeup(h.instant(), nil); len(again) != 0 {
			t.Errorf("second Wakeup at the same time sent %d more", len(again))
		}
	}
	if got[a] != 1 || got[b] != 1 {
		t.Errorf("sent %v, want one request each", got)
	}
	// Nothing more is due before a poll interval has passed.
	if w := h.sys.NextWakeup(); w.Sub(h.clk.Now()) < 63*time.Second {
		t.Errorf("next wakeup in %v, want about a poll interval (64 s)", w.Sub(h.clk.Now()))
	}
	snap := h.snapshot()
	for _, s := range snap.Sources {
		if s.Sent != 1 || s.Valid != 0 || s.Protocol != "init" || s.Selection != "none" {
			t.Errorf("source %+v", s)
		}
	}
}

func TestReceiveUnknownAndGarbage(t *testing.T) {
	h := newHarness(t, clock.SimConfig{}, Config{})
	id := h.add("a", 1, &server{}, ntp.SourceConfig{MinPoll: 6, MaxPoll: 6})
	if err := h.sys.Receive(id+100, h.instant(), h.clk.Now(), make([]byte, 48)); err == nil {
		t.Error("Receive for an unknown source succeeded")
	}
	if err := h.sys.Receive(id, h.instant(), h.clk.Now(), []byte{1, 2, 3}); !errors.Is(err, ntp.ErrShort) {
		t.Errorf("Receive of 3 bytes: %v, want ErrShort", err)
	}
	if err := h.sys.Receive(id, h.instant(), h.clk.Now(), make([]byte, 48)); err == nil {
		t.Error("Receive of zeros succeeded")
	}
	if sn := h.snapshot(); sn.Synchronized || sn.Sources[0].Valid != 0 {
		t.Errorf("garbage changed state: %+v", sn)
	}
}

// TestSnapshot: after one source answers, the snapshot shows the system
// synchronized to it: our stratum is its plus one, our reference ID the
// configured one, its leap announcement, and the per-source view.
func TestSnapshot(t *testing.T) {
	h := newHarness(t, clock.SimConfig{}, Config{})
	before := h.snapshot()
	id := h.add("ntp1.example", 0x0a000001, &server{Stratum: 2, RefID: 0xC0000201, Delay: 10 * time.Millisecond, Leap: sample.LeapInsert},
		ntp.SourceConfig{MinPoll: 6, MaxPoll: 6})
	sn := h.snapshot()
	if before.Synchronized || before.State != StateUnsynchronized || before.Stratum != 16 {
		t.Errorf("empty engine snapshot %+v", before)
	}
	if len(sn.Sources) != 1 || sn.Sources[0].Selection != "none" || sn.Sources[0].Protocol != "init" || sn.Sources[0].ID != id {
		t.Errorf("before any reply: %+v", sn.Sources)
	}
	st := sn.ServerState(-20)
	if st.Leap != sample.LeapUnsync || st.Stratum != 16 {
		t.Errorf("unsynchronized server state %+v", st)
	}

	txs := h.untilWakeup(2 * time.Second)
	if len(txs) != 1 || txs[0].Source != id {
		t.Fatalf("transmits %v", txs)
	}
	if err := h.answer(txs[0]); err != nil {
		t.Fatal(err)
	}
	sn = h.snapshot()
	if !sn.Synchronized || sn.State != StateSynchronized {
		t.Fatalf("not synchronized after a reply: %+v", sn)
	}
	if sn.Stratum != 3 {
		t.Errorf("Stratum %d, want the peer's 2 + 1", sn.Stratum)
	}
	if sn.RefID != 0x0a000001 {
		t.Errorf("RefID %#x, want the source's configured %#x", sn.RefID, 0x0a000001)
	}
	if sn.SystemPeer != id || sn.PeerName != "ntp1.example" {
		t.Errorf("peer %d %q", sn.SystemPeer, sn.PeerName)
	}
	if sn.Leap != sample.LeapInsert {
		t.Errorf("Leap %v, want insert (the only source announces it)", sn.Leap)
	}
	if sn.RootDelay < 10*time.Millisecond || sn.RootDispersion <= 0 {
		t.Errorf("root delay %v dispersion %v", sn.RootDelay, sn.RootDispersion)
	}
	if sn.RefTime.IsZero() {
		t.Error("RefTime zero after an update")
	}
	src := sn.Sources[0]
	if src.Selection != "selected" || src.Protocol != "reachable" || src.Reach != 1 || src.Sent != 1 || src.Valid != 1 {
		t.Errorf("source %+v", src)
	}
	if src.Stratum != 2 || src.RefID != 0xC0000201 || src.Leap != sample.LeapInsert || src.Samples != 1 {
		t.Errorf("source's server fields %+v", src)
	}
	if src.Delay != 10*time.Millisecond || src.Offset < -time.Microsecond || src.Offset > time.Microsecond {
		t.Errorf("source measurement offset %v delay %v, want ~0 and 10ms", src.Offset, src.Delay)
	}
	if src.Weight != 1 {
		t.Errorf("weight %g", src.Weight)
	}
	st = sn.ServerState(-20)
	if st.Stratum != 3 || st.ReferenceID != 0x0a000001 || st.Leap != sample.LeapInsert || st.Precision != -20 {
		t.Errorf("server state %+v", st)
	}
	// The kernel is told.
	if ks := h.clk.Status(); !ks.Synchronized || ks.MaxError <= 0 {
		t.Errorf("clock status %+v", ks)
	}
}

// TestSnapshotSelection: three truthful sources and one a second off: the
// liar is a falseticker, the others selected or combined.
func TestSnapshotSelection(t *testing.T) {
	h := newHarness(t, clock.SimConfig{}, Config{})
	nc := ntp.SourceConfig{MinPoll: 6, MaxPoll: 6}
	for i, off := range []time.Duration{0, 0, 0, time.Second} {
		name := string(rune('a' + i))
		h.add(name, uint32(i+1), &server{Offset: off, Stratum: 1, RefID: 0x47505300, Delay: 2 * time.Millisecond}, nc)
	}
	h.poll(10 * time.Second)
	sn := h.snapshot()
	if !sn.Synchronized {
		t.Fatalf("not synchronized: %+v", sn)
	}
	sel := map[string]string{}
	for _, s := range sn.Sources {
		sel[s.Name] = s.Selection
	}
	if sel["d"] != "falseticker" {
		t.Errorf("liar is %q, want falseticker (%v)", sel["d"], sel)
	}
	selected := 0
	for _, n := range []string{"a", "b", "c"} {
		switch sel[n] {
		case "selected":
			selected++
		case "combined":
		default:
			t.Errorf("truthful %s is %q", n, sel[n])
		}
	}
	if selected != 1 {
		t.Errorf("%d selected, want 1 (%v)", selected, sel)
	}
	if sn.PeerName == "d" || sn.Stratum != 2 {
		t.Errorf("peer %q stratum %d", sn.PeerName, sn.Stratum)
	}
}

// TestJumpDetection: the clock moving more than the monotonic clock allows
// is a jump; ordinary drift is not.
func TestJumpDetection(t *testing.T) {
	tests := []struct {
		name      string
		jump      time.Duration // behind the engine's back, during 1 s
		wantJumps int
	}{
		{"forward-10s", 9 * time.Second, 1},
		{"back-5s", -5 * time.Second, 1},
		{"back-1h", -time.Hour, 1},
		{"back-1s", -time.Second, 1},
		{"50ms-drift", 50 * time.Millisecond, 0},
		{"none", 0, 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t, clock.SimConfig{}, Config{Discipline: discipline.Config{StepThreshold: 100 * time.Millisecond, StepLimit: 0}})
			h.add("a", 1, &server{Stratum: 1, Delay: 5 * time.Millisecond}, ntp.SourceConfig{MinPoll: 6, MaxPoll: 6})
			h.poll(3 * time.Minute)
			sn := h.snapshot()
			if !sn.Synchronized || sn.Jumps != 0 || sn.Sources[0].Samples == 0 {
				t.Fatalf("setup: %+v", sn)
			}
			// One second passes, and the wall clock moves by 1 s + jump.
			h.clk.Jump(tc.jump)
			h.advanceTrue(time.Second)
			h.sys.Wakeup(h.instant(), nil)
			sn = h.snapshot()
			if sn.Jumps != tc.wantJumps {
				t.Errorf("Jumps = %d, want %d", sn.Jumps, tc.wantJumps)
			}
			if tc.wantJumps > 0 && sn.Sources[0].Samples != 0 {
				t.Errorf("samples kept across a jump: %d", sn.Sources[0].Samples)
			}
			// Polling goes on in the clock's new timeline.
			if next := h.sys.NextWakeup().Sub(h.clk.Now()); next > 64*time.Second {
				t.Errorf("next poll in %v after the jump, want within the 64 s poll interval", next)
			}
			// After a jump one step is allowed beyond the limit (0 here).
			if tc.wantJumps > 0 && (tc.jump > 100*time.Millisecond || tc.jump < -100*time.Millisecond) {
				h.poll(3 * time.Minute)
				sn = h.snapshot()
				if sn.Steps != 1 {
					t.Errorf("Steps = %d after a %v jump, want 1 (the AllowStep)", sn.Steps, tc.jump)
				}
				if e := h.clk.Error(); e > 10*time.Millisecond || e < -10*time.Millisecond {
					t.Errorf("clock error %v after recovering from the jump", e)
				}
				if sn.Jumps != 1 {
					t.Errorf("the recovery step counted as a jump: Jumps = %d", sn.Jumps)
				}
			}
		})
	}
}

// TestOwnStepIsNoJump: the engine's own step moves the wall clock, which
// must not be counted as a jump made behind its back.
func TestOwnStepIsNoJump(t *testing.T) {
	for _, off := range []time.Duration{-2 * time.Second, 30 * time.Second, -500 * time.Millisecond} {
		t.Run(off.String(), func(t *testing.T) {
			h := newHarness(t, clock.SimConfig{Offset: off}, Config{Discipline: discipline.Config{StepThreshold: 100 * time.Millisecond, StepLimit: 1}})
			h.add("a", 1, &server{Stratum: 1, Delay: 4 * time.Millisecond}, ntp.SourceConfig{MinPoll: 4, MaxPoll: 4, IBurst: true})
			h.poll(2 * time.Minute)
			sn := h.snapshot()
			if sn.Steps != 1 {
				t.Fatalf("Steps = %d, want 1", sn.Steps)
			}
			if sn.Jumps != 0 {
				t.Errorf("Jumps = %d after the engine's own step of %v", sn.Jumps, -off)
			}
			if e := h.clk.Error(); e > time.Millisecond || e < -time.Millisecond {
				t.Errorf("clock error %v after the step", e)
			}
			if !sn.Synchronized || sn.Sources[0].Samples < 2 {
				t.Errorf("after the step: synchronized %v samples %d", sn.Synchronized, sn.Sources[0].Samples)
			}
		})
	}
}

// TestArmedLeapIsNoJump: the leap second the engine armed, applied by the
// clock at midnight, is not a jump, and the clock stays on UTC.
func TestArmedLeapIsNoJump(t *testing.T) {
	midnight := time.Date(2026, 7, 1, 0, 0, 0, 0, time.UTC)
	h := newHarness(t, clock.SimConfig{Start: midnight.Add(-10 * time.Minute)}, Config{})
	srv := &server{Stratum: 1, Delay: 2 * time.Millisecond, Leap: sample.LeapInsert}
	h.add("a", 1, srv, ntp.SourceConfig{MinPoll: 4, MaxPoll: 4})
	h.poll(5 * time.Minute)
	if ks := h.clk.Status(); ks.Leap != sample.LeapInsert {
		t.Fatalf("leap not armed on Jun 30: clock status %+v", ks)
	}
	// Until just after midnight; the server's UTC repeats a second, as
	// the clock does.
	for h.clk.TrueNow().Before(midnight.Add(10 * time.Second)) {
		h.advanceTrue(time.Second)
		h.sys.Wakeup(h.instant(), nil)
	}
	if lt := h.clk.LeapTimes(); len(lt) != 1 {
		t.Fatalf("clock applied %d leaps", len(lt))
	}
	if sn := h.snapshot(); sn.Jumps != 0 {
		t.Errorf("the armed leap counted as a jump: Jumps = %d", sn.Jumps)
	}
}

// TestUnreachableDropsEstimate: a source silent for eight polls no longer
// has an estimate in the snapshot and shows as unreachable.
func TestUnreachableDropsEstimate(t *testing.T) {
	h := newHarness(t, clock.SimConfig{}, Config{})
	id := h.add("a", 1, &server{Stratum: 1, Delay: 2 * time.Millisecond}, ntp.SourceConfig{MinPoll: 4, MaxPoll: 4})
	h.poll(2 * time.Minute)
	if sn := h.snapshot(); sn.Sources[0].EstOffsetSD == 0 {
		t.Fatalf("no estimate: %+v", sn.Sources[0])
	}
	for i := 0; i < 9; i++ {
		h.untilWakeup(time.Minute) // requests go unanswered
	}
	sn := h.snapshot()
	s := sn.Sources[0]
	if s.ID != id || s.Protocol != "unreachable" || s.Selection != "unreachable" || s.Reach != 0 {
		t.Errorf("source %+v", s)
	}
	if s.EstOffset != 0 || s.EstOffsetSD != 0 {
		t.Errorf("estimate kept for an unreachable source: %v ± %v", s.EstOffset, s.EstOffsetSD)
	}
}

// TestSentRecordsTransmitTime: Sent replaces the request's send time, so
// a late kernel timestamp shortens the measured delay.
func TestSentRecordsTransmitTime(t *testing.T) {
	h := newHarness(t, clock.SimConfig{}, Config{})
	id := h.add("a", 1, &server{Stratum: 1, Delay: 10 * time.Millisecond}, ntp.SourceConfig{MinPoll: 6, MaxPoll: 6})
	txs := h.untilWakeup(2 * time.Second)
	if len(txs) != 1 {
		t.Fatal("no transmit")
	}
	h.advanceTrue(2 * time.Millisecond) // the packet left 2 ms later
	h.sys.Sent(id, h.clk.Now())
	if err := h.answer(txs[0]); err != nil {
		t.Fatal(err)
	}
	if d := h.snapshot().Sources[0].Delay; d != 10*time.Millisecond {
		t.Errorf("delay %v, want 10ms (the server's round trip, from the kernel send time)", d)
	}
}

// TestPanicSnapshot: sources agreeing on an offset above the panic
// threshold put the engine in panic, and nothing is stepped.
func TestPanicSnapshot(t *testing.T) {
	h := newHarness(t, clock.SimConfig{}, Config{Discipline: discipline.Config{StepThreshold: time.Second, StepLimit: -1, PanicThreshold: 1000 * time.Second}})
	h.add("a", 1, &server{Offset: 2 * time.Hour, Stratum: 1, Delay: time.Millisecond}, ntp.SourceConfig{MinPoll: 4, MaxPoll: 4})
	h.poll(time.Minute)
	sn := h.snapshot()
	if sn.State != StatePanic || sn.Panic == "" || sn.Synchronized {
		t.Errorf("state %v panic %q synchronized %v", sn.State, sn.Panic, sn.Synchronized)
	}
	if n, _ := h.clk.Steps(); n != 0 || sn.Steps != 0 {
		t.Errorf("stepped %d times in panic", n)
	}
}

// TestStartWaitsForAllSources: at start, a minority that answered first
// must not move the clock: the system waits until every source answered
// or missed two polls.
func TestStartWaitsForAllSources(t *testing.T) {
	h := newHarness(t, clock.SimConfig{}, Config{})
	nc := ntp.SourceConfig{MinPoll: 6, MaxPoll: 6}
	talk := h.add("talks", 1, &server{Stratum: 1, Delay: 2 * time.Millisecond}, nc)
	silent := h.add("silent", 2, &server{Stratum: 1, Delay: 2 * time.Millisecond}, nc)
	polls := map[ID]int{}
	var sawWait, sawSync bool
	for i := 0; i < 8 && polls[talk] < 3; i++ {
		for _, tx := range slices.Clone(h.untilWakeup(2 * time.Minute)) {
			polls[tx.Source]++
			if tx.Source != talk {
				continue
			}
			if err := h.answer(tx); err != nil {
				t.Fatal(err)
			}
			sn := h.snapshot()
			silentPolls := polls[silent]
			if silentPolls < 2 {
				sawWait = true
				if sn.Synchronized {
					t.Errorf("synchronized after the silent source sent only %d polls", silentPolls)
				}
			} else {
				sawSync = true
				if !sn.Synchronized {
					t.Errorf("not synchronized after the silent source missed %d polls", silentPolls)
				}
			}
		}
	}
	if !sawWait || !sawSync {
		t.Errorf("the test did not see both phases (waiting %v, synchronized %v)", sawWait, sawSync)
	}
}

// TestSnapshotShowsFilteredMeasurement: a source's Offset and Delay in the
// snapshot are documented as "the newest filtered measurement": a slow
// exchange after a quick one leaves the quick one in place.
func TestSnapshotShowsFilteredMeasurement(t *testing.T) {
	h := newHarness(t, clock.SimConfig{}, Config{})
	srv := &server{Stratum: 1, Delay: 2 * time.Millisecond}
	h.add("a", 1, srv, ntp.SourceConfig{MinPoll: 4, MaxPoll: 4})
	h.poll(10 * time.Second) // one quick exchange, offset 0
	sn := h.snapshot()
	if sn.Sources[0].Valid != 1 || sn.Sources[0].Delay != 2*time.Millisecond {
		t.Fatalf("setup: %+v", sn.Sources[0])
	}
	// A congested exchange: 80 ms, and the server 10 ms off.
	srv.Delay, srv.Offset = 80*time.Millisecond, 10*time.Millisecond
	h.poll(16 * time.Second)
	s := h.snapshot().Sources[0]
	if s.Valid != 2 {
		t.Fatalf("valid %d", s.Valid)
	}
	// The pick's offset was measured as 0 and has since been adjusted for
	// the engine's own correction of the clock (the filter keeps offsets
	// against the clock as it is now); it must not be the slow exchange's.
	if s.Delay != 2*time.Millisecond || s.Offset > 5*time.Millisecond || s.Offset < -5*time.Millisecond {
		t.Errorf("snapshot shows offset %v delay %v, want the clock filter's pick (the 2 ms exchange)", s.Offset, s.Delay)
	}
}

// TestHoldover: when every source falls silent the system holds over on
// its last frequency while the error bound grows, and declares itself
// unsynchronized once the bound passes MaxDistance.
func TestHoldover(t *testing.T) {
	h := newHarness(t, clock.SimConfig{}, Config{MaxDistance: 50 * time.Millisecond})
	h.add("a", 1, &server{Stratum: 1, Delay: 2 * time.Millisecond}, ntp.SourceConfig{MinPoll: 4, MaxPoll: 4})
	h.poll(5 * time.Minute)
	if sn := h.snapshot(); sn.State != StateSynchronized {
		t.Fatalf("setup: %v", sn.State)
	}
	var states []State
	var prevDisp time.Duration
	for i := 0; i < 400; i++ { // 400 unanswered polls, 16 s apart
		h.untilWakeup(time.Minute)
		sn := h.snapshot()
		if len(states) == 0 || states[len(states)-1] != sn.State {
			states = append(states, sn.State)
		}
		if sn.State == StateHoldover {
			if sn.RootDispersion < prevDisp {
				t.Errorf("root dispersion shrank in holdover: %v -> %v", prevDisp, sn.RootDispersion)
			}
			prevDisp = sn.RootDispersion
			if !sn.Synchronized || sn.Stratum != 2 {
				t.Errorf("holdover snapshot: synchronized %v stratum %d", sn.Synchronized, sn.Stratum)
			}
		}
		if sn.State == StateUnsynchronized {
			// The last holdover bound was just under MaxDistance.
			if prevDisp < 45*time.Millisecond || prevDisp > 50*time.Millisecond {
				t.Errorf("unsynchronized with the root dispersion last at %v, want just under the 50 ms MaxDistance", prevDisp)
			}
			if ks := h.clk.Status(); ks.Synchronized {
				t.Error("kernel still told synchronized")
			}
			break
		}
	}
	want := []State{StateSynchronized, StateHoldover, StateUnsynchronized}
	if !slices.Equal(states, want) {
		t.Errorf("states %v, want %v", states, want)
	}
}

// TestLeapMajority: a leap is announced only when a majority of the
// sources that agree announce it, and armed in the clock only on the last
// day of the month.
func TestLeapMajority(t *testing.T) {
	tests := []struct {
		name      string
		day       time.Time
		announce  []bool
		wantSnap  sample.Leap
		wantClock sample.Leap
	}{
		{"one-of-three", time.Date(2026, 6, 30, 10, 0, 0, 0, time.UTC), []bool{true, false, false}, sample.LeapNone, sample.LeapNone},
		{"two-of-three", time.Date(2026, 6, 30, 10, 0, 0, 0, time.UTC), []bool{true, true, false}, sample.LeapInsert, sample.LeapInsert},
		{"all-mid-month", time.Date(2026, 6, 15, 10, 0, 0, 0, time.UTC), []bool{true, true, true}, sample.LeapInsert, sample.LeapNone},
		{"none", time.Date(2026, 6, 30, 10, 0, 0, 0, time.UTC), []bool{false, false, false}, sample.LeapNone, sample.LeapNone},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t, clock.SimConfig{Start: tc.day}, Config{})
			for i, a := range tc.announce {
				srv := &server{Stratum: 1, Delay: 2 * time.Millisecond}
				if a {
					srv.Leap = sample.LeapInsert
				}
				h.add(string(rune('a'+i)), uint32(i+1), srv, ntp.SourceConfig{MinPoll: 4, MaxPoll: 4})
			}
			h.poll(2 * time.Minute)
			sn := h.snapshot()
			if !sn.Synchronized {
				t.Fatal("not synchronized")
			}
			if sn.Leap != tc.wantSnap {
				t.Errorf("snapshot leap %v, want %v", sn.Leap, tc.wantSnap)
			}
			if got := h.clk.Status().Leap; got != tc.wantClock {
				t.Errorf("clock leap %v, want %v", got, tc.wantClock)
			}
		})
	}
}

// TestBurstAndNoSelect: Burst sends at once; a NoSelect source is measured
// but never selected.
func TestBurstAndNoSelect(t *testing.T) {
	h := newHarness(t, clock.SimConfig{}, Config{})
	a := h.add("a", 1, &server{Stratum: 1, Delay: 2 * time.Millisecond}, ntp.SourceConfig{MinPoll: 6, MaxPoll: 6})
	id := h.sys.AddSource(SourceConfig{Name: "watch", NoSelect: true, NTP: ntp.SourceConfig{MinPoll: 6, MaxPoll: 6}}, h.instant())
	h.servers[id] = &server{Stratum: 1, Delay: 2 * time.Millisecond}
	h.poll(3 * time.Minute)
	if h.sys.Burst(999, h.instant()) {
		t.Error("Burst of an unknown source")
	}
	if !h.sys.Burst(a, h.instant()) {
		t.Fatal("Burst false")
	}
	out := h.sys.Wakeup(h.instant(), nil)
	if len(out) != 1 || out[0].Source != a {
		t.Errorf("after Burst, Wakeup sent %v, want one request from %d", out, a)
	}
	sn := h.snapshot()
	for _, s := range sn.Sources {
		want := "selected"
		if s.Name == "watch" {
			want = "noselect"
		}
		if s.Selection != want || s.Valid == 0 {
			t.Errorf("%s: selection %q valid %d, want %q", s.Name, s.Selection, s.Valid, want)
		}
	}
}
