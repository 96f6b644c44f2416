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
// shortens its window as soon as the oscillator wanders. The slope is the
// error left in the current frequency and is applied whole once the
// frequency is known; before that, it is shrunk towards zero unless it
// stands three standard errors clear (see Config.FreqTrust), so a start on
// a jittery path cannot run the clock away. Once the frequency is known,
// engine/system hands in the estimates of a joint Kalman filter over the
// combined sources' samples instead (stats.Kalman), whose frequency does
// not lag the regression windows. (What was rejected is different: a
// blend of the old frequency with each new regression estimate, weighed by
// their variances, which counts the same samples again at every update;
// the joint filter takes each sample once.) docs/accuracy.md has the
// figures.
//
// # Slewing
//
// An offset is slewed by running the clock faster or slower for a known
// time, never by the kernel's own adjtime, so the engine knows the clock's
// trajectory exactly. Users of the clock feel its rate, and chasing each
// estimate's noise would move it by tenths of a ppm on a LAN; correcting
// too slowly leaves the clock lagging its own estimate. The default
// (SlewFilter) restarts at every estimate a slew of all that is left over
// the time in which the frequency's uncertainty adds up to the offset's,
// so the slews move the rate about as much as the frequency's own error
// does. While
// a slew is in progress, Cook adds what is still to be corrected to every
// clock reading: the engine measures against the clock as it will be, and
// its stored samples are corrected once, when the correction is decided
// (the Change it returns).
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
	// CorrTimeRatio scales the correction time of the slew policy
	// (default 1 for SlewFilter, 8 for SlewUncertainty and SlewRestart,
	// 3 for SlewInterval; see SlewPolicy).
	CorrTimeRatio float64
	// MaxCorrTime: under SlewFilter a correction takes at most this long
	// (and at most 4 poll intervals; never less than one) (default 300 s).
	MaxCorrTime time.Duration
	// MaxStartSlewPPM: under SlewFilter, until the frequency is known, a
	// slew is no faster than this (default 100 ppm, the frequency's own
	// initial uncertainty).
	MaxStartSlewPPM float64
	// SlewPolicy chooses how offsets are corrected (default
	// SlewFilter); the others are kept for the comparison in
	// docs/accuracy.md.
	SlewPolicy SlewPolicy
	// FreqTrust: until the frequency is known, an estimate must stand
	// this many standard errors from zero to be applied whole; nearer, it
	// is shrunk towards zero (positive-part James–Stein), so a slope
	// fitted to a few jittery samples cannot run the clock away at start
	// (default 3; negative: always applied whole, the old behaviour).
	FreqTrust float64
	// FreqKnownPPM: the frequency is known once an estimate with a
	// smaller standard error has come in (applied, or shrunk to nothing
	// because it stood within FreqTrust standard errors of zero); from
	// then on estimates are applied whole (default 1 ppm).
	FreqKnownPPM float64
	// InitialFreqPPM is the frequency to start with (the drift file's),
	// InitialFreqSD its uncertainty (default 100 ppm: unknown).
	InitialFreqPPM, InitialFreqSD float64
	// WanderPPMPerSqrtS is how fast the oscillator's frequency is assumed
	// to random-walk, which is how much old frequency knowledge is
	// distrusted as time passes (default 0.002 ppm/√s).
	WanderPPMPerSqrtS float64
	// IntegralGain (0: off, the default; kept for the comparison in
	// docs/accuracy.md): a type-2 term that learns the frequency error
	// the regression's slope leaves (its window lags a wandering
	// oscillator) from the offsets the slews keep correcting, and applies
	// it as a lasting extra slew rate that the regression does not see:
	// each update adds p·Δt/(IntegralGain·T²) to it, for the offset still
	// to correct p (clamped to 3 uncertainties), the time since the last
	// update Δt and the correction time T = CorrTimeRatio poll intervals.
	IntegralGain float64
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
		switch c.SlewPolicy {
		case SlewFilter:
			c.CorrTimeRatio = 1
		case SlewInterval:
			c.CorrTimeRatio = 3
		default:
			c.CorrTimeRatio = 8
		}
	}
	if c.MaxCorrTime <= 0 {
		c.MaxCorrTime = 300 * time.Second
	}
	if c.MaxStartSlewPPM <= 0 {
		c.MaxStartSlewPPM = 100
	}
	if c.FreqTrust == 0 {
		c.FreqTrust = 3
	}
	if c.FreqKnownPPM <= 0 {
		c.FreqKnownPPM = 1
	}
	if c.InitialFreqSD <= 0 {
		c.InitialFreqSD = 100
	}
	if c.WanderPPMPerSqrtS <= 0 {
		c.WanderPPMPerSqrtS = 0.002
	}
}

