package ntp

import (
	"bytes"
	"encoding/binary"
	"errors"
	"testing"
)

// v4Header is an NTPv4 client header.
func v4Header() []byte {
	b := make([]byte, HeaderLen)
	b[0] = 4<<3 | 3
	return b
}

// rawField is an extension field whose length field says declared, with
// size bytes in all (declared and size differ for malformed fields).
func rawField(typ uint16, declared, size int) []byte {
	b := make([]byte, size)
	binary.BigEndian.PutUint16(b, typ)
	binary.BigEndian.PutUint16(b[2:], uint16(declared))
	for i := 4; i < size; i++ {
		b[i] = byte(i)
	}
	return b
}

func mac(keyID uint32, digest int) []byte {
	b := make([]byte, 4+digest)
	binary.BigEndian.PutUint32(b, keyID)
	for i := 4; i < len(b); i++ {
		b[i] = 0xD0 | byte(i&0xF)
	}
	return b
}

func cat(parts ...[]byte) []byte { return bytes.Join(parts, nil) }

func TestParseExtensionsAndMAC(t *testing.T) {
	v3 := v4Header()
	v3[0] = 3<<3 | 3
	tests := []struct {
		name    string
		b       []byte
		err     error
		extLens []int // lengths of the fields found, in order
		macLen  int
	}{
		{name: "no trailer", b: v4Header()},
		{name: "crypto-NAK", b: cat(v4Header(), []byte{0, 0, 0, 0}), macLen: 4},
		{name: "4 non-zero bytes", b: cat(v4Header(), []byte{0, 0, 0, 1}), err: ErrExtension},
		{name: "8 bytes", b: cat(v4Header(), make([]byte, 8)), err: ErrExtension},
		{name: "MD5 MAC", b: cat(v4Header(), mac(1, 16)), macLen: 20},
		{name: "SHA1 MAC", b: cat(v4Header(), mac(7, 20)), macLen: 24},
		{name: "SHA256 MAC is too long for NTPv4 (RFC 7822)", b: cat(v4Header(), mac(7, 32)), err: ErrExtension},
		{name: "28-byte field, no MAC", b: cat(v4Header(), rawField(0x0104, 28, 28)), extLens: []int{28}},
		{name: "16-byte field and MD5 MAC", b: cat(v4Header(), rawField(0x0104, 16, 16), mac(1, 16)), extLens: []int{16}, macLen: 20},
		{name: "16-byte field and SHA1 MAC", b: cat(v4Header(), rawField(0x0104, 16, 16), mac(1, 20)), extLens: []int{16}, macLen: 24},
		{name: "two fields and a MAC", b: cat(v4Header(), rawField(1, 16, 16), rawField(2, 40, 40), mac(3, 16)), extLens: []int{16, 40}, macLen: 20},
		{name: "three fields, last one 28", b: cat(v4Header(), rawField(1, 32, 32), rawField(2, 16, 16), rawField(3, 28, 28)), extLens: []int{32, 16, 28}},
		{name: "field length 0 (no endless loop)", b: cat(v4Header(), rawField(1, 0, 28)), err: ErrExtension},
		{name: "field length 12 < 16", b: cat(v4Header(), rawField(1, 12, 12), rawField(2, 16, 16)), err: ErrExtension},
		{name: "field length 30 not a multiple of 4", b: cat(v4Header(), rawField(1, 30, 32)), err: ErrExtension},
		{name: "field length overruns the packet", b: cat(v4Header(), rawField(1, 64, 32)), err: ErrExtension},
		{name: "field length 65535", b: cat(v4Header(), rawField(1, 0xFFFF, 32)), err: ErrExtension},
		{name: "field leaves 8 bytes behind", b: cat(v4Header(), rawField(1, 28, 28), make([]byte, 8)), err: ErrExtension},
		{name: "field leaves a 16-byte field behind", b: cat(v4Header(), rawField(1, 28, 28), rawField(2, 16, 16)), err: ErrExtension},
		// RFC 7822 section 7.5: a last field sent without a MAC must be at
		// least 28 bytes, so 20 or 24 remaining bytes are always a MAC,
		// even if they would parse as a field.
		{name: "a lone 16-byte field is neither field nor MAC", b: cat(v4Header(), rawField(1, 16, 16)), err: ErrExtension},
		{name: "a lone 20-byte field reads as a MAC", b: cat(v4Header(), rawField(1, 20, 20)), macLen: 20},
		{name: "a lone 24-byte field reads as a MAC", b: cat(v4Header(), rawField(1, 24, 24)), macLen: 24},
		{name: "a 24-byte last field after another reads as a MAC", b: cat(v4Header(), rawField(1, 16, 16), rawField(2, 24, 24)), extLens: []int{16}, macLen: 24},
		{name: "NTPv3: 20 bytes are a MAC", b: cat(v3, mac(1, 16)), macLen: 20},
		{name: "NTPv3: anything is the MAC (MS-SNTP 72 bytes)", b: cat(v3, mac(1, 68)), macLen: 72},
		{name: "NTPv3: a field-shaped trailer is still the MAC", b: cat(v3, rawField(1, 28, 28)), macLen: 28},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var p Packet
			err := Parse(tc.b, &p)
			if !errors.Is(err, tc.err) {
				t.Fatalf("Parse = %v, want %v", err, tc.err)
			}
			if err != nil {
				return
			}
			var lens []int
			it := p.ExtensionFields()
			for f, ok := it.Next(); ok; f, ok = it.Next() {
				lens = append(lens, 4+len(f.Value))
			}
			if it.Err() != nil {
				t.Fatalf("iteration: %v", it.Err())
			}
			if !equalInts(lens, tc.extLens) {
				t.Errorf("fields %v, want %v", lens, tc.extLens)
			}
			if len(p.MAC) != tc.macLen {
				t.Errorf("MAC %d bytes, want %d", len(p.MAC), tc.macLen)
			}
			if (len(tc.extLens) == 0) != (p.Extensions == nil) {
				t.Errorf("Extensions = %x", p.Extensions)
			}
		})
	}
}

