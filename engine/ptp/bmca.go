package ptp

// The best master clock algorithm of IEEE 1588-2019 §9.3: the dataset
// comparison (figures 34 and 35) and the state decision (figure 33).

// Candidate is what the BMCA compares: the grandmaster's attributes and
// the topology of the path an Announce took (§9.3.4).
type Candidate struct {
	GMPriority1  uint8
	GMQuality    ClockQuality
	GMPriority2  uint8
	GMIdentity   ClockIdentity
	StepsRemoved uint16
	// Sender is the Announce's sourcePortIdentity, Receiver the port that
	// received it. For the local clock (D0) both are the clock's identity
	// with port number 0.
	Sender, Receiver PortIdentity
}

// CandidateOf makes the Candidate of an Announce received by port rx.
func CandidateOf(a *Announce, rx PortIdentity) Candidate {
	return Candidate{GMPriority1: a.GMPriority1, GMQuality: a.GMQuality, GMPriority2: a.GMPriority2,
		GMIdentity: a.GMIdentity, StepsRemoved: a.StepsRemoved, Sender: a.Source, Receiver: rx}
}

// LocalCandidate is D0: the local clock as a grandmaster.
func LocalCandidate(d *DefaultDS) Candidate {
	self := PortIdentity{Clock: d.Identity}
	return Candidate{GMPriority1: d.Priority1, GMQuality: d.Quality, GMPriority2: d.Priority2,
		GMIdentity: d.Identity, Sender: self, Receiver: self}
}

// Comparison results: A better than B, A better by topology, equal (or
// the comparison failed: the same Announce twice, error-1 and error-2 of
// figure 35), and the mirror images.
const (
	BBetter           = -2
	BBetterByTopology = -1
	Unordered         = 0
	ABetterByTopology = 1
	ABetter           = 2
)

// Compare is the dataset comparison algorithm (§9.3.4): positive when a is
// better than b (ABetter, or ABetterByTopology when they describe the
// same grandmaster and a's path is preferred), negative when b is better.
func Compare(a, b *Candidate) int {
	if a.GMIdentity != b.GMIdentity {
		// Figure 34: the grandmasters' attributes, lowest wins.
		switch {
		case a.GMPriority1 != b.GMPriority1:
			return lower(a.GMPriority1 < b.GMPriority1)
		case a.GMQuality.Class != b.GMQuality.Class:
			return lower(a.GMQuality.Class < b.GMQuality.Class)
		case a.GMQuality.Accuracy != b.GMQuality.Accuracy:
			return lower(a.GMQuality.Accuracy < b.GMQuality.Accuracy)
		case a.GMQuality.OffsetScaledLogVariance != b.GMQuality.OffsetScaledLogVariance:
			return lower(a.GMQuality.OffsetScaledLogVariance < b.GMQuality.OffsetScaledLogVariance)
		case a.GMPriority2 != b.GMPriority2:
			return lower(a.GMPriority2 < b.GMPriority2)
		}
		return lower(a.GMIdentity.Compare(b.GMIdentity) < 0)
	}
	// Figure 35: the same grandmaster; compare the paths.
	sa, sb := int(a.StepsRemoved), int(b.StepsRemoved)
	switch {
	case sa > sb+1:
		return BBetter
	case sa+1 < sb:
		return ABetter
	case sa > sb:
		switch c := a.Receiver.Compare(a.Sender); {
		case c < 0:
			return BBetter
		case c > 0:
			return BBetterByTopology
		}
		return Unordered // error-1: a is our own Announce
	case sa < sb:
		switch c := b.Receiver.Compare(b.Sender); {
		case c < 0:
			return ABetter
		case c > 0:
			return ABetterByTopology
		}
		return Unordered
	}
	switch c := a.Sender.Compare(b.Sender); {
	case c < 0:
		return ABetterByTopology
	case c > 0:
		return BBetterByTopology
	}
	switch {
	case a.Receiver.Port < b.Receiver.Port:
		return ABetterByTopology
	case a.Receiver.Port > b.Receiver.Port:
		return BBetterByTopology
	}
	return Unordered // error-2: the same Announce twice
}

func lower(aLower bool) int {
	if aLower {
		return ABetter
	}
	return BBetter
}

// Decision is the recommended state's code in figure 33.
type Decision uint8

// The decisions of figure 33, plus staying in LISTENING (no qualified
// foreign master and the port may not, or may not yet, be master).
const (
	DecisionNone Decision = iota
	DecisionM1            // grandmaster, clockClass 1..127, D0 better than Erbest
	DecisionM2            // grandmaster, D0 better than Ebest
	DecisionM3            // master of a path below another port's Ebest
	DecisionP1            // passive, clockClass 1..127, Erbest better
	DecisionP2            // passive, Erbest is not better by topology
	DecisionS1            // slave to Ebest received on this port
	DecisionListening
)

func (d Decision) String() string {
	return [...]string{"none", "M1", "M2", "M3", "P1", "P2", "S1", "LISTENING"}[d]
}

// State is the port state a decision recommends.
func (d Decision) State() PortState {
	switch d {
	case DecisionM1, DecisionM2, DecisionM3:
		return StateMaster
	case DecisionP1, DecisionP2:
		return StatePassive
	case DecisionS1:
		return StateSlave
	}
	return StateListening
}

// Decide is the state decision algorithm (figure 33) for one port. d0 is
// the local clock, erbest the best qualified Announce this port received
// (nil when none), ebest the best over every port of the clock (nil when
// none; for an ordinary clock it is erbest), ebestHere whether ebest came
// in on this port. A slave-only clock never recommends a master state;
// a master-only port never recommends slave or passive. (Figure 33's
// "stay LISTENING while no Announce was qualified and the announce receipt
// timeout has not expired" is the port's rule: it does not call Decide
// then.)
func Decide(d0 *Candidate, clockClass uint8, erbest, ebest *Candidate, ebestHere bool, slaveOnly, masterOnly bool) Decision {
	if masterOnly {
		if clockClass >= 1 && clockClass <= 127 {
			return DecisionM1
		}
		return DecisionM2
	}
	if slaveOnly {
		if ebest != nil && ebestHere {
			return DecisionS1
		}
		return DecisionListening
	}
	if clockClass >= 1 && clockClass <= 127 {
		if erbest == nil || Compare(d0, erbest) > 0 {
			return DecisionM1
		}
		return DecisionP1
	}
	if ebest == nil || Compare(d0, ebest) > 0 {
		return DecisionM2
	}
	if ebestHere {
		return DecisionS1
	}
	if erbest != nil && Compare(ebest, erbest) == ABetterByTopology {
		return DecisionP2
	}
	return DecisionM3
}
