package ptp

import (
	"math"
	"math/rand/v2"
	"testing"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"

	"gnomon.dev/gnomon/engine/clock"
	eptp "gnomon.dev/gnomon/engine/ptp"
)

// followWorld is a simulated host: a system clock that NTP moves (its
// rate error, slews and steps) and a PHC with its own oscillator error,
// both against true time. The PHC is reached only through the fake
// syscall layer: clock_adjtime (ADJ_FREQUENCY, ADJ_SETOFFSET|ADJ_NANO),
// clock_gettime and PTP_SYS_OFFSET_EXTENDED (PRECISE refused, as e1000e
// and most NICs do).
type followWorld struct {
	t        *testing.T
	epoch    time.Time
	trueNS   float64 // true time since epoch
	sysNS    float64 // system clock minus true time
	sysPPM   float64 // the system clock's rate error now (oscillator + NTP's frequency and slews)
	phcNS    float64 // PHC minus true time
	phcOsc   float64 // the PHC oscillator's error, ppm
	phcFreq  float64 // the frequency set through ADJ_FREQUENCY, ppm
	rng      *rand.Rand
	adjtimes int
	steps    []time.Duration
}

func (w *followWorld) advance(d time.Duration) {
	dt := float64(d)
	w.trueNS += dt
	w.sysNS += dt * w.sysPPM / 1e6
	w.phcNS += dt * (w.phcOsc + w.phcFreq) / 1e6
}

func (w *followWorld) sys() time.Time {
	return w.epoch.Add(time.Duration(w.trueNS + w.sysNS))
}
func (w *followWorld) phc() time.Time {
	return w.epoch.Add(time.Duration(w.trueNS + w.phcNS))
}

// phcMinusSys is the truth the follower should drive to zero.
func (w *followWorld) phcMinusSys() time.Duration { return time.Duration(w.phcNS - w.sysNS) }

func (w *followWorld) newPHC() *PHC {
	p := &PHC{id: -29, maxPPM: 500}
	p.ioctl = func(fd, req uintptr, arg unsafe.Pointer) error {
		switch req {
		case ioctlSysOffsetPrecise:
			return unix.EOPNOTSUPP
		case ioctlSysOffsetExtended:
			e := (*ptpSysOffsetExtended)(arg)
			for i := 0; i < int(e.NSamples); i++ {
				// each reading takes 1-3 µs; the PHC is read in the
				// middle, with ±20 ns of noise
				wd := time.Duration(1000+w.rng.IntN(2000)) * time.Nanosecond
				before := w.sys()
				jit := time.Duration(w.rng.IntN(41)-20) * time.Nanosecond
				e.TS[i] = [3]ptpClockTime{ct(before), ct(w.phc().Add(wd / 2).Add(jit)), ct(before.Add(wd))}
			}
			return nil
		}
		return unix.EINVAL
	}
	p.adjtime = func(id int32, tx *unix.Timex) (int, error) {
		if id != -29 {
			w.t.Errorf("clock_adjtime on clock id %d, want the PHC's", id)
		}
		w.adjtimes++
		switch {
		case tx.Modes == unix.ADJ_FREQUENCY:
			w.phcFreq = float64(tx.Freq) / 65536
		case tx.Modes == unix.ADJ_SETOFFSET|unix.ADJ_NANO:
			if tx.Time.Usec < 0 || tx.Time.Usec >= 1e9 {
				w.t.Errorf("ADJ_SETOFFSET nanoseconds %d out of range", tx.Time.Usec)
			}
			d := time.Duration(tx.Time.Sec)*time.Second + time.Duration(tx.Time.Usec)
			w.phcNS += float64(d)
			w.steps = append(w.steps, d)
		default:
			w.t.Errorf("clock_adjtime modes %#x", tx.Modes)
			return 0, unix.EINVAL
		}
		return 0, nil
	}
	p.gettime = func(id int32, ts *unix.Timespec) error {
		*ts = unix.NsecToTimespec(w.phc().UnixNano())
		return nil
	}
	return p
}

