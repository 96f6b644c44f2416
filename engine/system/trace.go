package system

import (
	"time"

	"gnomon.dev/gnomon/engine/discipline"
)

// TraceEvent is one step of the engine as a trace records it (Config.Trace):
// a sample taken from a source, or a clock update. The daemon writes them
// out on request (GNOMON_ENGINE_TRACE) so that a real run can be compared
// with what the engine believed at each moment.
type TraceEvent struct {
	Kind string    // "sample" or "update"
	At   time.Time // engine (cooked) time
	// A sample: its source, offset and delay as the engine took them (on
	// the interleaved scale once the lead is known), whether it came from
	// an interleaved reply, and half the server's transmit lead.
	Source      string
	Offset      time.Duration
	Delay       time.Duration
	Interleaved bool
	LeadHalf    time.Duration
	// An update: the estimate handed to the discipline, whether the joint
	// filter made it, and the discipline's state after it.
	EstOffset, EstOffsetSD time.Duration
	EstFreqPPM, EstFreqSD  float64
	Kalman                 bool
	FreqPPM, FreqSDPPM     float64
	FreqKnown              bool
	Remaining              time.Duration // still to slew, after the update
	Combined               int
}

func (s *System) trace(ev TraceEvent) {
	if s.cfg.Trace != nil {
		s.cfg.Trace(ev)
	}
}

func (s *System) traceUpdate(raw, now time.Time, e discipline.Estimate) {
	n := 0
	for _, w := range s.sel.Weights {
		if w > 0 {
			n++
		}
	}
	s.trace(TraceEvent{Kind: "update", At: now,
		EstOffset: time.Duration(e.Offset * 1e9), EstOffsetSD: time.Duration(e.OffsetSD * 1e9),
		EstFreqPPM: e.FreqPPM, EstFreqSD: e.FreqSD, Kalman: s.kal != nil && s.kal.Len() > 0,
		FreqPPM: s.disc.FrequencyPPM(), FreqSDPPM: s.disc.FrequencySD(), FreqKnown: s.disc.FrequencyKnown(),
		Remaining: time.Duration(s.disc.Remaining(raw) * 1e9), Combined: n})
}
