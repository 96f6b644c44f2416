package ptp

import (
	"math"
	"testing"
	"time"
)

// TestFollowerStepRules: the first update steps the PHC onto the system
// clock; once locked, a jump above the step threshold is stepped out at
// once with the frequency kept, a smaller one slewed; with threshold 0
// nothing is stepped after the first update.
func TestFollowerStepRules(t *testing.T) {
	f := NewFollower(FollowConfig{StepThreshold: time.Millisecond}, 0)
	at := t0
	// the PHC is 2 s ahead and gains 10 µs a second on the system clock
	off := 2 * time.Second
	sample := func() FollowOutput {
		o := f.Sample(off, 50*time.Nanosecond, at)
		off += o.Step + 10*time.Microsecond + time.Duration(o.FreqPPB) // 1 s at FreqPPB ppb moves it FreqPPB ns
		at = at.Add(time.Second)
		return o
	}
	if o := sample(); o.State != ServoUnlocked || o.Step != 0 {
		t.Fatalf("first sample %+v", o)
	}
	o := sample()
	if o.State != ServoJump || o.Step != -(2*time.Second+10*time.Microsecond) || math.Abs(o.FreqPPB+10000) > 1 {
		t.Fatalf("second sample %+v: want a step of −2.00001 s and −10000 ppb", o)
	}
	for range 10 {
		o = sample()
	}
	if o.State != ServoLocked || absDur(off) > 10*time.Nanosecond {
		t.Fatalf("not locked: %+v, off %v", o, off)
	}
	freq := o.FreqPPB
	off += 400 * time.Microsecond // below the threshold: slewed
	if o = sample(); o.Step != 0 || o.State != ServoLocked {
		t.Errorf("400 µs: %+v, want a slew", o)
	}
	for range 20 {
		sample()
	}
	off -= 30 * time.Millisecond // the system clock was stepped 30 ms forward
	o = sample()
	if o.State != ServoJump || o.Step < 29*time.Millisecond || o.Step > 31*time.Millisecond || math.Abs(o.FreqPPB-freq) > 50 {
		t.Errorf("system clock stepped 30 ms: %+v, want a step of about +30 ms at %.0f ppb", o, freq)
	}
	for range 5 {
		o = sample()
	}
	if o.State != ServoLocked || absDur(off) > 100*time.Nanosecond {
		t.Errorf("after the step: %+v, off %v", o, off)
	}
	if st := f.Status(); st.Steps != 2 || st.LastStep < 29*time.Millisecond || !st.Active {
		t.Errorf("status %+v", st)
	}

	// Pause/Resume: the samples are forgotten, the frequency the PHC
	// runs at (set meanwhile by the port's servo) is the starting point.
	f.Pause()
	if f.Status().Active {
		t.Error("active after Pause")
	}
	f.Resume(1234)
	if st := f.Status(); !st.Active || st.Servo != ServoUnlocked || st.FreqPPB != 1234 {
		t.Errorf("after Resume: %+v", st)
	}
	if o := f.Sample(500*time.Microsecond, 0, at); o.FreqPPB != 1234 || o.Step != 0 {
		t.Errorf("first sample after Resume: %+v", o)
	}
	// the step rule holds at once after Resume
	if o := f.Sample(5*time.Millisecond, 0, at.Add(time.Second)); o.Step != -5*time.Millisecond || o.FreqPPB != 1234 {
		t.Errorf("5 ms after Resume: %+v, want a step of −5 ms at 1234 ppb", o)
	}

	never := NewFollower(FollowConfig{}, 0)
	for i, o := range []time.Duration{0, 5 * time.Microsecond, 5 * time.Millisecond, 50 * time.Millisecond, time.Second} {
		never.Sample(o, 0, t0.Add(time.Duration(i)*time.Second))
	}
	if st := never.Status(); st.Steps != 0 || st.Servo != ServoLocked {
		t.Errorf("threshold 0, 5 µs at the first update, then up to 1 s: %d steps, %s", st.Steps, st.Servo)
	}
}

// TestTimescaleStepped: the port's timers move with its clock's step,
// so a master stepped back by 10 s keeps sending Announce and Sync.
func TestTimescaleStepped(t *testing.T) {
	c, err := NewClock(Config{Identity: cid(7), MasterOnly: true}, t0)
	if err != nil {
		t.Fatal(err)
	}
	now := t0
	for range 50 {
		if next := c.NextWakeup(); !next.IsZero() && !now.Before(next) {
			c.Wakeup(now)
		}
		now = now.Add(100 * time.Millisecond)
	}
	if c.State() != StateMaster {
		t.Fatalf("state %s", c.State())
	}
	next := c.NextWakeup()
	c.TimescaleStepped(-10 * time.Second)
	if got := c.NextWakeup(); got != next.Add(-10*time.Second) {
		t.Errorf("next wakeup %v after a −10 s step, want %v", got, next.Add(-10*time.Second))
	}
	now = now.Add(-10 * time.Second)
	syncs := c.Status().Counters.Tx[MsgSync]
	for range 30 {
		if next := c.NextWakeup(); !next.IsZero() && !now.Before(next) {
			c.Wakeup(now)
		}
		now = now.Add(100 * time.Millisecond)
	}
	if got := c.Status().Counters.Tx[MsgSync] - syncs; got < 2 {
		t.Errorf("%d Syncs in the 3 s after the step", got)
	}
}
