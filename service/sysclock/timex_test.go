//go:build linux

package sysclock

import (
	"errors"
	"math"
	"math/rand/v2"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"gnomon.dev/gnomon/engine/clock"
	"gnomon.dev/gnomon/engine/sample"
)

func TestPPMScaled(t *testing.T) {
	tests := []struct {
		ppm    float64
		scaled int64
	}{
		{0, 0},
		{1, 65536},
		{-1, -65536},
		{0.5, 32768},
		{12.25, 802816},
		{500, 32768000},
		{-500, -32768000},
		{1.0 / 65536, 1},
		{0.4 / 65536, 0},   // rounds down
		{0.6 / 65536, 1},   // rounds up
		{-0.6 / 65536, -1}, // symmetric
	}
	for _, tc := range tests {
		if got := ppmToScaled(tc.ppm); got != tc.scaled {
			t.Errorf("ppmToScaled(%v) = %d, want %d", tc.ppm, got, tc.scaled)
		}
		if math.Round(tc.ppm*65536) == float64(tc.scaled) {
			if got := scaledToPPM(tc.scaled); math.Abs(got-tc.ppm) > 0.5/65536 {
				t.Errorf("scaledToPPM(%d) = %v, want ≈%v", tc.scaled, got, tc.ppm)
			}
		}
	}
}

func TestSplitFrequency(t *testing.T) {
	const s = 65536
	tests := []struct {
		ppm    float64
		tick   int64
		scaled int64
	}{
		{0, 10000, 0},
		{12.5, 10000, 12.5 * s},
		{-499.75, 10000, -499.75 * s},
		{500, 10000, 500 * s},
		{-500, 10000, -500 * s},
		{500.5, 10005, 0.5 * s},
		{600, 10006, 0},
		{-600, 9994, 0},
		{612.25, 10006, 12.25 * s},
		{-612.25, 9994, -12.25 * s},
		{550, 10006, -50 * s}, // 5.5 ticks round away from zero
		{-550, 9994, 50 * s},
		{100000, 11000, 0},
		{-100000, 9000, 0},
		{100500, 11000, 500 * s}, // the ends of the range need the full fine range
		{-100500, 9000, -500 * s},
		{100499.5, 11000, 499.5 * s},
	}
	for _, tc := range tests {
		tick, scaled, err := splitFrequency(tc.ppm)
		if err != nil || tick != tc.tick || scaled != tc.scaled {
			t.Errorf("splitFrequency(%v) = %d, %d, %v; want %d, %d, nil", tc.ppm, tick, scaled, err, tc.tick, tc.scaled)
		}
		if got := totalFrequency(tick, scaled); math.Abs(got-tc.ppm) > 0.5/s {
			t.Errorf("totalFrequency(splitFrequency(%v)) = %v", tc.ppm, got)
		}
	}
}

func TestSplitFrequencyRefuses(t *testing.T) {
	for _, ppm := range []float64{100500.001, -100500.001, 1e9, math.Inf(1), math.Inf(-1), math.NaN()} {
		if _, _, err := splitFrequency(ppm); !errors.Is(err, clock.ErrFrequencyRange) {
			t.Errorf("splitFrequency(%v) error = %v, want ErrFrequencyRange", ppm, err)
		}
	}
}

// TestSplitFrequencyProperties checks, over random frequencies, that the
// kernel would accept the split and that it adds up to what was asked.
func TestSplitFrequencyProperties(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for range 100000 {
		ppm := (r.Float64()*2 - 1) * MaxFrequencyPPM
		if r.IntN(2) == 0 {
			ppm /= 200 // dense near zero too
		}
		tick, scaled, err := splitFrequency(ppm)
		if err != nil {
			t.Fatalf("splitFrequency(%v): %v", ppm, err)
		}
		if tick < 9000 || tick > 11000 {
			t.Fatalf("splitFrequency(%v): tick %d outside the kernel's 9000..11000", ppm, tick)
		}
		if scaled < -500*65536 || scaled > 500*65536 {
			t.Fatalf("splitFrequency(%v): freq %d beyond the kernel's ±500 ppm", ppm, scaled)
		}
		if math.Abs(ppm) <= 500 && tick != 10000 {
			t.Fatalf("splitFrequency(%v): tick %d moved within ±500 ppm", ppm, tick)
		}
		if got := totalFrequency(tick, scaled); math.Abs(got-ppm) > 0.5/65536+1e-9 {
			t.Fatalf("splitFrequency(%v) adds up to %v", ppm, got)
		}
	}
}

func TestErrorToUS(t *testing.T) {
	tests := []struct {
		d  time.Duration
		us int64
	}{
		{0, 0},
		{-time.Second, 0},
		{time.Nanosecond, 1}, // a bound rounds up
		{time.Microsecond, 1},
		{1500 * time.Nanosecond, 2},
		{250 * time.Millisecond, 250000},
		{16*time.Second - time.Microsecond, 15999999},
		{16*time.Second - 1, 16000000},
		{16 * time.Second, 16000000},
		{time.Hour, 16000000}, // the kernel's NTP_PHASE_LIMIT
	}
	for _, tc := range tests {
		if got := errorToUS(tc.d); got != tc.us {
			t.Errorf("errorToUS(%v) = %d, want %d", tc.d, got, tc.us)
		}
	}
}

