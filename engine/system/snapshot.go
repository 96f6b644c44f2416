package system

import (
	"time"

	"gnomon.dev/gnomon/engine/ntp"
	"gnomon.dev/gnomon/engine/ptp"
	"gnomon.dev/gnomon/engine/sample"
	"gnomon.dev/gnomon/engine/selection"
)

// State is the system's condition in one word.
type State string

const (
	StateUnsynchronized State = "unsynchronized"
	StateSynchronized   State = "synchronized"
	// StateHoldover: synchronized before, no source selectable now; the
	// clock runs on its last frequency while the error bound grows.
	StateHoldover State = "holdover"
	// StatePanic: the sources agree on an offset above the panic
	// threshold, which the engine refuses to correct.
	StatePanic State = "panic"
)

// SourceSnapshot is one source as every view shows it.
type SourceSnapshot struct {
	ID      ID
	Name    string
	Address string
	Kind    string
	Origin  string
	// Protocol state ("init", "reachable", "unreachable", "denied") and
	// selection state ("selected", "combined", "candidate", "falseticker",
	// "outlier", "too-far", "noselect", or "none" before any sample).
	Reach     uint8
	Protocol  string
	Selection string
	Weight    float64
	// The clock filter's pick (RFC 5905: the minimum-delay measurement of
	// the last eight).
	Offset, Delay, Jitter time.Duration
	Stratum               uint8
	RefID                 uint32
	Leap                  sample.Leap
	LastSample            time.Time
	// The regression's estimate: offset now, its error, the frequency.
	EstOffset, EstOffsetSD time.Duration
	FreqPPM, FreqSDPPM     float64
	Samples                int
	Poll                   int8
	// Exchange is the newest valid reply as it came (nil before one).
	Exchange    *ntp.Exchange
	Sent, Valid uint64
	LastError   string
	// Refclock is a reference clock's state, nil for other sources.
	Refclock *RefclockState
	// PTP is set for a PTP port (its Offset is from the master, its Delay
	// the mean path delay); the daemon adds these to the snapshot.
	PTP *ptp.View
}

// Snapshot is the engine's state, a value copy.
type Snapshot struct {
	Time         time.Time // engine time the snapshot was taken
	State        State
	Synchronized bool
	// The system peer, if any.
	SystemPeer ID
	PeerName   string
	Stratum    uint8 // ours: the peer's plus one, 16 when unsynchronized
	RefID      uint32
	RefTime    time.Time // last clock update
	Leap       sample.Leap
	// Offset is what the clock is still being slewed by (engine minus
	// clock reading); LastOffset what the last update measured.
	Offset, LastOffset time.Duration
	OffsetSD           time.Duration
	FreqPPM, FreqSDPPM float64
	RootDelay          time.Duration
	RootDispersion     time.Duration
	Jitter             time.Duration
	Steps              int
	Jumps              int
	Panic              string // why the offset was refused, in panic
	// Accuracy is the configured target; Reachable the error the best
	// selected source is expected to allow at its shortest poll (0 before
	// it is known); TargetOutOfReach says the target cannot be met on any
	// selected source, so the poll backs off towards maxpoll instead of
	// sending packets that cannot meet it.
	Accuracy, Reachable time.Duration
	TargetOutOfReach    bool
	LastError           string
	Sources             []SourceSnapshot
}

// RootDistance is RootDelay/2 + RootDispersion.
func (s *Snapshot) RootDistance() time.Duration { return s.RootDelay/2 + s.RootDispersion }

// ServerState is what our NTP server answers with.
func (s *Snapshot) ServerState(precision int8) ntp.ServerState {
	st := ntp.ServerState{
		Leap:           s.Leap,
		Stratum:        s.Stratum,
		Precision:      precision,
		RootDelay:      s.RootDelay,
		RootDispersion: s.RootDispersion,
		ReferenceID:    s.RefID,
		ReferenceTime:  s.RefTime,
	}
	if !s.Synchronized {
		st.Leap = sample.LeapUnsync
		st.Stratum = 16
	}
	return st
}

func selectionName(st selection.State) string {
	switch st {
	case selection.StateNone:
		return "none"
	case selection.StateNoSelect:
		return "noselect"
	case selection.StateTooFar:
		return "too-far"
	case selection.StateFalseticker:
		return "falseticker"
	case selection.StateOutlier:
		return "outlier"
	case selection.StateCandidate:
		return "candidate"
	case selection.StateCombined:
		return "combined"
	case selection.StateSelected:
		return "selected"
	}
	return st.String()
}

