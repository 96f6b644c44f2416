package ntp

import "time"

// SetMaxRootDistance changes the root distance above which replies are
// rejected (a configuration reload).
func (s *Source) SetMaxRootDistance(d time.Duration) { s.cfg.MaxRootDistance = d }
