//go:build linux && amd64

package main

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"runtime"
	"slices"
	"time"

	"golang.org/x/sys/unix"

	"gnomon.dev/gnomon/tests/ntpshift"
)

// serve answers NTP client requests on listen with the guest's kernel
// clock (CLOCK_REALTIME) as it is, whatever a daemon thinks of it: the
// receive timestamp is the kernel's (SO_TIMESTAMPNS), the transmit
// timestamp is read just before the answer is sent. The reference ID
// carries the kernel's frequency (tick and freq, adjtimex) in ppb as a
// signed 32-bit number, so the prober also sees how the clock's rate is
// steered. It runs until killed.
func serve(listen string) error {
	addr, err := net.ResolveUDPAddr("udp4", listen)
	if err != nil {
		return err
	}
	conn, err := net.ListenUDP("udp4", addr)
	if err != nil {
		return err
	}
	defer conn.Close()
	rc, err := conn.SyscallConn()
	if err != nil {
		return err
	}
	var serr error
	if err := rc.Control(func(fd uintptr) {
		serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_TIMESTAMPNS, 1)
	}); err != nil {
		return err
	}
	if serr != nil {
		return fmt.Errorf("SO_TIMESTAMPNS: %w", serr)
	}
	buf := make([]byte, 512)
	oob := make([]byte, 256)
	out := make([]byte, 48)
	for {
		n, oobn, _, from, err := conn.ReadMsgUDP(buf, oob)
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return nil
			}
			continue
		}
		rx := time.Now()
		if ts, ok := rxStamp(oob[:oobn]); ok {
			rx = ts
		}
		if n < 48 || buf[0]&7 != 3 {
			continue
		}
		var tx unix.Timex
		freqPPB := int32(0)
		if _, err := unix.Adjtimex(&tx); err == nil {
			ppm := float64(int64(tx.Tick)-10000)*100 + float64(tx.Freq)/65536
			freqPPB = int32(ppm * 1000)
		}
		clear(out)
		out[0] = 0<<6 | 4<<3 | 4 // no leap, version 4, server
		out[1] = 1
		out[2] = buf[2]
		out[3] = 0xec // precision 2^-20
		binary.BigEndian.PutUint32(out[12:], uint32(freqPPB))
		copy(out[24:32], buf[40:48]) // originate = the client's transmit
		binary.BigEndian.PutUint64(out[16:], toNTP(rx))
		binary.BigEndian.PutUint64(out[32:], toNTP(rx))
		binary.BigEndian.PutUint64(out[40:], toNTP(time.Now()))
		_, _ = conn.WriteToUDP(out, from)
	}
}

// rxStamp finds the SO_TIMESTAMPNS control message.
func rxStamp(oob []byte) (time.Time, bool) {
	msgs, err := unix.ParseSocketControlMessage(oob)
	if err != nil {
		return time.Time{}, false
	}
	for _, m := range msgs {
		if m.Header.Level == unix.SOL_SOCKET && m.Header.Type == unix.SCM_TIMESTAMPNS && len(m.Data) >= 16 {
			sec := int64(binary.NativeEndian.Uint64(m.Data[0:]))
			nsec := int64(binary.NativeEndian.Uint64(m.Data[8:]))
			return time.Unix(sec, nsec), true
		}
	}
	return time.Time{}, false
}

// delays sends n queries to addr (a tenth of a second apart) and prints
// the round trips' minimum, median and maximum and how many were lost:
// the path a daemon sees, netem and the relay included.
func delays(addr string, n int) error {
	var d []time.Duration
	for i := 0; i < n; i++ {
		if i > 0 {
			time.Sleep(100 * time.Millisecond)
		}
		m, err := measure(addr, 1)
		if err != nil {
			continue
		}
		d = append(d, m.delay)
	}
	if len(d) == 0 {
		fmt.Printf("n=%d lost=%d\n", n, n)
		return nil
	}
	slices.Sort(d)
	fmt.Printf("n=%d lost=%d min_us=%.1f median_us=%.1f p90_us=%.1f max_us=%.1f\n", n, n-len(d),
		us(d[0]), us(d[len(d)/2]), us(d[len(d)*9/10]), us(d[len(d)-1]))
	return nil
}

