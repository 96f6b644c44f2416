package nts

import (
	"bytes"
	"encoding/hex"
	"errors"
	"reflect"
	"testing"
)

func rec(critical bool, typ uint16, body ...byte) []byte {
	b, err := AppendRecord(nil, Record{Critical: critical, Type: RecordType(typ), Body: body})
	if err != nil {
		panic(err)
	}
	return b
}

func cat(parts ...[]byte) []byte { return bytes.Join(parts, nil) }

var eom = rec(true, 0)

// TestRecordWire pins the wire form of each record type against bytes
// written out by hand from RFC 8915 section 4.
func TestRecordWire(t *testing.T) {
	tests := []struct {
		name string
		r    Record
		hex  string
	}{
		{"end of message", Record{true, RecordEndOfMessage, nil}, "80000000"},
		{"next protocol NTPv4", Record{true, RecordNextProtocol, []byte{0, 0}}, "800100020000"},
		{"error bad request", Record{true, RecordError, []byte{0, 1}}, "800200020001"},
		{"warning", Record{true, RecordWarning, []byte{0, 7}}, "800300020007"},
		{"aead 15", Record{false, RecordAEADAlgorithm, []byte{0, 15}}, "00040002000f"},
		{"new cookie", Record{false, RecordNewCookie, []byte{1, 2, 3}}, "00050003010203"},
		{"server", Record{true, RecordServerNegotiation, []byte("ntp.example")}, "8006000b6e74702e6578616d706c65"},
		{"port 123", Record{true, RecordPortNegotiation, []byte{0, 123}}, "80070002007b"},
		{"unknown non-critical", Record{false, 0x1234, []byte{9}}, "1234000109"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b, err := AppendRecord(nil, tt.r)
			if err != nil {
				t.Fatal(err)
			}
			if got := hex.EncodeToString(b); got != tt.hex {
				t.Fatalf("AppendRecord = %s, want %s", got, tt.hex)
			}
			r, n, err := ParseRecord(append(b, 0xff)) // trailing byte not consumed
			if err != nil || n != len(b) {
				t.Fatalf("ParseRecord: n=%d err=%v", n, err)
			}
			if r.Critical != tt.r.Critical || r.Type != tt.r.Type || !bytes.Equal(r.Body, tt.r.Body) {
				t.Fatalf("ParseRecord = %+v, want %+v", r, tt.r)
			}
		})
	}
	if _, err := AppendRecord(nil, Record{Type: 0x8000}); err == nil {
		t.Error("AppendRecord accepted a 16-bit type")
	}
	if _, err := AppendRecord(nil, Record{Body: make([]byte, 70000)}); err == nil {
		t.Error("AppendRecord accepted a 70000-byte body")
	}
}

// TestMessageRoundTrip: every field of Message survives Append and
// ParseMessage.
func TestMessageRoundTrip(t *testing.T) {
	msgs := []Message{
		{NextProtocols: []uint16{0}, HasNextProtocol: true, AEADs: []AEADAlgorithm{15, 30}, HasAEAD: true,
			CriticalFlags: 1<<RecordEndOfMessage | 1<<RecordNextProtocol | 1<<RecordAEADAlgorithm},
		{Errors: []uint16{1}, CriticalFlags: 1<<RecordEndOfMessage | 1<<RecordError},
		{Warnings: []uint16{5, 6}, NextProtocols: []uint16{}, HasNextProtocol: true,
			CriticalFlags: 1<<RecordEndOfMessage | 1<<RecordNextProtocol | 1<<RecordWarning},
		{NextProtocols: []uint16{0}, HasNextProtocol: true, AEADs: []AEADAlgorithm{15}, HasAEAD: true,
			Cookies: [][]byte{{1, 2, 3, 4}, bytes.Repeat([]byte{9}, 104)}, Server: "127.0.0.1", Port: 11123, HasPort: true,
			CriticalFlags: 1<<RecordEndOfMessage | 1<<RecordNextProtocol | 1<<RecordServerNegotiation | 1<<RecordPortNegotiation},
	}
	for i, m := range msgs {
		b, err := m.Append(nil)
		if err != nil {
			t.Fatal(err)
		}
		got, err := ParseMessage(b)
		if err != nil {
			t.Fatalf("message %d: %v", i, err)
		}
		if !reflect.DeepEqual(*got, m) {
			t.Errorf("message %d: got %+v, want %+v", i, *got, m)
		}
		if n, done, err := MessageLen(append(b, 1, 2, 3)); n != len(b) || !done || err != nil {
			t.Errorf("message %d: MessageLen = %d, %v, %v; want %d, true", i, n, done, err, len(b))
		}
	}
}

