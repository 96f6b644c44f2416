package system

import (
	"errors"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"gnomon.dev/gnomon/engine/clock"
	"gnomon.dev/gnomon/engine/ntp"
	"gnomon.dev/gnomon/engine/refclock"
	"gnomon.dev/gnomon/engine/sample"
)

// runExternal runs the system for d of true time, answering NTP polls and
// handing the external source id a sample every second when feed is set:
// what the reference reads is true time plus noise from rng (sd 1 µs).
func (h *harness) runExternal(d time.Duration, id ID, feed bool, leap sample.Leap, rng *rand.Rand) {
	h.t.Helper()
	end := h.clk.TrueNow().Add(d)
	for h.clk.TrueNow().Before(end) {
		next := h.clk.TrueNow().Truncate(time.Second).Add(time.Second)
		for {
			w := h.sys.NextWakeup()
			if w.IsZero() || !h.clk.TrueNow().Add(w.Sub(h.clk.Now())).Before(next) {
				break
			}
			if dd := w.Sub(h.clk.Now()); dd > 0 {
				h.advanceTrue(dd)
			}
			for _, tx := range slices.Clone(h.sys.Wakeup(h.instant(), h.out[:0])) {
				if err := h.answer(tx); err != nil {
					h.t.Fatal(err)
				}
			}
		}
		h.clk.AdvanceTo(next)
		if feed {
			noise := time.Duration(rng.NormFloat64() * float64(time.Microsecond))
			err := h.sys.ExternalSample(id, h.instant(), ExternalSample{Local: h.clk.Now(), Ref: h.clk.TrueNow().Add(noise),
				Delay: 3 * time.Microsecond, Stratum: PTPStratum(6, 1), Leap: leap})
			if err != nil {
				h.t.Fatal(err)
			}
		}
	}
}

// TestExternalPTPAndFallback: a PTP-like source (stratum 0 grandmaster,
// 1 µs noise, a sample a second) and an NTP server 300 µs off: the PTP
// source is the system peer and the clock follows it to within a few µs;
// when its master is lost the selection falls back to the NTP server at
// once, without waiting for a poll; when it comes back it is selected
// again.
func TestExternalPTPAndFallback(t *testing.T) {
	h := newHarness(t, clock.SimConfig{Offset: 2 * time.Millisecond, FreqPPM: 5, Seed: 9}, Config{})
	rng := rand.New(rand.NewPCG(7, 8))
	nsrv := h.add("ntp", 0x0a000001, &server{Stratum: 1, Delay: 2 * time.Millisecond, Offset: 300 * time.Microsecond},
		ntp.SourceConfig{MinPoll: 4, MaxPoll: 4})
	ptp := h.sys.AddExternal(SourceConfig{Name: "ptp:eth0", Kind: "ptp", RefID: PTPRefID}, ExternalConfig{Poll: DefaultExternalPoll}, h.instant())
	h.runExternal(5*time.Minute, ptp, true, sample.LeapNone, rng)
	sn := h.snapshot()
	if !sn.Synchronized || sn.SystemPeer != ptp || sn.Stratum != 1 || sn.RefID != PTPRefID {
		t.Fatalf("with PTP: peer %d (want %d), stratum %d, refid %x, synchronized %v", sn.SystemPeer, ptp, sn.Stratum, sn.RefID, sn.Synchronized)
	}
	if e := h.clk.Now().Add(sn.Offset).Sub(h.clk.TrueNow()); e > 10*time.Microsecond || e < -10*time.Microsecond {
		t.Errorf("engine time error %v after 5 minutes on PTP", e)
	}
	var ps SourceSnapshot
	for _, s := range sn.Sources {
		if s.ID == ptp {
			ps = s
		}
	}
	if ps.Kind != "ptp" || ps.Stratum != 0 || ps.Delay != 3*time.Microsecond || ps.Reach == 0 || ps.Poll != DefaultExternalPoll {
		t.Errorf("PTP source %+v", ps)
	}

	h.sys.ExternalLost(ptp, h.instant(), "PTP port LISTENING, no master")
	sn = h.snapshot()
	if !sn.Synchronized || sn.SystemPeer != nsrv || sn.Stratum != 2 {
		t.Fatalf("right after the loss: peer %d (want the NTP server %d), stratum %d, synchronized %v", sn.SystemPeer, nsrv, sn.Stratum, sn.Synchronized)
	}
	for _, s := range sn.Sources {
		if s.ID == ptp && (s.Reach != 0 || s.Selection != "unreachable" || s.LastError != "PTP port LISTENING, no master") {
			t.Errorf("lost PTP source %+v", s)
		}
	}
	h.runExternal(3*time.Minute, ptp, false, sample.LeapNone, rng)
	sn = h.snapshot()
	if sn.SystemPeer != nsrv {
		t.Errorf("without PTP: peer %d", sn.SystemPeer)
	}
	if e := h.clk.Now().Add(sn.Offset).Sub(h.clk.TrueNow()); e < 100*time.Microsecond || e > 500*time.Microsecond {
		t.Errorf("engine time error %v after 3 minutes on the NTP server 300 µs off", e)
	}
	h.runExternal(3*time.Minute, ptp, true, sample.LeapNone, rng)
	if sn = h.snapshot(); sn.SystemPeer != ptp {
		t.Errorf("PTP back: peer %d, want %d", sn.SystemPeer, ptp)
	}
}

