package ntp

import (
	"bytes"
	"testing"
	"time"

	"gnomon.dev/gnomon/engine/sample"
)

var testServer = ServerState{
	Leap:           sample.LeapNone,
	Stratum:        2,
	Precision:      -20,
	RootDelay:      1 * time.Millisecond,
	RootDispersion: 2 * time.Millisecond,
	ReferenceID:    0x0A000001,
	ReferenceTime:  date(2026, 11, 25, 21, 59, 0, 0),
}

func TestRespond(t *testing.T) {
	rx := date(2026, 11, 25, 22, 0, 0, 100)
	tx := rx.Add(30 * time.Microsecond)
	req := Header{Version: 4, Mode: ModeClient, Poll: 6, Precision: 32, TransmitTime: 0x1122334455667788}
	var resp Header
	if !Respond(&req, rx, tx, &testServer, &resp) {
		t.Fatal("Respond refused a plain client request")
	}
	want := Header{
		Leap: sample.LeapNone, Version: 4, Mode: ModeServer, Stratum: 2, Poll: 6, Precision: -20,
		RootDelay: ShortFromDuration(time.Millisecond), RootDispersion: ShortFromDuration(2 * time.Millisecond),
		ReferenceID: 0x0A000001, ReferenceTime: TimestampFromTime(testServer.ReferenceTime),
		OriginTime: 0x1122334455667788, ReceiveTime: TimestampFromTime(rx), TransmitTime: TimestampFromTime(tx),
	}
	if resp != want {
		t.Errorf("got  %+v\nwant %+v", resp, want)
	}
	// And the client's check accepts it.
	if err := CheckReply(&resp, req.TransmitTime, time.Second); err != nil {
		t.Errorf("CheckReply of our own answer: %v", err)
	}
}

func TestRespondWhom(t *testing.T) {
	rx := date(2026, 11, 25, 22, 0, 0, 0)
	tests := []struct {
		mode    Mode
		version uint8
		answer  bool
	}{
		{ModeClient, 1, true},
		{ModeClient, 2, true},
		{ModeClient, 3, true},
		{ModeClient, 4, true},
		{ModeClient, 0, false},
		{ModeClient, 5, false},
		{ModeClient, 7, false},
		{ModeReserved, 4, false},
		{ModeSymmetricActive, 4, false},
		{ModeSymmetricPassive, 4, false},
		{ModeServer, 4, false},
		{ModeBroadcast, 4, false},
		{ModeControl, 2, false}, // ntpq
		{ModeControl, 4, false},
		{ModePrivate, 2, false}, // ntpdc monlist: the classic amplifier
		{ModePrivate, 4, false},
	}
	for _, tc := range tests {
		req := Header{Version: tc.version, Mode: tc.mode, TransmitTime: 99}
		resp := Header{Stratum: 77}
		got := Respond(&req, rx, rx, &testServer, &resp)
		if got != tc.answer {
			t.Errorf("mode %v version %d: Respond = %v, want %v", tc.mode, tc.version, got, tc.answer)
		}
		if got && (resp.Version != tc.version || resp.Mode != ModeServer) {
			t.Errorf("mode %v version %d: reply version %d mode %v", tc.mode, tc.version, resp.Version, resp.Mode)
		}
		if !got && resp.Stratum != 77 {
			t.Errorf("mode %v version %d: refused but wrote the reply", tc.mode, tc.version)
		}
	}
}

