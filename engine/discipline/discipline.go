// Package discipline is the clock control loop: given the combined offset
// and frequency estimate of the selected sources, it decides whether to
// step or slew, sets the clock's frequency, and keeps the error bounds and
// the leap-second state the kernel reports.
//
// # Why regression, not a PI loop
//
// The frequency comes from the sources' regressions (engine/stats), the way
// chrony does it, not from a phase-locked loop. A PI loop must trade
// settling time against noise with one time constant: with 16 s polls a
// loop that damps LAN jitter to a few microseconds needs an hour or more
// to pull in a 30 ppm error, and it overshoots after every step. A weighted
// regression over the last samples measures the frequency error directly
// (to a few parts per billion on a LAN within minutes), and the runs test
// shortens its window as soon as the oscillator wanders. The slope is
// applied whole: it is the error left in the current frequency, measured on
// samples already corrected for every earlier change. (A Kalman-style
// blend of the old frequency with the new estimate, weighed by their
// variances, was tried and rejected: it counts the same samples again at
// every update, grows overconfident and lags the oscillator.) With it the
// simulator scenarios in engine/sim settle faster and to a smaller RMS
// error than the PI loop we tried first; docs/accuracy.md has the figures.
//
// # Slewing
//
// An offset is slewed by running the clock faster or slower for a known
// time, never by the kernel's own adjtime, so the engine knows the clock's
// trajectory exactly. While a slew is in progress, Cook adds what is still
// to be corrected to every clock reading: the engine measures against the
// clock as it will be, and its stored samples are corrected once, when the
// correction is decided (the Change it returns).
package discipline

import (
	"errors"
	"fmt"
	"math"
	"time"

	"gnomon.dev/gnomon/engine/clock"
	"gnomon.dev/gnomon/engine/sample"
)

// Config shapes the loop.
type Config struct {
	// StepThreshold: offsets larger than this are stepped while steps
	// are allowed; smaller ones are slewed.
	StepThreshold time.Duration
	// StepLimit is how many steps are allowed after start (chrony's
	// makestep limit); negative means always.
	StepLimit int
	// PanicThreshold refuses to correct offsets larger than this, so a
	// broken or hostile set of sources cannot throw the clock years away;
	// 0 means no limit.
	PanicThreshold time.Duration
	// MaxFreqPPM clamps the estimated frequency (default 500).
	MaxFreqPPM float64
	// MaxSlewPPM bounds the extra rate used to slew (default 500, and
	// never more than the clock allows beyond MaxFreqPPM).
	MaxSlewPPM float64
	// CorrTimeRatio: an offset is slewed out over this many update
	// intervals when it is no larger than its own uncertainty, faster when
	// it clearly is real (default 3, as chrony's corrtimeratio).
	CorrTimeRatio float64
	// InitialFreqPPM is the frequency to start with (the drift file's),
	// InitialFreqSD its uncertainty (default 100 ppm: unknown).
	InitialFreqPPM, InitialFreqSD float64
	// WanderPPMPerSqrtS is how fast the oscillator's frequency is assumed
	// to random-walk, which is how much old frequency knowledge is
	// distrusted as time passes (default 0.002 ppm/√s).
	WanderPPMPerSqrtS float64
}

func (c *Config) defaults(clk clock.Clock) {
	if c.MaxFreqPPM <= 0 {
		c.MaxFreqPPM = 500
	}
	if c.MaxSlewPPM <= 0 {
		c.MaxSlewPPM = 500
	}
	if room := clk.MaxFrequencyPPM() - c.MaxFreqPPM; room > 0 && c.MaxSlewPPM > room {
		c.MaxSlewPPM = room
	}
	if c.CorrTimeRatio <= 0 {
		c.CorrTimeRatio = 3
	}
	if c.InitialFreqSD <= 0 {
		c.InitialFreqSD = 100
	}
	if c.WanderPPMPerSqrtS <= 0 {
		c.WanderPPMPerSqrtS = 0.002
	}
}

