//go:build linux

package sysclock

import (
	"bufio"
	"errors"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"gnomon.dev/gnomon/engine/clock"
	"gnomon.dev/gnomon/engine/sample"
)

// fakeKernel records the timex of every call and answers reads with a
// fixed state; it never touches the clock.
type fakeKernel struct {
	calls []unix.Timex
	state unix.Timex
	err   error // returned for writes
}

func (f *fakeKernel) adjtimex(tx *unix.Timex) (int, error) {
	f.calls = append(f.calls, *tx)
	if tx.Modes == 0 {
		*tx = f.state
		return unix.TIME_ERROR, nil
	}
	if f.err != nil {
		return -1, f.err
	}
	return unix.TIME_OK, nil
}

func newFake(t *testing.T, f *fakeKernel) *System {
	t.Helper()
	s, err := NewSystem(WithAdjtimex(f.adjtimex))
	if err != nil {
		t.Fatal(err)
	}
	if len(f.calls) != 1 || f.calls[0].Modes != 0 {
		t.Fatalf("NewSystem made calls %+v, want one read", f.calls)
	}
	f.calls = nil
	return s
}

func TestNewSystemReadsState(t *testing.T) {
	f := &fakeKernel{state: unix.Timex{Tick: 10001, Freq: 3 * 65536, Status: unix.STA_UNSYNC, Maxerror: 16000000, Tai: 37}}
	s := newFake(t, f)
	in := s.Initial()
	if in.FreqPPM != 103 || in.TAI != 37 || !in.Unsync() || in.Synced || in.State != unix.TIME_ERROR {
		t.Errorf("Initial = %+v", in)
	}
	if s.MaxFrequencyPPM() != 100500 {
		t.Errorf("MaxFrequencyPPM = %v", s.MaxFrequencyPPM())
	}
}

func TestSystemWrites(t *testing.T) {
	tests := []struct {
		name string
		do   func(*System) error
		want unix.Timex
	}{
		{"frequency", func(s *System) error { return s.SetFrequency(-42.5) },
			unix.Timex{Modes: unix.ADJ_FREQUENCY | unix.ADJ_TICK, Tick: 10000, Freq: -42.5 * 65536}},
		{"frequency beyond 500 ppm", func(s *System) error { return s.SetFrequency(-1234.5) },
			unix.Timex{Modes: unix.ADJ_FREQUENCY | unix.ADJ_TICK, Tick: 9988, Freq: -34.5 * 65536}},
		{"step", func(s *System) error { return s.Step(-250 * time.Millisecond) },
			unix.Timex{Modes: unix.ADJ_SETOFFSET | unix.ADJ_NANO, Time: unix.Timeval{Sec: -1, Usec: 750000000}}},
		{"status", func(s *System) error {
			return s.SetStatus(clock.Status{Synchronized: true, Leap: sample.LeapInsert, MaxError: 5 * time.Millisecond, EstError: 100 * time.Microsecond})
		}, unix.Timex{Modes: unix.ADJ_STATUS | unix.ADJ_MAXERROR | unix.ADJ_ESTERROR, Status: unix.STA_INS, Maxerror: 5000, Esterror: 100}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := &fakeKernel{state: unix.Timex{Tick: 10000}}
			s := newFake(t, f)
			if err := tc.do(s); err != nil {
				t.Fatal(err)
			}
			if len(f.calls) != 1 {
				t.Fatalf("%d calls, want 1", len(f.calls))
			}
			if f.calls[0] != tc.want {
				t.Errorf("wrote %+v\nwant  %+v", f.calls[0], tc.want)
			}
		})
	}
}

func TestSetFrequencyOutOfRangeWritesNothing(t *testing.T) {
	f := &fakeKernel{}
	s := newFake(t, f)
	if err := s.SetFrequency(200000); !errors.Is(err, clock.ErrFrequencyRange) {
		t.Errorf("err = %v, want ErrFrequencyRange", err)
	}
	if len(f.calls) != 0 {
		t.Errorf("made calls %+v", f.calls)
	}
}

func TestWriteErrorsWrapErrno(t *testing.T) {
	f := &fakeKernel{err: unix.EPERM}
	s := newFake(t, f)
	for name, err := range map[string]error{
		"SetFrequency": s.SetFrequency(1),
		"Step":         s.Step(time.Second),
		"SetStatus":    s.SetStatus(clock.Status{}),
		"Reset":        s.Reset(),
	} {
		if !errors.Is(err, unix.EPERM) {
			t.Errorf("%s: err = %v, want EPERM", name, err)
		}
	}
}

func TestReset(t *testing.T) {
	f := &fakeKernel{}
	s := newFake(t, f)
	if err := s.Reset(); err != nil {
		t.Fatal(err)
	}
	want := []unix.Timex{
		{Modes: unix.ADJ_STATUS | unix.ADJ_OFFSET, Status: unix.STA_PLL | unix.STA_UNSYNC},
		{Modes: unix.ADJ_OFFSET_SINGLESHOT},
		{Modes: unix.ADJ_STATUS | unix.ADJ_MAXERROR | unix.ADJ_ESTERROR, Status: unix.STA_UNSYNC, Maxerror: 16000000, Esterror: 16000000},
	}
	if len(f.calls) != len(want) {
		t.Fatalf("calls %+v", f.calls)
	}
	for i := range want {
		if f.calls[i] != want[i] {
			t.Errorf("call %d: %+v, want %+v", i, f.calls[i], want[i])
		}
		if f.calls[i].Modes&(unix.ADJ_FREQUENCY|unix.ADJ_TICK|unix.ADJ_TAI|unix.ADJ_SETOFFSET) != 0 {
			t.Errorf("call %d touches frequency, TAI or time", i)
		}
	}
}

