// Command ntpfloor is the benchmarks' floor (docs/benchmarks.md): the
// least an NTP server can do per answer on this kernel. Each worker reads a
// batch of datagrams with one recvmmsg, turns each into a mode-4 reply
// (version echoed, stratum 1, origin = the request's transmit time, receive
// and transmit = one clock read per batch) and sends the batch back with
// one sendmmsg. No validation, no rate limiting, no timestamps from the
// kernel: what is left is the kernel's own cost of a datagram in and out.
//
// It binds IPv4 loopback only and runs until killed.
package main

import (
	"encoding/binary"
	"flag"
	"fmt"
	"net/netip"
	"os"
	"runtime"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

const batch = 64

func main() {
	listen := flag.String("listen", "127.0.0.1:12300", "IPv4 loopback ADDRESS:PORT")
	workers := flag.Int("workers", 1, "sockets (SO_REUSEPORT), one OS thread each")
	flag.Parse()
	ap, err := netip.ParseAddrPort(*listen)
	if err != nil || !ap.Addr().Is4() || !ap.Addr().IsLoopback() {
		fmt.Fprintf(os.Stderr, "ntpfloor: -listen %q: want an IPv4 loopback address:port\n", *listen)
		os.Exit(2)
	}
	if *workers < 1 || *workers > 64 {
		fmt.Fprintln(os.Stderr, "ntpfloor: -workers must be in [1, 64]")
		os.Exit(2)
	}
	fds := make([]int, *workers)
	for i := range fds {
		fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM, 0)
		if err != nil {
			fail(err)
		}
		if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_REUSEPORT, 1); err != nil {
			fail(err)
		}
		if err := unix.Bind(fd, &unix.SockaddrInet4{Port: int(ap.Port()), Addr: ap.Addr().As4()}); err != nil {
			fail(err)
		}
		fds[i] = fd
	}
	fmt.Printf("ntpfloor: %d worker(s) on %v\n", *workers, ap)
	for _, fd := range fds[1:] {
		go serve(fd)
	}
	serve(fds[0])
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "ntpfloor:", err)
	os.Exit(1)
}

// ntpTime is t as a 64-bit NTP timestamp.
func ntpTime(t time.Time) uint64 {
	const unixToNTP = 2208988800
	secs := uint64(t.Unix() + unixToNTP)
	frac := uint64(t.Nanosecond()) << 32 / 1e9
	return secs<<32 | frac
}

func serve(fd int) {
	runtime.LockOSThread()
	var (
		bufs  [batch][128]byte
		names [batch]unix.RawSockaddrInet4
		iov   [batch]unix.Iovec
		hdr   [batch]unix.Mmsghdr
	)
	for i := range hdr {
		iov[i].Base = &bufs[i][0]
		iov[i].SetLen(len(bufs[i]))
		hdr[i].Hdr.Name = (*byte)(unsafe.Pointer(&names[i]))
		hdr[i].Hdr.Iov = &iov[i]
		hdr[i].Hdr.Iovlen = 1
	}
	for {
		for i := range hdr {
			hdr[i].Hdr.Namelen = unix.SizeofSockaddrInet4
			iov[i].SetLen(len(bufs[i]))
		}
		n, _, e := unix.Syscall6(unix.SYS_RECVMMSG, uintptr(fd), uintptr(unsafe.Pointer(&hdr[0])), batch, unix.MSG_WAITFORONE, 0, 0)
		if e != 0 {
			if e == unix.EINTR {
				continue
			}
			fail(e)
		}
		now := ntpTime(time.Now())
		m := 0
		for i := 0; i < int(n); i++ {
			if hdr[i].Len < 48 {
				continue
			}
			b := &bufs[i]
			xmt := binary.BigEndian.Uint64(b[40:48])
			vn := b[0] >> 3 & 7
			b[0] = vn<<3 | 4     // LI 0, version echoed, mode 4
			b[1], b[3] = 1, 0xe8 // stratum 1, poll echoed, precision 2^-24
			binary.BigEndian.PutUint32(b[4:], 0)
			binary.BigEndian.PutUint32(b[8:], 0)
			copy(b[12:16], "FLOR")
			binary.BigEndian.PutUint64(b[16:], now)
			binary.BigEndian.PutUint64(b[24:], xmt)
			binary.BigEndian.PutUint64(b[32:], now)
			binary.BigEndian.PutUint64(b[40:], now)
			if m != i {
				hdr[m], names[m], bufs[m] = hdr[i], names[i], bufs[i]
				hdr[m].Hdr.Name = (*byte)(unsafe.Pointer(&names[m]))
				hdr[m].Hdr.Iov = &iov[m]
			}
			iov[m].SetLen(48)
			m++
		}
		for off := 0; off < m; {
			k, _, e := unix.Syscall6(unix.SYS_SENDMMSG, uintptr(fd), uintptr(unsafe.Pointer(&hdr[off])), uintptr(m-off), 0, 0, 0)
			if e != 0 {
				if e == unix.EINTR {
					continue
				}
				off++ // skip the message that failed
				continue
			}
			off += int(k)
		}
	}
}
