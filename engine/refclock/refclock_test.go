package refclock

import (
	"encoding/binary"
	"errors"
	"strings"
	"testing"
	"time"

	"gnomon.dev/gnomon/engine/ntp"
	"gnomon.dev/gnomon/engine/sample"
)

var t0 = time.Date(2026, 12, 7, 10, 0, 0, 0, time.UTC)

func TestGPSDStream(t *testing.T) {
	g := &GPSD{}
	if w := string(g.Watch()); w != "?WATCH={\"enable\":true,\"json\":true,\"pps\":true};\n" {
		t.Fatalf("watch %q", w)
	}
	g2 := &GPSD{Device: "/dev/ttyS0"}
	if w := string(g2.Watch()); !strings.Contains(w, `"device":"/dev/ttyS0"`) {
		t.Fatalf("watch with device %q", w)
	}
	stream := `{"class":"VERSION","release":"3.22","rev":"3.22","proto_major":3,"proto_minor":14}
{"class":"DEVICES","devices":[{"class":"DEVICE","path":"tcp://127.0.0.1:10110","driver":"NMEA0183","activated":"2026-11-25T21:23:49.857Z"}]}
{"class":"WATCH","enable":true,"json":true,"pps":true}
{"class":"TOFF","device":"tcp://127.0.0.1:10110","real_sec":1796637600,"real_nsec":0,"clock_sec":1796637600,"clock_nsec":511825}
{"class":"TPV","device":"tcp://127.0.0.1:10110","mode":3,"time":"2026-12-07T10:00:00.000Z","ept":0.005}
{"class":"SKY","device":"tcp://127.0.0.1:10110","satellites":[{"PRN":1,"used":true},{"PRN":2,"used":false},{"PRN":3,"used":true}]}
{"class":"TOFF","device":"tcp://127.0.0.1:10110","real_sec":1796637601,"real_nsec":0,"clock_sec":1796637601,"clock_nsec":611825}
`
	var out []Sample
	out, errs := g.Feed([]byte(stream[:100]), t0, out)
	out, errs2 := g.Feed([]byte(stream[100:]), t0, out)
	errs = append(errs, errs2...)
	// The first TOFF comes before any TPV: no fix known yet.
	if len(errs) != 1 || !errors.Is(errs[0], ErrNoFix) {
		t.Fatalf("errors %v", errs)
	}
	if len(out) != 1 {
		t.Fatalf("samples %+v", out)
	}
	if got := out[0].Offset(); got != -611825*time.Nanosecond {
		t.Errorf("offset %v", got)
	}
	st := g.State
	if st.Release != "3.22" || st.Device != "tcp://127.0.0.1:10110" || st.Driver != "NMEA0183" || st.Mode != 3 ||
		st.Satellites != 2 || st.SatellitesSeen != 3 || st.Ignored != 1 {
		t.Errorf("state %+v", st)
	}
}

func TestGPSDIgnores(t *testing.T) {
	cases := []struct {
		name, line string
		want       error
	}{
		{"bogus", `{"class":"TPV",`, ErrBadJSON},
		{"not json", `hello`, ErrBadJSON},
		{"no mode", `{"class":"TPV","device":"d"}`, ErrBadReport},
		{"bad mode", `{"class":"TPV","device":"d","mode":7,"time":"2026-12-07T10:00:00.000Z"}`, ErrBadReport},
		{"no fix", `{"class":"TPV","device":"d","mode":1}`, ErrNoFix},
		{"fix without time", `{"class":"TPV","device":"d","mode":3}`, ErrNoTime},
		{"bad time", `{"class":"TPV","device":"d","mode":3,"time":"yesterday"}`, ErrBadReport},
		{"toff nsec", `{"class":"TOFF","device":"d","real_sec":1,"real_nsec":1000000000,"clock_sec":1,"clock_nsec":0}`, ErrBadReport},
		{"toff negative", `{"class":"TOFF","device":"d","real_sec":-5,"real_nsec":0,"clock_sec":1,"clock_nsec":0}`, ErrBadReport},
		{"no class", `{"device":"d"}`, ErrBadReport},
	}
	for _, c := range cases {
		g := &GPSD{}
		out, errs := g.Feed([]byte(c.line+"\n"), t0, nil)
		if len(out) != 0 || len(errs) != 1 || !errors.Is(errs[0], c.want) {
			t.Errorf("%s: samples %v errors %v, want %v", c.name, out, errs, c.want)
		}
		if g.State.Ignored != 1 || g.State.LastIgnored == "" {
			t.Errorf("%s: not counted: %+v", c.name, g.State)
		}
	}
}

func TestGPSDEndlessLine(t *testing.T) {
	g := &GPSD{MaxLine: 100}
	chunk := []byte(strings.Repeat("x", 60))
	var errs []error
	for range 1000 {
		_, e := g.Feed(chunk, t0, nil)
		errs = append(errs, e...)
	}
	if len(errs) != 1 || !errors.Is(errs[0], ErrLineTooLong) {
		t.Fatalf("errors %v", errs)
	}
	if cap(g.buf) > 1000 {
		t.Errorf("buffer grew to %d", cap(g.buf))
	}
	// The line ends; the next good one is used.
	out, errs := g.Feed([]byte("xx\n"+`{"class":"TPV","device":"d","mode":3,"time":"2026-12-07T10:00:00.000Z"}`+"\n"), t0, nil)
	if len(errs) != 0 || len(out) != 1 || out[0].Ref != t0 {
		t.Fatalf("after the long line: %v %v", out, errs)
	}
}

