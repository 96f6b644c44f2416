package daemon

import (
	"errors"
	"fmt"
	"testing"

	"gnomon.dev/gnomon/engine/ntp"
	"gnomon.dev/gnomon/engine/nts"
)

func TestRejectReason(t *testing.T) {
	for _, c := range []struct {
		err  error
		want string
	}{
		{&ntp.KissError{Code: ntp.KissRate}, "kod-rate"},
		{fmt.Errorf("wrapped: %w", &ntp.KissError{Code: ntp.KissDeny}), "kod-deny"},
		{&ntp.KissError{Code: 0x01020304}, "kod-other"},
		{nts.ErrNAK, "nts-nak"},
		{ntp.ErrNotPending, "not-pending"},
		{ntp.ErrOriginMismatch, "origin-mismatch"},
		{nts.ErrNotAuthenticated, "auth"},
		{ntp.ErrShort, "malformed"},
		{ntp.ErrMode, "malformed"},
		{ntp.ErrStratum, "stratum"},
		{ntp.ErrRootDistance, "root-distance"},
		{ntp.ErrNegativeDelay, "negative-delay"},
		{errors.New("something else"), "other"},
	} {
		if got := rejectReason(c.err); got != c.want {
			t.Errorf("rejectReason(%v) = %q, want %q", c.err, got, c.want)
		}
	}
}

func TestServerCountersReply(t *testing.T) {
	var c serverCounters
	c.countReply(&ntp.Header{Stratum: 2}, nil)
	c.countReply(&ntp.Header{Stratum: 2}, &nts.ServerReply{})
	c.countReply(&ntp.Header{Stratum: 0, ReferenceID: ntp.KissRate}, nil)
	c.countReply(&ntp.Header{Stratum: 0, ReferenceID: ntp.KissNTSN}, nil)
	c.countReply(&ntp.Header{Stratum: 16}, nil) // unsynchronized, still an answer
	m := map[string]uint64{}
	c.add(m)
	want := map[string]uint64{"Answers": 3, "NTSAnswers": 1, "KoDRate": 1, "KoDNTSN": 1, "KoDDeny": 0}
	for k, v := range want {
		if m[k] != v {
			t.Errorf("%s = %d, want %d (all: %v)", k, m[k], v, m)
		}
	}
	var sc sourceCounters
	sc.reject(ntp.ErrNotPending)
	sc.reject(ntp.ErrNotPending)
	sc.reject(&ntp.KissError{Code: ntp.KissRate})
	if sc.rejected != 3 || sc.rejectedBy["not-pending"] != 2 || sc.rejectedBy["kod-rate"] != 1 {
		t.Errorf("source counters %+v", sc)
	}
}
