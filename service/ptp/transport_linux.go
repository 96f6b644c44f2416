// Package ptp is gnomond's PTP I/O: the transports (UDPv4, UDPv6 and
// Ethernet, with multicast joins per interface and kernel timestamps),
// hardware timestamping set-up, PHC clocks, and the loop that runs one
// engine/ptp port over them.
package ptp

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"time"

	"golang.org/x/sys/unix"
)

// Kind is a transport.
type Kind string

// The transports.
const (
	UDP4     Kind = "udp4"
	UDP6     Kind = "udp6"
	Ethernet Kind = "ethernet"
)

// The PTP ports and addresses (1588-2019 annexes C, D and E).
const (
	EventPort   = 319
	GeneralPort = 320
)

var (
	group4     = netip.MustParseAddr("224.0.1.129")
	peerGroup4 = netip.MustParseAddr("224.0.0.107")
	group6     = netip.MustParseAddr("ff0e::181")
	peerGroup6 = netip.MustParseAddr("ff02::6b")
	// PrimaryMAC is 01-1B-19-00-00-00 (all PTP messages but peer delay);
	// PeerMAC is 01-80-C2-00-00-0E (peer delay, never forwarded by bridges).
	PrimaryMAC = net.HardwareAddr{0x01, 0x1b, 0x19, 0x00, 0x00, 0x00}
	PeerMAC    = net.HardwareAddr{0x01, 0x80, 0xc2, 0x00, 0x00, 0x0e}
)

// Packet is a received PTP message with its kernel timestamps.
type Packet struct {
	Data   []byte
	Stamps Stamps
	Event  bool // came in on the event port (or is an Ethernet frame)
	// From is set for a management request on the local socket (pmc -u):
	// the answer goes back there, not to the network.
	From unix.Sockaddr
}

// Options configure a transport.
type Options struct {
	Kind      Kind
	Interface string
	// Hardware asks for the NIC's timestamps (SOF_TIMESTAMPING_RAW_HARDWARE)
	// instead of the kernel's software ones. The caller has already
	// enabled them on the interface (EnableHardware).
	Hardware bool
	// Peer joins the peer-delay groups as well (P2P).
	Peer bool
	// TxTimeout bounds the wait for a transmit timestamp (default 20 ms).
	TxTimeout time.Duration
	// EventPort and GeneralPort override 319/320 (tests only).
	EventPort, GeneralPort int
	// ManagementSocket, when set, is a local datagram socket where
	// linuxptp's pmc (pmc -u -s PATH) sends management messages.
	ManagementSocket string
}

// Transport sends and receives PTP messages on one interface. It is
// used from one goroutine.
type Transport struct {
	opts    Options
	ifi     *net.Interface
	event   int // fd; for Ethernet the only one
	general int // fd; -1 for Ethernet
	mgmt    int // fd of the local management socket; -1 without
	family  int
	oob     []byte
	buf     []byte
	errBuf  []byte
	// TxFallbacks counts event messages whose transmit timestamp never
	// came (the user-space send time was used instead).
	TxFallbacks uint64
}

func tsFlags(hw bool) int {
	if hw {
		return unix.SOF_TIMESTAMPING_TX_HARDWARE | unix.SOF_TIMESTAMPING_RX_HARDWARE | unix.SOF_TIMESTAMPING_RAW_HARDWARE
	}
	return unix.SOF_TIMESTAMPING_TX_SOFTWARE | unix.SOF_TIMESTAMPING_RX_SOFTWARE | unix.SOF_TIMESTAMPING_SOFTWARE
}

