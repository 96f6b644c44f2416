package ntp

import (
	"errors"
	"testing"
	"time"

	"gnomon.dev/gnomon/engine/sample"
)

func TestCheckReply(t *testing.T) {
	const sent = Timestamp(0xEEB1DE0BE34BD2C7)
	good := Header{
		Version: 4, Mode: ModeServer, Stratum: 2, Poll: 6, Precision: -20,
		RootDelay: ShortFromDuration(20 * time.Millisecond), RootDispersion: ShortFromDuration(5 * time.Millisecond),
		ReferenceID: 0x0A000001, ReferenceTime: sent - 1<<32,
		OriginTime: sent, ReceiveTime: sent + 1000, TransmitTime: sent + 2000,
	}
	with := func(f func(h *Header)) Header { h := good; f(&h); return h }
	tests := []struct {
		name    string
		h       Header
		maxDist time.Duration
		want    error // nil, a sentinel, or a *KissError
	}{
		{"good", good, time.Second, nil},
		{"good, no root distance limit", good, 0, nil},
		{"good, NTPv3", with(func(h *Header) { h.Version = 3 }), 0, nil},
		{"leap insert is fine", with(func(h *Header) { h.Leap = sample.LeapInsert }), 0, nil},
		{"client mode", with(func(h *Header) { h.Mode = ModeClient }), 0, ErrMode},
		{"symmetric passive", with(func(h *Header) { h.Mode = ModeSymmetricPassive }), 0, ErrMode},
		{"broadcast", with(func(h *Header) { h.Mode = ModeBroadcast }), 0, ErrMode},
		{"version 2", with(func(h *Header) { h.Version = 2 }), 0, ErrVersion},
		{"version 5", with(func(h *Header) { h.Version = 5 }), 0, ErrVersion},
		{"origin mismatch", with(func(h *Header) { h.OriginTime = sent + 1 }), 0, ErrOriginMismatch},
		{"zero origin", with(func(h *Header) { h.OriginTime = 0 }), 0, ErrOriginMismatch},
		{"KoD RATE", with(func(h *Header) { h.Stratum, h.ReferenceID, h.Leap = 0, KissRate, sample.LeapUnsync }), 0, &KissError{KissRate}},
		{"KoD DENY", with(func(h *Header) { h.Stratum, h.ReferenceID = 0, KissDeny }), 0, &KissError{KissDeny}},
		{"KoD RSTR", with(func(h *Header) { h.Stratum, h.ReferenceID = 0, KissRstr }), 0, &KissError{KissRstr}},
		{"KoD NTSN", with(func(h *Header) { h.Stratum, h.ReferenceID = 0, KissNTSN }), 0, &KissError{KissNTSN}},
		{"KoD with zero timestamps is still a KoD", with(func(h *Header) { h.Stratum, h.ReferenceID, h.ReceiveTime, h.TransmitTime = 0, KissRate, 0, 0 }), 0, &KissError{KissRate}},
		{"KoD with a wrong origin is bogus, not a KoD", with(func(h *Header) { h.Stratum, h.ReferenceID, h.OriginTime = 0, KissDeny, 1 }), 0, ErrOriginMismatch},
		{"zero receive", with(func(h *Header) { h.ReceiveTime = 0 }), 0, ErrZeroTimestamp},
		{"zero transmit", with(func(h *Header) { h.TransmitTime = 0 }), 0, ErrZeroTimestamp},
		{"leap 3", with(func(h *Header) { h.Leap = sample.LeapUnsync }), 0, ErrUnsynchronized},
		{"stratum 0 without a code, leap 3 (unsynchronized chronyd)", with(func(h *Header) { h.Stratum, h.ReferenceID, h.Leap = 0, 0, sample.LeapUnsync }), 0, ErrUnsynchronized},
		{"stratum 0 without a code, leap 0", with(func(h *Header) { h.Stratum, h.ReferenceID = 0, 0 }), 0, ErrStratum},
		{"stratum 16", with(func(h *Header) { h.Stratum = 16 }), 0, ErrStratum},
		{"stratum 255", with(func(h *Header) { h.Stratum = 255 }), 0, ErrStratum},
		{"stratum 15", with(func(h *Header) { h.Stratum = 15 }), 0, nil},
		{"root distance just within", good, 15100 * time.Microsecond, nil},
		{"root distance over", good, 14900 * time.Microsecond, ErrRootDistance},
		{"huge root dispersion", with(func(h *Header) { h.RootDispersion = 0xFFFFFFFF }), 16 * time.Second, ErrRootDistance},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := CheckReply(&tc.h, sent, tc.maxDist)
			var wantKiss *KissError
			if errors.As(tc.want, &wantKiss) {
				var kiss *KissError
				if !errors.As(err, &kiss) || kiss.Code != wantKiss.Code {
					t.Fatalf("CheckReply = %v, want %v", err, tc.want)
				}
				return
			}
			if err != tc.want {
				t.Fatalf("CheckReply = %v, want %v", err, tc.want)
			}
		})
	}
}

// The checks run in RFC 5905 order: a reply wrong in every way reports the
// first problem, and fixing each in turn reveals the next.
func TestCheckReplyOrder(t *testing.T) {
	const sent = Timestamp(42 << 32)
	h := Header{Leap: sample.LeapUnsync, Version: 2, Mode: ModeClient, Stratum: 16, RootDispersion: 0xFFFFFFFF}
	steps := []struct {
		want error
		fix  func()
	}{
		{ErrMode, func() { h.Mode = ModeServer }},
		{ErrVersion, func() { h.Version = 4 }},
		{ErrOriginMismatch, func() { h.OriginTime = sent }},
		{ErrZeroTimestamp, func() { h.ReceiveTime, h.TransmitTime = sent+1, sent+2 }},
		{ErrUnsynchronized, func() { h.Leap = sample.LeapNone }},
		{ErrStratum, func() { h.Stratum = 3 }},
		{ErrRootDistance, func() { h.RootDispersion = 0 }},
		{nil, func() {}},
	}
	for _, s := range steps {
		if err := CheckReply(&h, sent, time.Second); err != s.want {
			t.Fatalf("got %v, want %v", err, s.want)
		}
		s.fix()
	}
}

func TestKissCodeString(t *testing.T) {
	tests := []struct {
		code uint32
		want string
	}{
		{KissRate, "RATE"},
		{KissDeny, "DENY"},
		{KissRstr, "RSTR"},
		{KissNTSN, "NTSN"},
		{0x494E4954, "INIT"},
		{0x47505300, "GPS"},        // trailing NUL dropped
		{0x00000000, "0x00000000"}, // nothing printable
		{0x7F7F0101, "0x7f7f0101"}, // an IPv4-style reference ID
		{0x41004243, "0x41004243"}, // NUL inside
		{0x52415445 ^ 0x80, "0x524154c5"},
		{0x0A0D4142, "0x0a0d4142"}, // newline and CR never reach a log line
	}
	for _, tc := range tests {
		if got := KissCodeString(tc.code); got != tc.want {
			t.Errorf("KissCodeString(%#x) = %q, want %q", tc.code, got, tc.want)
		}
	}
	if got := (&KissError{Code: KissRate}).Error(); got != "kiss-o'-death RATE" {
		t.Errorf("KissError.Error() = %q", got)
	}
}
