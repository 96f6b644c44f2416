package main

import (
	"testing"
	"unsafe"

	"golang.org/x/sys/unix"
)

// putCmsg appends one control message (level, type, data) to b.
func putCmsg(b []byte, level, typ int32, data []byte) []byte {
	c := make([]byte, unix.CmsgSpace(len(data)))
	h := (*unix.Cmsghdr)(unsafe.Pointer(&c[0]))
	h.Level, h.Type = level, typ
	h.SetLen(unix.CmsgLen(len(data)))
	copy(c[unix.CmsgLen(0):], data)
	return append(b, c...)
}

// TestPktinfoDst: the destination address is found after another control
// message (the receive timestamp comes first), and a missing, truncated or
// malformed one gives the zero address, never a panic.
func TestPktinfoDst(t *testing.T) {
	pi := make([]byte, unix.SizeofInet4Pktinfo)
	copy(pi[8:12], []byte{127, 0, 0, 9}) // ipi_addr
	ts := make([]byte, 3*16)
	ctl := putCmsg(putCmsg(nil, unix.SOL_SOCKET, unix.SO_TIMESTAMPING, ts), unix.SOL_IP, unix.IP_PKTINFO, pi)
	if got := pktinfoDst(ctl); got != [4]byte{127, 0, 0, 9} {
		t.Errorf("pktinfoDst = %v, want 127.0.0.9", got)
	}
	// Cut anywhere before the PKTINFO's last data byte (its alignment
	// padding may go), the message is incomplete.
	complete := len(ctl) - unix.CmsgSpace(len(pi)) + unix.CmsgLen(len(pi))
	for n := range len(ctl) {
		got := pktinfoDst(ctl[:n])
		if want := n >= complete; (got != [4]byte{}) != want {
			t.Errorf("truncated to %d bytes: %v", n, got)
		}
	}
	bad := putCmsg(nil, unix.SOL_SOCKET, unix.SO_TIMESTAMPING, ts)
	(*unix.Cmsghdr)(unsafe.Pointer(&bad[0])).Len = 2 // shorter than its header
	if got := pktinfoDst(bad); got != ([4]byte{}) {
		t.Errorf("malformed: %v", got)
	}
}