// Open opens the sockets, joins the groups and enables timestamps.
func Open(o Options) (*Transport, error) {
	ifi, err := net.InterfaceByName(o.Interface)
	if err != nil {
		return nil, fmt.Errorf("ptp: interface %q: %w", o.Interface, err)
	}
	if o.TxTimeout <= 0 {
		o.TxTimeout = 20 * time.Millisecond
	}
	if o.EventPort == 0 {
		o.EventPort = EventPort
	}
	if o.GeneralPort == 0 {
		o.GeneralPort = GeneralPort
	}
	t := &Transport{opts: o, ifi: ifi, event: -1, general: -1, mgmt: -1, oob: make([]byte, 512), buf: make([]byte, 2048), errBuf: make([]byte, 2048)}
	switch o.Kind {
	case UDP4, UDP6:
		t.family = unix.AF_INET
		if o.Kind == UDP6 {
			t.family = unix.AF_INET6
		}
		if t.event, err = t.udpSocket(o.EventPort, true); err != nil {
			t.Close()
			return nil, err
		}
		if t.general, err = t.udpSocket(o.GeneralPort, false); err != nil {
			t.Close()
			return nil, err
		}
	case Ethernet:
		if len(ifi.HardwareAddr) != 6 {
			return nil, fmt.Errorf("ptp: interface %s has no Ethernet address", o.Interface)
		}
		if t.event, err = t.packetSocket(); err != nil {
			t.Close()
			return nil, err
		}
	default:
		return nil, fmt.Errorf("ptp: unknown transport %q", o.Kind)
	}
	if o.ManagementSocket != "" {
		if t.mgmt, err = unixSocket(o.ManagementSocket); err != nil {
			t.Close()
			return nil, err
		}
	}
	return t, nil
}

// unixSocket binds the local management socket (a stale one is replaced).
func unixSocket(path string) (int, error) {
	fd, err := unix.Socket(unix.AF_UNIX, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC|unix.SOCK_NONBLOCK, 0)
	if err != nil {
		return -1, fmt.Errorf("ptp: management socket: %w", err)
	}
	_ = unix.Unlink(path)
	if err := unix.Bind(fd, &unix.SockaddrUnix{Name: path}); err != nil {
		unix.Close(fd)
		return -1, fmt.Errorf("ptp: management socket %s: %w", path, err)
	}
	_ = unix.Chmod(path, 0o660)
	return fd, nil
}

// Reply answers a management request that came in on the local socket.
func (t *Transport) Reply(to unix.Sockaddr, msg []byte) error {
	if t.mgmt < 0 || to == nil {
		return errors.New("ptp: no management socket to reply on")
	}
	return unix.Sendto(t.mgmt, msg, 0, to)
}

func (t *Transport) udpSocket(port int, event bool) (int, error) {
	fd, err := unix.Socket(t.family, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC|unix.SOCK_NONBLOCK, 0)
	if err != nil {
		return -1, fmt.Errorf("ptp: socket: %w", err)
	}
	fail := func(what string, err error) (int, error) {
		unix.Close(fd)
		return -1, fmt.Errorf("ptp: %s on %s port %d: %w", what, t.opts.Interface, port, err)
	}
	if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_REUSEADDR, 1); err != nil {
		return fail("SO_REUSEADDR", err)
	}
	if err := unix.BindToDevice(fd, t.opts.Interface); err != nil {
		return fail("SO_BINDTODEVICE", err)
	}
	idx := t.ifi.Index
	if t.family == unix.AF_INET {
		if err := unix.Bind(fd, &unix.SockaddrInet4{Port: port}); err != nil {
			return fail("bind", err)
		}
		if err := unix.SetsockoptIPMreqn(fd, unix.IPPROTO_IP, unix.IP_MULTICAST_IF, &unix.IPMreqn{Ifindex: int32(idx)}); err != nil {
			return fail("IP_MULTICAST_IF", err)
		}
		_ = unix.SetsockoptInt(fd, unix.IPPROTO_IP, unix.IP_MULTICAST_LOOP, 0)
		_ = unix.SetsockoptInt(fd, unix.IPPROTO_IP, unix.IP_MULTICAST_TTL, 1)
		for _, g := range []netip.Addr{group4, peerGroup4} {
			if g == peerGroup4 && !t.opts.Peer {
				continue
			}
			if err := unix.SetsockoptIPMreqn(fd, unix.IPPROTO_IP, unix.IP_ADD_MEMBERSHIP,
				&unix.IPMreqn{Multiaddr: g.As4(), Ifindex: int32(idx)}); err != nil {
				return fail("joining "+g.String(), err)
			}
		}
	} else {
		_ = unix.SetsockoptInt(fd, unix.IPPROTO_IPV6, unix.IPV6_V6ONLY, 1)
		if err := unix.Bind(fd, &unix.SockaddrInet6{Port: port}); err != nil {
			return fail("bind", err)
		}
		if err := unix.SetsockoptInt(fd, unix.IPPROTO_IPV6, unix.IPV6_MULTICAST_IF, idx); err != nil {
			return fail("IPV6_MULTICAST_IF", err)
		}
		_ = unix.SetsockoptInt(fd, unix.IPPROTO_IPV6, unix.IPV6_MULTICAST_LOOP, 0)
		_ = unix.SetsockoptInt(fd, unix.IPPROTO_IPV6, unix.IPV6_MULTICAST_HOPS, 1)
		for _, g := range []netip.Addr{group6, peerGroup6} {
			if g == peerGroup6 && !t.opts.Peer {
				continue
			}
			if err := unix.SetsockoptIPv6Mreq(fd, unix.IPPROTO_IPV6, unix.IPV6_JOIN_GROUP,
				&unix.IPv6Mreq{Multiaddr: g.As16(), Interface: uint32(idx)}); err != nil {
				return fail("joining "+g.String(), err)
			}
		}
	}
	if event {
		if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_TIMESTAMPING, tsFlags(t.opts.Hardware)); err != nil {
			return fail("SO_TIMESTAMPING", err)
		}
	}
	return fd, nil
}

