package ptp

import (
	"bytes"
	"encoding/binary"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"testing"
)

// parsePcap returns the PTP payloads of a classic pcap file of Ethernet
// frames: PTP over UDP (IPv4 or IPv6, ports 319/320) or over Ethernet
// (ethertype 0x88F7).
func parsePcap(b []byte) ([][]byte, error) {
	if len(b) < 24 || binary.LittleEndian.Uint32(b) != 0xa1b2c3d4 {
		return nil, errors.New("not a little-endian pcap file")
	}
	var out [][]byte
	for p := b[24:]; len(p) >= 16; {
		n := int(binary.LittleEndian.Uint32(p[8:12]))
		if 16+n > len(p) {
			return nil, errors.New("truncated record")
		}
		f := p[16 : 16+n]
		p = p[16+n:]
		if len(f) < 14 {
			continue
		}
		et := binary.BigEndian.Uint16(f[12:14])
		f = f[14:]
		switch et {
		case 0x88f7:
			out = append(out, f)
		case 0x0800:
			ihl := int(f[0]&0x0f) * 4
			if f[9] == 17 {
				out = append(out, f[ihl+8:])
			}
		case 0x86dd:
			if f[6] == 17 {
				out = append(out, f[48:])
			}
		}
	}
	return out, nil
}

func readPcap(t *testing.T, path string) [][]byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	out, err := parsePcap(b)
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return out
}

func goldenMessages(t *testing.T) map[string][][]byte {
	files, _ := filepath.Glob("testdata/*.pcap")
	if len(files) < 4 {
		t.Fatalf("golden captures missing: %v", files)
	}
	m := map[string][][]byte{}
	for _, f := range files {
		m[filepath.Base(f)] = readPcap(t, f)
	}
	return m
}

// TestGoldenPackets decodes every packet ptp4l sent and checks that
// encoding the decoded message gives the same octets back.
func TestGoldenPackets(t *testing.T) {
	seen := map[MessageType]int{}
	for name, msgs := range goldenMessages(t) {
		if len(msgs) == 0 {
			t.Fatalf("%s: no PTP messages", name)
		}
		for i, raw := range msgs {
			m, err := Parse(raw)
			if err != nil {
				t.Fatalf("%s #%d: %v", name, i, err)
			}
			h := m.Hdr()
			seen[h.Type]++
			if h.Version != 2 {
				t.Errorf("%s #%d: version %d", name, i, h.Version)
			}
			buf := make([]byte, MaxLen)
			n, err := m.MarshalTo(buf)
			if err != nil {
				t.Fatalf("%s #%d %s: marshal: %v", name, i, h.Type, err)
			}
			want := raw[:h.Length]
			if !bytes.Equal(buf[:n], want) {
				t.Errorf("%s #%d %s: re-encoded differs\n got %x\nwant %x", name, i, h.Type, buf[:n], want)
			}
		}
	}
	for _, typ := range []MessageType{MsgSync, MsgDelayReq, MsgFollowUp, MsgDelayResp, MsgPdelayReq, MsgPdelayResp, MsgPdelayRespFollowUp, MsgAnnounce, MsgManagement} {
		if seen[typ] == 0 {
			t.Errorf("no %s among the golden packets", typ)
		}
	}
}

