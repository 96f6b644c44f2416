package ntp

import (
	"bytes"
	"encoding/hex"
	"errors"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"gnomon.dev/gnomon/engine/sample"
)

// readHex reads a testdata file: '#' comment lines, then hex digits with
// any whitespace.
func readHex(t testing.TB, name string) []byte {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	var sb strings.Builder
	for line := range strings.Lines(string(raw)) {
		if strings.HasPrefix(strings.TrimSpace(line), "#") {
			continue
		}
		sb.WriteString(strings.Join(strings.Fields(line), ""))
	}
	b, err := hex.DecodeString(sb.String())
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	return b
}

func goldenNames(t testing.TB) []string {
	t.Helper()
	paths, err := filepath.Glob(filepath.Join("testdata", "*.hex"))
	if err != nil {
		t.Fatal(err)
	}
	if len(paths) == 0 {
		t.Fatal("no golden packets in testdata")
	}
	names := make([]string, len(paths))
	for i, p := range paths {
		names[i] = filepath.Base(p)
	}
	return names
}

func mustParse(t testing.TB, name string) (Packet, []byte) {
	t.Helper()
	b := readHex(t, name)
	var p Packet
	if err := Parse(b, &p); err != nil {
		t.Fatalf("%s: Parse: %v", name, err)
	}
	return p, b
}

// capturePivot is a time near when the golden packets were captured; it
// resolves their eras.
var capturePivot = date(2026, 11, 25, 22, 0, 0, 0)

// fixedFields is a header with the timestamps cleared: the part of a
// captured packet that is the same in every capture.
func fixedFields(h Header) Header {
	h.ReferenceTime, h.OriginTime, h.ReceiveTime, h.TransmitTime = 0, 0, 0, 0
	return h
}

const refLOCL = 0x7F7F0101 // chronyd's "local" reference ID, 127.127.1.1

var (
	chronyReq = Header{Version: 4, Mode: ModeClient, Poll: 6}
	// chronyd's own client requests carry precision 32 (0x20) and a
	// random transmit timestamp, revealing nothing of its clock.
	chronyClientReq  = Header{Version: 4, Mode: ModeClient, Poll: 6, Precision: 32}
	chronyReply      = Header{Version: 4, Mode: ModeServer, Stratum: 1, Poll: 6, Precision: -25, ReferenceID: refLOCL}
	chronyUnsync     = Header{Leap: sample.LeapUnsync, Version: 4, Mode: ModeServer, Stratum: 0, Poll: 6, Precision: -25, RootDelay: 1 << 16, RootDispersion: 1 << 16}
	ntpsecReply      = Header{Version: 4, Mode: ModeServer, Stratum: 5, Poll: 6, Precision: -23, ReferenceID: 0x7F000001}
	ntpsecKoD        = Header{Leap: sample.LeapUnsync, Version: 4, Mode: ModeServer, Stratum: 0, Poll: 6, Precision: 0, ReferenceID: KissRate}
	ntpdigReq        = Header{Leap: sample.LeapUnsync, Version: 4, Mode: ModeClient}
	gnomonReply      = Header{Version: 4, Mode: ModeServer, Stratum: 2, Poll: 6, Precision: -20, RootDispersion: 7, ReferenceID: 0x474E4D4E}
	gnomonReplyPoll0 = Header{Version: 4, Mode: ModeServer, Stratum: 2, Poll: 0, Precision: -20, RootDispersion: 7, ReferenceID: 0x474E4D4E}
)

func v3(h Header) Header { h.Version = 3; return h }

type goldenPacket struct {
	file     string
	fixed    Header   // fields other than timestamps
	refZero  bool     // reference timestamp is zero
	extTypes []uint16 // extension field types in order
	macLen   int
	macKeyID uint32
}

type goldenExchange struct {
	name       string
	req, reply goldenPacket
	realTime   bool  // the request's transmit timestamp is the client's clock
	check      error // what CheckReply says of the reply (compare with errors.Is/As)
}