func TestGPSDDeviceAndPPS(t *testing.T) {
	g := &GPSD{Device: "/dev/b"}
	in := `{"class":"TPV","device":"/dev/a","mode":3,"time":"2026-12-07T10:00:00.000Z"}
{"class":"TPV","device":"/dev/b","mode":3,"time":"2026-12-07T10:00:00.000Z"}
{"class":"PPS","device":"/dev/b","real_sec":1796637601,"real_nsec":0,"clock_sec":1796637601,"clock_nsec":2000,"precision":-20}
{"class":"TOFF","device":"/dev/b","real_sec":1796637601,"real_nsec":0,"clock_sec":1796637601,"clock_nsec":500000}
`
	out, errs := g.Feed([]byte(in), t0, nil)
	if len(errs) != 0 {
		t.Fatal(errs)
	}
	// TPV of /dev/b (TPV-only so far), then PPS; the TOFF yields to the PPS.
	if len(out) != 2 || out[1].Offset() != -2*time.Microsecond || out[1].Precision != 953*time.Nanosecond {
		t.Fatalf("%+v", out)
	}
	if g.State.Device != "/dev/b" || g.State.LastPPS != time.Unix(1796637601, 0).UTC() {
		t.Errorf("%+v", g.State)
	}
}

func TestSockLayout(t *testing.T) {
	tv := time.Date(2026, 12, 7, 10, 0, 0, 123456000, time.UTC)
	s := SockSample{TV: tv, Offset: 0.25, Leap: 1}
	b := EncodeSock(nil, binary.LittleEndian, s)
	if len(b) != 40 || binary.LittleEndian.Uint32(b[36:]) != 0x534f434b {
		t.Fatalf("layout % x", b)
	}
	got, err := DecodeSock(b, binary.LittleEndian)
	if err != nil || got != s {
		t.Fatalf("%+v %v", got, err)
	}
	smp := got.Sample()
	if smp.Offset() != 250*time.Millisecond || smp.Leap != sample.LeapInsert {
		t.Errorf("%+v", smp)
	}
	// 32-bit time_t sender.
	b32 := make([]byte, 32)
	binary.LittleEndian.PutUint32(b32[0:], uint32(tv.Unix()))
	binary.LittleEndian.PutUint32(b32[4:], 123456)
	binary.LittleEndian.PutUint64(b32[8:], 0x3fd0000000000000) // 0.25
	binary.LittleEndian.PutUint32(b32[16:], 1)                 // pulse
	binary.LittleEndian.PutUint32(b32[28:], SockMagic)
	got, err = DecodeSock(b32, binary.LittleEndian)
	if err != nil || got.TV != tv || !got.Pulse || got.Offset != 0.25 {
		t.Fatalf("32-bit: %+v %v", got, err)
	}
	if p := got.Sample(); wrap(p.Offset()) != -250*time.Millisecond {
		t.Errorf("pulse phase %v", p.Offset())
	}
	for _, bad := range [][]byte{b[:39], append(b[:36:36], 1, 2, 3, 4)} {
		if _, err := DecodeSock(bad, binary.LittleEndian); err == nil {
			t.Errorf("accepted % x", bad)
		}
	}
}

func TestSHMProtocol(t *testing.T) {
	seg := make([]byte, SHMSize)
	if _, err := DecodeSHM(seg, 0, binary.LittleEndian); !errors.Is(err, ErrSHMNotValid) {
		t.Fatal(err)
	}
	clk := time.Date(2026, 12, 7, 10, 0, 1, 0, time.UTC)
	rcv := clk.Add(-1500 * time.Microsecond)
	EncodeSHM(seg, binary.LittleEndian, SHMSample{Clock: clk, Receive: rcv, Precision: -20, Count: 7})
	if _, err := DecodeSHM(seg, 8, binary.LittleEndian); !errors.Is(err, ErrSHMBusy) {
		t.Fatalf("mode 1 with a changed count: %v", err)
	}
	s, err := DecodeSHM(seg, 7, binary.LittleEndian)
	if err != nil || s.Clock != clk || s.Receive != rcv {
		t.Fatalf("%+v %v", s, err)
	}
	if smp := s.Sample(); smp.Offset() != 1500*time.Microsecond || smp.Precision != 953*time.Nanosecond {
		t.Errorf("%+v", smp)
	}
	// Mode 0 ignores count; stale NSec is ignored in favour of USec.
	binary.LittleEndian.PutUint32(seg[shmMode:], 0)
	binary.LittleEndian.PutUint32(seg[shmClockNSec:], 123456789)
	s, err = DecodeSHM(seg, 99, binary.LittleEndian)
	if err != nil || s.Clock != clk {
		t.Fatalf("mode 0: %+v %v", s, err)
	}
	binary.LittleEndian.PutUint32(seg[shmMode:], 2)
	if _, err := DecodeSHM(seg, 7, binary.LittleEndian); !errors.Is(err, ErrSHMMode) {
		t.Fatal(err)
	}
	if _, err := DecodeSHM(seg[:50], 7, binary.LittleEndian); !errors.Is(err, ErrSHMShort) {
		t.Fatal(err)
	}
}

