package refclock

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"time"

	"gnomon.dev/gnomon/engine/sample"
)

// chrony's SOCK reference clock: a client (gpsd, ts2phc, a custom program)
// sends datagrams of chrony's struct sock_sample (refclock_sock.c) to a
// unix datagram socket the daemon binds:
//
//	struct sock_sample {
//	  struct timeval tv;  // time of the measurement, system clock
//	  double offset;      // true time - system time, seconds
//	  int pulse;          // non-zero: a PPS edge, offset is its phase
//	  int leap;           // 0 none, 1 insert, 2 delete
//	  int _pad;
//	  int magic;          // 0x534f434b, "SOCK"
//	};
//
// in the sender's native byte order. On 64-bit Linux tv is two int64s, so
// the struct is 40 bytes (magic at 36); 32-bit senders with a 32-bit
// time_t send 32 bytes (tv two int32s, magic at 28). Both are accepted,
// as chrony does on 32-bit hosts.

// SockMagic is struct sock_sample's magic, "SOCK".
const SockMagic = 0x534f434b

// Sizes of struct sock_sample.
const (
	SockSampleLen   = 40 // 64-bit time_t and suseconds_t
	SockSampleLen32 = 32 // 32-bit time_t
)

// SockSample is one decoded datagram.
type SockSample struct {
	TV     time.Time // measurement time, system clock
	Offset float64   // seconds, true - system
	Pulse  bool
	Leap   int32
}

// Errors of DecodeSock.
var (
	ErrSockLength = errors.New("sock: datagram is not a struct sock_sample (want 40 or 32 bytes)")
	ErrSockMagic  = errors.New("sock: bad magic (want 0x534f434b)")
	ErrSockValue  = errors.New("sock: field out of range")
)

// DecodeSock decodes a little-endian struct sock_sample (every Linux
// architecture gnomond is built for is little-endian but s390x; order
// names the host's byte order).
func DecodeSock(b []byte, order binary.ByteOrder) (SockSample, error) {
	var s SockSample
	var sec, usec int64
	var off int
	switch len(b) {
	case SockSampleLen:
		sec = int64(order.Uint64(b[0:]))
		usec = int64(order.Uint64(b[8:]))
		off = 16
	case SockSampleLen32:
		sec = int64(int32(order.Uint32(b[0:])))
		usec = int64(int32(order.Uint32(b[4:])))
		off = 8
	default:
		return s, fmt.Errorf("%w: %d bytes", ErrSockLength, len(b))
	}
	if m := order.Uint32(b[off+20:]); m != SockMagic {
		return s, fmt.Errorf("%w: 0x%08x", ErrSockMagic, m)
	}
	s.Offset = math.Float64frombits(order.Uint64(b[off:]))
	s.Pulse = order.Uint32(b[off+8:]) != 0
	s.Leap = int32(order.Uint32(b[off+12:]))
	if usec < 0 || usec >= 1e6 || !secOK(sec) {
		return s, fmt.Errorf("%w: tv %d.%06d", ErrSockValue, sec, usec)
	}
	if math.IsNaN(s.Offset) || math.Abs(s.Offset) > 1e9 {
		return s, fmt.Errorf("%w: offset %g", ErrSockValue, s.Offset)
	}
	if s.Leap < 0 || s.Leap > 2 {
		return s, fmt.Errorf("%w: leap %d", ErrSockValue, s.Leap)
	}
	s.TV = time.Unix(sec, usec*1000).UTC()
	return s, nil
}

// EncodeSock appends the 64-bit struct sock_sample (for tests and tools
// that feed a SOCK source).
func EncodeSock(b []byte, order binary.ByteOrder, s SockSample) []byte {
	var buf [SockSampleLen]byte
	order.PutUint64(buf[0:], uint64(s.TV.Unix()))
	order.PutUint64(buf[8:], uint64(s.TV.Nanosecond()/1000))
	order.PutUint64(buf[16:], math.Float64bits(s.Offset))
	var pulse uint32
	if s.Pulse {
		pulse = 1
	}
	order.PutUint32(buf[24:], pulse)
	order.PutUint32(buf[28:], uint32(s.Leap))
	order.PutUint32(buf[36:], SockMagic)
	return append(b, buf[:]...)
}

// Sample is the datagram as a reference-clock sample. For a pulse the
// offset is the system clock's phase after the edge (chrony's
// RCL_AddPulse): the reference time is then Local minus it, of which only
// the phase counts.
func (s SockSample) Sample() Sample {
	d := time.Duration(s.Offset * 1e9)
	out := Sample{Local: s.TV, Ref: s.TV.Add(d), Leap: sample.Leap(s.Leap), Pulse: s.Pulse}
	if s.Pulse {
		out.Ref = s.TV.Add(-d)
	}
	return out
}
