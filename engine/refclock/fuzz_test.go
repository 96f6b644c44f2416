package refclock

import (
	"encoding/binary"
	"testing"
	"time"
)

func FuzzGPSD(f *testing.F) {
	f.Add([]byte(`{"class":"TPV","device":"d","mode":3,"time":"2026-12-07T10:00:00.000Z"}` + "\n"))
	f.Add([]byte(`{"class":"TOFF","device":"d","real_sec":1796637601,"real_nsec":0,"clock_sec":1796637601,"clock_nsec":5}` + "\n"))
	f.Add([]byte(`{"class":"SKY","device":"d","satellites":[{"used":true}],"uSat":4}` + "\n{\n"))
	f.Add([]byte(`{"class":"DEVICES","devices":[{"path":"/dev/x","driver":"u-blox"}]}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		g := &GPSD{MaxLine: 256}
		// Fed whole and byte by byte, the stream must decode alike.
		a, ea := g.Feed(data, t0, nil)
		h := &GPSD{MaxLine: 256}
		var b []Sample
		var eb []error
		for i := range data {
			var e []error
			b, e = h.Feed(data[i:i+1], t0, b)
			eb = append(eb, e...)
		}
		if len(a) != len(b) || len(ea) != len(eb) || g.State != h.State {
			t.Fatalf("whole: %d samples %d errors %+v; bytewise: %d %d %+v", len(a), len(ea), g.State, len(b), len(eb), h.State)
		}
		for _, s := range a {
			if s.Local.IsZero() || s.Ref.IsZero() {
				t.Fatalf("sample without times: %+v", s)
			}
		}
		if len(g.buf) > 256 {
			t.Fatalf("buffer %d over the line limit", len(g.buf))
		}
	})
}

func FuzzSock(f *testing.F) {
	f.Add(EncodeSock(nil, binary.LittleEndian, SockSample{TV: t0, Offset: 0.001}))
	f.Add(make([]byte, 32))
	f.Fuzz(func(t *testing.T, b []byte) {
		s, err := DecodeSock(b, binary.LittleEndian)
		if err != nil {
			return
		}
		if len(b) == SockSampleLen {
			// Round trip (the padding is not kept).
			re := EncodeSock(nil, binary.LittleEndian, s)
			s2, err := DecodeSock(re, binary.LittleEndian)
			if err != nil || s2 != s {
				t.Fatalf("round trip: %+v %+v %v", s, s2, err)
			}
		}
		_ = s.Sample()
	})
}

func FuzzSHM(f *testing.F) {
	seg := make([]byte, SHMSize)
	EncodeSHM(seg, binary.LittleEndian, SHMSample{Clock: t0, Receive: t0.Add(time.Millisecond), Count: 3})
	f.Add(seg, int32(3))
	f.Add(make([]byte, SHMSize), int32(0))
	f.Fuzz(func(t *testing.T, b []byte, countAfter int32) {
		s, err := DecodeSHM(b, countAfter, binary.LittleEndian)
		if err != nil {
			return
		}
		if s.Clock.IsZero() || s.Receive.IsZero() {
			t.Fatalf("%+v", s)
		}
		c := Config{}
		_ = c.Check(s.Sample())
	})
}