func TestReadOnly(t *testing.T) {
	now := time.Unix(1700000000, 0)
	r := ReadOnly{R: fixedReader(now)}
	if !r.Now().Equal(now) {
		t.Errorf("Now = %v", r.Now())
	}
	for name, err := range map[string]error{
		"SetFrequency": r.SetFrequency(0),
		"Step":         r.Step(0),
		"SetStatus":    r.SetStatus(clock.Status{}),
	} {
		if !errors.Is(err, clock.ErrReadOnly) {
			t.Errorf("%s: %v", name, err)
		}
	}
}

type fixedReader time.Time

func (f fixedReader) Now() time.Time { return time.Time(f) }

// TestReadKernelStatusHere reads this machine's kernel state (read-only).
func TestReadKernelStatusHere(t *testing.T) {
	k, err := ReadKernelStatus()
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("kernel: %v", k)
	var tx unix.Timex
	state, err := unix.ClockAdjtime(unix.CLOCK_REALTIME, &tx) // the same state by the other call
	if err != nil {
		t.Fatal(err)
	}
	if state != k.State || tx.Status != k.Status || int64(tx.Tick) != k.TickUS || k.TAI != int(tx.Tai) {
		t.Errorf("clock_adjtime says state %d status %#x tick %d tai %d", state, tx.Status, tx.Tick, tx.Tai)
	}
	if k.TickUS < 9000 || k.TickUS > 11000 {
		t.Errorf("tick %d", k.TickUS)
	}
	if k.Synced != (k.MaxError < 16*time.Second) {
		t.Errorf("Synced %t with maxerror %v", k.Synced, k.MaxError)
	}
	// No time daemon disciplines the machines this project is developed
	// and tested on, so the kernel holds its boot state.
	if os.Getenv("GNOMON_HOST_CLOCK_SYNCED") == "" && (!k.Unsync() || k.Synced) {
		t.Errorf("expected an undisciplined kernel clock (STA_UNSYNC, not synced); got %v (set GNOMON_HOST_CLOCK_SYNCED=1 on a host where a time daemon runs)", k)
	}
}

const childEnv = "GNOMON_SYSCLOCK_CHILD"

// TestWritesRefusedWithoutSysTime runs TestEPERMChild in a child that
// setpriv started without CAP_SYS_TIME, so the kernel refuses every write.
func TestWritesRefusedWithoutSysTime(t *testing.T) {
	setpriv, err := exec.LookPath("setpriv")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("setpriv not found")
		}
		t.Skip("setpriv not found")
	}
	cmd := exec.Command(setpriv, "--bounding-set=-sys_time", "--inh-caps=-sys_time",
		os.Args[0], "-test.run=^TestEPERMChild$", "-test.v", "-test.count=1")
	cmd.Env = append(os.Environ(), childEnv+"=eperm")
	out, err := cmd.CombinedOutput()
	t.Logf("child:\n%s", out)
	if err != nil {
		t.Fatalf("child failed: %v", err)
	}
	if !strings.Contains(string(out), "--- PASS: TestEPERMChild") {
		t.Fatal("child did not run its test")
	}
}

// capBit reads a capability set's bit from /proc/self/status.
func capBit(t *testing.T, field string, bit uint) bool {
	t.Helper()
	f, err := os.Open("/proc/self/status")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), field+":"); ok {
			n, err := strconv.ParseUint(strings.TrimSpace(v), 16, 64)
			if err != nil {
				t.Fatal(err)
			}
			return n&(1<<bit) != 0
		}
	}
	t.Fatalf("no %s in /proc/self/status", field)
	return false
}

func TestEPERMChild(t *testing.T) {
	if os.Getenv(childEnv) != "eperm" {
		t.Skip("runs only as TestWritesRefusedWithoutSysTime's child")
	}
	// Never write if the capability is there after all.
	for _, set := range []string{"CapEff", "CapPrm", "CapAmb"} {
		if capBit(t, set, unix.CAP_SYS_TIME) {
			t.Fatalf("%s has CAP_SYS_TIME: refusing to try writes", set)
		}
	}
	before, err := ReadKernelStatus()
	if err != nil {
		t.Fatal(err)
	}
	s, err := NewSystem()
	if err != nil {
		t.Fatal(err)
	}
	// Values that would change nothing even if they were accepted.
	for name, err := range map[string]error{
		"SetFrequency": s.SetFrequency(before.FreqPPM),
		"Step":         s.Step(0),
		"SetStatus":    s.SetStatus(clock.Status{}),
		"Reset":        s.Reset(),
	} {
		if !errors.Is(err, unix.EPERM) {
			t.Errorf("%s: err = %v, want EPERM", name, err)
		} else {
			t.Logf("%s: %v", name, err)
		}
	}
	after, err := ReadKernelStatus()
	if err != nil {
		t.Fatal(err)
	}
	if after.State != before.State || after.Status != before.Status || after.FreqPPM != before.FreqPPM ||
		after.TickUS != before.TickUS || after.TAI != before.TAI || after.EstError != before.EstError {
		t.Errorf("kernel state changed:\nbefore %v\nafter  %v", before, after)
	}
}