// Estimate is the combined measurement the system hands to Update.
type Estimate struct {
	// Offset of the reference against the (cooked) local clock at Now,
	// and its standard error, in seconds.
	Offset, OffsetSD float64
	// FreqPPM is the frequency correction the measurements call for on
	// top of the current one, FreqSD its standard error (+Inf: unknown).
	FreqPPM, FreqSD float64
	// Interval is the typical time between updates (the poll interval).
	Interval time.Duration
}

// Change tells the rest of the engine how the local clock was changed so
// stored timestamps can be corrected: at time At its reading jumped by
// Offset (a step, or a slew decided now, which Cook already counts) and its
// frequency changed by FreqPPM.
type Change struct {
	At      time.Time
	Offset  time.Duration
	FreqPPM float64
	Stepped bool
	// Step is how far the clock itself was stepped (the offset plus
	// whatever was still being slewed), when Stepped.
	Step time.Duration
}

// ErrPanic is wrapped by the error Update returns for an offset above the
// panic threshold.
var ErrPanic = errors.New("offset exceeds the panic threshold")

// Discipline is the loop's state. Not safe for concurrent use.
type Discipline struct {
	cfg Config
	clk clock.Clock

	freqPPM float64 // base frequency set on the clock (without slew)
	freqVar float64 // ppm², its uncertainty
	freqAt  time.Time

	// slew in progress, in raw clock time
	slewStart  time.Time
	slewAmount float64 // s, to correct from slewStart
	slewK      float64 // s of correction per s of raw time
	slewPPM    float64 // extra frequency while slewing
	slewEnd    time.Time
	residual   float64 // s, correction left over when the slew ended

	steps      int
	extraSteps int
	updates    int
	lastUpdate time.Time
	lastOffset float64
}

// New starts a loop on clk at the configured initial frequency.
func New(cfg Config, clk clock.Clock) (*Discipline, error) {
	cfg.defaults(clk)
	d := &Discipline{cfg: cfg, clk: clk}
	d.freqPPM = clampAbs(cfg.InitialFreqPPM, cfg.MaxFreqPPM)
	d.freqVar = cfg.InitialFreqSD * cfg.InitialFreqSD
	if err := clk.SetFrequency(d.freqPPM); err != nil {
		return nil, fmt.Errorf("discipline: set initial frequency: %w", err)
	}
	return d, nil
}

func clampAbs(v, lim float64) float64 {
	if math.IsNaN(v) {
		return 0
	}
	return math.Max(-lim, math.Min(lim, v))
}

// FrequencyPPM is the current frequency correction (without slew).
func (d *Discipline) FrequencyPPM() float64 { return d.freqPPM }

// FrequencySD is the frequency's standard error (skew), in ppm.
func (d *Discipline) FrequencySD() float64 { return math.Sqrt(d.freqVar) }

// Steps is how many times the loop stepped the clock.
func (d *Discipline) Steps() int { return d.steps }

// Updates is how many estimates the loop has acted on.
func (d *Discipline) Updates() int { return d.updates }

// LastUpdate is the local time of the last update.
func (d *Discipline) LastUpdate() time.Time { return d.lastUpdate }

// LastOffset is the offset (s) the last update corrected.
func (d *Discipline) LastOffset() float64 { return d.lastOffset }

// remaining is the part of the current correction not yet slewed at raw.
func (d *Discipline) remaining(raw time.Time) float64 {
	if d.slewK == 0 {
		return d.residual
	}
	return d.slewAmount - d.slewK*raw.Sub(d.slewStart).Seconds()
}

// Cook converts a reading of the clock into engine time: the reading plus
// the correction still being slewed in.
func (d *Discipline) Cook(raw time.Time) time.Time {
	return raw.Add(time.Duration(d.remaining(raw) * 1e9))
}

// Remaining is the offset still being slewed out at raw (s).
func (d *Discipline) Remaining(raw time.Time) float64 { return d.remaining(raw) }

// NextWakeup is when the loop needs to be called (Wakeup) to end a slew;
// zero if it does not.
func (d *Discipline) NextWakeup() time.Time {
	if d.slewK == 0 {
		return time.Time{}
	}
	return d.slewEnd
}

