package system

import "time"

// Limits are the parts of Config a running system can change (a
// configuration reload): the discipline's step and panic limits and the
// selection's thresholds. Zero MinSources, MaxDistance or Accuracy keep
// New's defaults, as in Config.
type Limits struct {
	StepThreshold  time.Duration
	StepLimit      int
	PanicThreshold time.Duration
	MinSources     int
	MaxDistance    time.Duration
	Accuracy       time.Duration
}

// SetLimits applies l from the next update on. A new maximum distance
// applies to every source's reply check too, existing ones included.
func (s *System) SetLimits(l Limits) {
	s.disc.SetLimits(l.StepThreshold, l.StepLimit, l.PanicThreshold)
	s.cfg.Discipline.StepThreshold = l.StepThreshold
	s.cfg.Discipline.StepLimit = l.StepLimit
	s.cfg.Discipline.PanicThreshold = l.PanicThreshold
	s.cfg.MinSources = max(l.MinSources, 1)
	if l.MaxDistance > 0 {
		s.cfg.MaxDistance = l.MaxDistance
	} else {
		s.cfg.MaxDistance = 3 * time.Second
	}
	if l.Accuracy > 0 {
		s.cfg.Accuracy = l.Accuracy
	} else {
		s.cfg.Accuracy = time.Millisecond
	}
	for _, src := range s.sources {
		src.ntp.SetMaxRootDistance(s.cfg.MaxDistance)
	}
}
