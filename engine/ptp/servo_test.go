package ptp

import (
	"testing"
	"time"
)

// TestServoStepRules: linuxptp's rules. The first update steps when the
// offset is above first_step_threshold (20 µs), and not when below; after
// that only step_threshold (off by default) may step.
func TestServoStepRules(t *testing.T) {
	run := func(cfg ServoConfig, offsets []time.Duration) []ServoOutput {
		s := NewServo(cfg, time.Second)
		var out []ServoOutput
		for i, o := range offsets {
			out = append(out, s.Sample(o, t0.Add(time.Duration(i)*time.Second)))
		}
		return out
	}
	out := run(ServoConfig{}, []time.Duration{time.Millisecond, time.Millisecond + 10*time.Microsecond, 100 * time.Microsecond})
	if out[0].State != ServoUnlocked || out[1].State != ServoJump || out[1].Step != time.Millisecond+10*time.Microsecond {
		t.Errorf("first step: %+v", out)
	}
	// frequency from the two samples: the offset grew 10 µs in 1 s, the
	// local clock is 10 ppm slow: speed it up by 10000 ppb
	if f := out[1].FreqPPB; f < 9990 || f > 10010 {
		t.Errorf("frequency estimate %.1f ppb, want 10000", f)
	}
	// after the first update a large offset is slewed, not stepped
	if out[2].State != ServoLocked || out[2].Step != 0 {
		t.Errorf("later sample: %+v", out[2])
	}
	small := run(ServoConfig{}, []time.Duration{5 * time.Microsecond, 5 * time.Microsecond})
	if small[1].State != ServoLocked || small[1].Step != 0 {
		t.Errorf("below first_step_threshold: %+v", small[1])
	}
	st := run(ServoConfig{StepThreshold: time.Millisecond}, []time.Duration{0, 0, 0, 5 * time.Millisecond, 5 * time.Millisecond, 5 * time.Millisecond})
	if st[3].State != ServoUnlocked || st[5].State != ServoJump || st[5].Step != 5*time.Millisecond {
		t.Errorf("step_threshold: %+v", st)
	}
	never := run(ServoConfig{FirstStepThreshold: -1}, []time.Duration{time.Second, time.Second})
	if never[1].State != ServoLocked {
		t.Errorf("first step disabled: %+v", never[1])
	}
}

// TestServoConverges: a clock 30 ppm fast and 50 µs off, sampled at 1 Hz,
// ends within 100 ns and 10 ppb.
func TestServoConverges(t *testing.T) {
	s := NewServo(ServoConfig{}, time.Second)
	localErr := 50e3 // ns, local minus master
	natural := 30e3  // ppb
	freq := 0.0
	for i := 0; i < 300; i++ {
		o := s.Sample(time.Duration(-localErr), t0.Add(time.Duration(i)*time.Second))
		localErr += float64(o.Step) // Step is master minus local: adding it to the clock
		if o.Step != 0 {
			localErr = 0
		}
		freq = o.FreqPPB
		localErr += natural + freq // one second at the new frequency
	}
	if localErr > 100 || localErr < -100 || natural+freq > 10 || natural+freq < -10 {
		t.Errorf("error %.0f ns, residual frequency %.1f ppb", localErr, natural+freq)
	}
}
