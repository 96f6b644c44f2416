// Package clock defines the Clock that the engine drives, and two clocks that
// need no operating system: Virtual, a software-corrected view of another
// clock (the daemon's observe mode, like chronyd -x), and Sim, a simulated
// oscillator with a frequency error, random-walk wander and read noise.
//
// The real Linux clock (adjtimex / clock_adjtime) lives in service/.
package clock

import (
	"errors"
	"time"

	"gnomon.dev/gnomon/engine/sample"
)

// Clock is the clock the engine disciplines.
//
// The engine slews by changing the frequency for a known time, as chrony
// does, rather than by handing an offset to the kernel's own slewing: that
// keeps the clock's trajectory exactly known to the engine, which corrects
// its stored measurements by it. So a Clock only needs to step and to run at
// a given frequency.
type Clock interface {
	// Now reads the clock.
	Now() time.Time
	// SetFrequency sets the clock's total frequency correction in parts
	// per million relative to its free-running rate; positive makes it
	// run faster. Values beyond MaxFrequencyPPM are an error.
	SetFrequency(freqPPM float64) error
	// Step jumps the clock by offset (positive moves it forward).
	Step(offset time.Duration) error
	// SetStatus hands the synchronization status to whoever else reads
	// it (the kernel, for timedatectl and other daemons).
	SetStatus(Status) error
	// MaxFrequencyPPM is the largest |frequency| SetFrequency accepts.
	MaxFrequencyPPM() float64
}

// Status is what the kernel's NTP state carries: whether the clock is
// synchronized, a leap second armed for the end of the current UTC day, and
// the error bounds.
type Status struct {
	Synchronized bool
	// Leap is LeapInsert or LeapDelete to have the clock insert or delete
	// a second at the next UTC midnight, LeapNone otherwise.
	Leap sample.Leap
	// MaxError bounds the clock's error; EstError estimates it.
	MaxError time.Duration
	EstError time.Duration
}

// ErrReadOnly is returned by a clock that may only be read.
var ErrReadOnly = errors.New("clock: read-only")

// ErrFrequencyRange is returned when a frequency exceeds MaxFrequencyPPM.
var ErrFrequencyRange = errors.New("clock: frequency out of range")

// Reader is anything that can tell the time.
type Reader interface {
	Now() time.Time
}

// Scale returns d stretched by a frequency of freqPPM: d*(1+freqPPM/1e6).
func Scale(d time.Duration, freqPPM float64) time.Duration {
	return d + time.Duration(float64(d)*freqPPM/1e6)
}