// TestGoldenContents checks decoded fields against what ptp4l was told.
func TestGoldenContents(t *testing.T) {
	msgs := goldenMessages(t)["udp4-e2e.pcap"]
	var ann *Announce
	var mgmt []*Management
	for _, raw := range msgs {
		m, err := Parse(raw)
		if err != nil {
			t.Fatal(err)
		}
		switch m := m.(type) {
		case *Announce:
			ann = m
		case *Sync:
			if m.Flags&FlagTwoStep == 0 {
				t.Errorf("ptp4l's Sync is two-step by default, flags %#04x", m.Flags)
			}
		case *Management:
			mgmt = append(mgmt, m)
		}
	}
	if ann == nil {
		t.Fatal("no Announce")
	}
	// ptp4l's defaults: priority1/2 128, class 248, accuracy 0xfe, utc_offset 37
	if ann.GMPriority1 != 128 || ann.GMPriority2 != 128 || ann.GMQuality.Class != 248 || ann.GMQuality.Accuracy != 0xfe ||
		ann.CurrentUTCOffset != 37 || ann.StepsRemoved != 0 || ann.GMIdentity != ann.Source.Clock || ann.TimeSource != TimeSourceInternalOsc {
		t.Errorf("Announce %+v", ann)
	}
	ids := map[uint16]bool{}
	for _, m := range mgmt {
		if m.Action != ActionResponse {
			continue
		}
		ids[m.ID] = true
		switch m.ID {
		case MgmtParentDS:
			var p ParentDS
			if err := p.UnmarshalBinary(m.Data); err != nil {
				t.Fatal(err)
			}
			if p.GMIdentity != ann.GMIdentity {
				t.Errorf("PARENT_DATA_SET grandmaster %s, Announce says %s", p.GMIdentity, ann.GMIdentity)
			}
			if data, _ := p.MarshalBinary(); !bytes.Equal(data, m.Data[:parentDSLen]) {
				t.Errorf("PARENT_DATA_SET re-encoded %x, was %x", data, m.Data)
			}
		case MgmtPortDS:
			var p PortDS
			if err := p.UnmarshalBinary(m.Data); err != nil {
				t.Fatal(err)
			}
			if p.DelayMechanism != DelayE2E || p.AnnounceReceiptTimeout != 3 || p.VersionNumber != 2 {
				t.Errorf("PORT_DATA_SET %+v", p)
			}
			if data, _ := p.MarshalBinary(); !bytes.Equal(data, m.Data[:portDSLen]) {
				t.Errorf("PORT_DATA_SET re-encoded %x, was %x", data, m.Data)
			}
		case MgmtDefaultDS:
			var d DefaultDS
			if err := d.UnmarshalBinary(m.Data); err != nil {
				t.Fatal(err)
			}
			if !d.TwoStep || d.Priority1 != 128 || d.NumberPorts != 1 {
				t.Errorf("DEFAULT_DATA_SET %+v", d)
			}
			if data, _ := d.MarshalBinary(); !bytes.Equal(data, m.Data[:defaultDSLen]) {
				t.Errorf("DEFAULT_DATA_SET re-encoded %x, was %x", data, m.Data)
			}
		case MgmtCurrentDS:
			var c CurrentDS
			if err := c.UnmarshalBinary(m.Data); err != nil {
				t.Fatal(err)
			}
			if data, _ := c.MarshalBinary(); !bytes.Equal(data, m.Data[:currentDSLen]) {
				t.Errorf("CURRENT_DATA_SET re-encoded %x, was %x", data, m.Data)
			}
		case MgmtTimePropertiesDS:
			var p TimePropertiesDS
			if err := p.UnmarshalBinary(m.Data); err != nil {
				t.Fatal(err)
			}
			if p.CurrentUTCOffset != 37 {
				t.Errorf("TIME_PROPERTIES_DATA_SET %+v", p)
			}
		}
	}
	for _, id := range []uint16{MgmtDefaultDS, MgmtCurrentDS, MgmtParentDS, MgmtTimePropertiesDS, MgmtPortDS} {
		if !ids[id] {
			t.Errorf("no management RESPONSE for %#04x among the golden packets", id)
		}
	}
}

func TestRoundTripEveryMessage(t *testing.T) {
	src := PortIdentity{ClockIdentity{1, 2, 3, 0xff, 0xfe, 4, 5, 6}, 1}
	h := Header{MajorSdoID: 1, MinorVersion: 1, Version: 2, Domain: 24, Flags: FlagTwoStep | FlagPTPTimescale,
		Correction: Interval(1234), Source: src, Sequence: 77, LogInterval: -3}
	ts := Timestamp{Seconds: 1<<40 + 5, Nanoseconds: 999_999_999}
	tlv := []TLV{PathTraceTLV([]ClockIdentity{src.Clock}), {Type: TLVPad, Value: []byte{0, 0}}}
	msgs := []Message{
		&Sync{Header: h, Origin: ts},
		&DelayReq{Header: h, Origin: ts},
		&FollowUp{Header: h, PreciseOrigin: ts, TLVs: tlv},
		&DelayResp{Header: h, Receive: ts, Requesting: src},
		&PdelayReq{Header: h, Origin: ts},
		&PdelayResp{Header: h, RequestReceipt: ts, Requesting: src},
		&PdelayRespFollowUp{Header: h, ResponseOrigin: ts, Requesting: src},
		&Announce{Header: h, Origin: ts, CurrentUTCOffset: 37, GMPriority1: 1, GMQuality: ClockQuality{6, 0x21, 0x4e5d},
			GMPriority2: 2, GMIdentity: src.Clock, StepsRemoved: 3, TimeSource: TimeSourceGNSS, TLVs: tlv[:1]},
		&Signaling{Header: h, Target: WildcardPort, TLVs: tlv},
		&Management{Header: h, Target: WildcardPort, StartingBoundaryHops: 1, BoundaryHops: 1, Action: ActionGet, ID: MgmtParentDS},
		&Management{Header: h, Target: src, Action: ActionResponse, ID: MgmtNull, Error: MgmtErrNoSuchID},
	}
	buf := make([]byte, MaxLen)
	for _, m := range msgs {
		n, err := m.MarshalTo(buf)
		if err != nil {
			t.Fatal(err)
		}
		got, err := Parse(buf[:n])
		if err != nil {
			t.Fatalf("%T: %v", m, err)
		}
		if !reflect.DeepEqual(normal(got), normal(m)) {
			t.Errorf("round trip\n got %+v\nwant %+v", got, m)
		}
		if got.Hdr().Type.IsEvent() != (n <= PdelayLen && got.Hdr().Type <= MsgPdelayResp) {
			t.Errorf("%s: IsEvent", got.Hdr().Type)
		}
	}
}