// Wakeup ends a slew whose time has come. raw is the clock's reading.
func (d *Discipline) Wakeup(raw time.Time) error {
	if d.slewK == 0 || raw.Before(d.slewEnd) {
		return nil
	}
	// Whatever the lateness, the exact remainder stays in Cook's account
	// and is folded into the next correction.
	d.residual = d.remaining(raw)
	d.slewK, d.slewPPM, d.slewAmount = 0, 0, 0
	return d.clk.SetFrequency(d.freqPPM)
}

// AllowStep grants one step beyond the step limit: the system calls it
// when it detects that something else moved the clock.
func (d *Discipline) AllowStep() { d.extraSteps = 1 }

// Update acts on an estimate taken at raw clock reading raw (which Cook
// turned into the engine time the estimate refers to). It returns the
// Change made, or an error (wrapping ErrPanic for a refused offset, or the
// clock's error) in which case nothing was changed.
func (d *Discipline) Update(raw time.Time, e Estimate) (Change, error) {
	now := d.Cook(raw)
	abs := math.Abs(e.Offset)
	if d.cfg.PanicThreshold > 0 && abs > d.cfg.PanicThreshold.Seconds() {
		return Change{}, fmt.Errorf("%w: %s > %s; not correcting (set panic-threshold = 0 to allow)",
			ErrPanic, fmtSec(e.Offset), d.cfg.PanicThreshold)
	}

	// Frequency: the regressions' slope is the error left in the current
	// frequency, measured over samples already corrected for every earlier
	// change, so it is applied whole. (Weighing it against the old value,
	// Kalman-style, counts the same samples again at every update: their
	// slope shrinks by what was applied, not by new evidence, and the
	// filter grows overconfident and then lags the oscillator.) The
	// frequency's uncertainty is the regressions' and grows with the
	// assumed wander until the next update.
	prev, oldFreq, oldVar := d.save(), d.freqPPM, d.freqVar
	if !d.freqAt.IsZero() {
		dt := math.Max(0, now.Sub(d.freqAt).Seconds())
		d.freqVar += d.cfg.WanderPPMPerSqrtS * d.cfg.WanderPPMPerSqrtS * dt
	}
	d.freqAt = now
	if !math.IsInf(e.FreqSD, 0) && !math.IsNaN(e.FreqPPM) && !math.IsNaN(e.FreqSD) && e.FreqSD >= 0 {
		d.freqPPM = clampAbs(d.freqPPM+e.FreqPPM, d.cfg.MaxFreqPPM)
		d.freqVar = math.Min(d.freqVar, e.FreqSD*e.FreqSD)
	}
	dFreq := d.freqPPM - oldFreq

	change := Change{At: now, FreqPPM: dFreq, Offset: time.Duration(e.Offset * 1e9)}
	d.updates++
	d.lastUpdate = now
	d.lastOffset = e.Offset

	stepOK := d.cfg.StepLimit < 0 || d.steps < d.cfg.StepLimit || d.extraSteps > 0
	if abs > d.cfg.StepThreshold.Seconds() && stepOK {
		total := d.remaining(raw) + e.Offset
		if err := d.clk.Step(time.Duration(total * 1e9)); err != nil {
			d.undo(oldFreq, oldVar, prev)
			return Change{}, fmt.Errorf("discipline: step: %w", err)
		}
		if d.cfg.StepLimit >= 0 && d.steps >= d.cfg.StepLimit {
			d.extraSteps--
		}
		d.steps++
		d.slewK, d.slewPPM, d.slewAmount, d.residual = 0, 0, 0, 0
		change.Stepped = true
		change.Step = time.Duration(total * 1e9)
		return change, d.clk.SetFrequency(d.freqPPM)
	}

	// Slew: everything not yet corrected plus the new offset.
	amount := d.remaining(raw) + e.Offset
	d.residual = 0
	if amount == 0 {
		d.slewK, d.slewPPM = 0, 0
		return change, d.clk.SetFrequency(d.freqPPM)
	}
	interval := math.Max(e.Interval.Seconds(), 1)
	// Slow for offsets within their noise, quick for ones that are real.
	ratio := d.cfg.CorrTimeRatio
	if e.OffsetSD > 0 && math.Abs(e.Offset) > 0 {
		ratio *= math.Min(1, 3*e.OffsetSD/math.Abs(e.Offset))
	}
	dur := math.Max(ratio*interval, 1)
	rate := math.Abs(amount) / dur
	// The slew rides on the base frequency: together they must stay
	// within what the clock accepts.
	room := d.clk.MaxFrequencyPPM() - math.Copysign(1, amount)*d.freqPPM
	maxRate := math.Min(d.cfg.MaxSlewPPM, room) * 1e-6
	if maxRate <= 0 {
		// No room to slew at all: keep the correction for later.
		d.residual = amount
		d.slewK, d.slewPPM = 0, 0
		return change, d.clk.SetFrequency(d.freqPPM)
	}
	if rate > maxRate {
		rate = maxRate
	}
	slewPPM := math.Copysign(rate*1e6, amount)
	total := d.freqPPM + slewPPM
	if err := d.clk.SetFrequency(total); err != nil {
		d.undo(oldFreq, oldVar, prev)
		return Change{}, fmt.Errorf("discipline: slew: %w", err)
	}
	// Relative to the clock at its base frequency (which keeps true time,
	// as far as the engine knows), the slewed clock gains slewPPM per unit
	// of true time, which is slewPPM/(1+slewPPM) per unit of its own.
	d.slewStart = raw
	d.slewAmount = amount
	d.slewPPM = slewPPM
	d.slewK = (slewPPM * 1e-6) / (1 + slewPPM*1e-6)
	d.slewEnd = raw.Add(time.Duration(amount / d.slewK * 1e9))
	return change, nil
}