// TestPHCFollowsSystemClock: the other half of phc2sys through the fake
// PHC layer. A PHC 3.7 s off and 35 ppm fast follows a system clock that
// runs 12 ppm slow, is stepped by NTP (+10 ms, then −250 ms) and slewed
// (+500 ppm for 60 s, then −300 ppm for 40 s). The PHC is stepped once
// at the start and once per system-clock step (the frequency kept), and
// follows the slews by slewing, within bounds.
func TestPHCFollowsSystemClock(t *testing.T) {
	w := &followWorld{t: t, epoch: time.Date(2026, 12, 7, 12, 0, 0, 0, time.UTC), sysPPM: -12, phcOsc: 35,
		phcNS: 3.7e9, rng: rand.New(rand.NewPCG(1, 2))}
	phc := w.newPHC()
	cmp := sysOffsetFunc(func(n int) (time.Duration, time.Duration, error) { return phc.sysOffsetFD(0, n) })
	f := newPHCFollow(FollowOptions{StepThreshold: eptp.DefaultFollowStepThreshold}, cmp, phc, nil, 0)
	steady := time.Unix(1000, 0)

	type phase struct {
		name    string
		seconds int
		before  func()
		settle  int           // seconds after which the bound applies
		bound   time.Duration // |PHC − system| after settle
		steps   int           // PHC steps in the phase
	}
	phases := []phase{
		{name: "start", seconds: 60, settle: 15, bound: 200 * time.Nanosecond, steps: 1},
		{name: "system clock stepped +10 ms", seconds: 30, before: func() { w.sysNS += 10e6 }, settle: 5, bound: 200 * time.Nanosecond, steps: 1},
		{name: "system clock stepped −250 ms", seconds: 30, before: func() { w.sysNS -= 250e6 }, settle: 5, bound: 200 * time.Nanosecond, steps: 1},
		{name: "system clock slewed +500 ppm", seconds: 60, before: func() { w.sysPPM = 488 }, settle: 30, bound: 200 * time.Nanosecond},
		{name: "slew ends, −300 ppm", seconds: 40, before: func() { w.sysPPM = -300 }, settle: 30, bound: 200 * time.Nanosecond},
		{name: "back to −12 ppm", seconds: 40, before: func() { w.sysPPM = -12 }, settle: 30, bound: 200 * time.Nanosecond},
	}
	for _, ph := range phases {
		if ph.before != nil {
			ph.before()
		}
		steps0 := len(w.steps)
		var worst, worstSettled time.Duration
		var sumSq float64
		n := 0
		for s := 0; s < ph.seconds; s++ {
			step, _, did, err := f.run(steady)
			if err != nil {
				t.Fatalf("%s: %v", ph.name, err)
			}
			if !did {
				t.Fatalf("%s: no comparison at %v", ph.name, steady)
			}
			_ = step
			// a second later
			steady = steady.Add(time.Second)
			w.advance(time.Second)
			d := w.phcMinusSys()
			if ph.name != "start" || s > 0 {
				worst = max(worst, absDur(d))
			}
			if s >= ph.settle {
				worstSettled = max(worstSettled, absDur(d))
				sumSq += float64(d) * float64(d)
				n++
			}
		}
		st := f.status()
		rms := time.Duration(math.Sqrt(sumSq / float64(max(n, 1))))
		t.Logf("%-30s worst |PHC−system| %v, after %d s: worst %v, RMS %v; PHC steps %d, frequency %+.3f ppm (PHC oscillator %+.0f ppm, system clock %+.0f ppm), servo %s",
			ph.name, worst, ph.settle, worstSettled, rms, len(w.steps)-steps0, w.phcFreq, w.phcOsc, w.sysPPM, st.Servo)
		if got := len(w.steps) - steps0; got != ph.steps {
			t.Errorf("%s: %d PHC steps (%v), want %d", ph.name, got, w.steps[steps0:], ph.steps)
		}
		if worstSettled > ph.bound {
			t.Errorf("%s: |PHC − system clock| up to %v after %d s, want ≤ %v", ph.name, worstSettled, ph.settle, ph.bound)
		}
		if ph.steps == 0 && worst > eptp.DefaultFollowStepThreshold {
			t.Errorf("%s: a slew took the PHC %v away, past the step threshold", ph.name, worst)
		}
		// the PHC's frequency must cancel both errors
		if want := w.sysPPM - w.phcOsc; ph.settle < ph.seconds && math.Abs(w.phcFreq-want) > 0.05 {
			t.Errorf("%s: PHC frequency %+.3f ppm, want %+.3f", ph.name, w.phcFreq, want)
		}
	}
	if st := f.status(); st.Steps != 3 || st.Samples != 260 || st.Servo != eptp.ServoLocked || !st.Active {
		t.Errorf("status %+v", st)
	}
	if w.steps[0] > -3699*time.Millisecond || w.steps[0] < -3701*time.Millisecond {
		t.Errorf("first step %v, want about −(PHC − system) = −3.7 s", w.steps[0])
	}
}