var goldenExchanges = []goldenExchange{
	{
		name:     "chronyd 4.3 server, NTPv4",
		req:      goldenPacket{file: "chronyd-4.3-server-v4-request.hex", fixed: chronyReq, refZero: true},
		reply:    goldenPacket{file: "chronyd-4.3-server-v4-reply.hex", fixed: chronyReply},
		realTime: true,
	},
	{
		name:     "chronyd 4.3 server, NTPv3",
		req:      goldenPacket{file: "chronyd-4.3-server-v3-request.hex", fixed: v3(chronyReq), refZero: true},
		reply:    goldenPacket{file: "chronyd-4.3-server-v3-reply.hex", fixed: v3(chronyReply)},
		realTime: true,
	},
	{
		name:     "chronyd 4.3 unsynchronized",
		req:      goldenPacket{file: "chronyd-4.3-unsync-request.hex", fixed: chronyReq, refZero: true},
		reply:    goldenPacket{file: "chronyd-4.3-unsync-reply.hex", fixed: chronyUnsync, refZero: true},
		realTime: true,
		check:    ErrUnsynchronized,
	},
	{
		name:  "chronyd 4.3 with an MD5 key",
		req:   goldenPacket{file: "chronyd-4.3-md5-request.hex", fixed: chronyClientReq, refZero: true, macLen: 20, macKeyID: 1},
		reply: goldenPacket{file: "chronyd-4.3-md5-reply.hex", fixed: chronyReply, macLen: 20, macKeyID: 1},
	},
	{
		name:  "chronyd 4.3 with a SHA1 key",
		req:   goldenPacket{file: "chronyd-4.3-sha1-request.hex", fixed: chronyClientReq, refZero: true, macLen: 24, macKeyID: 2},
		reply: goldenPacket{file: "chronyd-4.3-sha1-reply.hex", fixed: chronyReply, macLen: 24, macKeyID: 2},
	},
	{
		name: "chronyd 4.3 NTS",
		// Unique Identifier, NTS Cookie, NTS Authenticator and Encrypted
		// Extension Fields (RFC 8915 section 5.7).
		req:   goldenPacket{file: "chronyd-4.3-nts-request.hex", fixed: chronyClientReq, refZero: true, extTypes: []uint16{0x0104, 0x0204, 0x0404}},
		reply: goldenPacket{file: "chronyd-4.3-nts-reply.hex", fixed: chronyReply, extTypes: []uint16{0x0104, 0x0404}},
	},
	{
		name:     "NTPsec 1.2.2 server, NTPv4",
		req:      goldenPacket{file: "ntpsec-1.2.2-server-v4-request.hex", fixed: chronyReq, refZero: true},
		reply:    goldenPacket{file: "ntpsec-1.2.2-server-v4-reply.hex", fixed: ntpsecReply, refZero: true},
		realTime: true,
	},
	{
		name:     "NTPsec 1.2.2 server, NTPv3",
		req:      goldenPacket{file: "ntpsec-1.2.2-server-v3-request.hex", fixed: v3(chronyReq), refZero: true},
		reply:    goldenPacket{file: "ntpsec-1.2.2-server-v3-reply.hex", fixed: v3(ntpsecReply), refZero: true},
		realTime: true,
	},
	{
		name:     "NTPsec 1.2.2 RATE kiss-o'-death",
		req:      goldenPacket{file: "ntpsec-1.2.2-kod-rate-request.hex", fixed: chronyReq, refZero: true},
		reply:    goldenPacket{file: "ntpsec-1.2.2-kod-rate-reply.hex", fixed: ntpsecKoD, refZero: true},
		realTime: true,
		check:    &KissError{Code: KissRate},
	},
	{
		name:  "chronyd 4.3 client, answered by Respond",
		req:   goldenPacket{file: "chronyd-4.3-client-request.hex", fixed: chronyClientReq, refZero: true},
		reply: goldenPacket{file: "gnomon-reply-to-chronyd-4.3.hex", fixed: gnomonReply},
	},
	{
		name:     "ntpdig 1.2.2 client, answered by Respond",
		req:      goldenPacket{file: "ntpdig-1.2.2-request.hex", fixed: ntpdigReq, refZero: true},
		reply:    goldenPacket{file: "gnomon-reply-to-ntpdig-1.2.2.hex", fixed: gnomonReplyPoll0},
		realTime: true,
	},
}

