package daemon

import (
	"log/slog"
	"os"
	"sync"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// The owner loop sleeps until the next thing that is due, and only that:
// the engine's next poll or slew end, pool maintenance while there are
// pools, the drift file while there is one to write, and, only while
// something outside the engine's schedule reads time-dependent state, once
// a minute (dutyInterval). When nothing is due it sleeps until an event
// comes. An idle client at a long poll used to wake at least once a minute
// for nothing (docs/benchmarks.md, "Client CPU").

// dutyInterval is the longest the owner sleeps while something needs the
// engine looked at between polls (periodicDuty).
const dutyInterval = time.Minute

// driftInterval is how often the drift file is written while the clock is
// disciplined (and on shutdown).
const driftInterval = time.Hour

// dueTimes are the owner's own deadlines, on the monotonic clock; zero is
// "not due at all".
type dueTimes struct {
	maint   time.Time // the next pool maintenance
	drift   time.Time // the next drift file write
	publish time.Time // a snapshot deferred until now at the latest (deferPublish)
}

// wakeIn is how long to sleep from now until the earliest of engine (the
// engine's next wake-up, as a duration from now; ok false when it has
// none), the deadlines in due (zero ones ignored) and, when cap > 0, cap.
// It returns false when nothing at all is due: sleep until an event. A
// deadline already past gives the shortest sleep, a millisecond.
func wakeIn(now time.Time, engine time.Duration, ok bool, cap time.Duration, due ...time.Time) (time.Duration, bool) {
	var wait time.Duration
	have := false
	take := func(w time.Duration) {
		if !have || w < wait {
			wait, have = w, true
		}
	}
	if ok {
		take(engine)
	}
	if cap > 0 {
		take(cap)
	}
	for _, t := range due {
		if !t.IsZero() {
			take(t.Sub(now))
		}
	}
	if !have {
		return 0, false
	}
	return max(wait, time.Millisecond), true
}

// wakeTimer is the owner loop's timer. It is a timerfd the netpoller
// watches, not a Go timer: every Go timer that fires also wakes the
// runtime's sysmon thread, which sleeps until the next timer and then polls
// a few times before sleeping again. For an idle client that was most of
// its wake-ups. A kernel timer is what chronyd's select() timeout is too.
// Where a timerfd cannot be had (or armed: a seccomp filter without
// timerfd_settime), it falls back to a Go timer.
type wakeTimer struct {
	log  *slog.Logger
	fd   int
	file *os.File
	c    chan struct{} // timerfd expiries, buffered 1
	wg   sync.WaitGroup

	goT *time.Timer // the fallback; nil while the timerfd works

	// The timerfd's deadline (monotonic), zero when disarmed: a Reset to
	// the same deadline (the next poll, seen again after a reply) leaves
	// it alone, sparing a system call.
	deadline time.Time
}

// sameDeadline is how close two deadlines must be to count as one: the
// engine's next event, read again, moves by the clock readings' jitter.
const sameDeadline = 100 * time.Microsecond

func newWakeTimer(log *slog.Logger) *wakeTimer {
	w := &wakeTimer{log: log, fd: -1, c: make(chan struct{}, 1)}
	fd, err := unix.TimerfdCreate(unix.CLOCK_MONOTONIC, unix.TFD_NONBLOCK|unix.TFD_CLOEXEC)
	if err != nil {
		log.Debug("no timerfd: the owner loop sleeps on a Go timer", "err", err)
		w.fallback()
		return w
	}
	// Non-blocking: os.NewFile hands it to the netpoller.
	w.fd, w.file = fd, os.NewFile(uintptr(fd), "gnomond-wake")
	rc, err := w.file.SyscallConn()
	if err != nil {
		_ = w.file.Close()
		w.fd, w.file = -1, nil
		w.fallback()
		return w
	}
	w.wg.Add(1)
	go func() {
		defer w.wg.Done()
		var buf [8]byte
		for {
			got := false
			err := rc.Read(func(fd uintptr) bool {
				// Raw: a blocking-syscall entry would wake sysmon, the
				// very thing this timer avoids; the fd never blocks.
				_, _, e := unix.RawSyscall(unix.SYS_READ, fd, uintptr(unsafe.Pointer(&buf[0])), uintptr(len(buf)))
				switch e {
				case 0:
					got = true
					return true
				case unix.EAGAIN:
					return false // not expired (re-armed meanwhile): wait
				}
				return true // EINTR and the like: look again
			})
			if err != nil {
				return // closed
			}
			if got {
				select {
				case w.c <- struct{}{}:
				default:
				}
			}
		}
	}()
	return w
}

func (w *wakeTimer) fallback() {
	w.goT = time.NewTimer(time.Hour)
	w.goT.Stop()
}

// C is the channel an expiry arrives on; the Go timer's, in the fallback.
func (w *wakeTimer) C() (<-chan struct{}, <-chan time.Time) {
	if w.goT != nil {
		return nil, w.goT.C
	}
	return w.c, nil
}

// Reset arms the timer to fire once after d, or disarms it when !armed. An
// expiry not yet taken from C is dropped.
func (w *wakeTimer) Reset(d time.Duration, armed bool) {
	if w.goT != nil {
		if armed {
			w.goT.Reset(d)
		} else {
			w.goT.Stop()
		}
		return
	}
	var deadline time.Time
	if armed {
		now := time.Now()
		deadline = now.Add(d)
		if !w.deadline.IsZero() && w.deadline.After(now) && absDur(deadline.Sub(w.deadline)) < sameDeadline {
			return // armed for this already, not yet expired
		}
	} else if w.deadline.IsZero() {
		return // disarmed already
	}
	w.deadline = deadline
	select {
	case <-w.c:
	default:
	}
	var spec unix.ItimerSpec // zero: disarmed
	if armed {
		spec.Value = unix.NsecToTimespec(max(d, time.Nanosecond).Nanoseconds())
	}
	// Raw, for the same reason as the read; it never blocks.
	_, _, e := unix.RawSyscall6(unix.SYS_TIMERFD_SETTIME, uintptr(w.fd), 0, uintptr(unsafe.Pointer(&spec)), 0, 0, 0)
	if e != 0 {
		w.log.Warn("cannot arm the timerfd: the owner loop sleeps on a Go timer from now on", "err", e)
		w.stopFD()
		w.fallback()
		w.Reset(d, armed)
	}
}

func absDur(d time.Duration) time.Duration {
	if d < 0 {
		return -d
	}
	return d
}

// Stop releases the timer.
func (w *wakeTimer) Stop() {
	if w.goT != nil {
		w.goT.Stop()
	}
	w.stopFD()
}

func (w *wakeTimer) stopFD() {
	if w.file != nil {
		_ = w.file.Close()
		w.wg.Wait()
		w.file, w.fd = nil, -1
	}
}
