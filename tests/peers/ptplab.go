package peers

import (
	"fmt"
	"math"
	"os"
	"runtime"
	"sort"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// Stats summarizes offsets (ns, master minus local) and path delays (ns)
// of a PTP or CSPTP run, for the tests that compare gnomond with ptp4l,
// ptp4u and sptp.
type Stats struct {
	N                    int
	Mean, RMS, Max, Med  float64 // Med and Max of |offset|
	DelayMean, DelayJitt float64 // path delay mean and standard deviation
}

// StatsOf summarizes offsets xs and delays (either may be empty).
func StatsOf(xs, delays []float64) Stats {
	s := Stats{N: len(xs)}
	if len(xs) > 0 {
		abs := make([]float64, len(xs))
		for i, x := range xs {
			s.Mean += x
			s.RMS += x * x
			abs[i] = math.Abs(x)
			s.Max = math.Max(s.Max, abs[i])
		}
		sort.Float64s(abs)
		s.Med = abs[len(abs)/2]
		s.Mean /= float64(len(xs))
		s.RMS = math.Sqrt(s.RMS / float64(len(xs)))
	}
	if len(delays) > 0 {
		for _, d := range delays {
			s.DelayMean += d
		}
		s.DelayMean /= float64(len(delays))
		for _, d := range delays {
			s.DelayJitt += (d - s.DelayMean) * (d - s.DelayMean)
		}
		s.DelayJitt = math.Sqrt(s.DelayJitt / float64(len(delays)))
	}
	return s
}

func (s Stats) String() string {
	return fmt.Sprintf("n=%d mean %+.0f ns, RMS %.0f ns, median |x| %.0f ns, max |x| %.0f ns; path delay %.0f ns (sd %.0f)",
		s.N, s.Mean, s.RMS, s.Med, s.Max, s.DelayMean, s.DelayJitt)
}

// WaitFor polls cond every 250 ms until it holds or timeout passes, and
// says whether it held.
func WaitFor(timeout time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		if cond() {
			return true
		}
		time.Sleep(250 * time.Millisecond)
	}
	return cond()
}

// ReadLog is p's log so far.
func ReadLog(t testing.TB, p *Proc) string {
	t.Helper()
	b, err := os.ReadFile(p.Log)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// InNetnsDo runs f on an OS thread inside network namespace ns (the sockets
// it opens stay there).
func InNetnsDo(t testing.TB, ns string, f func()) {
	t.Helper()
	done := make(chan struct{})
	go func() {
		defer close(done)
		runtime.LockOSThread() // never unlocked: the thread ends with the goroutine
		fd, err := unix.Open("/var/run/netns/"+ns, unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			t.Error(err)
			return
		}
		defer unix.Close(fd)
		if err := unix.Setns(fd, unix.CLONE_NEWNET); err != nil {
			t.Error(err)
			return
		}
		f()
	}()
	<-done
}