func checkGoldenPacket(t *testing.T, g goldenPacket) Packet {
	t.Helper()
	p, b := mustParse(t, g.file)
	if got := fixedFields(p.Header); got != g.fixed {
		t.Errorf("%s: header\n got %+v\nwant %+v", g.file, got, g.fixed)
	}
	if p.ReferenceTime.IsZero() != g.refZero {
		t.Errorf("%s: reference time %#x, want zero: %v", g.file, uint64(p.ReferenceTime), g.refZero)
	}
	if p.Mode == ModeClient && (p.OriginTime != 0 || p.ReceiveTime != 0) {
		t.Errorf("%s: request with origin %#x receive %#x, want both zero", g.file, uint64(p.OriginTime), uint64(p.ReceiveTime))
	}
	if p.TransmitTime.IsZero() {
		t.Errorf("%s: zero transmit timestamp", g.file)
	}
	var types []uint16
	it := p.ExtensionFields()
	for f, ok := it.Next(); ok; f, ok = it.Next() {
		types = append(types, f.Type)
	}
	if err := it.Err(); err != nil {
		t.Errorf("%s: extension fields: %v", g.file, err)
	}
	if !slices.Equal(types, g.extTypes) {
		t.Errorf("%s: extension field types %x, want %x", g.file, types, g.extTypes)
	}
	if len(p.MAC) != g.macLen {
		t.Errorf("%s: MAC of %d bytes, want %d", g.file, len(p.MAC), g.macLen)
	} else if g.macLen > 0 {
		if id := uint32(p.MAC[0])<<24 | uint32(p.MAC[1])<<16 | uint32(p.MAC[2])<<8 | uint32(p.MAC[3]); id != g.macKeyID {
			t.Errorf("%s: MAC key id %d, want %d", g.file, id, g.macKeyID)
		}
	}
	if HeaderLen+len(p.Extensions)+len(p.MAC) != len(b) {
		t.Errorf("%s: header, %d extension and %d MAC bytes do not add up to %d", g.file, len(p.Extensions), len(p.MAC), len(b))
	}
	var out [HeaderLen]byte
	if _, err := p.Header.MarshalTo(out[:]); err != nil || !bytes.Equal(out[:], b[:HeaderLen]) {
		t.Errorf("%s: re-marshalled header differs (%v):\n got %x\nwant %x", g.file, err, out, b[:HeaderLen])
	}
	return p
}

func TestGoldenPackets(t *testing.T) {
	covered := map[string]bool{}
	for _, ex := range goldenExchanges {
		covered[ex.req.file], covered[ex.reply.file] = true, true
		t.Run(ex.name, func(t *testing.T) {
			req := checkGoldenPacket(t, ex.req)
			reply := checkGoldenPacket(t, ex.reply)
			if reply.OriginTime != req.TransmitTime {
				t.Errorf("reply origin %#x, request transmit %#x", uint64(reply.OriginTime), uint64(req.TransmitTime))
			}
			if reply.Version != req.Version {
				t.Errorf("reply version %d to a version %d request", reply.Version, req.Version)
			}
			err := CheckReply(&reply.Header, req.TransmitTime, time.Second)
			var wantKiss *KissError
			switch {
			case errors.As(ex.check, &wantKiss):
				var kiss *KissError
				if !errors.As(err, &kiss) || *kiss != *wantKiss {
					t.Errorf("CheckReply = %v, want %v", err, ex.check)
				}
			case !errors.Is(err, ex.check):
				t.Errorf("CheckReply = %v, want %v", err, ex.check)
			}
			if reply.Stratum == 0 {
				return // KoD: no server time in it
			}
			t2 := reply.ReceiveTime.Time(capturePivot)
			t3 := reply.TransmitTime.Time(capturePivot)
			if d := t2.Sub(capturePivot); d < 0 || d > time.Hour {
				t.Errorf("server receive time %v is not within the hour of the capture", t2)
			}
			if d := t3.Sub(t2); d < 0 || d > 100*time.Millisecond {
				t.Errorf("server took %v between receive and transmit", d)
			}
			if ex.realTime {
				t1 := req.TransmitTime.Time(capturePivot)
				if d := t2.Sub(t1); d < -time.Second || d > time.Second {
					t.Errorf("loopback server received %v after the client sent", d)
				}
			}
			if !reply.ReferenceTime.IsZero() {
				if ref := reply.ReferenceTime.Time(capturePivot); ref.After(t3) || t3.Sub(ref) > time.Hour {
					t.Errorf("reference time %v vs transmit %v", ref, t3)
				}
			}
		})
	}
	for _, name := range goldenNames(t) {
		if !covered[name] {
			t.Errorf("testdata/%s is not checked by TestGoldenPackets", name)
		}
	}
}

// TestGoldenNTSUniqueID checks that the NTS reply echoes the request's
// Unique Identifier field byte for byte (RFC 8915 section 5.7).
func TestGoldenNTSUniqueID(t *testing.T) {
	req, _ := mustParse(t, "chronyd-4.3-nts-request.hex")
	reply, _ := mustParse(t, "chronyd-4.3-nts-reply.hex")
	first := func(p *Packet) ExtensionField {
		it := p.ExtensionFields()
		f, ok := it.Next()
		if !ok {
			t.Fatalf("no extension field: %v", it.Err())
		}
		return f
	}
	a, b := first(&req), first(&reply)
	if a.Type != 0x0104 || len(a.Value) != 32 || !bytes.Equal(a.Value, b.Value) {
		t.Errorf("unique identifiers differ: %x %x / %x %x", a.Type, a.Value, b.Type, b.Value)
	}
}

