package clock

import (
	"math"
	"time"
)

// Virtual is a software clock layered over a base clock that it never
// writes: steps and frequency changes are kept as a correction applied to
// the base's readings. It is the daemon's observe mode, where the engine
// measures, selects and disciplines exactly as it would the system clock
// while the system clock stays untouched. Its correction is the measured
// error of the base clock.
//
// Virtual is not safe for concurrent use; the engine's owner serializes.
type Virtual struct {
	base    Reader
	maxPPM  float64
	rawRef  time.Time     // base reading at the last re-anchoring
	corrRef time.Duration // correction at rawRef
	freqPPM float64       // frequency of the correction
	status  Status
}

// NewVirtual returns a Virtual over base with no correction.
func NewVirtual(base Reader) *Virtual {
	return &Virtual{base: base, maxPPM: 100000, rawRef: base.Now()}
}

// Map converts a reading of the base clock (for example a kernel packet
// timestamp) into this clock's time.
func (v *Virtual) Map(raw time.Time) time.Time {
	return raw.Add(v.correction(raw))
}

func (v *Virtual) correction(raw time.Time) time.Duration {
	return v.corrRef + time.Duration(float64(raw.Sub(v.rawRef))*v.freqPPM/1e6)
}

// Correction is what this clock adds to the base clock's reading at raw:
// minus the base clock's error as far as the engine knows it.
func (v *Virtual) Correction(raw time.Time) time.Duration { return v.correction(raw) }

// FrequencyPPM is the correction's frequency.
func (v *Virtual) FrequencyPPM() float64 { return v.freqPPM }

func (v *Virtual) Now() time.Time { return v.Map(v.base.Now()) }

func (v *Virtual) SetFrequency(freqPPM float64) error {
	if math.IsNaN(freqPPM) || math.Abs(freqPPM) > v.maxPPM {
		return ErrFrequencyRange
	}
	raw := v.base.Now()
	v.corrRef = v.correction(raw)
	v.rawRef = raw
	v.freqPPM = freqPPM
	return nil
}

func (v *Virtual) Step(offset time.Duration) error {
	v.corrRef += offset
	return nil
}

func (v *Virtual) SetStatus(s Status) error { v.status = s; return nil }

// Status returns what was last set with SetStatus.
func (v *Virtual) Status() Status { return v.status }

func (v *Virtual) MaxFrequencyPPM() float64 { return v.maxPPM }