func TestMedianFilter(t *testing.T) {
	s := NewSource(Config{Kind: KindGPSD, Poll: 2, RefID: RefID("GPS")}, t0)
	if s.PollInterval() != 4*time.Second || s.State() != ntp.StateInit {
		t.Fatal(s.PollInterval(), s.State())
	}
	offs := []time.Duration{10, 11, 12, 9, 500, -400, 10, 11, 10, 12} // ms, two outliers
	for i, o := range offs {
		s.Add(t0.Add(time.Duration(i)*100*time.Millisecond), o*time.Millisecond, 0, sample.LeapNone)
	}
	if _, ok, due := s.EndPoll(t0.Add(3 * time.Second)); ok || due {
		t.Fatal("released early")
	}
	smp, ok, due := s.EndPoll(t0.Add(4 * time.Second))
	if !ok || !due {
		t.Fatal("not released")
	}
	if smp.Offset < 10*time.Millisecond || smp.Offset > 11*time.Millisecond {
		t.Errorf("median offset %v", smp.Offset)
	}
	if smp.Stratum != 0 || smp.RefID != RefID("GPS") || RefIDString(smp.RefID) != "GPS" || smp.Delay != DefaultDelay {
		t.Errorf("%+v", smp)
	}
	if s.Reach() != 1 || s.State() != ntp.StateReachable || s.Pending() != 0 {
		t.Errorf("reach %b state %v", s.Reach(), s.State())
	}
	// Polls without samples shift zeros in.
	for i := 2; i <= 9; i++ {
		if _, ok, _ := s.EndPoll(t0.Add(time.Duration(4*i) * time.Second)); ok {
			t.Fatal("released without samples")
		}
	}
	if s.Reach() != 0 || s.State() != ntp.StateUnreachable {
		t.Errorf("reach %b state %v", s.Reach(), s.State())
	}
}

func TestFilterKeepsNewest(t *testing.T) {
	s := NewSource(Config{Poll: 0, Filter: 3}, t0)
	for i := range 10 {
		s.Add(t0, time.Duration(i)*time.Millisecond, 0, sample.LeapNone)
	}
	if s.Pending() != 3 {
		t.Fatal(s.Pending())
	}
	smp, ok, _ := s.EndPoll(t0.Add(time.Second))
	if !ok || smp.Offset != 8*time.Millisecond {
		t.Errorf("%v %v", smp.Offset, ok)
	}
}

func TestCheck(t *testing.T) {
	c := Config{}
	now := t0
	for _, tc := range []struct {
		ref  time.Time
		want error
	}{
		{now.Add(2 * time.Second), nil},
		{now.AddDate(3, 0, 0), ErrTooFar},
		{now.AddDate(-3, 0, 0), ErrTooOld},
		{now.Add(-1024 * 7 * 24 * time.Hour), ErrTooOld}, // week-number rollover
	} {
		if err := c.Check(Sample{Local: now, Ref: tc.ref}); !errors.Is(err, tc.want) {
			t.Errorf("%v: %v want %v", tc.ref, err, tc.want)
		}
	}
	if err := c.Check(Sample{Local: now.AddDate(3, 0, 0), Ref: now}); !errors.Is(err, ErrTooFar) {
		t.Errorf("3 years behind: %v", err)
	}
	// A local clock at 1970 (no RTC) takes any plausible time.
	if err := c.Check(Sample{Local: time.Unix(10, 0), Ref: now}); err != nil {
		t.Error(err)
	}
	if err := c.Check(Sample{Local: now, Ref: now, Leap: sample.LeapUnsync}); err == nil {
		t.Error("leap 3 accepted")
	}
}

func TestPulseOffset(t *testing.T) {
	ms := time.Millisecond
	for _, tc := range []struct{ off, lock, want time.Duration }{
		{-2 * ms, 0, -2 * ms},
		{-2 * ms, 3*time.Second + 100*ms, 3*time.Second - 2*ms},
		{300 * ms, -700 * ms, -700 * ms},
		{998 * ms, -1*time.Second - 5*ms, -1*time.Second - 2*ms},
		{-(5*time.Second + 1*ms), 0, -1 * ms},
	} {
		got, err := PulseOffset(tc.off, tc.lock)
		if err != nil || got != tc.want {
			t.Errorf("PulseOffset(%v, %v) = %v, %v; want %v", tc.off, tc.lock, got, err, tc.want)
		}
	}
	if _, err := PulseOffset(0, 450*ms); !errors.Is(err, ErrLockFar) {
		t.Errorf("0.45 s apart: %v", err)
	}
}
