package daemon

import (
	"math"
	"os"
	"runtime/debug"
	"sync"
	"time"

	"gnomon.dev/gnomon/service/config"
	"gnomon.dev/gnomon/service/gcstat"
)

// The collector's lean setting: for a gnomond that serves nothing (a
// client) or answers plain NTP only.
//
// By default the Go runtime collects at least every two minutes however
// little was allocated, and each collection walks the goroutines' stacks,
// which maps megabytes of the binary's tables back in (docs/benchmarks.md:
// an idle client's resident set went from 5.4 to 7.7 MiB at its first
// periodic collection, a trimmed NTP server's from 5.8 to 8.2) and wakes
// the runtime's threads. A client allocates a few kB per poll (about 4 MB
// an hour with 4 sources at a 16 s poll); the NTP answer path allocates
// nothing. So once it has first synchronized, such a gnomond turns the
// proportional collector off (GOGC=off, which also ends the two-minute
// collections) and sets a soft memory limit of what the runtime needs
// (gcstat.InUse: what it holds less free heap pages) plus leanHeadroom
// instead: it collects once it has allocated about leanHeadroom less the
// runtime's own margin below a soft limit (1 MiB) more (every quarter of
// an hour or so at a 16 s poll, every day or so at 1024 s, hardly ever
// for what an NTP server adds), and after each collection the limit is
// set again from what it needs then, so a live heap that grows (more
// sources, a reload) moves the limit with it rather than making the
// collector run on and on. (Not from what it holds: the pages a
// collection has just freed would raise the limit a little every time.)
// After a collection the binary's read-only pages it touched are given
// back (trim.go). An explicit GOGC or GOMEMLIMIT in the environment wins:
// then nothing is changed. An NTS-KE server (every TLS handshake
// allocates), PTP and CSPTP keep the runtime's defaults: their
// allocations want the proportional collector.
//
// The headroom was 1 MiB until 2026-12-07 (late night), which left the
// runtime nothing: it aims the heap 1 MiB below a soft limit
// (memoryLimitMinHeapGoalHeadroom in runtime/mgcpacer.go) and then uses
// its smallest goal, 1 MiB of heap in all, so an idle client collected
// after every 250-300 kB it allocated (every 64-80 s at a 16 s poll in a
// soak, where each trim's read of /proc/self/smaps added allocations of
// its own), and the collections with their trims were a large part of
// its CPU time.
const leanHeadroom = 2 << 20

// leanTrimEvery is the least time between two trims after a collection:
// a gnomond that allocates fast (a flood of something that allocates)
// collects often, and each trim makes the answer path fault its text
// back in.
const leanTrimEvery = 10 * time.Second

// lowGC reports whether the lean setting applies: nothing served but
// plain NTP (no [[nts-ke-server]], [[ptp-port]] or [[csptp-server]], no
// socket passed by systemd other than "ntp" ones) and neither GOGC nor
// GOMEMLIMIT set in the environment (getenv: os.Getenv, replaced in
// tests).
func lowGC(cfg *config.Config, listeners map[string][]*os.File, getenv func(string) string) bool {
	if getenv("GOGC") != "" || getenv("GOMEMLIMIT") != "" {
		return false
	}
	if len(cfg.NTSKEServers) > 0 || len(cfg.PTPPorts) > 0 || len(cfg.CSPTPServers) > 0 {
		return false
	}
	for name, l := range listeners {
		if name != "ntp" && len(l) > 0 {
			return false
		}
	}
	return true
}

// The lean setting's state, shared by the owner goroutine and the
// after-collection hook (the runtime's finalizer goroutine).
var (
	gcMu        sync.Mutex
	gcLean      bool      // the lean setting is in force
	gcHooked    bool      // afterLeanGC is registered
	gcDefaultPc = 100     // the GOGC in force before the lean setting
	gcTrimmed   time.Time // the last trim after a collection
)

// applyGCPolicy sets or undoes the lean setting for the running
// configuration (on the owner goroutine: at the first synchronization
// and after a reload).
func (d *Daemon) applyGCPolicy() {
	want := lowGC(d.cfg, d.opts.Listeners, os.Getenv)
	gcMu.Lock()
	defer gcMu.Unlock()
	if want == gcLean {
		return
	}
	if !want {
		gcLean = false
		debug.SetMemoryLimit(math.MaxInt64)
		debug.SetGCPercent(gcDefaultPc)
		d.log.Debug("collector: the runtime's defaults (gnomond serves NTS-KE, PTP or CSPTP)")
		return
	}
	if !gcHooked {
		gcHooked = true
		gcstat.AfterGC(afterLeanGC)
	}
	gcLean = true
	limit := int64(gcstat.InUse()) + leanHeadroom
	debug.SetMemoryLimit(limit)
	gcDefaultPc = debug.SetGCPercent(-1)
	d.log.Debug("collector: lean setting (GOGC off, soft memory limit)", "limit_bytes", limit)
}

// afterLeanGC runs after every collection: with the lean setting, it
// sets the limit again from what the runtime needs now and gives back the
// binary's pages the collection mapped in.
func afterLeanGC() {
	gcMu.Lock()
	defer gcMu.Unlock()
	if !gcLean {
		return
	}
	debug.SetMemoryLimit(int64(gcstat.InUse()) + leanHeadroom)
	if now := time.Now(); now.Sub(gcTrimmed) >= leanTrimEvery {
		gcTrimmed = now
		_, _ = trimBinary()
	}
}
