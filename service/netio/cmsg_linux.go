package netio

import (
	"encoding/binary"
	"net/netip"
	"strconv"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// The kernel hands us ancillary data (control messages), socket addresses and
// extended socket errors as raw bytes in host layout. The functions in this
// file decode them without allocating and never trust a length they are
// given: they are fuzzed (FuzzParseRxControl, FuzzParseErrQueueControl,
// FuzzSockaddr).

var (
	// cmsgHdrLen is the size of struct cmsghdr on this architecture, and
	// cmsgLenSize the size of its cmsg_len field (size_t on Linux).
	cmsgHdrLen  = unix.SizeofCmsghdr
	cmsgLenSize = int(unsafe.Sizeof(unix.Cmsghdr{}.Len))
	// timespecLen and timespecFieldSize describe struct timespec as the
	// kernel writes it into SCM_TIMESTAMPING/SCM_TIMESTAMPNS for the
	// non-"_NEW" socket options we use.
	timespecFieldSize = int(unsafe.Sizeof(unix.Timespec{}.Sec))
	timespecLen       = int(unsafe.Sizeof(unix.Timespec{}))
)

const (
	sizeofInet4Pktinfo    = 12 // struct in_pktinfo
	sizeofInet6Pktinfo    = 20 // struct in6_pktinfo
	sizeofSockExtendedErr = 16 // struct sock_extended_err
)

// cmsgAlign rounds n up to the kernel's control-message alignment
// (sizeof(long) on Linux).
func cmsgAlign(n int) int {
	const a = int(unsafe.Sizeof(uintptr(0)))
	return (n + a - 1) &^ (a - 1)
}

// nextCmsg splits the first control message off b. It returns the level, type
// and data of that message and the rest of the buffer; ok is false when b holds
// no complete, well-formed message.
func nextCmsg(b []byte) (level, typ int32, data, rest []byte, ok bool) {
	if len(b) < cmsgHdrLen {
		return 0, 0, nil, nil, false
	}
	var l uint64
	if cmsgLenSize == 8 {
		l = binary.NativeEndian.Uint64(b)
	} else {
		l = uint64(binary.NativeEndian.Uint32(b))
	}
	if l < uint64(cmsgHdrLen) || l > uint64(len(b)) {
		return 0, 0, nil, nil, false
	}
	level = int32(binary.NativeEndian.Uint32(b[cmsgLenSize:]))
	typ = int32(binary.NativeEndian.Uint32(b[cmsgLenSize+4:]))
	data = b[cmsgHdrLen:int(l)]
	next := cmsgAlign(int(l))
	if next > len(b) {
		next = len(b)
	}
	return level, typ, data, b[next:], true
}

// parseTimespec decodes one struct timespec; ok is false for a short buffer,
// a zero time (the kernel's "no timestamp" in SCM_TIMESTAMPING slots) or a
// nanosecond field out of range.
func parseTimespec(b []byte) (time.Time, bool) {
	if len(b) < timespecLen {
		return time.Time{}, false
	}
	var sec, nsec int64
	if timespecFieldSize == 8 {
		sec = int64(binary.NativeEndian.Uint64(b))
		nsec = int64(binary.NativeEndian.Uint64(b[8:]))
	} else {
		sec = int64(int32(binary.NativeEndian.Uint32(b)))
		nsec = int64(int32(binary.NativeEndian.Uint32(b[4:])))
	}
	if (sec == 0 && nsec == 0) || nsec < 0 || nsec >= 1e9 {
		return time.Time{}, false
	}
	return time.Unix(sec, nsec), true
}

// rxControl is what parseRxControl found in the ancillary data of one
// received datagram.
type rxControl struct {
	Time    time.Time  // kernel software receive time, if Kernel
	Kernel  bool       // Time came from SCM_TIMESTAMPING or SCM_TIMESTAMPNS
	Local   netip.Addr // destination address of the datagram (PKTINFO), unmapped
	IfIndex int        // interface the datagram arrived on (PKTINFO)
}

// parseRxControl decodes the control messages of a received datagram: the
// software receive timestamp (SCM_TIMESTAMPING slot 0, else SCM_TIMESTAMPNS)
// and the destination address and interface (IP_PKTINFO, IPV6_PKTINFO).
// Unknown and malformed messages are skipped.
func parseRxControl(b []byte) rxControl {
	var rc rxControl
	for {
		level, typ, data, rest, ok := nextCmsg(b)
		if !ok {
			return rc
		}
		b = rest
		switch {
		case level == unix.SOL_SOCKET && typ == unix.SCM_TIMESTAMPING:
			// struct scm_timestamping: ts[0] software, ts[1] legacy, ts[2] hardware.
			if t, ok := parseTimespec(data); ok {
				rc.Time, rc.Kernel = t, true
			}
		case level == unix.SOL_SOCKET && typ == unix.SCM_TIMESTAMPNS:
			if !rc.Kernel {
				if t, ok := parseTimespec(data); ok {
					rc.Time, rc.Kernel = t, true
				}
			}
		case level == unix.SOL_IP && typ == unix.IP_PKTINFO:
			if len(data) >= sizeofInet4Pktinfo {
				rc.IfIndex = int(int32(binary.NativeEndian.Uint32(data)))
				// data[4:8] is ipi_spec_dst, data[8:12] ipi_addr (the
				// header destination address).
				rc.Local = netip.AddrFrom4([4]byte(data[8:12]))
			}
		case level == unix.SOL_IPV6 && typ == unix.IPV6_PKTINFO:
			if len(data) >= sizeofInet6Pktinfo {
				rc.Local = netip.AddrFrom16([16]byte(data[:16])).Unmap()
				rc.IfIndex = int(binary.NativeEndian.Uint32(data[16:20]))
			}
		}
	}
}

// txControl is one decoded entry of the socket error queue.
type txControl struct {
	Time        time.Time // kernel software transmit time
	ID          uint32    // SOF_TIMESTAMPING_OPT_ID key of the datagram
	IsTimestamp bool      // a SCM_TSTAMP_SND timestamp report with a time
}

// parseErrQueueControl decodes the control messages of an error-queue read:
// a software transmit timestamp (SCM_TIMESTAMPING) together with the
// sock_extended_err (IP_RECVERR / IPV6_RECVERR) that carries its ID. Entries
// that are not SCM_TSTAMP_SND timestamp reports (ICMP errors, scheduler or ACK
// timestamps) come back with IsTimestamp false.
func parseErrQueueControl(b []byte) txControl {
	var (
		tc              txControl
		haveTime, isSnd bool
	)
	for {
		level, typ, data, rest, ok := nextCmsg(b)
		if !ok {
			break
		}
		b = rest
		switch {
		case level == unix.SOL_SOCKET && typ == unix.SCM_TIMESTAMPING:
			if t, ok := parseTimespec(data); ok {
				tc.Time, haveTime = t, true
			}
		case (level == unix.SOL_IP && typ == unix.IP_RECVERR) ||
			(level == unix.SOL_IPV6 && typ == unix.IPV6_RECVERR):
			if len(data) >= sizeofSockExtendedErr {
				errno := binary.NativeEndian.Uint32(data[0:4])
				origin := data[4]
				info := binary.NativeEndian.Uint32(data[8:12])
				if errno == uint32(unix.ENOMSG) && origin == unix.SO_EE_ORIGIN_TIMESTAMPING &&
					info == unix.SCM_TSTAMP_SND {
					isSnd = true
					tc.ID = binary.NativeEndian.Uint32(data[12:16])
				}
			}
		}
	}
	tc.IsTimestamp = haveTime && isSnd
	return tc
}

// parseSockaddr decodes a struct sockaddr_in or sockaddr_in6 as the kernel
// fills msg_name. IPv4-mapped IPv6 addresses are unmapped. An IPv6 scope ID
// becomes the zone, written as the interface index in decimal.
func parseSockaddr(b []byte) (netip.AddrPort, bool) {
	if len(b) < 2 {
		return netip.AddrPort{}, false
	}
	switch binary.NativeEndian.Uint16(b) {
	case unix.AF_INET:
		if len(b) < 8 {
			return netip.AddrPort{}, false
		}
		port := binary.BigEndian.Uint16(b[2:4])
		return netip.AddrPortFrom(netip.AddrFrom4([4]byte(b[4:8])), port), true
	case unix.AF_INET6:
		if len(b) < unix.SizeofSockaddrInet6 {
			return netip.AddrPort{}, false
		}
		port := binary.BigEndian.Uint16(b[2:4])
		a := netip.AddrFrom16([16]byte(b[8:24]))
		if a.Is4In6() {
			return netip.AddrPortFrom(a.Unmap(), port), true
		}
		if scope := binary.NativeEndian.Uint32(b[24:28]); scope != 0 && needsZone(a) {
			a = a.WithZone(strconv.FormatUint(uint64(scope), 10))
		}
		return netip.AddrPortFrom(a, port), true
	}
	return netip.AddrPort{}, false
}

// needsZone reports whether a is an IPv6 address only meaningful with a zone.
func needsZone(a netip.Addr) bool {
	return a.Is6() && (a.IsLinkLocalUnicast() || a.IsLinkLocalMulticast() || a.IsInterfaceLocalMulticast())
}

// zoneIndex returns the interface index for a's zone: the zone itself when it
// is a decimal number, else fallback. Named zones (eth0) are not resolved here
// because resolving allocates; callers pass the index they learned from PKTINFO.
func zoneIndex(a netip.Addr, fallback int) uint32 {
	z := a.Zone()
	if z == "" {
		return uint32(fallback)
	}
	if n, err := strconv.ParseUint(z, 10, 32); err == nil {
		return uint32(n)
	}
	return uint32(fallback)
}

// putSockaddr encodes ap into sa for a socket of the given family (AF_INET or
// AF_INET6) and returns the length to pass as msg_namelen, or 0 when the
// address cannot be sent from such a socket.
func putSockaddr(sa *unix.RawSockaddrInet6, family int, ap netip.AddrPort, ifIndex int) uint32 {
	a := ap.Addr()
	if !a.IsValid() {
		return 0
	}
	switch family {
	case unix.AF_INET:
		a = a.Unmap()
		if !a.Is4() {
			return 0
		}
		s4 := (*unix.RawSockaddrInet4)(unsafe.Pointer(sa))
		*s4 = unix.RawSockaddrInet4{Family: unix.AF_INET, Addr: a.As4()}
		putPort(&s4.Port, ap.Port())
		return unix.SizeofSockaddrInet4
	case unix.AF_INET6:
		*sa = unix.RawSockaddrInet6{Family: unix.AF_INET6, Addr: a.As16()}
		putPort(&sa.Port, ap.Port())
		if needsZone(a) {
			sa.Scope_id = zoneIndex(a, ifIndex)
		}
		return unix.SizeofSockaddrInet6
	}
	return 0
}

// putPort stores p in network byte order in a sockaddr port field.
func putPort(field *uint16, p uint16) {
	b := (*[2]byte)(unsafe.Pointer(field))
	b[0], b[1] = byte(p>>8), byte(p)
}

// putCmsgHeader writes a cmsghdr for a message of dataLen bytes at the start
// of b and returns the data part.
func putCmsgHeader(b []byte, level, typ int32, dataLen int) []byte {
	l := cmsgHdrLen + dataLen
	if cmsgLenSize == 8 {
		binary.NativeEndian.PutUint64(b, uint64(l))
	} else {
		binary.NativeEndian.PutUint32(b, uint32(l))
	}
	binary.NativeEndian.PutUint32(b[cmsgLenSize:], uint32(level))
	binary.NativeEndian.PutUint32(b[cmsgLenSize+4:], uint32(typ))
	return b[cmsgHdrLen:l]
}

// pktinfoSpace is the control buffer space one PKTINFO message needs.
var pktinfoSpace = cmsgAlign(cmsgHdrLen + sizeofInet6Pktinfo)

// putPktinfo writes into b (at least pktinfoSpace bytes) the control message
// that makes a datagram leave from local, for a socket of the given family,
// and returns its length; 0 means "let the kernel choose" (no or unusable
// local address).
func putPktinfo(b []byte, family int, local netip.Addr, ifIndex int) int {
	if !usableSource(local) {
		return 0
	}
	switch family {
	case unix.AF_INET:
		local = local.Unmap()
		if !local.Is4() {
			return 0
		}
		d := putCmsgHeader(b, unix.SOL_IP, unix.IP_PKTINFO, sizeofInet4Pktinfo)
		clear(d)
		// ipi_ifindex stays 0: the routing table picks the interface, the
		// source address is ipi_spec_dst.
		a := local.As4()
		copy(d[4:8], a[:])
		return cmsgAlign(cmsgHdrLen + sizeofInet4Pktinfo)
	case unix.AF_INET6:
		d := putCmsgHeader(b, unix.SOL_IPV6, unix.IPV6_PKTINFO, sizeofInet6Pktinfo)
		a := local.As16() // IPv4 becomes v4-mapped: valid on dual-stack sockets
		copy(d[:16], a[:])
		var idx uint32
		if needsZone(local) {
			idx = zoneIndex(local, ifIndex)
		}
		binary.NativeEndian.PutUint32(d[16:20], idx)
		return cmsgAlign(cmsgHdrLen + sizeofInet6Pktinfo)
	}
	return 0
}

// usableSource reports whether a can be the source address of a reply.
func usableSource(a netip.Addr) bool {
	a = a.Unmap()
	return a.IsValid() && !a.IsUnspecified() && !a.IsMulticast() &&
		a != netip.AddrFrom4([4]byte{255, 255, 255, 255})
}

// clampLen returns n as an int, at most limit: a length the kernel wrote back,
// made safe to slice with.
func clampLen(n uint64, limit int) int {
	if n > uint64(limit) {
		return limit
	}
	return int(n)
}
