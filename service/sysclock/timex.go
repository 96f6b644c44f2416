//go:build linux

package sysclock

import (
	"fmt"
	"math"
	"time"

	"golang.org/x/sys/unix"

	"gnomon.dev/gnomon/engine/clock"
	"gnomon.dev/gnomon/engine/sample"
)

// The kernel's units and limits (include/uapi/linux/timex.h and
// kernel/time/ntp.c).
const (
	// userHZ is the USER_HZ the tick field is counted in. It is 100 on
	// every architecture Go supports on Linux (only alpha and ia64 differ).
	userHZ = 100
	// nominalTickUS is the tick length, in µs, at which the clock runs at
	// its free rate.
	nominalTickUS = 1000000 / userHZ
	// maxTickBiasUS is how far the kernel lets the tick move from nominal
	// (it refuses a tick outside 900000/USER_HZ..1100000/USER_HZ).
	maxTickBiasUS = nominalTickUS / 10
	// ppmPerTickUS is the frequency change of one µs of tick.
	ppmPerTickUS = 1e6 / nominalTickUS
	// maxFreqPPM is the kernel's limit on the fine frequency (MAXFREQ).
	maxFreqPPM = 500
	// freqScale is the scaling of the freq field: ppm with a 16-bit
	// binary fraction.
	freqScale = 1 << 16
	// phaseLimit is NTP_PHASE_LIMIT: the kernel clamps maxerror and
	// esterror to it and marks the clock unsynchronized when maxerror
	// grows past it. systemd-timedated calls the clock synchronized only
	// below it.
	phaseLimit = 16 * time.Second

	// MaxFrequencyPPM is the total range of System.SetFrequency: the
	// full tick range plus the fine frequency.
	MaxFrequencyPPM = maxTickBiasUS*ppmPerTickUS + maxFreqPPM
)

// long is the C long of struct timex fields: int64 on 64-bit, int32 on
// 32-bit platforms.
type long interface{ ~int32 | ~int64 }

func setLong[T long](p *T, v int64) { *p = T(v) }

// ppmToScaled converts ppm to the kernel's scaled-ppm freq value, rounded
// to the nearest step of 2^-16 ppm.
func ppmToScaled(ppm float64) int64 { return int64(math.Round(ppm * freqScale)) }

// scaledToPPM converts the kernel's scaled-ppm freq value to ppm.
func scaledToPPM(scaled int64) float64 { return float64(scaled) / freqScale }

// splitFrequency splits a total frequency correction into the tick (µs
// per USER_HZ tick) and the fine frequency (scaled ppm) that together give
// it. Within ±500 ppm the tick stays nominal; beyond, the tick takes whole
// 100 ppm steps and the fine frequency the remainder (at most ±50 ppm,
// ±500 ppm at the ends of the range).
func splitFrequency(ppm float64) (tickUS int64, freqScaled int64, err error) {
	if math.IsNaN(ppm) || math.Abs(ppm) > MaxFrequencyPPM {
		return 0, 0, fmt.Errorf("sysclock: %v ppm (limit ±%v): %w", ppm, MaxFrequencyPPM, clock.ErrFrequencyRange)
	}
	var delta int64
	if math.Abs(ppm) > maxFreqPPM {
		delta = int64(math.Round(ppm / ppmPerTickUS))
		delta = max(-maxTickBiasUS, min(maxTickBiasUS, delta))
	}
	rest := ppm - float64(delta)*ppmPerTickUS
	return nominalTickUS + delta, ppmToScaled(rest), nil
}

// totalFrequency is the frequency correction, in ppm, that a tick and a
// fine frequency give: the kernel adds them (tick_usec*USER_HZ µs per
// second plus freq ppm).
func totalFrequency(tickUS, freqScaled int64) float64 {
	return float64(tickUS-nominalTickUS)*ppmPerTickUS + scaledToPPM(freqScaled)
}

// errorToUS converts an error bound to the kernel's µs, rounded up (a
// bound must not shrink) and clamped to 0..NTP_PHASE_LIMIT like the
// kernel does.
func errorToUS(d time.Duration) int64 {
	if d <= 0 {
		return 0
	}
	if d >= phaseLimit {
		return int64(phaseLimit / time.Microsecond)
	}
	return int64((d + time.Microsecond - 1) / time.Microsecond)
}

// statusTimex fills the modes, status, maxerror and esterror that hand st
// to the kernel. Unsynchronized (or a maxerror at the kernel's limit)
// means STA_UNSYNC and both bounds at the limit, so that every reader, the
// kernel's own 11-minute RTC sync and systemd-timedated alike, sees an
// unsynchronized clock. A leap is armed only as STA_INS or STA_DEL, which
// the kernel carries out at the next UTC midnight; anything else clears
// both.
func statusTimex(st clock.Status, tx *unix.Timex) {
	maxUS, estUS := errorToUS(st.MaxError), errorToUS(st.EstError)
	synced := st.Synchronized && maxUS < int64(phaseLimit/time.Microsecond)
	var status int32
	if !synced {
		status |= unix.STA_UNSYNC
		maxUS = int64(phaseLimit / time.Microsecond)
		estUS = maxUS
	}
	switch st.Leap {
	case sample.LeapInsert:
		status |= unix.STA_INS
	case sample.LeapDelete:
		status |= unix.STA_DEL
	}
	tx.Modes = unix.ADJ_STATUS | unix.ADJ_MAXERROR | unix.ADJ_ESTERROR
	tx.Status = status
	setLong(&tx.Maxerror, maxUS)
	setLong(&tx.Esterror, estUS)
}

// stepTimex fills the modes and time that step the clock by offset:
// ADJ_SETOFFSET with ADJ_NANO, the kernel adding offset atomically.
func stepTimex(offset time.Duration, tx *unix.Timex) {
	sec := int64(offset / time.Second)
	nsec := int64(offset % time.Second)
	if nsec < 0 { // the kernel wants 0 <= nsec < 1e9
		sec--
		nsec += int64(time.Second)
	}
	tx.Modes = unix.ADJ_SETOFFSET | unix.ADJ_NANO
	setLong(&tx.Time.Sec, sec)
	setLong(&tx.Time.Usec, nsec) // nanoseconds under ADJ_NANO
}
