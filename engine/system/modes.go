package system

import (
	"time"

	"gnomon.dev/gnomon/engine/ntp"
)

// The two modes of an NTP exchange measure the same offset with different
// biases. A server stamps a basic reply's transmit time before sending it,
// so a basic sample reads the offset low by half that lead (14 µs of lead
// through the relays of make bench-accuracy, chronyd 4.3 on this machine);
// the interleaved mode sends the kernel's timestamp of when the previous
// reply left, and has no such bias. The engine turns the mode on once the
// frequency is known and off at long polls (Wakeup), and a reply lost
// makes a server answer the next request in the basic mode: taken as they
// come, a source's samples step by half the lead at each change. The
// first step, just as the frequency estimate has formed, was read partly
// as a frequency: in the simulator, at a 16 s poll, the clock overshot to
// +4.5 µs two minutes after the switch and took ten more to settle
// (docs/accuracy.md, "Real time").
//
// The lead is measured exactly: an interleaved reply that completes an
// exchange whose basic reply was already used (ntp holds it back,
// ErrNoSample) gives the server's transmit time of that one exchange both
// ways, and their difference is the lead. From then on the source's
// samples are all on the interleaved mode's scale: the ones held are moved
// up by half the lead once (and the joint filter's offset by the source's
// share of the combination), and every later basic sample is corrected by
// it as it comes in. A later measurement replaces the lead.

// interleavedCount is how many interleaved replies src has taken; 0 for
// a source without the mode.
func interleavedCount(src *source) uint64 {
	if x, ok := src.ntp.(interface{ InterleavedCount() uint64 }); ok {
		return x.InterleavedCount()
	}
	return 0
}

// maxLead bounds a plausible transmit-timestamp lead: anything larger is
// not the same exchange.
const maxLead = time.Millisecond

// learnLead takes the lead from an interleaved reply (data) that completed
// the exchange src last measured from its basic reply, and moves src's
// samples onto the interleaved scale the first time.
func (s *System) learnLead(src *source, data []byte) {
	var p ntp.Packet
	if ntp.Parse(data, &p) != nil {
		return
	}
	ex, ok := src.ntp.LastExchange()
	if !ok {
		return
	}
	lead := p.TransmitTime.Time(ex.T1).Sub(ex.T3)
	if lead.Abs() > maxLead {
		return
	}
	first := !src.leadKnown
	src.leadHalf, src.leadKnown = lead/2, true
	if !first {
		return
	}
	d := src.leadHalf.Seconds() // the held samples read this much low
	src.last.Offset += src.leadHalf
	if src.stats.Len() > 0 {
		src.stats.Adjust(src.last.Time, -d, 0)
	}
	if s.kal != nil && s.kal.Len() > 0 && src.weight > 0 {
		s.kal.Adjust(src.last.Time, -src.weight*d, 0)
	}
}
