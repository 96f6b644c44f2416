package daemon

import (
	"math"
	"os"
	"runtime/debug"
	"sync"

	"gnomon.dev/gnomon/service/config"
	"gnomon.dev/gnomon/service/gcstat"
)

// The collector's setting for a gnomond that serves nothing (a client).
//
// By default the Go runtime collects at least every two minutes however
// little was allocated, and each collection walks the goroutines' stacks,
// which maps megabytes of the binary's tables back in (docs/benchmarks.md:
// an idle client's resident set went from 5.4 to 7.7 MiB at its first
// periodic collection) and wakes the runtime's threads. A client allocates
// a few kB per poll (about 4 MB an hour with 4 sources at a 16 s poll). So
// once it has first synchronized, a gnomond that serves nothing turns the
// proportional collector off (GOGC=off, which also ends the two-minute
// collections) and sets a soft memory limit of what the runtime needs
// (gcstat.InUse: what it holds less free heap pages) plus clientHeadroom
// instead: it collects once it holds that much more (every few minutes at
// a 16 s poll, every day or so at 1024 s), and after each collection the
// limit is set again from what it needs then, so a live heap that grows
// (more sources, a reload) moves the limit with it rather than making the
// collector run on and on. (Not from what it holds: the pages a
// collection has just freed would raise the limit a little every time.) After each
// collection the binary's read-only pages it touched are given back
// (trim.go). An explicit GOGC or GOMEMLIMIT in the environment wins: then
// nothing is changed. Servers keep the runtime's defaults: their
// allocations (NTS-KE handshakes) want the proportional collector.
const clientHeadroom = 1 << 20

// lowGC reports whether the client setting applies: nothing served (no
// [[server]], [[nts-ke-server]], [[ptp-port]] or [[csptp-server]], no
// socket passed by systemd) and neither GOGC nor GOMEMLIMIT set in the
// environment (getenv: os.Getenv, replaced in tests).
func lowGC(cfg *config.Config, listeners map[string][]*os.File, getenv func(string) string) bool {
	if getenv("GOGC") != "" || getenv("GOMEMLIMIT") != "" {
		return false
	}
	if len(cfg.Servers) > 0 || len(cfg.NTSKEServers) > 0 || len(cfg.PTPPorts) > 0 || len(cfg.CSPTPServers) > 0 {
		return false
	}
	for _, l := range listeners {
		if len(l) > 0 {
			return false
		}
	}
	return true
}

// The client setting's state, shared by the owner goroutine and the
// after-collection hook (the runtime's finalizer goroutine).
var (
	gcMu        sync.Mutex
	gcClient    bool  // the client setting is in force
	gcHooked    bool  // afterClientGC is registered
	gcDefaultPc = 100 // the GOGC in force before the client setting
)

// applyGCPolicy sets or undoes the client setting for the running
// configuration (on the owner goroutine: at the first synchronization
// and after a reload).
func (d *Daemon) applyGCPolicy() {
	want := lowGC(d.cfg, d.opts.Listeners, os.Getenv)
	gcMu.Lock()
	defer gcMu.Unlock()
	if want == gcClient {
		return
	}
	if !want {
		gcClient = false
		debug.SetMemoryLimit(math.MaxInt64)
		debug.SetGCPercent(gcDefaultPc)
		d.log.Debug("collector: the runtime's defaults (gnomond serves)")
		return
	}
	if !gcHooked {
		gcHooked = true
		gcstat.AfterGC(afterClientGC)
	}
	gcClient = true
	limit := int64(gcstat.InUse()) + clientHeadroom
	debug.SetMemoryLimit(limit)
	gcDefaultPc = debug.SetGCPercent(-1)
	d.log.Debug("collector: client setting (GOGC off, soft memory limit)", "limit_bytes", limit)
}

// afterClientGC runs after every collection: with the client setting, it
// sets the limit again from what the runtime needs now and gives back the
// binary's pages the collection mapped in.
func afterClientGC() {
	gcMu.Lock()
	defer gcMu.Unlock()
	if !gcClient {
		return
	}
	debug.SetMemoryLimit(int64(gcstat.InUse()) + clientHeadroom)
	_, _ = trimBinary()
}