func TestRespondUnsynchronized(t *testing.T) {
	rx := date(2026, 11, 25, 22, 0, 0, 0)
	req := Header{Version: 4, Mode: ModeClient, TransmitTime: 5}
	tests := []struct {
		name  string
		leap  sample.Leap
		strat uint8
		unsyn bool
	}{
		{"synchronized stratum 1", sample.LeapNone, 1, false},
		{"synchronized stratum 15", sample.LeapDelete, 15, false},
		{"leap 3", sample.LeapUnsync, 3, true},
		{"stratum 0", sample.LeapNone, 0, true},
		{"stratum 16", sample.LeapNone, 16, true},
		{"stratum 200", sample.LeapInsert, 200, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			st := testServer
			st.Leap, st.Stratum = tc.leap, tc.strat
			var resp Header
			if !Respond(&req, rx, rx, &st, &resp) {
				t.Fatal("refused")
			}
			if tc.unsyn {
				if resp.Leap != sample.LeapUnsync || resp.Stratum != 16 {
					t.Errorf("leap %v stratum %d, want unsynchronized and 16", resp.Leap, resp.Stratum)
				}
				if err := CheckReply(&resp, 5, 0); err != ErrUnsynchronized {
					t.Errorf("a client would see %v", err)
				}
			} else if resp.Leap != tc.leap || resp.Stratum != tc.strat {
				t.Errorf("leap %v stratum %d, want %v %d", resp.Leap, resp.Stratum, tc.leap, tc.strat)
			}
		})
	}
}

func TestRespondPoll(t *testing.T) {
	rx := date(2026, 11, 25, 22, 0, 0, 0)
	tests := []struct {
		reqPoll, minPoll, want int8
	}{
		{6, 0, 6},
		{0, 0, 0},
		{-3, 0, 0},
		{-128, 0, 0},
		{17, 0, 17},
		{18, 0, 17},
		{127, 0, 17},
		{4, 6, 6}, // a rate-limited server asks for at least its interval
		{10, 6, 10},
		{3, 20, 17}, // MinPoll beyond the maximum is capped
	}
	for _, tc := range tests {
		st := testServer
		st.MinPoll = tc.minPoll
		req := Header{Version: 4, Mode: ModeClient, Poll: tc.reqPoll}
		var resp Header
		Respond(&req, rx, rx, &st, &resp)
		if resp.Poll != tc.want {
			t.Errorf("request poll %d, MinPoll %d: reply poll %d, want %d", tc.reqPoll, tc.minPoll, resp.Poll, tc.want)
		}
	}
}

func TestRespondZeroReferenceTime(t *testing.T) {
	st := testServer
	st.ReferenceTime = time.Time{}
	req := Header{Version: 4, Mode: ModeClient}
	var resp Header
	Respond(&req, time.Unix(1e9, 0), time.Unix(1e9, 0), &st, &resp)
	if resp.ReferenceTime != 0 {
		t.Errorf("zero reference time went out as %#x", uint64(resp.ReferenceTime))
	}
}

func TestRespondKiss(t *testing.T) {
	req := Header{
		Leap: sample.LeapUnsync, Version: 3, Mode: ModeClient, Poll: 4, Precision: -18,
		RootDelay: 0x100, RootDispersion: 0x200, ReferenceID: 0x01020304,
		ReferenceTime: 0xAAAA, OriginTime: 0xBBBB, ReceiveTime: 0xCCCC, TransmitTime: 0xEEB1DE0BE34BD2C7,
	}
	for _, code := range []uint32{KissRate, KissDeny, KissRstr} {
		var resp Header
		RespondKiss(&req, code, &resp)
		want := Header{
			Leap: sample.LeapUnsync, Version: 3, Mode: ModeServer, Stratum: 0, Poll: 4, Precision: -18,
			RootDelay: 0x100, RootDispersion: 0x200, ReferenceID: code, ReferenceTime: 0xAAAA,
			OriginTime: req.TransmitTime, ReceiveTime: req.TransmitTime, TransmitTime: req.TransmitTime,
		}
		if resp != want {
			t.Errorf("%s:\n got %+v\nwant %+v", KissCodeString(code), resp, want)
		}
		err := CheckReply(&resp, req.TransmitTime, time.Second)
		if k, ok := err.(*KissError); !ok || k.Code != code {
			t.Errorf("%s: a client sees %v", KissCodeString(code), err)
		}
	}
}

// TestRespondKissMatchesNTPsec checks RespondKiss byte for byte against
// the RATE KoD that NTPsec's ntpd 1.2.2 sent to the same request.
func TestRespondKissMatchesNTPsec(t *testing.T) {
	req, _ := mustParse(t, "ntpsec-1.2.2-kod-rate-request.hex")
	want := readHex(t, "ntpsec-1.2.2-kod-rate-reply.hex")
	var resp Header
	RespondKiss(&req.Header, KissRate, &resp)
	var got [HeaderLen]byte
	if _, err := resp.MarshalTo(got[:]); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got[:], want) {
		t.Errorf("RespondKiss:\n got %x\nwant %x (NTPsec)", got, want)
	}
}

