package sim

//lint:file-ignore ST1011 RMS is the root mean square, not milliseconds

import (
	"fmt"
	"math"
	"time"

	"gnomon.dev/gnomon/engine/system"
)

// Scenario is a Setup with the window over which it is judged.
type Scenario struct {
	Name  string
	Setup Setup
	// MeasureFrom: the error statistics cover [MeasureFrom, Duration).
	MeasureFrom time.Duration
	// SyncBound: time to sync is the first moment the engine says it is
	// synchronized and the true error is within this bound (default 1 ms).
	SyncBound time.Duration
	// Skip excludes moments from the statistics (e.g. an outage, the
	// second of a leap).
	Skip func(r *Run, elapsed time.Duration) bool
	// Watch is called every simulated second with the snapshot.
	Watch func(r *Run, sn *system.Snapshot)
}

// Result is what a scenario measured.
type Result struct {
	Name            string
	RMS, Max        time.Duration // true error over the window
	FreqRMSPPM      float64       // frequency error over the window
	TimeToSync      time.Duration // -1 if never
	PacketsPerHour  float64
	Steps           int
	Final           system.Snapshot
	SynchronizedEnd bool
	LeapTimes       []time.Time // true times at which the clock applied a leap second
}

// Row formats a result as one line of docs/accuracy.md's table.
func (r Result) Row() string {
	tts := "never"
	if r.TimeToSync >= 0 {
		tts = r.TimeToSync.Round(time.Second).String()
	}
	return fmt.Sprintf("| %s | %s | %s | %.4f | %s | %.0f | %d |", r.Name,
		fmtDur(r.RMS), fmtDur(r.Max), r.FreqRMSPPM, tts, r.PacketsPerHour, r.Steps)
}

// TableHeader is the header of Row's table.
const TableHeader = "| scenario | RMS error | max error | freq error RMS (ppm) | time to sync | packets/h | steps |\n|---|---|---|---|---|---|---|"

func fmtDur(d time.Duration) string {
	a := d
	if a < 0 {
		a = -a
	}
	switch {
	case a < time.Microsecond:
		return fmt.Sprintf("%d ns", d.Nanoseconds())
	case a < time.Millisecond:
		return fmt.Sprintf("%.1f µs", float64(d)/1e3)
	case a < time.Second:
		return fmt.Sprintf("%.2f ms", float64(d)/1e6)
	}
	return fmt.Sprintf("%.3f s", d.Seconds())
}

// RunScenario runs sc and measures it.
func RunScenario(sc Scenario) (Result, error) {
	bound := sc.SyncBound
	if bound == 0 {
		bound = time.Millisecond
	}
	var st Stats
	res := Result{Name: sc.Name, TimeToSync: -1}
	su := sc.Setup
	prevObserve := su.Observe
	su.Observe = func(r *Run) {
		if prevObserve != nil {
			prevObserve(r)
		}
		el := r.Elapsed()
		sn := r.Engine.Snapshot(r.Clock.Now())
		if sc.Watch != nil {
			sc.Watch(r, &sn)
		}
		e := r.TrueError()
		if res.TimeToSync < 0 && sn.Synchronized && math.Abs(e) < bound.Seconds() {
			res.TimeToSync = el
		}
		if el < sc.MeasureFrom || (sc.Skip != nil && sc.Skip(r, el)) {
			return
		}
		st.Add(e, r.FrequencyError(&sn))
	}
	run, err := New(su)
	if err != nil {
		return res, err
	}
	run.Run()
	res.RMS = time.Duration(st.RMS() * 1e9)
	res.Max = time.Duration(st.Max() * 1e9)
	res.FreqRMSPPM = st.FreqRMS()
	res.PacketsPerHour = float64(run.Sent()) / su.Duration.Hours()
	res.Final = run.Engine.Snapshot(run.Clock.Now())
	res.Steps, _ = run.Clock.Steps()
	res.SynchronizedEnd = res.Final.Synchronized
	res.LeapTimes = run.Clock.LeapTimes()
	return res, nil
}
