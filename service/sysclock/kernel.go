//go:build linux

package sysclock

import (
	"fmt"
	"time"

	"golang.org/x/sys/unix"
)

// KernelStatus is the kernel's NTP state of CLOCK_REALTIME as adjtimex
// reports it.
type KernelStatus struct {
	// State is adjtimex's return value: TIME_OK, TIME_INS, TIME_DEL,
	// TIME_OOP, TIME_WAIT or TIME_ERROR.
	State int
	// Status holds the STA_* bits.
	Status int32
	// FreqPPM is the total frequency correction: tick and fine frequency
	// together, as System.SetFrequency sets it.
	FreqPPM float64
	// TickUS is the tick length in µs (10000 is nominal).
	TickUS int64
	// MaxError and EstError are the kernel's error bounds (kept in µs).
	MaxError, EstError time.Duration
	// TAI is the kernel's TAI-UTC offset in seconds.
	TAI int
	// Synced is what systemd-timedated reports as NTPSynchronized: the
	// read succeeded and maxerror is below 16 s (systemd's ntp_synced()
	// ignores STA_UNSYNC, which chrony sets to keep the kernel off the
	// RTC).
	Synced bool
}

// Unsync reports whether STA_UNSYNC is set.
func (k KernelStatus) Unsync() bool { return k.Status&unix.STA_UNSYNC != 0 }

// String formats the state for logs and status output.
func (k KernelStatus) String() string {
	return fmt.Sprintf("state=%d status=%#x freq=%.6fppm tick=%dus maxerror=%v esterror=%v tai=%d synced=%t",
		k.State, k.Status, k.FreqPPM, k.TickUS, k.MaxError, k.EstError, k.TAI, k.Synced)
}

// kernelStatusFromTimex converts what adjtimex returned.
func kernelStatusFromTimex(state int, tx *unix.Timex) KernelStatus {
	maxErr := time.Duration(tx.Maxerror) * time.Microsecond
	return KernelStatus{
		State:    state,
		Status:   tx.Status,
		FreqPPM:  totalFrequency(int64(tx.Tick), int64(tx.Freq)),
		TickUS:   int64(tx.Tick),
		MaxError: maxErr,
		EstError: time.Duration(tx.Esterror) * time.Microsecond,
		TAI:      int(tx.Tai),
		Synced:   maxErr < phaseLimit,
	}
}

// ReadKernelStatus reads (modes = 0, which needs no privilege) the
// kernel's NTP state.
func ReadKernelStatus() (KernelStatus, error) {
	return readStatus(unix.Adjtimex)
}

func readStatus(adjtimex func(*unix.Timex) (int, error)) (KernelStatus, error) {
	var tx unix.Timex
	state, err := adjtimex(&tx)
	if err != nil {
		return KernelStatus{}, fmt.Errorf("sysclock: adjtimex read: %w", err)
	}
	return kernelStatusFromTimex(state, &tx), nil
}