func TestStatusTimex(t *testing.T) {
	const modes = unix.ADJ_STATUS | unix.ADJ_MAXERROR | unix.ADJ_ESTERROR
	tests := []struct {
		name     string
		st       clock.Status
		status   int32
		max, est int64
	}{
		{"synchronized", clock.Status{Synchronized: true, MaxError: 10 * time.Millisecond, EstError: time.Millisecond}, 0, 10000, 1000},
		{"unsynchronized", clock.Status{MaxError: time.Millisecond, EstError: time.Millisecond}, unix.STA_UNSYNC, 16000000, 16000000},
		{"zero value", clock.Status{}, unix.STA_UNSYNC, 16000000, 16000000},
		{"maxerror at the limit", clock.Status{Synchronized: true, MaxError: 16 * time.Second, EstError: time.Second}, unix.STA_UNSYNC, 16000000, 16000000},
		{"maxerror just below", clock.Status{Synchronized: true, MaxError: 16*time.Second - time.Microsecond, EstError: 20 * time.Second}, 0, 15999999, 16000000},
		{"insert", clock.Status{Synchronized: true, Leap: sample.LeapInsert, MaxError: time.Millisecond}, unix.STA_INS, 1000, 0},
		{"delete", clock.Status{Synchronized: true, Leap: sample.LeapDelete, MaxError: time.Millisecond}, unix.STA_DEL, 1000, 0},
		{"insert unsynchronized", clock.Status{Leap: sample.LeapInsert}, unix.STA_UNSYNC | unix.STA_INS, 16000000, 16000000},
		{"leap unsync is no leap", clock.Status{Synchronized: true, Leap: sample.LeapUnsync, MaxError: time.Millisecond}, 0, 1000, 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var tx unix.Timex
			statusTimex(tc.st, &tx)
			if tx.Modes != modes {
				t.Errorf("modes = %#x, want %#x", tx.Modes, modes)
			}
			if tx.Modes&unix.ADJ_TAI != 0 {
				t.Errorf("ADJ_TAI set")
			}
			if tx.Status != tc.status || int64(tx.Maxerror) != tc.max || int64(tx.Esterror) != tc.est {
				t.Errorf("status %#x maxerror %d esterror %d, want %#x %d %d", tx.Status, tx.Maxerror, tx.Esterror, tc.status, tc.max, tc.est)
			}
			if tx.Status&(unix.STA_PLL|unix.STA_FLL|unix.STA_PPSTIME|unix.STA_PPSFREQ) != 0 {
				t.Errorf("status %#x turns a kernel discipline on", tx.Status)
			}
		})
	}
}

func TestStepTimex(t *testing.T) {
	tests := []struct {
		offset    time.Duration
		sec, nsec int64
	}{
		{0, 0, 0},
		{time.Nanosecond, 0, 1},
		{-time.Nanosecond, -1, 999999999},
		{1500 * time.Millisecond, 1, 500000000},
		{-1500 * time.Millisecond, -2, 500000000},
		{-2 * time.Second, -2, 0},
		{time.Hour + 1, 3600, 1},
	}
	for _, tc := range tests {
		var tx unix.Timex
		stepTimex(tc.offset, &tx)
		if tx.Modes != unix.ADJ_SETOFFSET|unix.ADJ_NANO {
			t.Errorf("step %v: modes %#x", tc.offset, tx.Modes)
		}
		if int64(tx.Time.Sec) != tc.sec || int64(tx.Time.Usec) != tc.nsec {
			t.Errorf("step %v: time %d.%09d, want %d.%09d", tc.offset, tx.Time.Sec, tx.Time.Usec, tc.sec, tc.nsec)
		}
		if back := time.Duration(tx.Time.Sec)*time.Second + time.Duration(tx.Time.Usec); back != tc.offset {
			t.Errorf("step %v: encodes %v", tc.offset, back)
		}
	}
}

func TestKernelStatusFromTimex(t *testing.T) {
	tests := []struct {
		name   string
		state  int
		tx     unix.Timex
		freq   float64
		synced bool
	}{
		{"untouched machine", unix.TIME_ERROR, unix.Timex{Tick: 10000, Status: unix.STA_UNSYNC, Maxerror: 16000000, Esterror: 16000000}, 0, false},
		{"disciplined", unix.TIME_OK, unix.Timex{Tick: 10000, Freq: -12 * 65536, Maxerror: 12000, Esterror: 300}, -12, true},
		{"tick and freq add", unix.TIME_OK, unix.Timex{Tick: 10003, Freq: 65536 / 2, Maxerror: 1}, 300.5, true},
		// systemd's ntp_synced() looks at maxerror only: chrony sets
		// STA_UNSYNC when it keeps the kernel off the RTC.
		{"STA_UNSYNC but small maxerror", unix.TIME_ERROR, unix.Timex{Tick: 10000, Status: unix.STA_UNSYNC, Maxerror: 15999999}, 0, true},
		{"no STA_UNSYNC but maxerror at limit", unix.TIME_OK, unix.Timex{Tick: 9990, Maxerror: 16000000}, -1000, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			k := kernelStatusFromTimex(tc.state, &tc.tx)
			if k.State != tc.state || k.Status != tc.tx.Status || k.TickUS != int64(tc.tx.Tick) {
				t.Errorf("got %+v", k)
			}
			if math.Abs(k.FreqPPM-tc.freq) > 1e-9 {
				t.Errorf("FreqPPM = %v, want %v", k.FreqPPM, tc.freq)
			}
			if k.Synced != tc.synced {
				t.Errorf("Synced = %t, want %t", k.Synced, tc.synced)
			}
			if k.MaxError != time.Duration(tc.tx.Maxerror)*time.Microsecond || k.EstError != time.Duration(tc.tx.Esterror)*time.Microsecond {
				t.Errorf("errors %v %v", k.MaxError, k.EstError)
			}
		})
	}
}
