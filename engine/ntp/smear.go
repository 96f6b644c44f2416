package ntp

import (
	"time"

	"gnomon.dev/gnomon/engine/sample"
)

// Leap smearing of served time: a server with a smear hides a leap second
// from its clients by running its served time slower (insertion) or
// faster (deletion) by one second spread evenly over Window, centred on
// the leap (with a Window of 24 h, from noon before to noon after, like
// Google's and Amazon's public servers). Clients see no leap indicator and
// no jump; the served time is off UTC by up to half a second at the leap.
//
// The system clock itself still takes the leap (the kernel steps it back
// one second at midnight for an insertion): Smear finds that step in the
// wall clock against the monotonic clock, and keeps the served time
// continuous across it. If no step comes within two seconds of the leap,
// the clock is taken to handle the leap itself (a slewing clock) and the
// smear stops.

// MaxSmearWindow is the longest smear: half of it before the leap, and a
// leap is announced only on its own day.
const MaxSmearWindow = 24 * time.Hour

// Smear is one server's smear state, driven by the times it is handed.
// The zero value with Window set is ready.
type Smear struct {
	Window time.Duration

	leapAt   time.Time     // the midnight the leap happens at (on the POSIX scale)
	sign     time.Duration // +1 s insertion, -1 s deletion; 0 when idle
	applied  bool          // the clock took the leap (stepped)
	done     time.Time     // leapAt of the last finished (or abandoned) smear
	lastDiff time.Duration // wall - mono at the last call
	lastMono time.Duration
	lastWall time.Time
	haveLast bool
}

// leapDay reports the midnight ending wall's UTC day when that midnight
// starts a month (leap seconds are only inserted at the end of a month,
// in practice June and December).
func leapDay(wall time.Time) (time.Time, bool) {
	y, m, d := wall.UTC().Date()
	next := time.Date(y, m, d+1, 0, 0, 0, 0, time.UTC)
	return next, next.Day() == 1
}

// Correct returns what to add to the disciplined clock's reading wall
// (taken at monotonic time mono) to get the time to serve, and the leap
// indicator to serve instead of announced (the system's leap status).
func (s *Smear) Correct(wall time.Time, mono time.Duration, announced sample.Leap) (time.Duration, sample.Leap) {
	diff := time.Duration(wall.UnixNano()) - mono
	if s.haveLast && s.sign != 0 && !s.applied {
		// A step of about one second, the wrong way for the leap to be
		// undone, near the leap: the kernel's leap (an insertion steps
		// back, a deletion forward).
		// Between the last call (before the leap) and this one.
		jump := diff - s.lastDiff
		if (jump+s.sign).Abs() < smearTolerance(mono-s.lastMono) &&
			s.lastWall.Before(s.leapAt.Add(2*time.Second)) && !wall.Add(s.sign).Before(s.leapAt.Add(-2*time.Second)) {
			s.applied = true
		}
	}
	s.lastDiff, s.lastMono, s.lastWall, s.haveLast = diff, mono, wall, true

	if s.sign == 0 && (announced == sample.LeapInsert || announced == sample.LeapDelete) && s.Window > 0 {
		if at, ok := leapDay(wall); ok && !at.Equal(s.done) && at.Sub(wall) <= s.Window/2 {
			s.leapAt, s.applied = at, false
			s.sign = time.Second
			if announced == sample.LeapDelete {
				s.sign = -time.Second
			}
		}
	}
	if s.sign == 0 {
		return 0, announced
	}
	c := wall // the continuous time (no repeated or skipped second)
	if s.applied {
		c = wall.Add(s.sign)
	} else if wall.Sub(s.leapAt) > 2*time.Second {
		// No step: the clock takes the leap by itself; stop.
		s.finish()
		return 0, announced
	}
	start := s.leapAt.Add(-s.Window / 2)
	frac := float64(c.Sub(start)) / float64(s.Window)
	frac = max(0, min(1, frac))
	corr := c.Sub(wall) - time.Duration(frac*float64(s.sign))
	if frac >= 1 {
		s.finish()
	}
	return corr, sample.LeapNone
}

func (s *Smear) finish() {
	s.done, s.sign, s.applied = s.leapAt, 0, false
}

// Active reports whether a smear is under way.
func (s *Smear) Active() bool { return s.sign != 0 }

func smearTolerance(dMono time.Duration) time.Duration {
	return 300*time.Millisecond + time.Duration(float64(max(dMono, 0))*1e-3)
}
