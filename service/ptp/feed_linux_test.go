package ptp

import (
	"testing"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"

	"gnomon.dev/gnomon/engine/clock"
	eptp "gnomon.dev/gnomon/engine/ptp"
	"gnomon.dev/gnomon/engine/sample"
)

// fakeReader is a clock.Reader for the virtual clock over the PHC.
type fakeReader struct{ t time.Time }

func (f fakeReader) Now() time.Time { return f.t }

// TestPHCSample is phc2sys in one process through the fake PHC layer (no
// PHC exists on the machines this was built on): the PHC, which the
// port has locked to the master, is compared with the system clock by
// PTP_SYS_OFFSET_EXTENDED (PRECISE refused), and the sample says the
// system clock is behind the master by what the PHC is ahead of it,
// with the grandmaster's stratum, the port's path delay and the leap
// warning of its Announce.
func TestPHCSample(t *testing.T) {
	phcAhead := 2*time.Millisecond + 300*time.Nanosecond
	p := &PHC{id: -29, maxPPM: 500}
	p.ioctl = func(fd, req uintptr, arg unsafe.Pointer) error {
		switch req {
		case ioctlSysOffsetPrecise:
			return unix.EOPNOTSUPP
		case ioctlSysOffsetExtended:
			e := (*ptpSysOffsetExtended)(arg)
			now := time.Now()
			for i := 0; i < int(e.NSamples); i++ {
				w := time.Duration(800+200*i) * time.Nanosecond
				e.TS[i] = [3]ptpClockTime{ct(now), ct(now.Add(w / 2).Add(phcAhead)), ct(now.Add(w))}
			}
			return nil
		}
		return unix.EINVAL
	}
	// the fake ioctl stands in for the file: SysOffset's fd is unused
	fake := sysOffsetFunc(func(n int) (time.Duration, time.Duration, error) {
		if n != phcSamples {
			t.Errorf("asked for %d samples, want %d", n, phcSamples)
		}
		return p.sysOffsetFD(0, n)
	})
	st := eptp.Status{MeanPathDelay: 700 * time.Nanosecond, Offset: -40 * time.Nanosecond}
	st.Parent.GMQuality.Class = 6
	st.Parent.GMQuality.Accuracy = 0x21 // 100 ns
	st.Current.StepsRemoved = 1
	st.TimeProperties.Flags = eptp.FlagLeap61 | eptp.FlagUTCOffsetValid

	smp, err := phcSample(fake, nil, &st)
	if err != nil {
		t.Fatal(err)
	}
	if p.Method != "PTP_SYS_OFFSET_EXTENDED" {
		t.Errorf("method %s", p.Method)
	}
	if got := smp.Ref.Sub(smp.Local); got != phcAhead {
		t.Errorf("reference minus local %v, want the PHC's lead %v", got, phcAhead)
	}
	if smp.Stratum != 0 || smp.Leap != sample.LeapInsert || smp.RootDelay != 1400*time.Nanosecond ||
		smp.RootDispersion != 140*time.Nanosecond || smp.Dispersion != 400*time.Nanosecond || smp.Delay != 800*time.Nanosecond {
		t.Errorf("sample %+v", smp)
	}
	if d := time.Since(smp.Local); d < 0 || d > time.Second {
		t.Errorf("sample taken at %v, %v ago", smp.Local, d)
	}

	// Observe mode: the port steers a virtual clock over the PHC (here
	// 5 µs ahead of it), and that is what the system clock is compared
	// with.
	v := clock.NewVirtual(fakeReader{time.Now()})
	if err := v.Step(5 * time.Microsecond); err != nil {
		t.Fatal(err)
	}
	smp, err = phcSample(fake, v, &st)
	if err != nil {
		t.Fatal(err)
	}
	if got := smp.Ref.Sub(smp.Local); got != phcAhead+5*time.Microsecond {
		t.Errorf("observe mode: reference minus local %v, want %v", got, phcAhead+5*time.Microsecond)
	}

	// no PTP_SYS_OFFSET* at all: an error, no sample
	p.ioctl = func(fd, req uintptr, arg unsafe.Pointer) error { return unix.ENOTTY }
	if _, err := phcSample(fake, nil, &st); err == nil {
		t.Error("no error without any PTP_SYS_OFFSET ioctl")
	}
}

type sysOffsetFunc func(int) (time.Duration, time.Duration, error)

func (f sysOffsetFunc) SysOffset(n int) (time.Duration, time.Duration, error) { return f(n) }

// TestBaseStepped: when the engine steps the system clock under a port
// with software timestamps, the port's virtual clock takes the step back
// out, so the port's own time is continuous; a port on a PHC ignores it.
func TestBaseStepped(t *testing.T) {
	base := fakeReader{time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)}
	p := &Port{virtual: clock.NewVirtual(base), lastLog: map[string]time.Time{}}
	p.BaseStepped(3 * time.Millisecond)
	p.BaseStepped(-time.Millisecond)
	p.followBaseSteps()
	if got := p.virtual.Now().Sub(base.t); got != -2*time.Millisecond {
		t.Errorf("virtual clock %v from its base after the base stepped by +2 ms; want -2 ms", got)
	}
	p.followBaseSteps() // nothing more pending
	if got := p.virtual.Now().Sub(base.t); got != -2*time.Millisecond {
		t.Errorf("applied twice: %v", got)
	}
	q := &Port{cfg: PortConfig{PHC: &PHC{}}, virtual: clock.NewVirtual(base)}
	q.BaseStepped(time.Second)
	if q.baseSteps.Load() != 0 {
		t.Error("a PHC port took the system clock's step")
	}
}

type advReader struct{ t time.Time }

func (a *advReader) Now() time.Time { return a.t }

// TestBaseFrequency: the engine raises the system clock's frequency by
// 10 ppm under a software-timestamping port; the port's virtual clock
// takes the change back out from the moment it was made (it is noticed a
// second later), so the port's own clock keeps the oscillator's rate:
// -10 µs per second against the system clock.
func TestBaseFrequency(t *testing.T) {
	base := &advReader{time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)}
	p := &Port{virtual: clock.NewVirtual(base), base: base, lastLog: map[string]time.Time{}}
	p.BaseFrequency(base.t, 10)
	base.t = base.t.Add(time.Second)
	p.followBaseSteps()
	if got := p.virtual.Correction(base.t); got != -10*time.Microsecond {
		t.Errorf("correction %v after 1 s at +10 ppm, want -10 µs", got)
	}
	base.t = base.t.Add(time.Second)
	if got := p.virtual.Correction(base.t); got != -20*time.Microsecond {
		t.Errorf("correction %v after 2 s, want -20 µs", got)
	}
	// the servo's frequency is set on top of the compensation
	p.servoPPM = 4
	p.setVirtualFrequency()
	if got := p.virtual.FrequencyPPM(); got != -6 {
		t.Errorf("virtual frequency %v ppm, want 4 - 10", got)
	}
	q := &Port{cfg: PortConfig{PHC: &PHC{}}, virtual: clock.NewVirtual(base)}
	q.BaseFrequency(base.t, 10)
	if len(q.baseChanges) != 0 {
		t.Error("a PHC port took the system clock's frequency change")
	}
}