// timerNoise sleeps n times for d (nanosleep itself: Go's own timers
// round to the millisecond here) and prints how late the wake-ups were
// (median, 90th percentile, max): the guest's own timer noise under TCG,
// which also blurs netem's delays.
func timerNoise(n int, d time.Duration) error {
	late := make([]time.Duration, 0, n)
	for i := 0; i < n; i++ {
		t0 := time.Now()
		ts := unix.NsecToTimespec(int64(d))
		_ = unix.Nanosleep(&ts, nil)
		late = append(late, time.Since(t0)-d)
	}
	slices.Sort(late)
	fmt.Printf("n=%d sleep_us=%.0f late_min_us=%.1f late_median_us=%.1f late_p90_us=%.1f late_max_us=%.1f\n", n, us(d),
		us(late[0]), us(late[n/2]), us(late[n*9/10]), us(late[n-1]))
	return nil
}

func us(d time.Duration) float64 { return float64(d) / 1e3 }

// relays forwards UDP datagrams from clients at 127.0.0.(1+i):listenPort+i
// to upstreams[i] (an address of its own for each: chronyd takes one
// source per IP address, and dropped the others when all were 127.0.0.1), sent from local port localPort+i, and the answers back to
// the client whose request the answer's origin timestamp echoes (the
// request's transmit timestamp, or in the interleaved mode its receive
// timestamp), else to the client that sent last: the daemon's turn has a
// reference client beside it (run.sh's view). One OS
// thread polls every socket and uses blocking system calls only: under
// TCG each wake-up of the Go scheduler costs the path time and jitter, so
// the relay does as few as it can. shift0, when not zero, makes upstream 0
// a falseticker whose clock seems shift0 ahead (ntpshift.Shift). It runs until
// killed.
func relays(listenPort, localPort int, shift0 time.Duration, upstreams []string) error {
	runtime.LockOSThread()
	n := len(upstreams)
	in, out := make([]int, n), make([]int, n)
	ups := make([]unix.Sockaddr, n)
	clients := make([]unix.Sockaddr, n)
	// The last few requests' timestamps per upstream, and who sent them.
	type sent struct {
		tx, rx uint64
		from   unix.Sockaddr
	}
	recent := make([][8]sent, n)
	next := make([]int, n)
	open := func(addr [4]byte, port int) (int, error) {
		fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
		if err != nil {
			return -1, err
		}
		if err := unix.Bind(fd, &unix.SockaddrInet4{Port: port, Addr: addr}); err != nil {
			return -1, fmt.Errorf("bind port %d: %w", port, err)
		}
		return fd, nil
	}
	for i, u := range upstreams {
		a, err := net.ResolveUDPAddr("udp4", u)
		if err != nil {
			return err
		}
		sa := &unix.SockaddrInet4{Port: a.Port}
		copy(sa.Addr[:], a.IP.To4())
		ups[i] = sa
		if in[i], err = open([4]byte{127, 0, 0, byte(1 + i)}, listenPort+i); err != nil {
			return err
		}
		if out[i], err = open([4]byte{}, localPort+i); err != nil {
			return err
		}
	}
	fds := make([]unix.PollFd, 0, 2*n)
	for i := range n {
		fds = append(fds, unix.PollFd{Fd: int32(in[i]), Events: unix.POLLIN}, unix.PollFd{Fd: int32(out[i]), Events: unix.POLLIN})
	}
	buf := make([]byte, 2048)
	for {
		if _, err := unix.Poll(fds, -1); err != nil {
			if err == unix.EINTR {
				continue
			}
			return err
		}
		for j, p := range fds {
			if p.Revents&unix.POLLIN == 0 {
				continue
			}
			i := j / 2
			k, from, err := unix.Recvfrom(int(p.Fd), buf, unix.MSG_DONTWAIT)
			if err != nil {
				continue
			}
			if i == 0 && shift0 != 0 {
				ntpshift.Shift(buf[:k], j%2 == 0, shift0)
			}
			if j%2 == 0 {
				clients[i] = from
				if k >= 48 {
					recent[i][next[i]] = sent{binary.BigEndian.Uint64(buf[40:]), binary.BigEndian.Uint64(buf[32:]), from}
					next[i] = (next[i] + 1) % len(recent[i])
				}
				_ = unix.Sendto(out[i], buf[:k], 0, ups[i])
				continue
			}
			to := clients[i]
			if k >= 48 {
				if org := binary.BigEndian.Uint64(buf[24:]); org != 0 {
					for _, r := range recent[i] {
						if r.from != nil && (r.tx == org || r.rx == org) {
							to = r.from
							break
						}
					}
				}
			}
			if to != nil {
				_ = unix.Sendto(in[i], buf[:k], 0, to)
			}
		}
	}
}