// Snapshot returns the engine's state at clock reading raw.
func (s *System) Snapshot(raw time.Time) Snapshot {
	now := s.disc.Cook(raw)
	sn := Snapshot{
		Time:       now,
		State:      StateUnsynchronized,
		Stratum:    16,
		Offset:     time.Duration(s.disc.Remaining(raw) * 1e9),
		LastOffset: time.Duration(s.disc.LastOffset() * 1e9),
		OffsetSD:   time.Duration(s.offsetSD * 1e9),
		FreqPPM:    s.disc.FrequencyPPM(),
		FreqSDPPM:  s.disc.FrequencySD(),
		Steps:      s.disc.Steps(),
		Jumps:      s.jumps,
		RefTime:    s.updateAt,
		Accuracy:   s.cfg.Accuracy,
	}
	sn.Reachable, sn.TargetOutOfReach = s.reachable()
	if s.panicErr != nil {
		sn.State = StatePanic
		sn.Panic = s.panicErr.Error()
	}
	if s.lastErr != nil {
		sn.LastError = s.lastErr.Error()
	}
	if s.synced {
		sn.Synchronized = true
		sn.State = StateSynchronized
		if !s.anySelectable() {
			sn.State = StateHoldover
		}
		sn.Leap = s.leap
		sn.Stratum = min(s.peerSample.Stratum+1, 16)
		sn.RootDelay, sn.RootDispersion = s.rootDelayDisp(now)
		sn.Jitter = time.Duration(s.sysJitter * 1e9)
		if s.peer != nil {
			sn.SystemPeer = s.peer.id
			sn.PeerName = s.peer.cfg.Name
			sn.RefID = s.peer.cfg.RefID
		}
	}
	sn.Sources = make([]SourceSnapshot, 0, len(s.sources))
	// The sources' exchanges in one allocation rather than one each: a
	// snapshot is made after every poll and reply (its capacity is fixed,
	// so the pointers into it stay valid).
	var exchanges []ntp.Exchange
	for _, src := range s.sources {
		sent, valid := src.ntp.Counts()
		ss := SourceSnapshot{
			ID:         src.id,
			Name:       src.cfg.Name,
			Address:    src.cfg.Address,
			Kind:       src.cfg.Kind,
			Origin:     src.cfg.Origin,
			Reach:      src.ntp.Reach(),
			Protocol:   src.ntp.State().String(),
			Selection:  selectionName(src.state),
			Weight:     src.weight,
			Offset:     src.last.Offset,
			Delay:      src.last.Delay,
			Jitter:     src.ntp.Jitter(),
			Stratum:    src.last.Stratum,
			RefID:      src.last.RefID,
			Leap:       src.last.Leap,
			LastSample: src.last.Time,
			Poll:       src.ntp.Poll(),
			Sent:       sent,
			Valid:      valid,
			Samples:    src.stats.Len(),
			Refclock:   src.refclockSnapshot(),
		}
		if x, ok := src.ntp.LastExchange(); ok {
			if exchanges == nil {
				exchanges = make([]ntp.Exchange, 0, len(s.sources))
			}
			exchanges = append(exchanges, x)
			ss.Exchange = &exchanges[len(exchanges)-1]
		}
		if f, ok := src.ntp.Filtered(); ok {
			ss.Offset, ss.Delay, ss.LastSample = f.Offset, f.Delay, f.Time
		}
		if err := src.ntp.LastError(); err != nil {
			ss.LastError = err.Error()
		}
		if e, ok := src.stats.Estimate(now); ok && src.hasEst {
			ss.EstOffset = time.Duration(e.Offset * 1e9)
			ss.EstOffsetSD = time.Duration(e.OffsetSD * 1e9)
			ss.FreqPPM = e.FreqPPM
			ss.FreqSDPPM = e.FreqSD
		}
		if src.ntp.State() == ntp.StateUnreachable {
			ss.Selection = "unreachable"
		}
		sn.Sources = append(sn.Sources, ss)
	}
	return sn
}

func (s *System) anySelectable() bool {
	for _, src := range s.sources {
		if src.ntp.Reach() != 0 && (src.state == selection.StateSelected || src.state == selection.StateCombined) {
			return true
		}
	}
	return false
}
