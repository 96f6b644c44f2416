package sysclock

import (
	"time"

	"gnomon.dev/gnomon/engine/clock"
)

// ReadOnly is a clock.Clock that reads R and refuses every write with
// clock.ErrReadOnly: for paths that must never change the clock.
type ReadOnly struct {
	R clock.Reader
}

var _ clock.Clock = ReadOnly{}

// Now reads the wrapped clock.
func (r ReadOnly) Now() time.Time { return r.R.Now() }

// SetFrequency refuses.
func (ReadOnly) SetFrequency(float64) error { return clock.ErrReadOnly }

// Step refuses.
func (ReadOnly) Step(time.Duration) error { return clock.ErrReadOnly }

// SetStatus refuses.
func (ReadOnly) SetStatus(clock.Status) error { return clock.ErrReadOnly }

// MaxFrequencyPPM is 0: no frequency can be set.
func (ReadOnly) MaxFrequencyPPM() float64 { return 0 }