func htons(v uint16) uint16 { return v<<8 | v>>8 }

func (t *Transport) packetSocket() (int, error) {
	fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_RAW|unix.SOCK_CLOEXEC|unix.SOCK_NONBLOCK, int(htons(unix.ETH_P_1588)))
	if err != nil {
		return -1, fmt.Errorf("ptp: AF_PACKET socket (needs CAP_NET_RAW): %w", err)
	}
	fail := func(what string, err error) (int, error) {
		unix.Close(fd)
		return -1, fmt.Errorf("ptp: %s on %s: %w", what, t.opts.Interface, err)
	}
	if err := unix.Bind(fd, &unix.SockaddrLinklayer{Protocol: htons(unix.ETH_P_1588), Ifindex: t.ifi.Index}); err != nil {
		return fail("bind", err)
	}
	for _, mac := range []net.HardwareAddr{PrimaryMAC, PeerMAC} {
		if bytes.Equal(mac, PeerMAC) && !t.opts.Peer {
			continue
		}
		mr := unix.PacketMreq{Ifindex: int32(t.ifi.Index), Type: unix.PACKET_MR_MULTICAST, Alen: 6}
		copy(mr.Address[:], mac)
		if err := unix.SetsockoptPacketMreq(fd, unix.SOL_PACKET, unix.PACKET_ADD_MEMBERSHIP, &mr); err != nil {
			return fail("joining "+mac.String(), err)
		}
	}
	if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_TIMESTAMPING, tsFlags(t.opts.Hardware)); err != nil {
		return fail("SO_TIMESTAMPING", err)
	}
	return fd, nil
}

// Close closes the sockets.
func (t *Transport) Close() error {
	for _, fd := range []int{t.event, t.general, t.mgmt} {
		if fd >= 0 {
			unix.Close(fd)
		}
	}
	if t.mgmt >= 0 {
		_ = unix.Unlink(t.opts.ManagementSocket)
	}
	t.event, t.general, t.mgmt = -1, -1, -1
	return nil
}

// Interface is the interface the transport is bound to.
func (t *Transport) Interface() *net.Interface { return t.ifi }

func (t *Transport) dest(event, peer bool) unix.Sockaddr {
	port := t.opts.GeneralPort
	if event {
		port = t.opts.EventPort
	}
	switch t.opts.Kind {
	case UDP4:
		g := group4
		if peer {
			g = peerGroup4
		}
		return &unix.SockaddrInet4{Port: port, Addr: g.As4()}
	case UDP6:
		g := group6
		if peer {
			g = peerGroup6
		}
		return &unix.SockaddrInet6{Port: port, Addr: g.As16(), ZoneId: uint32(t.ifi.Index)}
	}
	return nil
}

func frame(dst, src net.HardwareAddr, payload []byte) []byte {
	f := make([]byte, 14+len(payload))
	copy(f[0:6], dst)
	copy(f[6:12], src)
	f[12], f[13] = 0x88, 0xf7
	copy(f[14:], payload)
	return f
}