// TestExternalHoldover: with no other source, losing the master leaves
// the clock in holdover (synchronized, on its last frequency), as when
// NTP sources stop answering.
func TestExternalHoldover(t *testing.T) {
	h := newHarness(t, clock.SimConfig{Offset: time.Millisecond, FreqPPM: -3, Seed: 4}, Config{})
	rng := rand.New(rand.NewPCG(1, 1))
	ptp := h.sys.AddExternal(SourceConfig{Name: "ptp:eth0", Kind: "ptp", RefID: PTPRefID}, ExternalConfig{Poll: 2}, h.instant())
	h.runExternal(3*time.Minute, ptp, true, sample.LeapNone, rng)
	if sn := h.snapshot(); !sn.Synchronized || sn.SystemPeer != ptp {
		t.Fatalf("peer %d synchronized %v", sn.SystemPeer, sn.Synchronized)
	}
	h.sys.ExternalLost(ptp, h.instant(), "gone")
	h.runExternal(30*time.Second, ptp, false, sample.LeapNone, rng)
	if sn := h.snapshot(); !sn.Synchronized || sn.State != StateHoldover {
		t.Errorf("after the loss: state %s, synchronized %v", sn.State, sn.Synchronized)
	}
}

// TestExternalLeap: the leap warning of a PTP master's Announce (the
// sample's leap) reaches the clock like an NTP server's, on the last day
// of the month.
func TestExternalLeap(t *testing.T) {
	h := newHarness(t, clock.SimConfig{Start: time.Date(2026, 6, 30, 10, 0, 0, 0, time.UTC)}, Config{})
	rng := rand.New(rand.NewPCG(2, 2))
	ptp := h.sys.AddExternal(SourceConfig{Name: "ptp:eth0", Kind: "ptp", RefID: PTPRefID}, ExternalConfig{Poll: DefaultExternalPoll}, h.instant())
	h.runExternal(time.Minute, ptp, true, sample.LeapInsert, rng)
	if sn := h.snapshot(); sn.Leap != sample.LeapInsert {
		t.Errorf("snapshot leap %v", sn.Leap)
	}
	if got := h.clk.Status().Leap; got != sample.LeapInsert {
		t.Errorf("clock leap %v, want insert", got)
	}
}

func TestExternalRejects(t *testing.T) {
	h := newHarness(t, clock.SimConfig{}, Config{})
	nsrv := h.add("ntp", 1, &server{Stratum: 1}, ntp.SourceConfig{})
	ptp := h.sys.AddExternal(SourceConfig{Name: "ptp", Kind: "ptp"}, ExternalConfig{Poll: DefaultExternalPoll}, h.instant())
	now := h.clk.Now()
	if err := h.sys.ExternalSample(ptp, h.instant(), ExternalSample{Local: now, Ref: now, Leap: sample.LeapUnsync}); !errors.Is(err, refclock.ErrLeapUnknown) {
		t.Errorf("leap 3: %v", err)
	}
	if err := h.sys.ExternalSample(ptp, h.instant(), ExternalSample{Local: now, Ref: now.AddDate(2, 0, 0)}); !errors.Is(err, refclock.ErrTooFar) {
		t.Errorf("two years off: %v", err)
	}
	if err := h.sys.ExternalSample(nsrv, h.instant(), ExternalSample{Local: now, Ref: now}); !errors.Is(err, ErrNotExternal) {
		t.Errorf("NTP source: %v", err)
	}
	if err := h.sys.ExternalSample(99, h.instant(), ExternalSample{Local: now, Ref: now}); err == nil {
		t.Error("unknown source accepted")
	}
	h.sys.ExternalLost(nsrv, h.instant(), "x") // not external: ignored
	h.sys.ExternalLost(99, h.instant(), "x")
}

func TestPTPStratumAndAccuracy(t *testing.T) {
	for _, c := range []struct {
		class uint8
		steps uint16
		want  uint8
	}{{6, 1, 0}, {6, 3, 2}, {7, 1, 0}, {13, 2, 1}, {14, 1, 0}, {52, 1, 10}, {248, 1, 10}, {248, 2, 11}, {255, 0, 10}, {6, 40, 15}} {
		if got := PTPStratum(c.class, c.steps); got != c.want {
			t.Errorf("PTPStratum(%d, %d) = %d, want %d", c.class, c.steps, got, c.want)
		}
	}
	for _, c := range []struct {
		a    uint8
		want time.Duration
	}{{0x20, 25 * time.Nanosecond}, {0x21, 100 * time.Nanosecond}, {0x22, 250 * time.Nanosecond}, {0x23, time.Microsecond},
		{0x29, time.Millisecond}, {0x2f, time.Second}, {0x30, 10 * time.Second}, {0x31, 10 * time.Second}, {0xfe, 0}, {0x10, 0}} {
		if got := PTPAccuracy(c.a); got != c.want {
			t.Errorf("PTPAccuracy(%#x) = %v, want %v", c.a, got, c.want)
		}
	}
}
