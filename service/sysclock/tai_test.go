//go:build linux

package sysclock

import (
	"errors"
	"testing"

	"golang.org/x/sys/unix"
)

func TestSetTAIOffset(t *testing.T) {
	f := &fakeKernel{}
	s := newFake(t, f)
	if err := s.SetTAIOffset(37); err != nil {
		t.Fatal(err)
	}
	if len(f.calls) != 1 || f.calls[0].Modes != unix.ADJ_TAI || f.calls[0].Constant != 37 {
		t.Errorf("calls %+v, want one ADJ_TAI with constant 37", f.calls)
	}
	f.calls, f.err = nil, unix.EPERM
	if err := s.SetTAIOffset(37); !errors.Is(err, unix.EPERM) {
		t.Errorf("without CAP_SYS_TIME: %v", err)
	}
	if err := s.SetTAIOffset(-1); err == nil || len(f.calls) != 1 {
		t.Errorf("negative offset: %v (calls %d)", err, len(f.calls))
	}
}
