package daemon

import (
	"encoding/binary"
	"fmt"
	"os"
	"sync"
	"time"

	"gnomon.dev/gnomon/engine/system"
)

// engineTrace is the engine's trace (system.Config.Trace) written to the
// file GNOMON_ENGINE_TRACE names, one line per sample and clock update,
// each with the system clock's reading and, in observe mode, the virtual
// clock's correction then: a benchmark aid (docs/accuracy.md, "Real
// time"), off unless asked for. nil without the variable. It also sets
// d.wireTrace, which writes each source datagram's raw system-clock times
// as the daemon took them: "tx" (user space, before the send), "txk" (the
// kernel's transmit timestamp), "rx" (kernel or user-space receive time),
// with the packet's origin, receive and transmit fields, so that a run can
// be matched datagram by datagram with the relays' own times
// (tests/relay_bench_test.go).
func (d *Daemon) engineTrace() func(system.TraceEvent) {
	path := os.Getenv("GNOMON_ENGINE_TRACE")
	if path == "" {
		return nil
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
	if err != nil {
		d.log.Warn("engine trace not written", "err", err)
		return nil
	}
	d.log.Info("writing the engine trace", "file", path)
	var mu sync.Mutex
	d.wireTrace = func(kind string, src system.ID, at time.Time, kernel bool, pkt []byte) {
		mu.Lock()
		defer mu.Unlock()
		var org, rec, xmt uint64
		if len(pkt) >= 48 {
			org, rec, xmt = binary.BigEndian.Uint64(pkt[24:]), binary.BigEndian.Uint64(pkt[32:]), binary.BigEndian.Uint64(pkt[40:])
		}
		addr := ""
		if ls := d.sources[src]; ls != nil {
			addr = ls.addr.String()
		}
		fmt.Fprintf(f, "%.6f %s src=%s at=%d kernel=%t org=%x rec=%x xmt=%x\n",
			float64(time.Now().UnixNano())/1e9, kind, addr, at.UnixNano(), kernel, org, rec, xmt)
	}
	return func(ev system.TraceEvent) {
		mu.Lock()
		defer mu.Unlock()
		now := time.Now().Round(0)
		var corr time.Duration
		if m := d.vmap.Load(); m != nil {
			corr = m.Correction(now)
		}
		switch ev.Kind {
		case "sample":
			fmt.Fprintf(f, "%.6f sample corr=%d at=%.6f src=%s off=%d delay=%d xl=%t lead=%d\n",
				float64(now.UnixNano())/1e9, corr, float64(ev.At.UnixNano())/1e9, ev.Source,
				ev.Offset, ev.Delay, ev.Interleaved, ev.LeadHalf)
		default:
			fmt.Fprintf(f, "%.6f update corr=%d est=%d estsd=%d estf=%.5f estfsd=%.5f kal=%t freq=%.5f freqsd=%.5f known=%t rem=%d n=%d\n",
				float64(now.UnixNano())/1e9, corr, ev.EstOffset, ev.EstOffsetSD, ev.EstFreqPPM, ev.EstFreqSD,
				ev.Kalman, ev.FreqPPM, ev.FreqSDPPM, ev.FreqKnown, ev.Remaining, ev.Combined)
		}
	}
}