func TestParseHeader(t *testing.T) {
	b := []byte{
		0b01_100_011, 2, 0xFA, 0xE9, // leap 1, version 4, mode 3, stratum 2, poll -6, precision -23
		0x00, 0x01, 0x80, 0x00, // root delay 1.5 s
		0x00, 0x00, 0x00, 0x10, // root dispersion
		'G', 'P', 'S', 0, // reference ID
		1, 2, 3, 4, 5, 6, 7, 8,
		9, 10, 11, 12, 13, 14, 15, 16,
		17, 18, 19, 20, 21, 22, 23, 24,
		25, 26, 27, 28, 29, 30, 31, 32,
	}
	var p Packet
	p.Extensions, p.MAC = []byte{1}, []byte{2} // must be reset
	if err := Parse(b, &p); err != nil {
		t.Fatal(err)
	}
	want := Header{
		Leap: sample.LeapInsert, Version: 4, Mode: ModeClient, Stratum: 2, Poll: -6, Precision: -23,
		RootDelay: 0x00018000, RootDispersion: 0x10, ReferenceID: 0x47505300,
		ReferenceTime: 0x0102030405060708, OriginTime: 0x090A0B0C0D0E0F10,
		ReceiveTime: 0x1112131415161718, TransmitTime: 0x191A1B1C1D1E1F20,
	}
	if p.Header != want {
		t.Errorf("got  %+v\nwant %+v", p.Header, want)
	}
	if p.Extensions != nil || p.MAC != nil {
		t.Errorf("extensions %x, MAC %x: want nil", p.Extensions, p.MAC)
	}
	if p.RootDelay.Duration() != 1500*time.Millisecond {
		t.Errorf("root delay %v", p.RootDelay.Duration())
	}
	var out [HeaderLen]byte
	if n, err := want.MarshalTo(out[:]); n != HeaderLen || err != nil || !bytes.Equal(out[:], b) {
		t.Errorf("MarshalTo = %d, %v, %x", n, err, out)
	}
}

func TestParseLengthAndVersion(t *testing.T) {
	header := func(version uint8, n int) []byte {
		b := make([]byte, n)
		if n > 0 {
			b[0] = version<<3 | 3
		}
		return b
	}
	tests := []struct {
		name string
		b    []byte
		want error
	}{
		{"nil", nil, ErrShort},
		{"one byte", header(4, 1), ErrShort},
		{"47 bytes", header(4, 47), ErrShort},
		{"48 bytes", header(4, 48), nil},
		{"version 0", header(0, 48), ErrVersion},
		{"version 1", header(1, 48), nil},
		{"version 2", header(2, 48), nil},
		{"version 3", header(3, 48), nil},
		{"version 5", header(5, 48), ErrVersion},
		{"version 7", header(7, 48), ErrVersion},
		{"49 bytes", header(4, 49), ErrExtension},
		{"51 bytes", header(4, 51), ErrExtension},
		{"v3 with 3 extra bytes", header(3, 51), ErrExtension},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var p Packet
			if err := Parse(tc.b, &p); !errors.Is(err, tc.want) {
				t.Errorf("Parse = %v, want %v", err, tc.want)
			}
		})
	}
}

func TestMarshalToErrors(t *testing.T) {
	ok := Header{Version: 4, Mode: ModeClient}
	if _, err := ok.MarshalTo(make([]byte, 47)); !errors.Is(err, io.ErrShortBuffer) {
		t.Errorf("47-byte buffer: %v", err)
	}
	for _, h := range []Header{
		{Leap: 4, Version: 4, Mode: ModeClient},
		{Version: 8, Mode: ModeClient},
		{Version: 4, Mode: 8},
	} {
		if _, err := h.MarshalTo(make([]byte, 48)); !errors.Is(err, ErrHeaderField) {
			t.Errorf("%+v: %v, want ErrHeaderField", h, err)
		}
	}
	// A longer buffer is fine and only its first 48 bytes are written.
	b := bytes.Repeat([]byte{0xAA}, 60)
	if n, err := ok.MarshalTo(b); n != 48 || err != nil || b[48] != 0xAA {
		t.Errorf("60-byte buffer: %d, %v, %x", n, err, b[48:])
	}
}

