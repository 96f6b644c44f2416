package gcstat

import (
	"bytes"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

type syncBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuf) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuf) lines() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return strings.Split(strings.TrimSpace(s.b.String()), "\n")
}

// fields parses one line into key -> value.
func fields(t *testing.T, line string) map[string]float64 {
	t.Helper()
	f := strings.Fields(line)
	if len(f) == 0 || f[0] != Prefix {
		t.Fatalf("line %q does not start with %q", line, Prefix)
	}
	m := map[string]float64{}
	for _, kv := range f[1:] {
		k, v, ok := strings.Cut(kv, "=")
		if !ok {
			t.Fatalf("line %q: %q is not key=value", line, kv)
		}
		x, err := strconv.ParseFloat(v, 64)
		if err != nil {
			t.Fatalf("line %q: %s: %v", line, k, err)
		}
		m[k] = x
	}
	return m
}

func TestLine(t *testing.T) {
	runtime.GC()
	m := fields(t, Line())
	for _, n := range names {
		if _, ok := m[n.key]; !ok {
			t.Errorf("no %s in the line", n.key)
		}
	}
	if m["cycle"] < 1 || m["live"] <= 0 || m["goal"] < m["live"] || m["total"] < m["objects"] {
		t.Errorf("implausible figures after a collection: %v", m)
	}
}

// TestTraceAfterEveryCollection: a line now, and one after each
// collection with the cycle count going up.
func TestTraceAfterEveryCollection(t *testing.T) {
	var w syncBuf
	Trace(&w)
	// The finalizer runs on its own goroutine after a collection: a
	// collection while it has not run yet is not traced; so collect
	// until three more lines came (bounded).
	for deadline := time.Now().Add(20 * time.Second); len(w.lines()) < 4 && time.Now().Before(deadline); {
		runtime.GC()
		time.Sleep(5 * time.Millisecond)
	}
	lines := w.lines()
	if len(lines) < 4 {
		t.Fatalf("%d lines after 3 collections, want at least 4 (one at the start):\n%s", len(lines), strings.Join(lines, "\n"))
	}
	last := -1.0
	for _, l := range lines {
		c := fields(t, l)["cycle"]
		if c < last {
			t.Errorf("cycle went back: %v after %v", c, last)
		}
		last = c
	}
	if first := fields(t, lines[0])["cycle"]; last <= first {
		t.Errorf("cycle %v at the end, %v at the start: the collections were not traced", last, first)
	}
}

func TestHeldInUse(t *testing.T) {
	runtime.GC()
	held, _ := heldFree()
	inUse := InUse()
	if held == 0 || inUse == 0 || inUse > held {
		t.Errorf("Held %d, InUse %d: want 0 < InUse <= Held", held, inUse)
	}
}
