// Package gcstat writes the Go runtime's memory figures, in bytes, after
// every garbage collection: a finer view of gnomond's heap than
// GODEBUG=gctrace=1, which rounds to whole megabytes (an idle gnomond's
// live heap is under one). It is for benchmarks (gnomond's hidden
// --trace-gc flag; scripts/bench-long.sh reads it) and wakes nothing of
// its own: the line is written by the runtime's finalizer goroutine
// after a collection that was going to happen anyway.
package gcstat

import (
	"fmt"
	"io"
	"runtime"
	"runtime/metrics"
	"sync"
	"time"
)

// Prefix starts every line Trace writes.
const Prefix = "gcstat:"

// The runtime's metrics in each line, by the key the line gives them.
var names = []struct{ key, metric string }{
	{"cycle", "/gc/cycles/total:gc-cycles"},
	{"live", "/gc/heap/live:bytes"}, // marked live by the last collection
	{"goal", "/gc/heap/goal:bytes"}, // the heap size the next collection aims at
	{"objects", "/memory/classes/heap/objects:bytes"},
	{"allocs", "/gc/heap/allocs:bytes"},                      // allocated since the start, in all
	{"heap_free", "/memory/classes/heap/free:bytes"},         // free, not yet returned to the kernel
	{"heap_released", "/memory/classes/heap/released:bytes"}, // returned to the kernel
	{"stacks", "/memory/classes/heap/stacks:bytes"},
	{"total", "/memory/classes/total:bytes"}, // everything the runtime mapped
}

var start = time.Now()

// Line reads the runtime's metrics now and formats them:
//
//	gcstat: t=12.345 cycle=3 live=412345 goal=4194304 objects=... total=...
//
// t is seconds since the process started; every other value is a count or
// bytes.
func Line() string {
	s := make([]metrics.Sample, len(names))
	for i, n := range names {
		s[i].Name = n.metric
	}
	metrics.Read(s)
	b := fmt.Appendf(nil, "%s t=%.3f", Prefix, time.Since(start).Seconds())
	for i, n := range names {
		var v uint64
		if s[i].Value.Kind() == metrics.KindUint64 {
			v = s[i].Value.Uint64()
		}
		b = fmt.Appendf(b, " %s=%d", n.key, v)
	}
	return string(b)
}

type sentinel struct{ _ [64]byte } // not a tiny object: finalized on its own

var (
	mu    sync.Mutex
	hooks []func()
	armed bool
)

// AfterGC calls f after every garbage collection from now on, on the
// runtime's finalizer goroutine: f must be quick and must not block.
// Nothing runs between collections. A collection that comes while the
// hooks of the one before have not run yet is not seen.
func AfterGC(f func()) {
	mu.Lock()
	defer mu.Unlock()
	hooks = append(hooks, f)
	if armed {
		return
	}
	armed = true
	// An unreachable object with a finalizer is found by every
	// collection; the finalizer sets itself again, which keeps the
	// object for the next one.
	var fin func(*sentinel)
	fin = func(s *sentinel) {
		mu.Lock()
		hs := hooks
		mu.Unlock()
		for _, h := range hs {
			h()
		}
		runtime.SetFinalizer(s, fin)
	}
	runtime.SetFinalizer(new(sentinel), fin)
}

var traceOnce sync.Once

// Trace writes Line to w now and after every garbage collection from now
// on. Only the first call counts.
func Trace(w io.Writer) {
	traceOnce.Do(func() {
		var wmu sync.Mutex
		write := func() {
			wmu.Lock()
			defer wmu.Unlock()
			_, _ = io.WriteString(w, Line()+"\n")
		}
		write()
		AfterGC(write)
	})
}

// InUse is what the Go runtime needs now: what it holds from the kernel
// (everything it mapped read-write less the heap pages it gave back, the
// figure its soft memory limit is compared with) less the heap pages that
// are free but not yet given back.
func InUse() uint64 {
	held, free := heldFree()
	if free > held {
		return 0
	}
	return held - free
}

func heldFree() (held, free uint64) {
	s := []metrics.Sample{{Name: "/memory/classes/total:bytes"}, {Name: "/memory/classes/heap/released:bytes"},
		{Name: "/memory/classes/heap/free:bytes"}}
	metrics.Read(s)
	for _, x := range s {
		if x.Value.Kind() != metrics.KindUint64 {
			return 0, 0
		}
	}
	return s[0].Value.Uint64() - s[1].Value.Uint64(), s[2].Value.Uint64()
}