// TestPHCFollowsNoSteps: with step threshold 0 (phc2sys's default) a
// system clock stepped by 2 ms after the first update is followed by
// slewing at the PHC's largest frequency, never by a step.
func TestPHCFollowsNoSteps(t *testing.T) {
	w := &followWorld{t: t, epoch: time.Date(2026, 12, 7, 12, 0, 0, 0, time.UTC), phcOsc: -20, rng: rand.New(rand.NewPCG(3, 4))}
	phc := w.newPHC()
	cmp := sysOffsetFunc(func(n int) (time.Duration, time.Duration, error) { return phc.sysOffsetFD(0, n) })
	f := newPHCFollow(FollowOptions{}, cmp, phc, nil, 0)
	steady := time.Unix(1000, 0)
	tick := func(n int) {
		for range n {
			if _, _, _, err := f.run(steady); err != nil {
				t.Fatal(err)
			}
			steady = steady.Add(time.Second)
			w.advance(time.Second)
		}
	}
	tick(30)
	w.sysNS += 2e6
	tick(60)
	if len(w.steps) != 0 {
		t.Errorf("PHC stepped %v with step threshold 0 (a 0 offset at the start needs none either)", w.steps)
	}
	if d := w.phcMinusSys(); absDur(d) > time.Microsecond {
		t.Errorf("60 s after a 2 ms system clock step the PHC is %v from it, want within 1 µs", d)
	}
}

// TestPHCFollowObserve: in observe mode the PHC is only read: the
// virtual clock over it follows the system clock, and no clock_adjtime
// reaches the PHC.
func TestPHCFollowObserve(t *testing.T) {
	w := &followWorld{t: t, epoch: time.Date(2026, 12, 7, 12, 0, 0, 0, time.UTC), sysPPM: 7, phcOsc: 35, phcNS: -2.5e9,
		rng: rand.New(rand.NewPCG(5, 6))}
	phc := w.newPHC()
	cmp := sysOffsetFunc(func(n int) (time.Duration, time.Duration, error) { return phc.sysOffsetFD(0, n) })
	v := clock.NewVirtual(phc)
	f := newPHCFollow(FollowOptions{StepThreshold: eptp.DefaultFollowStepThreshold}, cmp, v, v, 0)
	f.sysNow = w.sys
	steady := time.Unix(1000, 0)
	for range 40 {
		if _, _, _, err := f.run(steady); err != nil {
			t.Fatal(err)
		}
		steady = steady.Add(time.Second)
		w.advance(time.Second)
	}
	if w.adjtimes != 0 {
		t.Errorf("%d clock_adjtime calls on the PHC in observe mode", w.adjtimes)
	}
	if d := v.Now().Sub(w.sys()); absDur(d) > 200*time.Nanosecond {
		t.Errorf("the virtual clock over the PHC is %v from the system clock, want within 200 ns", d)
	}
	if d := w.phcMinusSys(); absDur(d) < time.Second {
		t.Errorf("the PHC itself moved: %v from the system clock", d)
	}
}

func absDur(d time.Duration) time.Duration {
	if d < 0 {
		return -d
	}
	return d
}
