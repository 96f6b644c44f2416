// Package ntpshift rewrites NTP packets in flight so that a server seems
// to be off by a given amount: the falseticker of the real-time accuracy
// bench (tests/relay_bench_test.go) and of the VM bench's guest relays
// (tests/vm/vmguest).
package ntpshift

import (
	"encoding/binary"
	"time"
)

// Shift makes the server seem shift ahead: a reply's receive and transmit
// timestamps move forward, and a request's origin (in the interleaved
// mode, one of those receive timestamps, echoed) back, so that the server
// still recognises it. Zero fields stay zero; a packet shorter than an NTP
// header is left alone.
func Shift(pkt []byte, toServer bool, shift time.Duration) {
	if len(pkt) < 48 {
		return
	}
	delta := int64(shift.Seconds() * (1 << 32))
	offs := []int{32, 40}
	if toServer {
		offs, delta = []int{24}, -delta
	}
	for _, off := range offs {
		if v := binary.BigEndian.Uint64(pkt[off:]); v != 0 {
			binary.BigEndian.PutUint64(pkt[off:], uint64(int64(v)+delta))
		}
	}
}