// normal clears the fields MarshalTo sets (length, control) and empty
// slices, for comparing.
func normal(m Message) Message {
	h := m.Hdr()
	h.Length, h.Control = 0, 0
	if mm, ok := m.(*Management); ok && len(mm.Data) == 0 {
		mm.Data = nil
	}
	return m
}

func TestBadInput(t *testing.T) {
	buf := make([]byte, MaxLen)
	s := &Sync{Header: Header{Version: 2, MinorVersion: 1}}
	n, _ := s.MarshalTo(buf)
	good := append([]byte(nil), buf[:n]...)
	mut := func(f func(b []byte) []byte) []byte { return f(append([]byte(nil), good...)) }
	cases := []struct {
		name string
		b    []byte
		want error
	}{
		{"truncated header", good[:20], ErrShort},
		{"truncated body", mut(func(b []byte) []byte { binary.BigEndian.PutUint16(b[2:4], 40); return b[:40] }), ErrShort},
		{"version 1", mut(func(b []byte) []byte { b[1] = 1; return b }), ErrVersion},
		{"version 3", mut(func(b []byte) []byte { b[1] = 0x13; return b }), ErrVersion},
		{"length past datagram", mut(func(b []byte) []byte { binary.BigEndian.PutUint16(b[2:4], 60); return b }), ErrLength},
		{"oversized", make([]byte, 2000), ErrLong},
		{"nanoseconds", mut(func(b []byte) []byte { binary.BigEndian.PutUint32(b[40:44], 1e9); return b }), ErrField},
		{"TLV past end", mut(func(b []byte) []byte {
			b = append(b, 0, 8, 0, 16, 1, 2, 3, 4)
			binary.BigEndian.PutUint16(b[2:4], uint16(len(b)))
			return b
		}), ErrTLV},
		{"TLV header cut", mut(func(b []byte) []byte {
			b = append(b, 0, 8)
			binary.BigEndian.PutUint16(b[2:4], uint16(len(b)))
			return b
		}), ErrTLV},
		{"unknown type", mut(func(b []byte) []byte { b[0] = 0x05; return b }), ErrType},
	}
	for _, c := range cases {
		if _, err := Parse(c.b); !errors.Is(err, c.want) {
			t.Errorf("%s: got %v, want %v", c.name, err, c.want)
		}
	}
	// Ethernet padding after messageLength is fine.
	if _, err := Parse(append(append([]byte(nil), good...), 0, 0, 0, 0)); err != nil {
		t.Errorf("padding: %v", err)
	}
}

func TestIdentities(t *testing.T) {
	c := ClockIdentityFromMAC([]byte{0x02, 0x11, 0x22, 0x33, 0x44, 0x55})
	if c.String() != "021122.fffe.334455" {
		t.Errorf("identity %s", c)
	}
	a := PortIdentity{c, 1}
	b := PortIdentity{c, 2}
	if a.Compare(b) >= 0 || b.Compare(a) <= 0 || a.Compare(a) != 0 {
		t.Error("port identity order")
	}
	if Interval(1500).Duration() != 1500 || TimestampOf(Timestamp{Seconds: 5, Nanoseconds: 7}.Time()) != (Timestamp{5, 7}) {
		t.Error("conversions")
	}
}

func TestOrgTLV(t *testing.T) {
	o := OrgTLV{OUI: [3]byte{0x00, 0x80, 0xc2}, SubType: [3]byte{0, 0, 1}, Data: []byte{1, 2, 3, 4}}
	got, err := ParseOrgTLV(o.TLV(TLVOrganizationExtension))
	if err != nil || !reflect.DeepEqual(got, o) {
		t.Errorf("%+v %v", got, err)
	}
	if _, err := ParseOrgTLV(TLV{Type: TLVOrganizationExtension, Value: []byte{1}}); !errors.Is(err, ErrTLV) {
		t.Error(err)
	}
}