// SlewPolicy is a rule for the time over which an offset is slewed out.
type SlewPolicy int

const (
	// SlewFilter (the default): every estimate restarts the slew of all
	// that is left to correct, over the time in which the frequency's
	// uncertainty adds up to the offset's (CorrTimeRatio·OffsetSD/FreqSD:
	// a slew of noise then moves the rate no more than the frequency's own
	// error does), at most 4 poll intervals and MaxCorrTime, at least one
	// poll interval; an offset clearly larger than its uncertainty σ
	// (√(OffsetSD² + Jitter²)) goes faster, over that time·σ/|offset|
	// (still at least a poll interval). Meant for the joint filter's
	// estimates (engine/system), whose frequency does not lag.
	SlewFilter SlewPolicy = iota
	// SlewUncertainty (the rule before the joint filter): the correction
	// time grows with the offset's uncertainty: CorrTimeRatio poll
	// intervals for an offset
	// within its uncertainty σ (√(OffsetSD² + Jitter²)), and
	// CorrTimeRatio·τ·σ/|offset| for a larger one, so a clearly real
	// offset goes quickly and noise goes slowly; within MaxSlewPPM. A new
	// estimate within σ of the slew in progress leaves that slew alone.
	SlewUncertainty
	// SlewInterval is the earlier rule: every estimate restarts the slew,
	// over CorrTimeRatio (3) update intervals, faster when the offset is
	// more than three times its standard error.
	SlewInterval
	// SlewRestart is SlewUncertainty's duration with every estimate
	// restarting the slew (no "already covered" test).
	SlewRestart
	// SlewExp: every estimate restarts the slew over CorrTimeRatio poll
	// intervals, whatever the offset (a first-order loop with that time
	// constant; kept for the comparison in docs/accuracy.md).
	SlewExp
)

// Estimate is the combined measurement the system hands to Update.
type Estimate struct {
	// Offset of the reference against the (cooked) local clock at Now,
	// and its standard error, in seconds.
	Offset, OffsetSD float64
	// FreqPPM is the frequency correction the measurements call for on
	// top of the current one, FreqSD its standard error (+Inf: unknown).
	FreqPPM, FreqSD float64
	// Jitter is the sources' measurement noise (s), a part of the offset's
	// uncertainty the regression's standard error may understate.
	Jitter float64
	// Interval is the system peer's poll interval.
	Interval time.Duration
	// Since is the time since the previous update (0 for the first).
	Since time.Duration
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

	// integral term: a lasting extra rate (ppm) applied since intFrom
	intPPM  float64
	intFrom time.Time

	freqKnown  bool // an estimate within FreqKnownPPM was applied
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

// FrequencyKnown says whether an estimate precise enough to know the
// frequency (Config.FreqKnownPPM) has been applied.
func (d *Discipline) FrequencyKnown() bool { return d.freqKnown }

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
	r := d.residual
	if d.slewK != 0 {
		r = d.slewAmount - d.slewK*raw.Sub(d.slewStart).Seconds()
	}
	if d.intPPM != 0 {
		r -= d.intPPM * 1e-6 * raw.Sub(d.intFrom).Seconds()
	}
	return r
}

