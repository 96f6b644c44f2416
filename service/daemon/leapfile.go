package daemon

import (
	"time"

	"gnomon.dev/gnomon/engine/ntp"
	"gnomon.dev/gnomon/service/config"
	"gnomon.dev/gnomon/service/sysclock"
)

// loadLeapFile reads [synchronization] leap-seconds-file, warns when it
// has expired, and hands the kernel the TAI offset it gives (system mode).
func (d *Daemon) loadLeapFile() error {
	p := d.cfg.Synchronization.LeapSecondsFile
	if p == "" {
		return nil
	}
	lt, err := config.LoadLeapFile(p)
	if err != nil {
		return err
	}
	d.leaps = lt
	now := time.Now()
	if lt.Expired(now) {
		d.log.Warn("leap-seconds file has expired: leap announcements are not checked after its expiry and the TAI offset may be stale; update tzdata",
			"path", p, "expired", lt.Expires.Format(time.DateOnly))
	} else {
		d.log.Info("read leap-seconds file", "path", p, "tai_offset", lt.TAIOffset(now), "expires", lt.Expires.Format(time.DateOnly))
	}
	if sys, ok := d.clk.(*sysclock.System); ok {
		if err := setTAI(sys, lt, now); err != nil {
			d.log.Warn("cannot set the kernel's TAI offset", "err", err)
		}
	}
	return nil
}

// taiSetter is the part of the system clock setTAI needs.
type taiSetter interface {
	SetTAIOffset(seconds int) error
}

// setTAI sets the kernel's TAI offset from the file when it knows the
// offset now (not expired; the kernel keeps it across later leaps).
func setTAI(c taiSetter, lt *ntp.LeapTable, now time.Time) error {
	if lt.Expired(now) {
		return nil
	}
	return c.SetTAIOffset(lt.TAIOffset(now))
}

type leapTable = ntp.LeapTable
