package tests

import (
	"errors"
	"fmt"
	"net/netip"
	"testing"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"

	"gnomon.dev/gnomon/engine/ntp"
	"gnomon.dev/gnomon/tests/peers"
)

// kernelQuery reads a served time with the kernel's software timestamps
// at both ends of the exchange (make bench-accuracy): T1 is the transmit
// timestamp the loopback driver takes as the request leaves
// (SO_TIMESTAMPING TX_SOFTWARE, read back from the error queue), T4 the
// receive timestamp taken when the reply enters the stack (RX_SOFTWARE).
// Neither waits for this process to be scheduled, which on a loaded
// machine is what scattered the user-space stamps of peers.NTPClient by
// about 10 µs. A request whose transmit timestamp does not come back in
// time is stamped in user space just before sendmsg instead (counted in
// userTx).
type kernelQuery struct {
	fd     int
	userTx int // requests stamped in user space for want of a kernel TX timestamp
	kernTx int
}

const kernelQueryFlags = unix.SOF_TIMESTAMPING_TX_SOFTWARE | unix.SOF_TIMESTAMPING_RX_SOFTWARE |
	unix.SOF_TIMESTAMPING_SOFTWARE | unix.SOF_TIMESTAMPING_OPT_TSONLY

// newKernelQuery opens the query socket on ip (an IPv4 loopback address,
// any port); it is closed when the test ends.
func newKernelQuery(t testing.TB, ip netip.Addr) *kernelQuery {
	t.Helper()
	if !ip.Is4() || !ip.IsLoopback() {
		t.Fatalf("newKernelQuery: %v is not an IPv4 loopback address", ip)
	}
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Close(fd) })
	if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_TIMESTAMPING, kernelQueryFlags); err != nil {
		t.Fatalf("SO_TIMESTAMPING: %v", err)
	}
	if err := unix.Bind(fd, &unix.SockaddrInet4{Addr: ip.As4()}); err != nil {
		t.Fatal(err)
	}
	return &kernelQuery{fd: fd}
}

// waitReadable waits up to d for fd to have something to read (events
// POLLIN; POLLERR is always reported and means the error queue).
func (q *kernelQuery) waitReadable(d time.Duration) (revents int16, err error) {
	ms := max(1, int(d/time.Millisecond))
	fds := []unix.PollFd{{Fd: int32(q.fd), Events: unix.POLLIN}}
	for {
		n, err := unix.Poll(fds, ms)
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil || n == 0 {
			return 0, err
		}
		return fds[0].Revents, nil
	}
}

// softwareStamp is the first (software) timestamp of an SCM_TIMESTAMPING
// control message in oob.
func softwareStamp(oob []byte) (time.Time, bool) {
	msgs, err := unix.ParseSocketControlMessage(oob)
	if err != nil {
		return time.Time{}, false
	}
	for _, m := range msgs {
		if m.Header.Level == unix.SOL_SOCKET && m.Header.Type == unix.SCM_TIMESTAMPING && len(m.Data) >= int(unsafe.Sizeof(unix.ScmTimestamping{})) {
			ts := (*unix.ScmTimestamping)(unsafe.Pointer(&m.Data[0])).Ts[0]
			if ts.Sec != 0 || ts.Nsec != 0 {
				return time.Unix(ts.Unix()), true
			}
		}
	}
	return time.Time{}, false
}

// drainErrQueue throws away transmit timestamps of earlier requests.
func (q *kernelQuery) drainErrQueue() {
	buf, oob := make([]byte, 64), make([]byte, 512)
	for range 64 {
		if _, _, _, _, err := unix.Recvmsg(q.fd, buf, oob, unix.MSG_ERRQUEUE|unix.MSG_DONTWAIT); err != nil {
			return
		}
	}
}

// measure sends one request to to and returns the offset of the served
// clock from this machine's, ((T2-T1)+(T3-T4))/2, the round-trip delay
// and the reply's header.
func (q *kernelQuery) measure(to netip.AddrPort, timeout time.Duration) (offset, delay time.Duration, h ntp.Header, err error) {
	q.drainErrQueue()
	b, tx := peers.NTPRequest()
	sa := &unix.SockaddrInet4{Addr: to.Addr().As4(), Port: int(to.Port())}
	t1 := time.Now()
	if err := unix.Sendto(q.fd, b, 0, sa); err != nil {
		return 0, 0, h, err
	}
	deadline := t1.Add(timeout)
	var t4 time.Time
	haveT1, haveT4 := false, false
	buf, oob := make([]byte, 1024), make([]byte, 512)
	for !haveT4 || !haveT1 {
		left := time.Until(deadline)
		if haveT4 {
			// The reply is in; the transmit timestamp was queued before
			// it left, so it is there already or never comes.
			left = min(left, 2*time.Millisecond)
		}
		if left <= 0 {
			break
		}
		rev, perr := q.waitReadable(left)
		if perr != nil {
			return 0, 0, h, perr
		}
		if rev == 0 {
			break
		}
		if rev&unix.POLLERR != 0 {
			if _, oobn, _, _, rerr := unix.Recvmsg(q.fd, buf, oob, unix.MSG_ERRQUEUE|unix.MSG_DONTWAIT); rerr == nil {
				if ts, ok := softwareStamp(oob[:oobn]); ok && !haveT1 {
					t1, haveT1 = ts, true
				}
			}
			continue
		}
		if rev&unix.POLLIN == 0 {
			continue
		}
		n, oobn, _, _, rerr := unix.Recvmsg(q.fd, buf, oob, unix.MSG_DONTWAIT)
		if rerr != nil {
			continue
		}
		var p ntp.Packet
		if ntp.Parse(buf[:n], &p) != nil || p.OriginTime != tx || haveT4 {
			continue // a late reply to an earlier request
		}
		ts, ok := softwareStamp(oob[:oobn])
		if !ok {
			return 0, 0, h, fmt.Errorf("reply from %v without a kernel receive timestamp", to)
		}
		t4, haveT4, h = ts, true, p.Header
	}
	if !haveT4 {
		return 0, 0, h, fmt.Errorf("no reply from %v within %v", to, timeout)
	}
	if haveT1 {
		q.kernTx++
	} else {
		q.userTx++
	}
	if h.Mode != ntp.ModeServer {
		return 0, 0, h, fmt.Errorf("reply in mode %v, want server", h.Mode)
	}
	offset, delay = peers.OffsetDelay(t1, t4, h)
	return offset, delay, h, nil
}

// measureBest is the measure with the smallest round-trip delay of n; it
// fails only if every query failed.
func (q *kernelQuery) measureBest(to netip.AddrPort, n int, timeout time.Duration) (offset, delay time.Duration, h ntp.Header, err error) {
	return peers.BestOf(n, func() (time.Duration, time.Duration, ntp.Header, error) { return q.measure(to, timeout) })
}
