package daemon

import (
	"time"

	"gnomon.dev/gnomon/engine/ntp"
	"gnomon.dev/gnomon/engine/sample"
)

// smearCorrection is what a worker adds to the times it serves, and the
// leap indicator it serves, for [[server]] leap-smear (engine/ntp/smear.go).
// Without a smear it is 0 and the system's leap status.
func (w *worker) smearCorrection(announced sample.Leap) (time.Duration, sample.Leap) {
	if w.smear == nil {
		return 0, announced
	}
	now := time.Now()
	corr, leap := w.smear.Correct(w.d.mapRaw(now.Round(0)), now.Sub(w.d.mono0), announced)
	if w.smear.Active() != w.smearing {
		w.smearing = w.smear.Active()
		w.d.log.Info("leap smear", "active", w.smearing, "window", w.cur.cfg.LeapSmear)
	}
	w.smearCorr = corr
	return corr, leap
}

func newSmear(window time.Duration) *ntp.Smear {
	if window <= 0 {
		return nil
	}
	return &ntp.Smear{Window: window}
}
