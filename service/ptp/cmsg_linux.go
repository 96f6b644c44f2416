package ptp

import (
	"encoding/binary"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// The kernel's ancillary data for PTP sockets: SCM_TIMESTAMPING (three
// timespecs: software, legacy, hardware) on received datagrams and on
// error-queue reads, and the sock_extended_err that marks an error-queue
// entry as a transmit timestamp (IP_RECVERR, IPV6_RECVERR, or
// PACKET_TX_TIMESTAMP on AF_PACKET sockets). Decoded without trusting any
// length; FuzzParseControl covers it.

var (
	cmsgHdrLen  = unix.SizeofCmsghdr
	cmsgLenSize = int(unsafe.Sizeof(unix.Cmsghdr{}.Len))
	tsFieldSize = int(unsafe.Sizeof(unix.Timespec{}.Sec))
	timespecLen = int(unsafe.Sizeof(unix.Timespec{}))
)

const sizeofSockExtendedErr = 16

func cmsgAlign(n int) int {
	const a = int(unsafe.Sizeof(uintptr(0)))
	return (n + a - 1) &^ (a - 1)
}

// Stamps is what the control messages of one read carried.
type Stamps struct {
	Software time.Time // SCM_TIMESTAMPING slot 0 (or SCM_TIMESTAMPNS)
	Hardware time.Time // slot 2: the NIC's clock (the PHC), raw
	// TxReport says the entry was a transmit timestamp report
	// (SCM_TSTAMP_SND) from the error queue.
	TxReport bool
}

// Pick returns the timestamp of the kind asked for (the zero time when
// the kernel gave none).
func (s Stamps) Pick(hardware bool) time.Time {
	if hardware {
		return s.Hardware
	}
	return s.Software
}

func timespecAt(b []byte) (time.Time, bool) {
	if len(b) < timespecLen {
		return time.Time{}, false
	}
	var sec, nsec int64
	if tsFieldSize == 8 {
		sec = int64(binary.NativeEndian.Uint64(b))
		nsec = int64(binary.NativeEndian.Uint64(b[8:]))
	} else {
		sec = int64(int32(binary.NativeEndian.Uint32(b)))
		nsec = int64(int32(binary.NativeEndian.Uint32(b[4:])))
	}
	if (sec == 0 && nsec == 0) || sec < 0 || nsec < 0 || nsec >= 1e9 {
		return time.Time{}, false
	}
	return time.Unix(sec, nsec), true
}

// ParseControl decodes the control messages of a read (normal or error
// queue). Unknown and malformed messages are skipped.
func ParseControl(b []byte) Stamps {
	var s Stamps
	for len(b) >= cmsgHdrLen {
		var l uint64
		if cmsgLenSize == 8 {
			l = binary.NativeEndian.Uint64(b)
		} else {
			l = uint64(binary.NativeEndian.Uint32(b))
		}
		if l < uint64(cmsgHdrLen) || l > uint64(len(b)) {
			break
		}
		level := int32(binary.NativeEndian.Uint32(b[cmsgLenSize:]))
		typ := int32(binary.NativeEndian.Uint32(b[cmsgLenSize+4:]))
		data := b[cmsgHdrLen:int(l)]
		next := min(cmsgAlign(int(l)), len(b))
		b = b[next:]
		switch {
		case level == unix.SOL_SOCKET && typ == unix.SCM_TIMESTAMPING:
			if t, ok := timespecAt(data); ok {
				s.Software = t
			}
			if len(data) >= 3*timespecLen {
				if t, ok := timespecAt(data[2*timespecLen:]); ok {
					s.Hardware = t
				}
			}
		case level == unix.SOL_SOCKET && typ == unix.SCM_TIMESTAMPNS:
			if s.Software.IsZero() {
				if t, ok := timespecAt(data); ok {
					s.Software = t
				}
			}
		case (level == unix.SOL_IP && typ == unix.IP_RECVERR) ||
			(level == unix.SOL_IPV6 && typ == unix.IPV6_RECVERR) ||
			(level == unix.SOL_PACKET && typ == unix.PACKET_TX_TIMESTAMP):
			if len(data) >= sizeofSockExtendedErr {
				errno := binary.NativeEndian.Uint32(data[0:4])
				origin := data[4]
				info := binary.NativeEndian.Uint32(data[8:12])
				if errno == uint32(unix.ENOMSG) && origin == unix.SO_EE_ORIGIN_TIMESTAMPING && info == unix.SCM_TSTAMP_SND {
					s.TxReport = true
				}
			}
		}
	}
	return s
}
