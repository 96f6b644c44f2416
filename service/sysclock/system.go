//go:build linux

// Package sysclock is the real system clock: engine/clock.Clock on
// CLOCK_REALTIME through adjtimex, the kernel's NTP state as
// systemd-timedated reads it, and the drift file.
package sysclock

import (
	"fmt"
	"sync"
	"time"

	"golang.org/x/sys/unix"

	"gnomon.dev/gnomon/engine/clock"
)

// AdjtimexFunc is the adjtimex system call (unix.Adjtimex), injectable so
// tests can watch what would be written without touching the clock.
type AdjtimexFunc func(*unix.Timex) (state int, err error)

// System implements engine/clock.Clock on CLOCK_REALTIME.
//
//   - SetFrequency sets ADJ_FREQUENCY and ADJ_TICK in one call: within
//     ±500 ppm the tick stays nominal; beyond, the tick (10000 µs ± 10%)
//     carries whole 100 ppm steps and the fine frequency the rest, for a
//     total range of ±MaxFrequencyPPM.
//   - Step adds the offset with ADJ_SETOFFSET|ADJ_NANO: exact, and done by
//     the kernel, so no read-modify-write race.
//   - SetStatus writes STA_UNSYNC, STA_INS/STA_DEL, maxerror and esterror
//     in one call, and keeps STA_PLL, STA_FLL and the PPS discipline off.
//     It never touches ADJ_TAI (SetTAIOffset does, tai.go). The kernel grows maxerror by 500 µs every
//     second by itself, so the engine refreshes the status on each
//     update.
//
// Every write needs CAP_SYS_TIME; without it the error wraps unix.EPERM.
// System is safe for concurrent use, though the engine's owner loop is
// meant to be its only writer.
type System struct {
	mu       sync.Mutex
	adjtimex AdjtimexFunc
	initial  KernelStatus
}

// Option configures NewSystem.
type Option func(*System)

// WithAdjtimex replaces the adjtimex system call (for tests).
func WithAdjtimex(f AdjtimexFunc) Option {
	return func(s *System) { s.adjtimex = f }
}

// NewSystem returns the system clock, after reading (not writing) the
// kernel's current state, which Initial returns.
func NewSystem(opts ...Option) (*System, error) {
	s := &System{adjtimex: unix.Adjtimex}
	for _, o := range opts {
		o(s)
	}
	st, err := readStatus(s.adjtimex)
	if err != nil {
		return nil, err
	}
	s.initial = st
	return s, nil
}

var _ clock.Clock = (*System)(nil)

// Initial is the kernel state NewSystem found: the frequency a previous
// daemon left, and whether it had the clock synchronized.
func (s *System) Initial() KernelStatus { return s.initial }

// Now reads CLOCK_REALTIME.
func (s *System) Now() time.Time { return time.Now() }

// MaxFrequencyPPM is the largest |frequency| SetFrequency accepts.
func (s *System) MaxFrequencyPPM() float64 { return MaxFrequencyPPM }

// KernelStatus reads the kernel's current state.
func (s *System) KernelStatus() (KernelStatus, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return readStatus(s.adjtimex)
}

// SetFrequency sets the total frequency correction; positive makes the
// clock run faster.
func (s *System) SetFrequency(freqPPM float64) error {
	tick, freq, err := splitFrequency(freqPPM)
	if err != nil {
		return err
	}
	var tx unix.Timex
	tx.Modes = unix.ADJ_FREQUENCY | unix.ADJ_TICK
	setLong(&tx.Freq, freq)
	setLong(&tx.Tick, tick)
	if err := s.call(&tx); err != nil {
		return fmt.Errorf("sysclock: set frequency %.6f ppm: %w", freqPPM, err)
	}
	return nil
}

// Step jumps the clock by offset.
func (s *System) Step(offset time.Duration) error {
	var tx unix.Timex
	stepTimex(offset, &tx)
	if err := s.call(&tx); err != nil {
		return fmt.Errorf("sysclock: step by %v: %w", offset, err)
	}
	return nil
}

// SetStatus hands the synchronization status to the kernel.
func (s *System) SetStatus(st clock.Status) error {
	var tx unix.Timex
	statusTimex(st, &tx)
	if err := s.call(&tx); err != nil {
		return fmt.Errorf("sysclock: set status: %w", err)
	}
	return nil
}

// Reset takes the kernel clock over from whatever disciplined it before:
// it cancels a phase offset the kernel PLL is still slewing out (which the
// kernel keeps applying even with STA_PLL off) and any adjtime() slew in
// progress, then leaves the PLL off and the clock marked unsynchronized.
// The frequency is left alone. Call it once, before the first SetFrequency.
func (s *System) Reset() error {
	steps := []struct {
		what string
		fill func(*unix.Timex)
	}{
		{"zero PLL offset", func(tx *unix.Timex) {
			// ADJ_OFFSET only reaches the PLL while STA_PLL is on.
			tx.Modes = unix.ADJ_STATUS | unix.ADJ_OFFSET
			tx.Status = unix.STA_PLL | unix.STA_UNSYNC
		}},
		{"cancel adjtime", func(tx *unix.Timex) {
			tx.Modes = unix.ADJ_OFFSET_SINGLESHOT
		}},
		{"PLL off", func(tx *unix.Timex) {
			statusTimex(clock.Status{}, tx)
		}},
	}
	for _, st := range steps {
		var tx unix.Timex
		st.fill(&tx)
		if err := s.call(&tx); err != nil {
			return fmt.Errorf("sysclock: reset: %s: %w", st.what, err)
		}
	}
	return nil
}

func (s *System) call(tx *unix.Timex) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	_, err := s.adjtimex(tx)
	return err
}
