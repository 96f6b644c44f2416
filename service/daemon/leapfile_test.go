package daemon

import (
	"testing"
	"time"

	"gnomon.dev/gnomon/engine/ntp"
)

type fakeTAI struct{ set []int }

func (f *fakeTAI) SetTAIOffset(s int) error { f.set = append(f.set, s); return nil }

func TestSetTAIFromFile(t *testing.T) {
	lt := &ntp.LeapTable{
		Entries: []ntp.LeapEntry{{At: time.Date(2015, 7, 1, 0, 0, 0, 0, time.UTC), TAIOffset: 36}, {At: time.Date(2017, 1, 1, 0, 0, 0, 0, time.UTC), TAIOffset: 37}},
		Expires: time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC),
	}
	f := &fakeTAI{}
	if err := setTAI(f, lt, time.Date(2026, 12, 7, 0, 0, 0, 0, time.UTC)); err != nil || len(f.set) != 1 || f.set[0] != 37 {
		t.Errorf("set %v (%v), want [37]", f.set, err)
	}
	f.set = nil
	if err := setTAI(f, lt, time.Date(2031, 1, 1, 0, 0, 0, 0, time.UTC)); err != nil || len(f.set) != 0 {
		t.Errorf("expired file: set %v (%v), want nothing", f.set, err)
	}
}