// TestParseMessageBad: malformed input gives a clear error, never a panic.
func TestParseMessageBad(t *testing.T) {
	np := rec(true, 1, 0, 0)
	tests := []struct {
		name string
		b    []byte
		want error
	}{
		{"empty", nil, ErrTruncated},
		{"half header", []byte{0x80}, ErrTruncated},
		{"truncated body", cat(np[:5]), ErrTruncated},
		{"no end of message", np, ErrTruncated},
		{"unknown critical", cat(rec(true, 0x4000, 1), eom), ErrUnrecognizedCritical},
		{"oversized body", cat([]byte{0, 5, 0x10, 0}, make([]byte, 4096), eom), ErrTooLarge},
		{"too many records", cat(bytes.Repeat(rec(false, 5, 1, 2, 3, 4), MaxRecords), eom), ErrTooLarge},
		{"data after end", cat(np, eom, np), ErrMalformed},
		{"end with body", cat(np, rec(true, 0, 1)), ErrMalformed},
		{"two next protocol", cat(np, np, eom), ErrMalformed},
		{"odd aead list", cat(np, rec(true, 4, 0, 15, 1), eom), ErrMalformed},
		{"short error", cat(rec(true, 2, 1), eom), ErrMalformed},
		{"long port", cat(rec(true, 7, 0, 1, 2), eom), ErrMalformed},
		{"empty cookie", cat(rec(false, 5), eom), ErrMalformed},
		{"empty server", cat(rec(true, 6), eom), ErrMalformed},
		{"server with space", cat(rec(true, 6, 'a', ' ', 'b'), eom), ErrMalformed},
		{"server with NUL", cat(rec(true, 6, 'a', 0), eom), ErrMalformed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m, err := ParseMessage(tt.b)
			if !errors.Is(err, tt.want) || m != nil {
				t.Fatalf("ParseMessage = %v, %v; want %v", m, err, tt.want)
			}
		})
	}
	// Unknown non-critical records are skipped.
	m, err := ParseMessage(cat(rec(false, 0x4000, 1, 2), np, eom))
	if err != nil || !m.HasNextProtocol {
		t.Fatalf("unknown non-critical record: %+v, %v", m, err)
	}
}

func TestMessageLenStream(t *testing.T) {
	m := Message{NextProtocols: []uint16{0}, HasNextProtocol: true, Cookies: [][]byte{make([]byte, 100)}}
	b, _ := m.Append(nil)
	for i := 0; i < len(b); i++ {
		n, done, err := MessageLen(b[:i])
		if done || err != nil {
			t.Fatalf("prefix %d: MessageLen = %d, %v, %v", i, n, done, err)
		}
	}
	// A stream that never ends its message hits the limit.
	long := bytes.Repeat(rec(false, 5, make([]byte, 1000)...), 20)
	if _, _, err := MessageLen(long); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("endless stream: %v", err)
	}
	if _, _, err := MessageLen([]byte{0, 5, 0xff, 0xff}); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("64 KB record: %v", err)
	}
}

func TestKEErrorText(t *testing.T) {
	for code, want := range map[uint16]string{
		0: "nts: NTS-KE peer sent error: unrecognized critical record",
		1: "nts: NTS-KE peer sent error: bad request",
		2: "nts: NTS-KE peer sent error: internal server error",
		9: "nts: NTS-KE peer sent error 9",
	} {
		if got := (&KEError{code}).Error(); got != want {
			t.Errorf("KEError{%d} = %q", code, got)
		}
	}
}
