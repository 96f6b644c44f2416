package ntpshift

import (
	"encoding/binary"
	"testing"
	"time"
)

// TestShift: a reply's receive and transmit timestamps move forward by
// the shift, a request's origin back by it, zero fields stay zero, and
// what the relay does to a request undoes what it did to the echoed
// receive timestamp (the interleaved mode still finds its exchange).
func TestShift(t *testing.T) {
	const shift = 100 * time.Millisecond
	delta := uint64(shift.Seconds() * (1 << 32))
	reply := make([]byte, 48)
	binary.BigEndian.PutUint64(reply[24:], 1<<40) // origin: the client's, untouched
	binary.BigEndian.PutUint64(reply[32:], 5<<40)
	binary.BigEndian.PutUint64(reply[40:], 6<<40)
	Shift(reply, false, shift)
	if got := binary.BigEndian.Uint64(reply[24:]); got != 1<<40 {
		t.Errorf("reply origin %#x, want untouched", got)
	}
	if got := binary.BigEndian.Uint64(reply[32:]); got != 5<<40+delta {
		t.Errorf("reply receive %#x, want %#x", got, uint64(5<<40)+delta)
	}
	if got := binary.BigEndian.Uint64(reply[40:]); got != 6<<40+delta {
		t.Errorf("reply transmit %#x, want %#x", got, uint64(6<<40)+delta)
	}
	req := make([]byte, 48)
	copy(req[24:32], reply[32:40]) // interleaved: the origin echoes the receive timestamp
	binary.BigEndian.PutUint64(req[40:], 7<<40)
	Shift(req, true, shift)
	if got := binary.BigEndian.Uint64(req[24:]); got != 5<<40 {
		t.Errorf("request origin %#x, want the server's own %#x back", got, uint64(5<<40))
	}
	if got := binary.BigEndian.Uint64(req[40:]); got != 7<<40 {
		t.Errorf("request transmit %#x, want untouched", got)
	}
	basic := make([]byte, 48) // a basic request: origin zero
	Shift(basic, true, shift)
	if got := binary.BigEndian.Uint64(basic[24:]); got != 0 {
		t.Errorf("zero origin became %#x", got)
	}
	Shift(make([]byte, 20), false, shift) // short: ignored, no panic
}
