package ptp

import (
	"io"
	"log/slog"
	"math/rand/v2"
	"testing"
	"time"

	eptp "gnomon.dev/gnomon/engine/ptp"
)

// TestPortFollowSwitches: the port's loop hands the PHC between the
// follower and its own servo by the port's state. LISTENING: the PHC
// follows the system clock (stepped onto it, then steered). A better
// master is heard and the port goes UNCALIBRATED: the follower stops
// touching the PHC. The master falls silent, the port becomes master:
// the follower starts again from the frequency the PHC runs at, and a
// step of the PHC moves the port's timers with it.
func TestPortFollowSwitches(t *testing.T) {
	w := &followWorld{t: t, epoch: time.Date(2026, 12, 7, 12, 0, 0, 0, time.UTC), sysPPM: 3, phcOsc: -25, phcNS: 42e6,
		rng: rand.New(rand.NewPCG(7, 8))}
	phc := w.newPHC()
	cmp := sysOffsetFunc(func(n int) (time.Duration, time.Duration, error) { return phc.sysOffsetFD(0, n) })
	f := newPHCFollow(FollowOptions{StepThreshold: eptp.DefaultFollowStepThreshold}, cmp, phc, nil, 0)
	steady := time.Unix(1000, 0)
	f.steady = func() time.Time { return steady }
	me := eptp.ClockIdentity{0, 1, 2, 0xff, 0xfe, 3, 4, 9}
	eng, err := eptp.NewClock(eptp.Config{Identity: me, Priority1: 200, Profile: eptp.DefaultE2E}, phc.Now())
	if err != nil {
		t.Fatal(err)
	}
	p := &Port{eng: eng, follow: f, log: slog.New(slog.NewTextHandler(io.Discard, nil)), lastLog: map[string]time.Time{}}

	other := eptp.PortIdentity{Clock: eptp.ClockIdentity{0, 1, 2, 0xff, 0xfe, 3, 4, 1}, Port: 1}
	var seq uint16
	announce := func() {
		seq++
		a := &eptp.Announce{Header: eptp.Header{Version: 2, MinorVersion: 1, Source: other, Sequence: seq, LogInterval: 1},
			CurrentUTCOffset: 37, GMPriority1: 100, GMQuality: eptp.ClockQuality{Class: 248, Accuracy: 0xfe, OffsetScaledLogVariance: 0xffff},
			GMPriority2: 128, GMIdentity: other.Clock, TimeSource: eptp.TimeSourceInternalOsc}
		b := make([]byte, eptp.MaxLen)
		n, err := a.MarshalTo(b)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := eng.Receive(phc.Now(), b[:n], phc.Now()); err != nil {
			t.Fatal(err)
		}
	}
	// one second of the port's loop
	second := func(withAnnounce bool) {
		for range 10 {
			if next := eng.NextWakeup(); !next.IsZero() && !phc.Now().Before(next) {
				eng.Wakeup(phc.Now())
			}
			p.followSystem()
			steady = steady.Add(100 * time.Millisecond)
			w.advance(100 * time.Millisecond)
		}
		if withAnnounce {
			announce()
		}
	}

	for range 20 {
		second(false)
	}
	st := eng.State()
	if fs := f.status(); !fs.Active || fs.Steps != 1 || fs.Servo != eptp.ServoLocked || absDur(w.phcMinusSys()) > time.Microsecond {
		t.Fatalf("port %s: follower %+v, PHC − system %v: want following, stepped once, locked", st, fs, w.phcMinusSys())
	}
	t.Logf("port %s: the PHC follows the system clock (PHC − system %v, %d steps)", st, w.phcMinusSys(), len(w.steps))

	for i := 0; i < 12 && !(eng.State() == eptp.StateUncalibrated || eng.State() == eptp.StateSlave); i++ {
		second(true)
	}
	if st := eng.State(); st != eptp.StateUncalibrated {
		t.Fatalf("a better master announcing: port %s, want UNCALIBRATED", st)
	}
	adj := w.adjtimes
	for range 5 {
		second(true)
	}
	if w.adjtimes != adj || f.status().Active {
		t.Errorf("port UNCALIBRATED: %d clock_adjtime calls, follower active %v: the follower must leave the PHC to the port's servo",
			w.adjtimes-adj, f.status().Active)
	}
	// meanwhile the port's servo set another frequency, and the system
	// clock was stepped
	p.clkPPM = 4.5
	w.phcFreq = 4.5
	w.sysNS -= 5e6
	samples := f.status().Samples
	for i := 0; i < 30 && eng.State() != eptp.StateMaster; i++ {
		second(false)
	}
	if st := eng.State(); st != eptp.StateMaster {
		t.Fatalf("master silent: port %s, want MASTER", st)
	}
	for range 10 {
		second(false)
	}
	fs := f.status()
	if !fs.Active || fs.Samples <= samples || fs.Steps != 2 || absDur(w.phcMinusSys()) > time.Microsecond {
		t.Errorf("port MASTER: follower %+v, PHC − system %v: want following again, the 5 ms stepped out", fs, w.phcMinusSys())
	}
	if next := eng.NextWakeup(); next.IsZero() || next.Sub(phc.Now()) > 2*time.Second {
		t.Errorf("after the PHC's −5 ms step the port's next timer is %v away", next.Sub(phc.Now()))
	}
	syncs := eng.Status().Counters.Tx[eptp.MsgSync]
	for range 5 {
		second(false)
	}
	if got := eng.Status().Counters.Tx[eptp.MsgSync] - syncs; got < 4 {
		t.Errorf("%d Syncs in 5 s as master", got)
	}
	t.Logf("port MASTER: the PHC follows again (PHC − system %v, %d steps, frequency %+.3f ppm)", w.phcMinusSys(), len(w.steps), w.phcFreq)
}
