package peers

import (
	"bytes"
	"crypto/rand"
	"fmt"
	"net"
	"net/netip"
	"testing"
	"time"

	"gnomon.dev/gnomon/engine/ntp"
)

// NTPClient is a small NTP client built from engine/ntp, on an unconnected
// UDP socket.
type NTPClient struct {
	Conn *net.UDPConn
}

// NewNTPClient opens the client's socket on ip (a loopback address of
// either family, any port); it is closed when the test ends. An IPv4
// client talks to IPv4 servers only, an IPv6 one to IPv6 servers.
func NewNTPClient(t testing.TB, ip string) *NTPClient {
	t.Helper()
	network, addr := "udp4", net.ParseIP(ip)
	if addr != nil && addr.To4() == nil {
		network = "udp6"
	}
	conn, err := net.ListenUDP(network, &net.UDPAddr{IP: addr})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return &NTPClient{Conn: conn}
}

// NTPRequest builds a mode-3 NTPv4 request whose transmit timestamp is
// now with random low bits, so that every request is told apart by the
// origin timestamp of its reply.
func NTPRequest() ([]byte, ntp.Timestamp) {
	var r [4]byte
	rand.Read(r[:])
	tx := ntp.TimestampFromTime(time.Now()) ^ ntp.Timestamp(uint32(r[0])|uint32(r[1])<<8)
	h := ntp.Header{Version: 4, Mode: ntp.ModeClient, Poll: 0, Precision: -20, TransmitTime: tx}
	b := make([]byte, ntp.HeaderLen)
	if _, err := h.MarshalTo(b); err != nil {
		panic(err)
	}
	return b, tx
}

// Send sends b to to.
func (c *NTPClient) Send(to netip.AddrPort, b []byte) error {
	_, err := c.Conn.WriteToUDPAddrPort(b, to)
	return err
}

// Await reads until a reply whose origin is tx arrives or timeout passes.
// Every other datagram received meanwhile is returned in strays.
func (c *NTPClient) Await(tx ntp.Timestamp, timeout time.Duration) (h ntp.Header, strays [][]byte, err error) {
	deadline := time.Now().Add(timeout)
	buf := make([]byte, 4096)
	for {
		c.Conn.SetReadDeadline(deadline)
		n, _, rerr := c.Conn.ReadFromUDPAddrPort(buf)
		if rerr != nil {
			return ntp.Header{}, strays, fmt.Errorf("no reply with origin %#x: %w", uint64(tx), rerr)
		}
		var p ntp.Packet
		if perr := ntp.Parse(buf[:n], &p); perr == nil && p.OriginTime == tx {
			return p.Header, strays, nil
		}
		strays = append(strays, bytes.Clone(buf[:n]))
	}
}

// Query sends one request to to and waits for its reply, which must be
// in server mode.
func (c *NTPClient) Query(to netip.AddrPort, timeout time.Duration) (ntp.Header, [][]byte, error) {
	b, tx := NTPRequest()
	if err := c.Send(to, b); err != nil {
		return ntp.Header{}, nil, err
	}
	h, strays, err := c.Await(tx, timeout)
	if err == nil && h.Mode != ntp.ModeServer {
		err = fmt.Errorf("reply in mode %v, want server", h.Mode)
	}
	return h, strays, err
}

// Measure queries to and returns the offset of its clock from ours,
// ((T2-T1)+(T3-T4))/2, and the round-trip delay.
func (c *NTPClient) Measure(to netip.AddrPort, timeout time.Duration) (offset, delay time.Duration, h ntp.Header, err error) {
	b, tx := NTPRequest()
	t1 := time.Now()
	if err = c.Send(to, b); err != nil {
		return 0, 0, h, err
	}
	h, _, err = c.Await(tx, timeout)
	t4 := time.Now()
	if err != nil {
		return 0, 0, h, err
	}
	offset, delay = OffsetDelay(t1, t4, h)
	return offset, delay, h, nil
}

// OffsetDelay is a reply's offset of the server's clock from ours,
// ((T2-T1)+(T3-T4))/2, and the round-trip delay, from our send (t1) and
// receive (t4) times and the server's stamps in h.
func OffsetDelay(t1, t4 time.Time, h ntp.Header) (offset, delay time.Duration) {
	t2, t3 := h.ReceiveTime.Time(t1), h.TransmitTime.Time(t1)
	return (t2.Sub(t1) + t3.Sub(t4)) / 2, t4.Sub(t1) - t3.Sub(t2)
}

// MeasureBest is the Measure with the smallest round-trip delay of n (the
// best of n, as NTP's clock filter picks). Both ends of a Measure are
// timestamped here, after the scheduler: on a loaded machine a reply read
// late makes the offset wrong by up to half the delay, which is the
// measurement's own error bound. It fails only if every query failed.
func (c *NTPClient) MeasureBest(to netip.AddrPort, n int, timeout time.Duration) (offset, delay time.Duration, h ntp.Header, err error) {
	return BestOf(n, func() (time.Duration, time.Duration, ntp.Header, error) { return c.Measure(to, timeout) })
}

// BestOf calls measure n times and returns the result with the smallest
// round-trip delay; it fails only if every call failed (with the last error).
func BestOf(n int, measure func() (offset, delay time.Duration, h ntp.Header, err error)) (offset, delay time.Duration, h ntp.Header, err error) {
	ok := false
	for range n {
		o, d, hh, e := measure()
		if e != nil {
			err = e
			continue
		}
		if !ok || d < delay {
			offset, delay, h, ok = o, d, hh, true
		}
	}
	if ok {
		err = nil
	}
	return offset, delay, h, err
}

// Loop4 is 127.0.0.1:port.
func Loop4(port int) netip.AddrPort {
	return netip.AddrPortFrom(netip.AddrFrom4([4]byte{127, 0, 0, 1}), uint16(port))
}
