package refclock

import (
	"encoding/binary"
	"errors"
	"fmt"
	"time"

	"gnomon.dev/gnomon/engine/sample"
)

// ntpd's shared-memory reference clock (refclock_shm.c), as gpsd, ntpd,
// chrony and many GPS tools use it: a SysV segment with key
// 0x4e545030 + unit ("NTP0"...) holding
//
//	struct shmTime {
//	  int    mode;      // 0: use if valid; 1: also check count is unchanged
//	  volatile int count;   // bumped by the writer before and after
//	  time_t clockTimeStampSec;   // the reference time
//	  int    clockTimeStampUSec;
//	  time_t receiveTimeStampSec; // the system time it was taken
//	  int    receiveTimeStampUSec;
//	  int    leap;
//	  int    precision; // log2 s
//	  int    nsamples;
//	  volatile int valid;
//	  unsigned clockTimeStampNSec;
//	  unsigned receiveTimeStampNSec;
//	  int    dummy[8];
//	};
//
// With a 64-bit time_t each time_t is 8-aligned: mode 0, count 4,
// clockSec 8, clockUSec 16, receiveSec 24, receiveUSec 32, leap 36,
// precision 40, nsamples 44, valid 48, clockNSec 52, receiveNSec 56,
// dummy 60..92, padded to 96 bytes.
//
// The reader copies the segment, and uses the copy when valid is set and,
// in mode 1, when count has not changed since the copy began (the writer
// was not in the middle of an update); then it clears valid.

// SHMKeyBase is the SysV IPC key of unit 0 ("NTP0").
const SHMKeyBase = 0x4e545030

// SHMSize is sizeof(struct shmTime) with a 64-bit time_t.
const SHMSize = 96

// Offsets in struct shmTime.
const (
	shmMode        = 0
	shmCount       = 4
	shmClockSec    = 8
	shmClockUSec   = 16
	shmRecvSec     = 24
	shmRecvUSec    = 32
	shmLeap        = 36
	shmPrecision   = 40
	shmValid       = 48
	shmClockNSec   = 52
	shmRecvNSec    = 56
	SHMValidOffset = shmValid // where the reader clears valid
	SHMCountOffset = shmCount
)

// Errors of DecodeSHM. ErrSHMNotValid is the normal "nothing new".
var (
	ErrSHMNotValid = errors.New("shm: no new sample (valid is 0)")
	ErrSHMBusy     = errors.New("shm: writer was updating the segment (count changed)")
	ErrSHMMode     = errors.New("shm: unknown mode (want 0 or 1)")
	ErrSHMShort    = errors.New("shm: segment smaller than struct shmTime")
	ErrSHMValue    = errors.New("shm: field out of range")
)

// SHMSample is one sample read from the segment.
type SHMSample struct {
	Clock, Receive time.Time // reference time, system time
	Leap           int32
	Precision      int32
	Count          int32
}

// DecodeSHM decodes a copy of the segment. countAfter is the count field
// read again after the copy was taken (mode 1's consistency check).
func DecodeSHM(b []byte, countAfter int32, order binary.ByteOrder) (SHMSample, error) {
	var s SHMSample
	if len(b) < SHMSize {
		return s, ErrSHMShort
	}
	mode := int32(order.Uint32(b[shmMode:]))
	s.Count = int32(order.Uint32(b[shmCount:]))
	if mode != 0 && mode != 1 {
		return s, fmt.Errorf("%w: %d", ErrSHMMode, mode)
	}
	if order.Uint32(b[shmValid:]) == 0 {
		return s, ErrSHMNotValid
	}
	if mode == 1 && countAfter != s.Count {
		return s, ErrSHMBusy
	}
	s.Leap = int32(order.Uint32(b[shmLeap:]))
	s.Precision = int32(order.Uint32(b[shmPrecision:]))
	var err error
	if s.Clock, err = shmTime(b, shmClockSec, shmClockUSec, shmClockNSec, order); err != nil {
		return s, err
	}
	if s.Receive, err = shmTime(b, shmRecvSec, shmRecvUSec, shmRecvNSec, order); err != nil {
		return s, err
	}
	return s, nil
}

// shmTime takes the nanoseconds when they agree with the microseconds
// (writers that predate the NSec fields leave them 0 or stale), as ntpd
// and chrony do.
func shmTime(b []byte, secOff, usecOff, nsecOff int, order binary.ByteOrder) (time.Time, error) {
	sec := int64(order.Uint64(b[secOff:]))
	usec := int64(int32(order.Uint32(b[usecOff:])))
	nsec := int64(order.Uint32(b[nsecOff:]))
	if !secOK(sec) || usec < 0 || usec >= 1e6 {
		return time.Time{}, fmt.Errorf("%w: time %d.%06d", ErrSHMValue, sec, usec)
	}
	ns := usec * 1000
	if nsec < 1e9 && nsec/1000 == usec {
		ns = nsec
	}
	return time.Unix(sec, ns).UTC(), nil
}

// Sample is the segment's sample.
func (s SHMSample) Sample() Sample {
	out := Sample{Local: s.Receive, Ref: s.Clock}
	switch s.Leap {
	case 1:
		out.Leap = sample.LeapInsert
	case 2:
		out.Leap = sample.LeapDelete
	case 3:
		out.Leap = sample.LeapUnsync
	}
	if s.Precision > -40 && s.Precision < 10 {
		out.Precision = precisionDuration(int(s.Precision))
	}
	return out
}

// EncodeSHM writes a sample into a segment image as a mode-1 writer does
// (count bumped, valid set); for tests and tools.
func EncodeSHM(b []byte, order binary.ByteOrder, s SHMSample) {
	order.PutUint32(b[shmMode:], 1)
	order.PutUint32(b[shmCount:], uint32(s.Count))
	put := func(t time.Time, so, uo, no int) {
		order.PutUint64(b[so:], uint64(t.Unix()))
		order.PutUint32(b[uo:], uint32(t.Nanosecond()/1000))
		order.PutUint32(b[no:], uint32(t.Nanosecond()))
	}
	put(s.Clock, shmClockSec, shmClockUSec, shmClockNSec)
	put(s.Receive, shmRecvSec, shmRecvUSec, shmRecvNSec)
	order.PutUint32(b[shmLeap:], uint32(s.Leap))
	order.PutUint32(b[shmPrecision:], uint32(s.Precision))
	order.PutUint32(b[shmValid:], 1)
}
