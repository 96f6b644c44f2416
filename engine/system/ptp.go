package system

import (
	"time"

	"gnomon.dev/gnomon/engine/ptp"
)

// PTP ports as external sources: the glue between engine/ptp's output
// and AddExternal/ExternalSample, shared by the daemon and the simulator.

// PTPRefID is the reference ID of a PTP source ("PTP", as chrony's PHC
// refclock names it by default).
const PTPRefID uint32 = 'P'<<24 | 'T'<<16 | 'P'<<8

// PTPUsable says whether a port in state st measures the master: SLAVE,
// and UNCALIBRATED (the port's own servo has not locked yet, but the
// offsets against the clock that timestamps are valid: the engine's
// sample is made from those, not from the servo's clock).
func PTPUsable(st ptp.PortState) bool {
	return st == ptp.StateSlave || st == ptp.StateUncalibrated
}

// PTPSample turns a port's measurement into an external sample of the
// clock that timestamps. correction is how far the port's own clock (a
// virtual clock over the timestamping one) had been corrected when the
// measurement was made (clock.Virtual.Correction, zero without one):
// the measurement is of the port's clock, and the engine's sample must be
// of the timestamping clock.
func PTPSample(m ptp.Measurement, st *ptp.Status, correction time.Duration) ExternalSample {
	return ExternalSample{
		Local:          m.Time.Add(-correction),
		Ref:            m.Time.Add(m.Offset),
		Delay:          2 * m.PathDelay,
		RootDispersion: PTPAccuracy(st.Parent.GMQuality.Accuracy),
		Stratum:        PTPStratum(st.Parent.GMQuality.Class, st.Current.StepsRemoved),
		Leap:           m.Leap,
	}
}

// PHCSample is a comparison of a PHC that a PTP port disciplines with the
// system clock (PTP_SYS_OFFSET*), as phc2sys makes it: at system time sys
// the PHC read sys + phcMinusSys, with uncertainty the half-width of the
// narrowest reading. The grandmaster's distance is the port's: its mean
// path delay and newest offset (how far the PHC may still be from the
// master) go into the root delay and dispersion.
func PHCSample(sys time.Time, phcMinusSys, uncertainty time.Duration, st *ptp.Status) ExternalSample {
	off := st.Offset
	if off < 0 {
		off = -off
	}
	return ExternalSample{
		Local:          sys,
		Ref:            sys.Add(phcMinusSys),
		Delay:          2 * uncertainty,
		Dispersion:     uncertainty,
		RootDelay:      2 * st.MeanPathDelay,
		RootDispersion: PTPAccuracy(st.Parent.GMQuality.Accuracy) + off,
		Stratum:        PTPStratum(st.Parent.GMQuality.Class, st.Current.StepsRemoved),
		Leap:           st.Leap(),
	}
}

// PTPAccuracy is a grandmaster's clockAccuracy (1588-2019 table 5) as a
// root dispersion; unknown (0xFE) and reserved values give zero.
func PTPAccuracy(a uint8) time.Duration {
	// 0x17 is 1 ps; the values then alternate 2.5 and 4 times the one
	// before (1 ps, 2.5 ps, 10 ps, 25 ps, ..., 0x2F 1 s); 0x30 is 10 s and
	// 0x31 more than that.
	if a < 0x17 || a > 0x31 {
		return 0
	}
	if a >= 0x30 {
		return 10 * time.Second
	}
	d := float64(time.Nanosecond) / 1000
	for i := uint8(0x17); i < a; i++ {
		if (i-0x17)%2 == 0 {
			d *= 2.5
		} else {
			d *= 4
		}
	}
	return time.Duration(d)
}
