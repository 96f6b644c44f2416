package netio

import (
	"errors"
	"fmt"
	"syscall"

	"golang.org/x/sys/unix"
)

// Port sharing. gnomond's server workers share one address with
// SO_REUSEPORT, and must share it with nobody else: Linux lets any socket
// of the same user that also sets SO_REUSEPORT join the group, and then
// spreads clients over every member, so with chronyd (or a second gnomond)
// on the port, clients would get answers from either at random. Two
// guards:
//
//   - The first worker binds without SO_REUSEPORT, so the bind fails
//     (EADDRINUSE) when anyone holds the address, with or without the
//     option; only then does it set SO_REUSEPORT, for the other workers to
//     join.
//   - The group gets a classic BPF program that picks the worker from the
//     client's address and port, modulo the number of workers: a socket
//     that joins later (another process starting after gnomond) sits past
//     them and is never chosen.
//
// Sockets passed by systemd are taken as they are (AdoptServer).

// ErrAddrInUse: another process holds the address a server was to bind.
var ErrAddrInUse = errors.New("address in use by another process")

// skfNetOff is SKF_NET_OFF: BPF absolute loads at this negative offset
// read from the network header.
const skfNetOff = -0x100000

// steerProgram picks a worker index in [0, n) from the source address and
// port of an IPv4 (v4 true) or IPv6 datagram, assuming no IPv4 options and
// no IPv6 extension headers (with them it still picks the same worker for
// every datagram of a flow).
func steerProgram(v4 bool, n int) []unix.SockFilter {
	ld := func(size uint16, off int) unix.SockFilter {
		return unix.SockFilter{Code: unix.BPF_LD | size | unix.BPF_ABS, K: uint32(int32(skfNetOff + off))}
	}
	tax := unix.SockFilter{Code: unix.BPF_MISC | unix.BPF_TAX}
	xorX := unix.SockFilter{Code: unix.BPF_ALU | unix.BPF_XOR | unix.BPF_X}
	var p []unix.SockFilter
	if v4 {
		p = []unix.SockFilter{ld(unix.BPF_H, 20), tax, ld(unix.BPF_W, 12), xorX}
	} else {
		p = []unix.SockFilter{ld(unix.BPF_H, 40), tax, ld(unix.BPF_W, 20), xorX, tax, ld(unix.BPF_W, 16), xorX}
	}
	return append(p,
		unix.SockFilter{Code: unix.BPF_ALU | unix.BPF_MUL | unix.BPF_K, K: 0x9e3779b1}, // spread the bits
		unix.SockFilter{Code: unix.BPF_ALU | unix.BPF_RSH | unix.BPF_K, K: 16},
		unix.SockFilter{Code: unix.BPF_ALU | unix.BPF_MOD | unix.BPF_K, K: uint32(n)},
		unix.SockFilter{Code: unix.BPF_RET | unix.BPF_A},
	)
}

// attachSteering installs steerProgram on the reuseport group of fd.
func attachSteering(fd int, v4 bool, n int) error {
	prog := steerProgram(v4, n)
	fprog := unix.SockFprog{Len: uint16(len(prog)), Filter: &prog[0]}
	if err := unix.SetsockoptSockFprog(fd, unix.SOL_SOCKET, unix.SO_ATTACH_REUSEPORT_CBPF, &fprog); err != nil {
		return fmt.Errorf("netio: SO_ATTACH_REUSEPORT_CBPF: %w", err)
	}
	return nil
}

// inUse reports whether err is a bind's EADDRINUSE.
func inUse(err error) bool { return errors.Is(err, syscall.EADDRINUSE) }
