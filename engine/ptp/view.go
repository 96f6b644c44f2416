package ptp

import (
	"time"

	"gnomon.dev/gnomon/engine/sample"
)

// View is a PTP port as every view (D-Bus, gnomonctl, logs) shows it: a
// flat copy of what Status holds, with the service's facts added.
type View struct {
	Interface string
	Transport string
	Hardware  bool
	Domain    uint8
	Identity  PortIdentity
	State     PortState
	Decision  Decision
	Parent    PortIdentity
	// Grandmaster and its attributes, as the parent announces them.
	Grandmaster   ClockIdentity
	GMPriority1   uint8
	GMPriority2   uint8
	GMClass       uint8
	StepsRemoved  uint16
	Offset        time.Duration // master minus local, newest measurement
	MeanPathDelay time.Duration
	LastSample    time.Time
	Servo         ServoState
	FreqPPB       float64
	// Correction is how far the clock the port disciplines is from the
	// clock that timestamps (observe mode: the system clock's error as
	// the port measures it, with the sign of a correction).
	Correction     time.Duration
	UTCOffset      int16
	UTCOffsetValid bool
	PTPTimescale   bool
	Leap           sample.Leap
	ForeignMasters int
	Counters       Counters
	// PHCFollow is the PHC's following of the system clock (phcservo.go),
	// nil unless configured on a hardware port.
	PHCFollow *FollowStatus
	// IEEE8021AS: a gPTP or automotive port (majorSdoId 1); GPTP is its
	// link (asCapable, neighborRateRatio, neighborPropDelay:
	// gptp_link.go), zero for other profiles. The port's current Sync
	// and Pdelay_Req intervals (log2 s).
	IEEE8021AS           bool
	GPTP                 GPTPLink
	LogSyncInterval      int8
	LogPdelayReqInterval int8
}

// ViewOf flattens a Status.
func ViewOf(s *Status) View {
	return View{Domain: s.Default.Domain, Identity: s.Port.Identity, State: s.Port.State, Decision: s.Decision,
		Parent: s.Parent.ParentPort, Grandmaster: s.Parent.GMIdentity, GMPriority1: s.Parent.GMPriority1,
		GMPriority2: s.Parent.GMPriority2, GMClass: s.Parent.GMQuality.Class, StepsRemoved: s.Current.StepsRemoved,
		Offset: s.Offset, MeanPathDelay: s.MeanPathDelay, LastSample: s.LastSample, Servo: s.Servo, FreqPPB: s.FreqPPB,
		UTCOffset: s.TimeProperties.CurrentUTCOffset, UTCOffsetValid: s.TimeProperties.UTCOffsetValid(),
		PTPTimescale: s.TimeProperties.PTPTimescale(), Leap: s.Leap(), ForeignMasters: s.ForeignMasters, Counters: s.Counters, GPTP: s.GPTP,
		IEEE8021AS: s.Default.SdoID>>8 == 1, LogSyncInterval: s.Port.LogSyncInterval, LogPdelayReqInterval: s.Port.LogMinPdelayReqInterval}
}
