//go:build linux

package sysclock

import (
	"fmt"

	"golang.org/x/sys/unix"
)

// SetTAIOffset sets the kernel's TAI - UTC offset (ADJ_TAI), which
// CLOCK_TAI adds to CLOCK_REALTIME. The kernel keeps it up to date itself
// when it inserts or deletes a leap second. It needs CAP_SYS_TIME.
func (s *System) SetTAIOffset(seconds int) error {
	if seconds < 0 || seconds > 1000 {
		return fmt.Errorf("sysclock: TAI offset %d s out of range", seconds)
	}
	var tx unix.Timex
	tx.Modes = unix.ADJ_TAI
	setLong(&tx.Constant, int64(seconds))
	if err := s.call(&tx); err != nil {
		return fmt.Errorf("sysclock: set TAI offset %d s: %w", seconds, err)
	}
	return nil
}
