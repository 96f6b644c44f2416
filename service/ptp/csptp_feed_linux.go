package ptp

import (
	eptp "gnomon.dev/gnomon/engine/ptp"
	"gnomon.dev/gnomon/engine/system"
)

// csptpSample turns a CSPTP client's measurement into a sample of the
// system clock for the engine (an external source, like a PTP port's):
// the server's time against the system clock's reading when its answer
// arrived, the round trip as the delay, and the server's grandmaster as
// a PTP port would take it: its clockAccuracy as the root dispersion,
// its clockClass and stepsRemoved (plus the hop to us) as the stratum
// (system.PTPStratum: class 6/7/13/14 a reference clock, others a local
// clock at stratum 10).
func csptpSample(m *eptp.Measurement, st *eptp.CSPTPStatus) system.ExternalSample {
	return system.ExternalSample{
		Local:          m.Time,
		Ref:            m.Time.Add(m.Offset),
		Delay:          2 * m.PathDelay,
		RootDispersion: system.PTPAccuracy(st.GMQuality.Accuracy),
		Stratum:        system.PTPStratum(st.GMQuality.Class, st.StepsRemoved+1),
		Leap:           m.Leap,
	}
}