func equalInts(a, b []int) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func TestExtensionErrorsSayWhatIsWrong(t *testing.T) {
	tests := []struct {
		b    []byte
		want string
	}{
		{cat(v4Header(), rawField(1, 12, 28)), "shorter than 16"},
		{cat(v4Header(), rawField(1, 30, 32)), "multiple of 4"},
		{cat(v4Header(), rawField(1, 64, 32)), "past the end"},
		{cat(v4Header(), make([]byte, 8)), "neither an extension field nor a MAC"},
		{cat(v4Header(), []byte{1}), "multiple of 4"},
	}
	for _, tc := range tests {
		var p Packet
		err := Parse(tc.b, &p)
		if err == nil || !bytes.Contains([]byte(err.Error()), []byte(tc.want)) {
			t.Errorf("%x: error %v, want one saying %q", tc.b[HeaderLen:], err, tc.want)
		}
	}
}

func TestExtensionIterOnHandMadePacket(t *testing.T) {
	// A Packet not filled by Parse may hold anything: the iterator must
	// stop with an error rather than panic or loop.
	tests := []struct {
		name string
		ext  []byte
		n    int // fields before the error
	}{
		{"truncated header", []byte{0, 1, 0}, 0},
		{"zero length", rawField(1, 0, 16), 0},
		{"good then overrun", cat(rawField(1, 16, 16), rawField(2, 32, 20)), 1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p := Packet{Extensions: tc.ext}
			it := p.ExtensionFields()
			n := 0
			for _, ok := it.Next(); ok; _, ok = it.Next() {
				n++
			}
			if n != tc.n || !errors.Is(it.Err(), ErrExtension) {
				t.Errorf("%d fields, err %v; want %d and ErrExtension", n, it.Err(), tc.n)
			}
			if _, ok := it.Next(); ok {
				t.Error("Next after an error returned a field")
			}
		})
	}
	var zero ExtensionIter
	if _, ok := zero.Next(); ok || zero.Err() != nil {
		t.Error("zero iterator is not empty")
	}
}

func TestAppendExtension(t *testing.T) {
	tests := []struct {
		name   string
		value  []byte
		minLen int
		want   []byte
	}{
		{"empty value pads to 16", nil, 0, cat([]byte{0x01, 0x04, 0, 16}, make([]byte, 12))},
		{"minLen below 16 means 16", []byte{1, 2, 3}, 8, cat([]byte{0x01, 0x04, 0, 16, 1, 2, 3}, make([]byte, 9))},
		{"value padded to a multiple of 4", bytes.Repeat([]byte{7}, 13), 0, cat([]byte{0x01, 0x04, 0, 20}, bytes.Repeat([]byte{7}, 13), make([]byte, 3))},
		{"exact multiple of 4 needs no padding", bytes.Repeat([]byte{7}, 32), 0, cat([]byte{0x01, 0x04, 0, 36}, bytes.Repeat([]byte{7}, 32))},
		{"minLen 28 for a last field without MAC", []byte{9}, 28, cat([]byte{0x01, 0x04, 0, 28, 9}, make([]byte, 23))},
		{"odd minLen rounds up", nil, 29, cat([]byte{0x01, 0x04, 0, 32}, make([]byte, 28))},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			prefix := []byte{0xEE}
			got := AppendExtension(prefix, 0x0104, tc.value, tc.minLen)
			if !bytes.Equal(got[1:], tc.want) || got[0] != 0xEE {
				t.Errorf("got  %x\nwant ee%x", got, tc.want)
			}
		})
	}
}

func TestAppendExtensionParsesBack(t *testing.T) {
	b := v4Header()
	b = AppendExtension(b, 0x0104, bytes.Repeat([]byte{1}, 32), 0)
	b = AppendExtension(b, 0x0204, bytes.Repeat([]byte{2}, 100), 0)
	b = AppendExtension(b, 0x0404, bytes.Repeat([]byte{3}, 5), 28)
	var p Packet
	if err := Parse(b, &p); err != nil {
		t.Fatal(err)
	}
	want := []struct {
		typ uint16
		n   int
	}{{0x0104, 32}, {0x0204, 100}, {0x0404, 24}}
	it := p.ExtensionFields()
	for i, w := range want {
		f, ok := it.Next()
		if !ok || f.Type != w.typ || len(f.Value) != w.n {
			t.Fatalf("field %d: %v %x %d bytes; want %x %d", i, ok, f.Type, len(f.Value), w.typ, w.n)
		}
	}
	if _, ok := it.Next(); ok || it.Err() != nil || p.MAC != nil {
		t.Errorf("trailing: err %v MAC %x", it.Err(), p.MAC)
	}
}

func TestAppendExtensionTooLongPanics(t *testing.T) {
	defer func() {
		if recover() == nil {
			t.Error("no panic for a 65533-byte field")
		}
	}()
	AppendExtension(nil, 1, make([]byte, 65529), 0)
}

func TestAppendExtensionLongest(t *testing.T) {
	b := AppendExtension(nil, 1, make([]byte, 65528), 0)
	if len(b) != 65532 || binary.BigEndian.Uint16(b[2:]) != 65532 {
		t.Errorf("len %d, length field %d", len(b), binary.BigEndian.Uint16(b[2:]))
	}
}