type record struct {
	updates    int
	lastUpdate time.Time
	lastOffset float64
	freqAt     time.Time
	slewStart  time.Time
	slewAmount float64
	slewK      float64
	slewPPM    float64
	slewEnd    time.Time
	residual   float64
}

func (d *Discipline) save() record {
	return record{d.updates, d.lastUpdate, d.lastOffset, d.freqAt,
		d.slewStart, d.slewAmount, d.slewK, d.slewPPM, d.slewEnd, d.residual}
}

// undo restores what Update changed before the clock refused it.
func (d *Discipline) undo(freq, freqVar float64, r record) {
	d.freqPPM, d.freqVar = freq, freqVar
	d.updates, d.lastUpdate, d.lastOffset, d.freqAt = r.updates, r.lastUpdate, r.lastOffset, r.freqAt
	d.slewStart, d.slewAmount, d.slewK, d.slewPPM, d.slewEnd, d.residual =
		r.slewStart, r.slewAmount, r.slewK, r.slewPPM, r.slewEnd, r.residual
}

// SetStatus hands the kernel what it should report.
func (d *Discipline) SetStatus(st clock.Status) error { return d.clk.SetStatus(st) }

func fmtSec(s float64) string { return fmt.Sprintf("%+.6fs", s) }

// LeapArm says whether a leap second announced for the end of the month
// should be handed to the clock at local time now: only on the last day of
// a month (UTC), as the kernel applies it at the next midnight.
func LeapArm(leap sample.Leap, now time.Time) sample.Leap {
	if leap != sample.LeapInsert && leap != sample.LeapDelete {
		return sample.LeapNone
	}
	u := now.UTC()
	if u.AddDate(0, 0, 1).Month() == u.Month() {
		return sample.LeapNone
	}
	return leap
}

// ClockJumped tells the loop that the clock was moved by jump behind its
// back: a slew in progress keeps its place in the clock's new timeline.
func (d *Discipline) ClockJumped(jump time.Duration) {
	if d.slewK != 0 {
		d.slewStart = d.slewStart.Add(jump)
		d.slewEnd = d.slewEnd.Add(jump)
	}
}
