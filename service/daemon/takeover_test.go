//go:build linux

package daemon

import (
	"io"
	"log/slog"
	"math"
	"os"
	"path/filepath"
	"testing"

	"golang.org/x/sys/unix"

	"gnomon.dev/gnomon/service/config"
)

// simKernel is a small model of the kernel's NTP state behind adjtimex:
// the frequency (tick and freq), the phase offset the PLL is slewing out,
// and the rest of an adjtime() slew. It never touches the real clock.
type simKernel struct {
	tx      unix.Timex // Tick, Freq, Status, and Offset: what the PLL still slews out
	adjtime int64      // µs still to be slewed by adjtime()
	calls   []unix.Timex
}

func (k *simKernel) adjtimex(tx *unix.Timex) (int, error) {
	k.calls = append(k.calls, *tx)
	m := tx.Modes
	if m&unix.ADJ_SETOFFSET != 0 {
		return -1, unix.EINVAL // the take-over must not step
	}
	if m&unix.ADJ_OFFSET_SINGLESHOT == unix.ADJ_OFFSET_SINGLESHOT {
		if m != 0xa001 { // ADJ_OFFSET_SS_READ only reads
			k.adjtime = int64(tx.Offset)
		}
	} else {
		if m&unix.ADJ_STATUS != 0 {
			k.tx.Status = tx.Status
		}
		if m&unix.ADJ_OFFSET != 0 && k.tx.Status&unix.STA_PLL != 0 {
			k.tx.Offset = tx.Offset
		}
		if m&unix.ADJ_FREQUENCY != 0 {
			k.tx.Freq = tx.Freq
		}
		if m&unix.ADJ_TICK != 0 {
			k.tx.Tick = tx.Tick
		}
	}
	tx.Tick, tx.Freq, tx.Status, tx.Offset = k.tx.Tick, k.tx.Freq, k.tx.Status, k.tx.Offset
	tx.Maxerror, tx.Esterror = 16000000, 16000000
	return unix.TIME_ERROR, nil
}

func (k *simKernel) freqPPM() float64 {
	return float64(k.tx.Tick-10000)*100 + float64(k.tx.Freq)/65536
}

// A daemon starting in system mode takes the kernel clock over: what a
// previous daemon left slewing (a PLL phase offset, an adjtime() slew) is
// cancelled, and the frequency it starts from is the drift file's, or
// without one the kernel's own.
func TestSystemClockTakeOver(t *testing.T) {
	for _, tc := range []struct {
		name     string
		drift    string // drift file content, "" for none
		wantFreq float64
	}{
		{"no drift file: the kernel's frequency", "", -12.5},
		{"drift file", "3.250000 0.100000\n", 3.25},
	} {
		t.Run(tc.name, func(t *testing.T) {
			k := &simKernel{tx: unix.Timex{Tick: 10000, Freq: -12.5 * 65536, Status: unix.STA_PLL, Offset: 40000},
				adjtime: -250000}
			cfg := config.Default(config.Options{CanSetClock: true})
			cfg.Clock.DriftFile = filepath.Join(t.TempDir(), "drift")
			if tc.drift != "" {
				if err := os.WriteFile(cfg.Clock.DriftFile, []byte(tc.drift), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			d, err := New(Options{Config: cfg, Adjtimex: k.adjtimex,
				Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
			if err != nil {
				t.Fatal(err)
			}
			if d.ClockMode() != "system" {
				t.Fatalf("mode %s", d.ClockMode())
			}
			if k.tx.Offset != 0 || k.adjtime != 0 {
				t.Errorf("left a PLL offset of %d and an adjtime slew of %d µs", k.tx.Offset, k.adjtime)
			}
			if k.tx.Status&(unix.STA_PLL|unix.STA_FLL|unix.STA_PPSFREQ|unix.STA_PPSTIME) != 0 || k.tx.Status&unix.STA_UNSYNC == 0 {
				t.Errorf("status %#x: want the kernel's PLL off and the clock unsynchronized", k.tx.Status)
			}
			if got := k.freqPPM(); math.Abs(got-tc.wantFreq) > 1e-4 {
				t.Errorf("kernel frequency %.6f ppm, want %.6f", got, tc.wantFreq)
			}
			if got := d.Snapshot().FreqPPM; math.Abs(got-tc.wantFreq) > 1e-4 {
				t.Errorf("engine starts from %.6f ppm, want %.6f", got, tc.wantFreq)
			}
			// The phase offset is cancelled before the frequency is set:
			// the PLL, while on, turns an offset into frequency.
			firstFreq, lastReset := -1, -1
			for i, c := range k.calls {
				if c.Modes&unix.ADJ_FREQUENCY != 0 && firstFreq < 0 {
					firstFreq = i
				}
				if c.Modes&unix.ADJ_OFFSET_SINGLESHOT == unix.ADJ_OFFSET_SINGLESHOT || c.Modes&unix.ADJ_OFFSET != 0 {
					lastReset = i
				}
			}
			if firstFreq < 0 || lastReset < 0 || firstFreq < lastReset {
				t.Errorf("calls %+v: want the reset before the first frequency write", k.calls)
			}
		})
	}
}

// Observe mode never writes to the kernel, not even to take it over.
func TestObserveModeLeavesKernelAlone(t *testing.T) {
	k := &simKernel{tx: unix.Timex{Tick: 10000, Status: unix.STA_PLL, Offset: 40000}}
	cfg := config.Default(config.Options{})
	cfg.Clock.DriftFile = ""
	if _, err := New(Options{Config: cfg, Adjtimex: k.adjtimex,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}); err != nil {
		t.Fatal(err)
	}
	for _, c := range k.calls {
		if c.Modes != 0 {
			t.Errorf("observe mode wrote %+v", c)
		}
	}
}
