package system

import (
	"errors"
	"math/rand/v2"
	"testing"
	"time"

	"gnomon.dev/gnomon/engine/clock"
	"gnomon.dev/gnomon/engine/ntp"
	"gnomon.dev/gnomon/engine/refclock"
	"gnomon.dev/gnomon/engine/sample"
)

// feed runs the system for d of true time, handing each reference clock a
// sample every second: at true time T the receiver reads T + bias and the
// local clock is read as it is.
func (h *harness) feed(d time.Duration, ids map[ID]func(local, truth time.Time) refclock.Sample) []error {
	var errs []error
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
			h.sys.Wakeup(h.instant(), nil)
		}
		h.clk.AdvanceTo(next)
		for id, mk := range ids {
			if err := h.sys.RefclockSample(id, h.instant(), mk(h.clk.Now(), h.clk.TrueNow())); err != nil {
				errs = append(errs, err)
			}
		}
		h.sys.Wakeup(h.instant(), nil)
	}
	return errs
}

func TestRefclockStratumOne(t *testing.T) {
	h := newHarness(t, clock.SimConfig{Offset: 40 * time.Millisecond, FreqPPM: 3, Seed: 5}, Config{})
	rng := rand.New(rand.NewPCG(3, 4))
	gps := h.sys.AddRefclock(SourceConfig{Name: "gps", Address: "127.0.0.1:2947", Kind: "gpsd", RefID: refclock.RefID("GPS")},
		RefclockConfig{Clock: refclock.Config{Kind: "gpsd", Poll: 2, Offset: 100 * time.Millisecond, Precision: time.Millisecond}}, h.instant())
	// The NMEA message arrives 100 ms (+- 1 ms) after the second it names;
	// offset = 0.1 s corrects that.
	errs := h.feed(3*time.Minute, map[ID]func(local, truth time.Time) refclock.Sample{
		gps: func(local, truth time.Time) refclock.Sample {
			late := 100*time.Millisecond + time.Duration(rng.NormFloat64()*float64(time.Millisecond))
			return refclock.Sample{Local: local.Add(late), Ref: truth}
		},
	})
	if len(errs) != 0 {
		t.Fatal(errs)
	}
	sn := h.snapshot()
	if !sn.Synchronized || sn.Stratum != 1 || sn.RefID != refclock.RefID("GPS") || sn.SystemPeer != gps {
		t.Fatalf("snapshot %+v", sn)
	}
	src := sn.Sources[0]
	if src.Kind != "gpsd" || src.Reach == 0 || src.Protocol != ntp.StateReachable.String() || src.Refclock == nil || src.Stratum != 0 {
		t.Errorf("source %+v", src)
	}
	if e := h.clk.Now().Add(sn.Offset).Sub(h.clk.TrueNow()); e > 5*time.Millisecond || e < -5*time.Millisecond {
		t.Errorf("engine time error %v after 3 minutes on a refclock", e)
	}
	if st := sn.ServerState(-20); st.Stratum != 1 || refclock.RefIDString(st.ReferenceID) != "GPS" {
		t.Errorf("server state %+v", st)
	}
}

func TestRefclockRejects(t *testing.T) {
	h := newHarness(t, clock.SimConfig{}, Config{})
	id := h.sys.AddRefclock(SourceConfig{Name: "shm0", Kind: "shm", RefID: refclock.RefID("SHM0")},
		RefclockConfig{Clock: refclock.Config{Kind: "shm", Poll: 0}}, h.instant())
	now := h.clk.Now()
	for _, tc := range []struct {
		s    refclock.Sample
		want error
	}{
		{refclock.Sample{Local: now, Ref: now.AddDate(5, 0, 0)}, refclock.ErrTooFar},
		{refclock.Sample{Local: now, Ref: now.Add(-1024 * 7 * 24 * time.Hour)}, refclock.ErrTooOld},
		{refclock.Sample{Local: now, Ref: now, Leap: sample.LeapUnsync}, refclock.ErrLeapUnknown},
		{refclock.Sample{Local: now, Ref: now, Pulse: true}, refclock.ErrNoSecond},
	} {
		if err := h.sys.RefclockSample(id, h.instant(), tc.s); !errors.Is(err, tc.want) {
			t.Errorf("%+v: %v, want %v", tc.s, err, tc.want)
		}
	}
	st := h.snapshot().Sources[0].Refclock
	if st == nil || st.Rejected != 4 || st.LastReject == "" || st.Pending != 0 {
		t.Errorf("%+v", st)
	}
	srv := h.add("ntp", 1, &server{Stratum: 1}, ntp.SourceConfig{MinPoll: 4, MaxPoll: 4})
	if err := h.sys.RefclockSample(srv, h.instant(), refclock.Sample{Local: now, Ref: now}); !errors.Is(err, ErrNotRefclock) {
		t.Error(err)
	}
}

func TestRefclockPPSLock(t *testing.T) {
	// The clock is 2.3 s off: a pulse alone cannot tell the second, the
	// NMEA source it is locked to can.
	h := newHarness(t, clock.SimConfig{Offset: 2300 * time.Millisecond, Seed: 1}, Config{})
	gps := h.sys.AddRefclock(SourceConfig{Name: "gps", Kind: "gpsd", RefID: refclock.RefID("GPS"), NoSelect: true},
		RefclockConfig{Clock: refclock.Config{Kind: "gpsd", Poll: 1, Precision: 20 * time.Millisecond}}, h.instant())
	pps := h.sys.AddRefclock(SourceConfig{Name: "pps0", Kind: "pps", RefID: refclock.RefID("PPS")},
		RefclockConfig{Clock: refclock.Config{Kind: "pps", Poll: 2, Pulse: true}, Lock: "gps"}, h.instant())
	rng := rand.New(rand.NewPCG(9, 9))
	errs := h.feed(2*time.Minute, map[ID]func(local, truth time.Time) refclock.Sample{
		gps: func(local, truth time.Time) refclock.Sample {
			late := 150*time.Millisecond + time.Duration(rng.Float64()*float64(60*time.Millisecond))
			return refclock.Sample{Local: local.Add(late), Ref: truth}
		},
		pps: func(local, truth time.Time) refclock.Sample {
			// The edge is at the true second; the kernel stamps it with
			// the local clock (1 µs of noise).
			l := local.Add(time.Duration(rng.NormFloat64() * 1000))
			return refclock.Sample{Local: l, Ref: l.Truncate(time.Second), Pulse: true}
		},
	})
	// Only the first pulses, before the NMEA source released a sample,
	// lack their second.
	for _, err := range errs {
		if !errors.Is(err, refclock.ErrNoSecond) {
			t.Fatal(err)
		}
	}
	if len(errs) == 0 || len(errs) > 4 {
		t.Errorf("%d pulses refused", len(errs))
	}
	sn := h.snapshot()
	if !sn.Synchronized || sn.SystemPeer != pps || sn.RefID != refclock.RefID("PPS") || sn.Stratum != 1 {
		t.Fatalf("%+v", sn)
	}
	// The engine's time (the clock plus what it still slews) is right.
	if e := h.clk.Now().Add(sn.Offset).Sub(h.clk.TrueNow()); e > 100*time.Microsecond || e < -100*time.Microsecond {
		t.Errorf("engine time error %v locked to PPS", e)
	}
}
