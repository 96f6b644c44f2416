// Command ntpfloor is the benchmarks' floor (docs/benchmarks.md): the
// least an NTP server can do per answer on this kernel. Each worker reads a
// batch of datagrams with one recvmmsg, turns each into a mode-4 reply
// (version echoed, stratum 1, origin = the request's transmit time, receive
// and transmit = one clock read per batch) and sends the batch back with
// one sendmmsg. No validation, no rate limiting, no timestamps from the
// kernel: what is left is the kernel's own cost of a datagram in and out.
//
// Two options move it towards what an NTS server's datagrams cost the
// kernel, to tell the protocol's share of a server's cost from its code's
// (docs/benchmarks.md, "The NTS answer at overload (2026-12-08)"):
//
//   - -echo: each reply is as long as its request (up to 1024 bytes), the
//     request's bytes after the header echoed, as an NTS server's reply is
//     as long as the request (ntpload -pad N sends N-byte requests);
//   - -pktinfo: IP_PKTINFO, as gnomond's server sockets have it
//     (service/netio): every request arrives with its destination address
//     in a control message, and every reply is sent with an IP_PKTINFO
//     naming that address as its source;
//   - -rxts: SO_TIMESTAMPING receive timestamps (software), as gnomond's
//     server sockets have them: every request arrives with a
//     SCM_TIMESTAMPING control message (read, not used);
//   - -cmsg: both;
//   - -rcvbuf N: a receive buffer of N bytes (SO_RCVBUFFORCE), as gnomond
//     asks for 4 MiB (4194304).
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

// bufLen is the longest request read (and, with -echo, reply sent).
const bufLen = 1024

// ctrlLen is the control space of one received message: a PKTINFO and a
// SCM_TIMESTAMPING (three timespecs), with room to spare.
const ctrlLen = 128

// pktinfoLen is the space of the IP_PKTINFO control message of a reply.
var pktinfoLen = unix.CmsgSpace(unix.SizeofInet4Pktinfo)

// opts are the options of a worker.
type opts struct {
	echo, pktinfo, rxts bool
	rcvbuf              int
}

func main() {
	listen := flag.String("listen", "127.0.0.1:12300", "IPv4 loopback ADDRESS:PORT")
	workers := flag.Int("workers", 1, "sockets (SO_REUSEPORT), one OS thread each")
	var o opts
	flag.BoolVar(&o.echo, "echo", false, "make each reply as long as its request (up to 1024 bytes), echoing the request's extension bytes")
	flag.BoolVar(&o.pktinfo, "pktinfo", false, "IP_PKTINFO on receive and on every reply, as gnomond does")
	flag.BoolVar(&o.rxts, "rxts", false, "SO_TIMESTAMPING receive timestamps, as gnomond has them")
	cmsg := flag.Bool("cmsg", false, "-pktinfo and -rxts")
	flag.IntVar(&o.rcvbuf, "rcvbuf", 0, "SO_RCVBUFFORCE in bytes (0: the kernel's default; gnomond asks for 4194304)")
	flag.Parse()
	if *cmsg {
		o.pktinfo, o.rxts = true, true
	}
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
		if o.pktinfo {
			if err := unix.SetsockoptInt(fd, unix.SOL_IP, unix.IP_PKTINFO, 1); err != nil {
				fail(err)
			}
		}
		if o.rcvbuf > 0 {
			if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, o.rcvbuf); err != nil {
				fail(err)
			}
		}
		if o.rxts {
			ts := unix.SOF_TIMESTAMPING_RX_SOFTWARE | unix.SOF_TIMESTAMPING_SOFTWARE
			if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_TIMESTAMPING, ts); err != nil {
				fail(err)
			}
		}
		if err := unix.Bind(fd, &unix.SockaddrInet4{Port: int(ap.Port()), Addr: ap.Addr().As4()}); err != nil {
			fail(err)
		}
		fds[i] = fd
	}
	fmt.Printf("ntpfloor: %d worker(s) on %v (echo %v, pktinfo %v, rxts %v, rcvbuf %d)\n", *workers, ap, o.echo, o.pktinfo, o.rxts, o.rcvbuf)
	for _, fd := range fds[1:] {
		go serve(fd, o)
	}
	serve(fds[0], o)
}

// pktinfoDst is the destination address in the IP_PKTINFO control message
// of ctl (zero if there is none).
func pktinfoDst(ctl []byte) [4]byte {
	var a [4]byte
	hl := unix.CmsgLen(0)
	for len(ctl) >= hl {
		h := (*unix.Cmsghdr)(unsafe.Pointer(&ctl[0]))
		l := int(h.Len)
		if l < hl || l > len(ctl) {
			break
		}
		if h.Level == unix.SOL_IP && h.Type == unix.IP_PKTINFO && l >= hl+unix.SizeofInet4Pktinfo {
			copy(a[:], ctl[hl+8:hl+12]) // ipi_addr: the header's destination
		}
		ctl = ctl[min(unix.CmsgSpace(l-hl), len(ctl)):]
	}
	return a
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

func serve(fd int, o opts) {
	runtime.LockOSThread()
	var (
		bufs  [batch][bufLen]byte
		names [batch]unix.RawSockaddrInet4
		iov   [batch]unix.Iovec
		hdr   [batch]unix.Mmsghdr
		rctl  [batch][ctrlLen]byte
		dst   [batch][4]byte // with -pktinfo: each request's destination address
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
			if o.pktinfo || o.rxts {
				hdr[i].Hdr.Control = &rctl[i][0]
				hdr[i].Hdr.SetControllen(ctrlLen)
			}
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
			rl := 48
			if o.echo {
				rl = min(int(hdr[i].Len), bufLen)
			}
			if o.pktinfo {
				dst[i] = pktinfoDst(rctl[i][:min(int(hdr[i].Hdr.Controllen), ctrlLen)])
			}
			if m != i {
				hdr[m], names[m], dst[m] = hdr[i], names[i], dst[i]
				copy(bufs[m][:rl], b[:rl])
				hdr[m].Hdr.Name = (*byte)(unsafe.Pointer(&names[m]))
				hdr[m].Hdr.Iov = &iov[m]
			}
			iov[m].SetLen(rl)
			if o.pktinfo {
				// The reply's source address, as gnomond's netio.putPktinfo
				// does it (the receive control space is reused).
				c := rctl[m][:pktinfoLen]
				clear(c)
				h := (*unix.Cmsghdr)(unsafe.Pointer(&c[0]))
				h.Level, h.Type = unix.SOL_IP, unix.IP_PKTINFO
				h.SetLen(unix.CmsgLen(unix.SizeofInet4Pktinfo))
				copy(c[unix.CmsgLen(0)+4:], dst[m][:])
				hdr[m].Hdr.Control = &c[0]
				hdr[m].Hdr.SetControllen(pktinfoLen)
			} else {
				hdr[m].Hdr.Control = nil // not the receive timestamp
				hdr[m].Hdr.SetControllen(0)
			}
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
