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
// Readers on other goroutines (the daemon's NTP server workers) get a
// Mapping by value, published by the owner after every change.
type Virtual struct {
	base   Reader
	maxPPM float64
	m      Mapping
	status Status
}

// Mapping is a Virtual clock's correction as one value: everything Map
// needs, so that a copy can be handed to readers that must not touch the
// Virtual itself. The zero Mapping is no correction.
type Mapping struct {
	rawRef  time.Time     // base reading at the last re-anchoring
	corrRef time.Duration // correction at rawRef
	freqPPM float64       // frequency of the correction
}

// Map converts a reading of the base clock into the virtual clock's time.
func (m Mapping) Map(raw time.Time) time.Time { return raw.Add(m.Correction(raw)) }

// Correction is what the virtual clock adds to the base clock's reading
// at raw.
func (m Mapping) Correction(raw time.Time) time.Duration {
	return m.corrRef + time.Duration(float64(raw.Sub(m.rawRef))*m.freqPPM/1e6)
}

// NewVirtual returns a Virtual over base with no correction.
func NewVirtual(base Reader) *Virtual {
	return &Virtual{base: base, maxPPM: 100000, m: Mapping{rawRef: base.Now()}}
}

// Mapping returns the current correction by value.
func (v *Virtual) Mapping() Mapping { return v.m }

// Map converts a reading of the base clock (for example a kernel packet
// timestamp) into this clock's time.
func (v *Virtual) Map(raw time.Time) time.Time { return v.m.Map(raw) }

// Correction is what this clock adds to the base clock's reading at raw:
// minus the base clock's error as far as the engine knows it.
func (v *Virtual) Correction(raw time.Time) time.Duration { return v.m.Correction(raw) }

// FrequencyPPM is the correction's frequency.
func (v *Virtual) FrequencyPPM() float64 { return v.m.freqPPM }

func (v *Virtual) Now() time.Time { return v.Map(v.base.Now()) }

func (v *Virtual) SetFrequency(freqPPM float64) error {
	if math.IsNaN(freqPPM) || math.Abs(freqPPM) > v.maxPPM {
		return ErrFrequencyRange
	}
	raw := v.base.Now()
	v.m = Mapping{rawRef: raw, corrRef: v.m.Correction(raw), freqPPM: freqPPM}
	return nil
}

func (v *Virtual) Step(offset time.Duration) error {
	v.m.corrRef += offset
	return nil
}

func (v *Virtual) SetStatus(s Status) error { v.status = s; return nil }

// Status returns what was last set with SetStatus.
func (v *Virtual) Status() Status { return v.status }

func (v *Virtual) MaxFrequencyPPM() float64 { return v.maxPPM }
