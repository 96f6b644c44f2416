package ptp

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"
)

func seedGolden(f *testing.F) {
	files, _ := filepath.Glob("testdata/*.pcap")
	for _, file := range files {
		b, err := os.ReadFile(file)
		if err != nil {
			f.Fatal(err)
		}
		msgs, err := parsePcap(b)
		if err != nil {
			f.Fatal(err)
		}
		for _, m := range msgs {
			f.Add(m)
		}
	}
}

// FuzzParse: Parse never panics, and whatever it accepts encodes to the
// same octets (up to messageLength) and decodes to the same message.
func FuzzParse(f *testing.F) {
	seedGolden(f)
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := Parse(b)
		if err != nil {
			return
		}
		if a, ok := m.(*Announce); ok {
			for _, id := range PathTrace(a.TLVs) {
				_ = id.String()
			}
			for _, t := range a.TLVs {
				_, _ = ParseOrgTLV(t)
			}
		}
		buf := make([]byte, MaxLen)
		n, err := m.MarshalTo(buf)
		if err != nil {
			t.Fatalf("accepted message does not encode: %v", err)
		}
		m2, err := Parse(buf[:n])
		if err != nil {
			t.Fatalf("re-encoded message does not parse: %v", err)
		}
		buf2 := make([]byte, MaxLen)
		n2, _ := m2.MarshalTo(buf2)
		if !bytes.Equal(buf[:n], buf2[:n2]) {
			t.Fatalf("not stable:\n%x\n%x", buf[:n], buf2[:n2])
		}
	})
}

// FuzzDatasets: the management dataset decoders never panic and round
// trip what they accept.
func FuzzDatasets(f *testing.F) {
	f.Add(make([]byte, 32))
	f.Fuzz(func(t *testing.T, b []byte) {
		var d DefaultDS
		var c CurrentDS
		var p ParentDS
		var tp TimePropertiesDS
		var pd PortDS
		for _, u := range []interface {
			UnmarshalBinary([]byte) error
			MarshalBinary() ([]byte, error)
		}{&d, &c, &p, &tp, &pd} {
			if u.UnmarshalBinary(b) != nil {
				continue
			}
			out, _ := u.MarshalBinary()
			if err := u.UnmarshalBinary(out); err != nil {
				t.Fatal(err)
			}
			out2, _ := u.MarshalBinary()
			if !bytes.Equal(out, out2) {
				t.Fatalf("%T not stable", u)
			}
		}
	})
}

// FuzzOrgTLV: the organization extension decoder.
func FuzzOrgTLV(f *testing.F) {
	f.Add([]byte{0, 0x80, 0xc2, 0, 0, 1, 9})
	f.Fuzz(func(t *testing.T, b []byte) {
		o, err := ParseOrgTLV(TLV{Type: TLVOrganizationExtension, Value: b})
		if err != nil {
			return
		}
		if got := o.TLV(TLVOrganizationExtension); !bytes.Equal(got.Value, b) {
			t.Fatal("round trip")
		}
	})
}