// rebase folds what the integral term corrected up to raw into the slew's
// account, so that the term can change from raw on.
func (d *Discipline) rebase(raw time.Time) {
	if d.intPPM != 0 {
		applied := d.intPPM * 1e-6 * raw.Sub(d.intFrom).Seconds()
		if d.slewK != 0 {
			d.slewAmount -= applied
		} else {
			d.residual -= applied
		}
	}
	d.intFrom = raw
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

// Wakeup ends a slew whose time has come. raw is the clock's reading. If
// the clock refuses to end it, the slew goes on (the engine's account of
// it stays exact) and Wakeup is due again a second later.
func (d *Discipline) Wakeup(raw time.Time) error {
	if d.slewK == 0 || raw.Before(d.slewEnd) {
		return nil
	}
	if err := d.clk.SetFrequency(d.freqPPM + d.intPPM); err != nil {
		d.slewEnd = raw.Add(time.Second)
		return fmt.Errorf("discipline: end slew: %w", err)
	}
	// Whatever the lateness, the exact remainder stays in Cook's account
	// and is folded into the next correction.
	d.rebase(raw)
	d.residual = d.remaining(raw)
	d.slewK, d.slewPPM, d.slewAmount = 0, 0, 0
	return nil
}

// AllowStep grants one step beyond the step limit: the system calls it
// when it detects that something else moved the clock.
func (d *Discipline) AllowStep() { d.extraSteps = 1 }

// Update acts on an estimate taken at raw clock reading raw (which Cook
// turned into the engine time the estimate refers to). It returns the
// Change made. On error (wrapping ErrPanic for a refused offset, or the
// clock's error) either nothing was changed and the Change is zero, or
// (when the clock failed half-way, after a step it could not take back)
// the Change is not zero and says exactly what was done: the caller must
// account for it as for a successful one.
func (d *Discipline) Update(raw time.Time, e Estimate) (Change, error) {
	now := d.Cook(raw)
	abs := math.Abs(e.Offset)
	if d.cfg.PanicThreshold > 0 && abs > d.cfg.PanicThreshold.Seconds() {
		return Change{}, fmt.Errorf("%w: %s > %s; not correcting (set panic-threshold = 0 to allow)",
			ErrPanic, fmtSec(e.Offset), d.cfg.PanicThreshold)
	}

	// Frequency: the regressions' slope is the error left in the current
	// frequency, measured over samples already corrected for every earlier
	// change, so it is not weighed against the old value (Kalman-style,
	// that counts the same samples again at every update, and the filter
	// grows overconfident and lags the oscillator). It is applied whole
	// when it stands clearly (FreqTrust standard errors) from zero and
	// shrunk towards zero when it does not: a slope fitted to a few
	// jittery samples at start, or the noise of a settled fit, must not
	// move the clock's rate. The frequency's uncertainty is the
	// regressions' and grows with the assumed wander until the next
	// update.
	prev, oldFreq, oldVar := d.save(), d.freqPPM, d.freqVar
	d.rebase(raw)
	if !d.freqAt.IsZero() {
		dt := math.Max(0, now.Sub(d.freqAt).Seconds())
		d.freqVar += d.cfg.WanderPPMPerSqrtS * d.cfg.WanderPPMPerSqrtS * dt
	}
	d.freqAt = now
	if !math.IsInf(e.FreqSD, 0) && !math.IsNaN(e.FreqPPM) && !math.IsNaN(e.FreqSD) && e.FreqSD >= 0 {
		f, known := d.trusted(e.FreqPPM, e.FreqSD)
		d.freqPPM = clampAbs(d.freqPPM+f, d.cfg.MaxFreqPPM)
		d.freqKnown = known
		d.freqVar = math.Min(d.freqVar, e.FreqSD*e.FreqSD)
	}
	dFreq := d.freqPPM - oldFreq

	change := Change{At: now, FreqPPM: dFreq, Offset: time.Duration(e.Offset * 1e9)}
	d.updates++
	d.lastUpdate = now
	d.lastOffset = e.Offset
	fail := func(what string, err error) (Change, error) {
		d.undo(oldFreq, oldVar, prev)
		return Change{}, fmt.Errorf("discipline: %s: %w", what, err)
	}

	stepOK := d.cfg.StepLimit < 0 || d.steps < d.cfg.StepLimit || d.extraSteps > 0
	if abs > d.cfg.StepThreshold.Seconds() && stepOK {
		// The frequency first (it ends any slew), then the step of the
		// offset and whatever the slew had not corrected yet: if the step
		// fails, the frequency can be put back.
		total := d.remaining(raw) + e.Offset
		if err := d.clk.SetFrequency(d.freqPPM); err != nil {
			return fail("step: set frequency", err)
		}
		oldInt := d.intPPM
		d.intPPM = 0
		if err := d.clk.Step(time.Duration(total * 1e9)); err != nil {
			if rerr := d.clk.SetFrequency(oldFreq + d.slewPPM + oldInt); rerr != nil {
				// The clock now runs at the new frequency, unslewed and
				// unstepped: say so.
				d.slewK, d.slewPPM, d.slewAmount = 0, 0, 0
				d.residual = total - e.Offset
				change.Offset = 0
				return change, fmt.Errorf("discipline: step: %w (and the frequency could not be restored: %v)", err, rerr)
			}
			d.intPPM = oldInt
			return fail("step", err)
		}
		if d.cfg.StepLimit >= 0 && d.steps >= d.cfg.StepLimit {
			d.extraSteps--
		}
		d.steps++
		d.slewK, d.slewPPM, d.slewAmount, d.residual = 0, 0, 0, 0
		change.Stepped = true
		change.Step = time.Duration(total * 1e9)
		return change, nil
	}

	sigma := math.Hypot(math.Max(e.OffsetSD, 0), math.Max(e.Jitter, 0))
	oldInt := d.intPPM
	if g := d.cfg.IntegralGain; g > 0 && d.freqKnown && e.Since > 0 {
		tau := math.Max(e.Interval.Seconds(), 1)
		T := d.cfg.CorrTimeRatio * tau
		const k = 3
		p := d.remaining(raw) + e.Offset
		if sigma > 0 {
			p = math.Max(-k*sigma, math.Min(k*sigma, p))
		}
		d.intPPM += p * math.Min(e.Since.Seconds(), tau) / (g * T * T) * 1e6
		d.intPPM = clampAbs(d.intPPM, d.cfg.MaxSlewPPM/4)
	}
	intChanged := d.intPPM != oldInt
	policy, ratio := d.cfg.SlewPolicy, d.cfg.CorrTimeRatio
	if policy == SlewUncertainty && d.slewK != 0 && abs <= sigma {
		// The slew in progress already covers this estimate: leave it be,
		// only the base frequency under it changes.
		change.Offset = 0
		if dFreq != 0 || intChanged {
			if err := d.clk.SetFrequency(d.freqPPM + d.slewPPM + d.intPPM); err != nil {
				return fail("slew: set frequency", err)
			}
		}
		return change, nil
	}

	// Slew: everything not yet corrected plus the new offset.
	amount := d.remaining(raw) + e.Offset
	if amount == 0 {
		if err := d.clk.SetFrequency(d.freqPPM + d.intPPM); err != nil {
			return fail("slew: set frequency", err)
		}
		d.residual = 0
		d.slewK, d.slewPPM = 0, 0
		return change, nil
	}
	dur := d.slewDuration(policy, ratio, amount, sigma, e)
	rate := math.Abs(amount) / dur
	// The slew rides on the base frequency: together they must stay
	// within what the clock accepts.
	room := d.clk.MaxFrequencyPPM() - math.Copysign(1, amount)*(d.freqPPM+d.intPPM)
	maxRate := math.Min(d.cfg.MaxSlewPPM, room) * 1e-6
	if policy == SlewFilter && !d.freqKnown {
		// An offset extrapolated along a frequency not yet known can be
		// tens of milliseconds wrong on a jittery path: slew it no faster
		// than the frequency may itself be wrong.
		maxRate = math.Min(maxRate, d.cfg.MaxStartSlewPPM*1e-6)
	}
	if maxRate <= 0 {
		// No room to slew at all: keep the correction for later.
		if err := d.clk.SetFrequency(d.freqPPM + d.intPPM); err != nil {
			return fail("slew: set frequency", err)
		}
		d.residual = amount
		d.slewK, d.slewPPM = 0, 0
		return change, nil
	}
	rate = math.Min(rate, maxRate)
	slewPPM := math.Copysign(rate*1e6, amount)
	if err := d.clk.SetFrequency(d.freqPPM + slewPPM + d.intPPM); err != nil {
		return fail("slew", err)
	}
	// Relative to the clock at its base frequency (which keeps true time,
	// as far as the engine knows), the slewed clock gains slewPPM per unit
	// of true time, which is slewPPM/(1+slewPPM) per unit of its own.
	d.residual = 0
	d.slewStart = raw
	d.slewAmount = amount
	d.slewPPM = slewPPM
	d.slewK = (slewPPM * 1e-6) / (1 + slewPPM*1e-6)
	d.slewEnd = raw.Add(time.Duration(amount / d.slewK * 1e9))
	return change, nil
}

// trusted is the part of a frequency estimate f (ppm, standard error sd)
// to apply, and whether the frequency is now known. Until it is known, an
// estimate is applied whole when it stands well clear of its noise, less
// as it nears it, and not at all within FreqTrust standard errors; once
// known, every estimate (the error left in a known frequency) is applied
// whole. The frequency is known once an estimate's standard error is
// under FreqKnownPPM, whether or not the estimate stood clear of zero: a
// precise estimate near zero says the current frequency is already right
// to within a few of its standard errors, which is knowing it (a clock
// that starts at its true frequency would otherwise never know it, and
// would run on the start-up rules for ever).
func (d *Discipline) trusted(f, sd float64) (float64, bool) {
	k := d.cfg.FreqTrust
	precise := sd < d.cfg.FreqKnownPPM
	if k < 0 || d.freqKnown {
		return f, d.freqKnown
	}
	if f == 0 {
		return 0, precise
	}
	w := 1 - k*k*sd*sd/(f*f)
	if w <= 0 {
		return 0, precise
	}
	return f * w, precise
}

// slewDuration is how long a correction of amount (s) with uncertainty
// sigma (s) takes under the configured policy, before the rate limit.
func (d *Discipline) slewDuration(policy SlewPolicy, ratio, amount, sigma float64, e Estimate) float64 {
	if policy == SlewInterval {
		interval := e.Interval
		if e.Since > 0 && e.Since < interval {
			interval = max(e.Since, time.Second)
		}
		// Slow for offsets within their noise, quick for ones that are real.
		if e.OffsetSD > 0 && e.Offset != 0 {
			ratio *= math.Min(1, 3*e.OffsetSD/math.Abs(e.Offset))
		}
		return math.Max(ratio*math.Max(interval.Seconds(), 1), 1)
	}
	tau := math.Max(e.Interval.Seconds(), 1)
	if policy == SlewFilter {
		// Until the frequency has an uncertainty, slowly (the shortening
		// below still lets a real offset go quickly).
		dur := 16 * tau
		if e.FreqSD > 0 && !math.IsInf(e.FreqSD, 0) && !math.IsNaN(e.FreqSD) {
			longest := math.Min(4*tau, d.cfg.MaxCorrTime.Seconds())
			dur = math.Max(tau, math.Min(longest, ratio*math.Max(e.OffsetSD, 0)/(e.FreqSD*1e-6)))
		}
		if a := math.Abs(amount); sigma > 0 && a > sigma {
			dur = math.Max(dur*sigma/a, tau)
		}
		return dur
	}
	dur := ratio * tau
	if a := math.Abs(amount); policy != SlewExp && sigma > 0 && a > sigma {
		dur *= sigma / a
	}
	return math.Max(dur, 1)
}

type record struct {
	freqKnown  bool
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
	intPPM     float64
	intFrom    time.Time
}

func (d *Discipline) save() record {
	return record{d.freqKnown, d.updates, d.lastUpdate, d.lastOffset, d.freqAt,
		d.slewStart, d.slewAmount, d.slewK, d.slewPPM, d.slewEnd, d.residual, d.intPPM, d.intFrom}
}

// undo restores what Update changed before the clock refused it.
func (d *Discipline) undo(freq, freqVar float64, r record) {
	d.freqPPM, d.freqVar = freq, freqVar
	d.freqKnown, d.updates, d.lastUpdate, d.lastOffset, d.freqAt = r.freqKnown, r.updates, r.lastUpdate, r.lastOffset, r.freqAt
	d.slewStart, d.slewAmount, d.slewK, d.slewPPM, d.slewEnd, d.residual =
		r.slewStart, r.slewAmount, r.slewK, r.slewPPM, r.slewEnd, r.residual
	d.intPPM, d.intFrom = r.intPPM, r.intFrom
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
	if !d.intFrom.IsZero() {
		d.intFrom = d.intFrom.Add(jump)
	}
}