// TestRespondGolden rebuilds the replies that ntpcapture (with Respond)
// sent to chronyd and ntpdig, which both accepted them, from the captured
// requests and the receive and transmit times in the replies.
func TestRespondGolden(t *testing.T) {
	tests := []struct{ req, reply string }{
		{"chronyd-4.3-client-request.hex", "gnomon-reply-to-chronyd-4.3.hex"},
		{"ntpdig-1.2.2-request.hex", "gnomon-reply-to-ntpdig-1.2.2.hex"},
	}
	for _, tc := range tests {
		t.Run(tc.reply, func(t *testing.T) {
			req, _ := mustParse(t, tc.req)
			captured, raw := mustParse(t, tc.reply)
			rx := captured.ReceiveTime.Time(capturePivot)
			tx := captured.TransmitTime.Time(capturePivot)
			// What tools/ntpcapture listen -answer -stratum 2 -refid GNMN uses.
			st := ServerState{
				Stratum: 2, Precision: -20, RootDispersion: 100 * time.Microsecond,
				ReferenceID: 0x474E4D4E, ReferenceTime: rx.Add(-time.Second),
			}
			var resp Header
			if !Respond(&req.Header, rx, tx, &st, &resp) {
				t.Fatal("refused")
			}
			var got [HeaderLen]byte
			if _, err := resp.MarshalTo(got[:]); err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got[:], raw) {
				t.Errorf("\n got %x\nwant %x", got, raw)
			}
		})
	}
}

func TestRespondDoesNotAllocate(t *testing.T) {
	req := Header{Version: 4, Mode: ModeClient, TransmitTime: 1}
	rx := time.Unix(1e9, 0)
	var resp Header
	if n := testing.AllocsPerRun(100, func() { Respond(&req, rx, rx, &testServer, &resp) }); n != 0 {
		t.Errorf("%v allocations per Respond", n)
	}
}

// FuzzRespond parses arbitrary bytes as a request: Respond must never
// panic, must answer only mode-3 requests of version 1..4, and its reply
// must echo the request's transmit time as origin, marshal, and parse back.
func FuzzRespond(f *testing.F) {
	addGoldenSeeds(f)
	f.Fuzz(func(t *testing.T, b []byte) {
		var p Packet
		if err := Parse(b, &p); err != nil {
			return
		}
		rx := date(2026, 11, 25, 22, 0, 0, 0)
		var resp Header
		ok := Respond(&p.Header, rx, rx.Add(time.Microsecond), &testServer, &resp)
		if ok != (p.Mode == ModeClient && p.Version >= 1 && p.Version <= 4) {
			t.Fatalf("Respond = %v for mode %v version %d", ok, p.Mode, p.Version)
		}
		if !ok {
			return
		}
		if resp.OriginTime != p.TransmitTime || resp.Mode != ModeServer || resp.Version != p.Version {
			t.Fatalf("reply %+v to %+v", resp, p.Header)
		}
		if resp.Poll < 0 || resp.Poll > MaxReplyPoll {
			t.Fatalf("reply poll %d", resp.Poll)
		}
		var out [HeaderLen]byte
		if _, err := resp.MarshalTo(out[:]); err != nil {
			t.Fatal(err)
		}
		var back Packet
		if err := Parse(out[:], &back); err != nil || back.Header != resp {
			t.Fatalf("reply does not parse back: %v", err)
		}
		var kod Header
		RespondKiss(&p.Header, KissRate, &kod)
		if kod.OriginTime != p.TransmitTime || kod.Stratum != 0 || kod.ReferenceID != KissRate {
			t.Fatalf("KoD %+v", kod)
		}
		if _, err := kod.MarshalTo(out[:]); err != nil {
			t.Fatal(err)
		}
	})
}
