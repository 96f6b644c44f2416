package discipline

import "time"

// SetLimits changes the step and panic limits of a running loop (a
// configuration reload): offsets above stepThreshold are stepped while
// fewer than stepLimit steps were made (negative: always), offsets above
// panicThreshold (0: none) are refused. Steps already made still count.
func (d *Discipline) SetLimits(stepThreshold time.Duration, stepLimit int, panicThreshold time.Duration) {
	d.cfg.StepThreshold = stepThreshold
	d.cfg.StepLimit = stepLimit
	d.cfg.PanicThreshold = panicThreshold
}