func TestParseAndMarshalDoNotAllocate(t *testing.T) {
	for _, name := range []string{"chronyd-4.3-server-v4-reply.hex", "chronyd-4.3-nts-reply.hex", "chronyd-4.3-sha1-request.hex"} {
		b := readHex(t, name)
		var p Packet
		var out [HeaderLen]byte
		allocs := testing.AllocsPerRun(100, func() {
			if err := Parse(b, &p); err != nil {
				t.Fatal(err)
			}
			it := p.ExtensionFields()
			for _, ok := it.Next(); ok; _, ok = it.Next() {
			}
			if _, err := p.Header.MarshalTo(out[:]); err != nil {
				t.Fatal(err)
			}
		})
		if allocs != 0 {
			t.Errorf("%s: %v allocations per Parse+iterate+MarshalTo, want 0", name, allocs)
		}
	}
	// Error paths do not allocate either (garbage floods are cheap).
	bad := make([]byte, 52)
	bad[0] = 4<<3 | 3
	var p Packet
	if allocs := testing.AllocsPerRun(100, func() { _ = Parse(bad, &p) }); allocs != 0 {
		t.Errorf("%v allocations per failing Parse", allocs)
	}
}

func BenchmarkParse(b *testing.B) {
	buf := readHex(b, "chronyd-4.3-nts-request.hex")
	var p Packet
	b.ReportAllocs()
	for b.Loop() {
		if err := Parse(buf, &p); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkMarshalTo(b *testing.B) {
	var p Packet
	if err := Parse(readHex(b, "chronyd-4.3-server-v4-reply.hex"), &p); err != nil {
		b.Fatal(err)
	}
	var out [HeaderLen]byte
	b.ReportAllocs()
	for b.Loop() {
		if _, err := p.Header.MarshalTo(out[:]); err != nil {
			b.Fatal(err)
		}
	}
}

// addGoldenSeeds adds every golden packet to a fuzz corpus.
func addGoldenSeeds(f *testing.F) {
	for _, name := range goldenNames(f) {
		f.Add(readHex(f, name))
	}
}

// FuzzParse parses arbitrary bytes. Parse must not panic; for a packet it
// accepts, the header must re-marshal to the same 48 bytes, the extension
// area and MAC must alias the input and account for all of it, and the
// extension fields must iterate without error.
func FuzzParse(f *testing.F) {
	addGoldenSeeds(f)
	f.Add(AppendExtension(make([]byte, 48), 0x0104, make([]byte, 32), 0))
	f.Fuzz(func(t *testing.T, b []byte) {
		if len(b) > 0 {
			b = bytes.Clone(b)
			b[0] = b[0]&^0x38 | 4<<3 // mostly version 4 so the interesting paths run
			if len(b)%7 == 0 {
				b[0] ^= 0x38 // and sometimes anything
			}
		}
		var p Packet
		if err := Parse(b, &p); err != nil {
			if !errors.Is(err, ErrShort) && !errors.Is(err, ErrVersion) && !errors.Is(err, ErrExtension) {
				t.Fatalf("unexpected error kind: %v", err)
			}
			return
		}
		var out [HeaderLen]byte
		if _, err := p.Header.MarshalTo(out[:]); err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(out[:], b[:HeaderLen]) {
			t.Fatalf("re-marshalled header %x, input %x", out, b[:HeaderLen])
		}
		if HeaderLen+len(p.Extensions)+len(p.MAC) != len(b) {
			t.Fatalf("%d + %d + %d != %d", HeaderLen, len(p.Extensions), len(p.MAC), len(b))
		}
		if len(p.Extensions) > 0 && &p.Extensions[0] != &b[HeaderLen] {
			t.Fatal("extensions do not alias the input")
		}
		if len(p.MAC) > 0 && &p.MAC[len(p.MAC)-1] != &b[len(b)-1] {
			t.Fatal("MAC does not alias the input")
		}
		if p.Version == 4 && len(p.MAC) != 0 && len(p.MAC) != 4 && (len(p.MAC) < 20 || len(p.MAC) > 24) {
			t.Fatalf("NTPv4 MAC of %d bytes", len(p.MAC))
		}
		n := 0
		it := p.ExtensionFields()
		for f, ok := it.Next(); ok; f, ok = it.Next() {
			n += 4 + len(f.Value)
			if len(f.Value) < 12 || len(f.Value)%4 != 0 {
				t.Fatalf("field of %d value bytes", len(f.Value))
			}
		}
		if it.Err() != nil || n != len(p.Extensions) {
			t.Fatalf("iteration: %v, %d of %d bytes", it.Err(), n, len(p.Extensions))
		}
	})
}