// Send sends a message (event messages to 319 or as timestamped frames;
// peer messages to the peer-delay group). With wantTS it waits (at most
// TxTimeout) for the kernel's transmit timestamp and returns it; without
// one it returns the time just after sending, and fallback true.
func (t *Transport) Send(msg []byte, event, peer, wantTS bool) (tx Stamps, fallback bool, err error) {
	fd := t.general
	var sa unix.Sockaddr
	data := msg
	if t.opts.Kind == Ethernet {
		fd = t.event
		dst := PrimaryMAC
		if peer {
			dst = PeerMAC
		}
		data = frame(dst, t.ifi.HardwareAddr, msg)
		sa = &unix.SockaddrLinklayer{Protocol: htons(unix.ETH_P_1588), Ifindex: t.ifi.Index, Halen: 6}
		copy(sa.(*unix.SockaddrLinklayer).Addr[:], dst)
	} else {
		if event {
			fd = t.event
		}
		sa = t.dest(event, peer)
	}
	if wantTS {
		t.drainErrQueue(fd)
	}
	if err := unix.Sendto(fd, data, 0, sa); err != nil {
		return tx, false, fmt.Errorf("ptp: send on %s: %w", t.opts.Interface, err)
	}
	after := time.Now().Round(0)
	if !wantTS {
		return Stamps{Software: after}, false, nil
	}
	deadline := after.Add(t.opts.TxTimeout)
	for {
		wait := time.Until(deadline)
		if wait <= 0 {
			t.TxFallbacks++
			return Stamps{Software: after, Hardware: after}, true, nil
		}
		pfd := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLPRI}}
		n, err := unix.Poll(pfd, int(wait/time.Millisecond)+1)
		if err != nil && !errors.Is(err, unix.EINTR) {
			return tx, false, err
		}
		if n == 0 || pfd[0].Revents&unix.POLLERR == 0 {
			continue
		}
		for {
			pkt, oobn, _, _, err := unix.Recvmsg(fd, t.errBuf, t.oob, unix.MSG_ERRQUEUE|unix.MSG_DONTWAIT)
			if err != nil {
				break
			}
			st := ParseControl(t.oob[:oobn])
			if st.TxReport && bytes.Contains(t.errBuf[:pkt], msg) {
				return st, false, nil
			}
		}
	}
}

func (t *Transport) drainErrQueue(fd int) {
	for i := 0; i < 64; i++ {
		if _, _, _, _, err := unix.Recvmsg(fd, t.errBuf, t.oob, unix.MSG_ERRQUEUE|unix.MSG_DONTWAIT); err != nil {
			return
		}
	}
}

// Receive waits up to timeout for messages and returns those that came
// (appended to out). Frames of the wrong ethertype, runts, and the error
// queue are skipped.
func (t *Transport) Receive(timeout time.Duration, out []Packet) ([]Packet, error) {
	pfds := []unix.PollFd{{Fd: int32(t.event), Events: unix.POLLIN}}
	if t.general >= 0 {
		pfds = append(pfds, unix.PollFd{Fd: int32(t.general), Events: unix.POLLIN})
	}
	if t.mgmt >= 0 {
		pfds = append(pfds, unix.PollFd{Fd: int32(t.mgmt), Events: unix.POLLIN})
	}
	ms := int(timeout / time.Millisecond)
	if timeout > 0 && ms == 0 {
		ms = 1
	}
	n, err := unix.Poll(pfds, ms)
	if err != nil {
		if errors.Is(err, unix.EINTR) {
			return out, nil
		}
		return out, fmt.Errorf("ptp: poll: %w", err)
	}
	if n == 0 {
		return out, nil
	}
	for i, p := range pfds {
		if p.Revents&unix.POLLERR != 0 {
			t.drainErrQueue(int(p.Fd)) // stale transmit timestamps
		}
		if p.Revents&unix.POLLIN == 0 {
			continue
		}
		for k := 0; k < 64; k++ {
			nb, oobn, flags, from, err := unix.Recvmsg(int(p.Fd), t.buf, t.oob, unix.MSG_DONTWAIT)
			if err != nil {
				break
			}
			if int(p.Fd) == t.mgmt {
				if from != nil && flags&unix.MSG_TRUNC == 0 {
					out = append(out, Packet{Data: append([]byte(nil), t.buf[:nb]...), From: from})
				}
				continue
			}
			if flags&unix.MSG_TRUNC != 0 {
				out = append(out, Packet{Data: make([]byte, 1501)}) // oversized: the engine counts it
				continue
			}
			data := t.buf[:nb]
			if t.opts.Kind == Ethernet {
				if nb < 14 || data[12] != 0x88 || data[13] != 0xf7 {
					continue
				}
				data = data[14:]
			}
			out = append(out, Packet{Data: append([]byte(nil), data...), Stamps: ParseControl(t.oob[:oobn]), Event: i == 0})
		}
	}
	return out, nil
}
