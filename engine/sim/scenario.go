package sim

//lint:file-ignore ST1011 RMS is "root mean square", not a unit of milliseconds.

import (
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
	// StabilityFrom: ADev, TDev and MTIE cover [StabilityFrom, Duration)
	// (default 5 min, so that an hour-long run reaches τ = 1024 s).
	StabilityFrom time.Duration
}

// Taus are the averaging times (s) of the Allan and time deviations, and
// MTIEWindows the observation windows (s) of the MTIE, in every result.
var (
	Taus        = [5]int{1, 16, 64, 256, 1024}
	MTIEWindows = [3]int{1, 16, 256}
)

// EarlyWindow is the start-up window whose largest error EarlyMax reports.
const EarlyWindow = 10 * time.Minute

// Result is what a scenario measured.
type Result struct {
	Name       string
	Seed       uint64
	RMS, Max   time.Duration // true error over the window
	Mean       time.Duration // mean true error over the window (a bias)
	FreqRMSPPM float64       // frequency error set on the clock (slews left out) over the window
	// Rate error of the disciplined clock as a user feels it, slews
	// included (ppm): RMS and largest over 1 s and over 16 s, in the window.
	RateRMS1, RateMax1, RateRMS16, RateMax16 float64
	// ADev (dimensionless) and TDev (s) at Taus, MTIE (s) over
	// MTIEWindows, from StabilityFrom to the end; NaN where the run is too
	// short for that τ.
	ADev, TDev [len(Taus)]float64
	MTIE       [len(MTIEWindows)]float64
	// EarlyMax is the largest |error| in the first EarlyWindow.
	EarlyMax       time.Duration
	TimeToSync     time.Duration // -1 if never
	PacketsPerHour float64
	// LatePerServer is packets per hour per server after the first hour
	// (NaN for runs of an hour or less).
	LatePerServer   float64
	Steps           int
	Final           system.Snapshot
	SynchronizedEnd bool
	LeapTimes       []time.Time // true times at which the clock applied a leap second
}

// RunScenario runs sc and measures it.
func RunScenario(sc Scenario) (Result, error) {
	bound := sc.SyncBound
	if bound == 0 {
		bound = time.Millisecond
	}
	stabFrom := sc.StabilityFrom
	if stabFrom == 0 {
		stabFrom = 5 * time.Minute
	}
	var st Stats
	var ph Phase
	var steps, jumps int
	var lateSent int
	res := Result{Name: sc.Name, Seed: sc.Setup.Seed, TimeToSync: -1}
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
		if el == time.Hour {
			lateSent = r.Sent()
		}
		e := r.TrueError()
		if n, _ := r.Clock.Steps(); n != steps || r.Clock.Jumps() != jumps {
			steps, jumps = n, r.Clock.Jumps()
			ph.Break()
		}
		if sc.Skip != nil && sc.Skip(r, el) {
			ph.Add(math.NaN())
		} else {
			ph.Add(e)
		}
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
	res.Mean = time.Duration(st.Mean() * 1e9)
	res.FreqRMSPPM = st.FreqRMS()
	// Sample i was taken at second i+1.
	idx := func(d time.Duration) int { return max(int(d/time.Second)-1, 0) }
	from := idx(sc.MeasureFrom)
	res.RateRMS1, res.RateMax1 = ph.Rate(from, 1)
	res.RateRMS16, res.RateMax16 = ph.Rate(from, 16)
	sf := idx(stabFrom)
	for i, tau := range Taus {
		res.ADev[i] = ph.ADev(sf, tau)
		res.TDev[i] = ph.TDev(sf, tau)
	}
	for i, w := range MTIEWindows {
		res.MTIE[i] = ph.MTIE(sf, w)
	}
	res.EarlyMax = time.Duration(ph.MaxAbs(0, idx(EarlyWindow)+1) * 1e9)
	res.PacketsPerHour = float64(run.Sent()) / su.Duration.Hours()
	res.LatePerServer = math.NaN()
	if su.Duration > time.Hour && len(su.Servers) > 0 {
		res.LatePerServer = float64(run.Sent()-lateSent) / (su.Duration - time.Hour).Hours() / float64(len(su.Servers))
	}
	res.Final = run.Engine.Snapshot(run.Clock.Now())
	res.Steps, _ = run.Clock.Steps()
	res.SynchronizedEnd = res.Final.Synchronized
	res.LeapTimes = run.Clock.LeapTimes()
	return res, nil
}
