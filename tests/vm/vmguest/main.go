//go:build linux && amd64

// Command vmguest is the VM test ring's helper inside the guest: it
// measures the guest clock against an NTP server, reads the kernel's NTP
// state, and leaves the kernel the state a previous time daemon would
// (a frequency, a PLL phase offset, an adjtime() slew). It prints
// key=value lines that run.sh passes on to the serial console.
//
//	vmguest offset HOST:PORT [N]   clock offset (server minus guest) of the best of N queries
//	vmguest kernel                 adjtimex read: status, frequency, offsets, error bounds
//	vmguest leftover FREQ_PPM PLL_US ADJTIME_US
//	                               set the kernel frequency, a PLL phase offset and an adjtime slew
//	vmguest realtime               CLOCK_REALTIME in ns since the epoch
//	vmguest shift SECONDS          step the clock by SECONDS (may be fractional or negative)
//	vmguest setahead HOST:PORT SECONDS   step the clock to SECONDS ahead of the server's
//	vmguest waitnet HOST:PORT TIMEOUT_S  wait until the server answers
//	vmguest waitsync HOST:PORT TIMEOUT_S TOL_NS
//	                               wait until the kernel is synchronized (STA_UNSYNC clear)
//	                               and three offsets in a row are within TOL_NS
//	vmguest hold HOST:PORT N       the largest and RMS offset over N measurements a second apart
//	vmguest freq PPM               set the kernel frequency (nominal tick)
//	vmguest relays LISTENPORT LOCALPORT SHIFT UPSTREAM...
//	                               UDP relays for the accuracy bench: 127.0.0.(1+i):LISTENPORT+i
//	                               to UPSTREAM i, sent from local port LOCALPORT+i; UPSTREAM 0
//	                               seems SHIFT (a Go duration, 0: none) ahead, a falseticker
//	vmguest waitleap TIMEOUT_S     wait until the kernel has STA_INS armed
//	vmguest serve LISTEN           an NTP responder serving the kernel clock (the
//	                               accuracy bench's probe, queried from the host)
//	vmguest delays HOST:PORT N     round-trip delays of N queries: min, median, max
//	vmguest timernoise N USEC      how late N sleeps of USEC microseconds wake
//
// It only ever runs inside the VM guest, whose clock is its own.
package main

import (
	"encoding/binary"
	"fmt"
	"math"
	"net"
	"os"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

func main() {
	if err := run(os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "vmguest:", err)
		os.Exit(1)
	}
}

func run(args []string) error {
	if len(args) == 0 {
		return fmt.Errorf("usage: vmguest COMMAND [ARGS] (see the package comment)")
	}
	switch args[0] {
	case "offset":
		if len(args) < 2 {
			return fmt.Errorf("offset HOST:PORT [N]")
		}
		n := 8
		if len(args) > 2 {
			v, err := strconv.Atoi(args[2])
			if err != nil || v < 1 || v > 64 {
				return fmt.Errorf("bad count %q", args[2])
			}
			n = v
		}
		return offset(args[1], n)
	case "kernel":
		return kernel()
	case "leftover":
		if len(args) != 4 {
			return fmt.Errorf("leftover FREQ_PPM PLL_US ADJTIME_US")
		}
		freq, err1 := strconv.ParseFloat(args[1], 64)
		pll, err2 := strconv.ParseInt(args[2], 10, 64)
		adj, err3 := strconv.ParseInt(args[3], 10, 64)
		if err1 != nil || err2 != nil || err3 != nil {
			return fmt.Errorf("leftover: bad numbers %q", args[1:])
		}
		return leftover(freq, pll, adj)
	case "shift":
		if len(args) != 2 {
			return fmt.Errorf("shift SECONDS")
		}
		sec, err := strconv.ParseFloat(args[1], 64)
		if err != nil {
			return fmt.Errorf("shift: %w", err)
		}
		return shift(time.Duration(sec * 1e9))
	case "setahead":
		if len(args) != 3 {
			return fmt.Errorf("setahead HOST:PORT SECONDS")
		}
		sec, err := strconv.ParseFloat(args[2], 64)
		if err != nil {
			return fmt.Errorf("setahead: %w", err)
		}
		m, err := measure(args[1], 4)
		if err != nil {
			return err
		}
		// offset = server − guest; the guest should read server + sec.
		return shift(m.off + time.Duration(sec*1e9))
	case "waitnet":
		if len(args) != 3 {
			return fmt.Errorf("waitnet HOST:PORT TIMEOUT_S")
		}
		timeout, err := strconv.Atoi(args[2])
		if err != nil {
			return fmt.Errorf("waitnet: %w", err)
		}
		start := time.Now()
		for {
			m, err := measure(args[1], 1)
			if err == nil {
				fmt.Printf("ok=true waited_ms=%d %s\n", time.Since(start).Milliseconds(), m)
				return nil
			}
			if time.Since(start) > time.Duration(timeout)*time.Second {
				return err
			}
			time.Sleep(200 * time.Millisecond)
		}
	case "hold":
		if len(args) != 3 {
			return fmt.Errorf("hold HOST:PORT SECONDS")
		}
		n, err := strconv.Atoi(args[2])
		if err != nil || n < 1 {
			return fmt.Errorf("hold: bad count %q", args[2])
		}
		return hold(args[1], n)
	case "freq":
		if len(args) != 2 {
			return fmt.Errorf("freq PPM")
		}
		ppm, err := strconv.ParseFloat(args[1], 64)
		if err != nil {
			return fmt.Errorf("freq: %w", err)
		}
		var tx unix.Timex
		tx.Modes = unix.ADJ_FREQUENCY | unix.ADJ_TICK
		tx.Tick = 10000
		tx.Freq = int64(ppm * 65536)
		if _, err := unix.Adjtimex(&tx); err != nil {
			return fmt.Errorf("freq: %w", err)
		}
		return kernel()
	case "relays":
		if len(args) < 5 {
			return fmt.Errorf("usage: relays LISTENPORT LOCALPORT SHIFT UPSTREAM [UPSTREAM]")
		}
		lp, err1 := strconv.Atoi(args[1])
		up, err2 := strconv.Atoi(args[2])
		if err1 != nil || err2 != nil {
			return fmt.Errorf("relays: bad ports %q", args[1:3])
		}
		shift, err := time.ParseDuration(args[3])
		if err != nil {
			return fmt.Errorf("relays: SHIFT %q: %w", args[3], err)
		}
		return relays(lp, up, shift, args[4:])
	case "waitsync":
		if len(args) != 4 {
			return fmt.Errorf("waitsync HOST:PORT TIMEOUT_S TOL_NS")
		}
		timeout, err1 := strconv.Atoi(args[2])
		tol, err2 := strconv.ParseInt(args[3], 10, 64)
		if err1 != nil || err2 != nil {
			return fmt.Errorf("waitsync: bad numbers %q", args[2:])
		}
		return waitSync(args[1], time.Duration(timeout)*time.Second, time.Duration(tol))
	case "waitleap":
		if len(args) != 2 {
			return fmt.Errorf("waitleap TIMEOUT_S")
		}
		timeout, err := strconv.Atoi(args[1])
		if err != nil {
			return fmt.Errorf("waitleap: %w", err)
		}
		return waitLeap(time.Duration(timeout) * time.Second)
	case "serve":
		if len(args) != 2 {
			return fmt.Errorf("serve LISTEN")
		}
		return serve(args[1])
	case "delays":
		if len(args) != 3 {
			return fmt.Errorf("delays HOST:PORT N")
		}
		n, err := strconv.Atoi(args[2])
		if err != nil || n < 1 || n > 1000 {
			return fmt.Errorf("delays: bad count %q", args[2])
		}
		return delays(args[1], n)
	case "timernoise":
		if len(args) != 3 {
			return fmt.Errorf("timernoise N USEC")
		}
		n, err1 := strconv.Atoi(args[1])
		us, err2 := strconv.Atoi(args[2])
		if err1 != nil || err2 != nil || n < 1 || n > 100000 || us < 1 {
			return fmt.Errorf("timernoise: bad numbers %q", args[1:])
		}
		return timerNoise(n, time.Duration(us)*time.Microsecond)
	case "realtime":
		var ts unix.Timespec
		if err := unix.ClockGettime(unix.CLOCK_REALTIME, &ts); err != nil {
			return err
		}
		fmt.Printf("realtime_ns=%d\n", ts.Nano())
		return nil
	}
	return fmt.Errorf("unknown command %q", args[0])
}

// ntpEpochOffset is the seconds from 1900 (NTP) to 1970 (Unix).
const ntpEpochOffset = 2208988800

func toNTP(t time.Time) uint64 {
	sec := uint64(t.Unix() + ntpEpochOffset)
	frac := uint64(t.Nanosecond()) << 32 / 1e9
	return sec<<32 | frac
}

func fromNTP(v uint64) time.Time {
	sec := int64(v>>32) - ntpEpochOffset
	nsec := int64((v & 0xffffffff) * 1e9 >> 32)
	return time.Unix(sec, nsec)
}

type measurement struct {
	off, delay time.Duration
	leap       int
	stratum    int
	ok         bool
}

func (m measurement) String() string {
	return fmt.Sprintf("offset_ns=%d delay_ns=%d leap=%d stratum=%d", m.off.Nanoseconds(), m.delay.Nanoseconds(), m.leap, m.stratum)
}

// offset prints measure's result.
func offset(addr string, n int) error {
	m, err := measure(addr, n)
	if err != nil {
		return err
	}
	fmt.Println(m)
	return nil
}

// measure queries addr n times and keeps the sample with the least delay:
// offset = ((t2 - t1) + (t3 - t4)) / 2, positive when the guest is behind.
func measure(addr string, n int) (measurement, error) {
	var best measurement
	conn, err := net.Dial("udp", addr)
	if err != nil {
		return best, err
	}
	defer conn.Close()
	for i := 0; i < n; i++ {
		if i > 0 {
			time.Sleep(100 * time.Millisecond)
		}
		req := make([]byte, 48)
		req[0] = 0<<6 | 4<<3 | 3 // no leap, version 4, client
		t1 := time.Now()
		binary.BigEndian.PutUint64(req[40:], toNTP(t1))
		if _, err := conn.Write(req); err != nil {
			return best, err
		}
		_ = conn.SetReadDeadline(time.Now().Add(time.Second))
		resp := make([]byte, 128)
		k, err := conn.Read(resp)
		t4 := time.Now()
		if err != nil || k < 48 || resp[0]&7 != 4 || binary.BigEndian.Uint64(resp[24:]) != toNTP(t1) {
			continue
		}
		t2 := fromNTP(binary.BigEndian.Uint64(resp[32:]))
		t3 := fromNTP(binary.BigEndian.Uint64(resp[40:]))
		off := (t2.Sub(t1) + t3.Sub(t4)) / 2
		delay := t4.Sub(t1) - t3.Sub(t2)
		if !best.ok || delay < best.delay {
			best.off, best.delay, best.ok = off, delay, true
			best.leap, best.stratum = int(resp[0]>>6), int(resp[1])
		}
	}
	if !best.ok {
		return best, fmt.Errorf("no answer from %s", addr)
	}
	return best, nil
}

// adjOffsetSSRead reads the rest of an adjtime() slew (ADJ_OFFSET_SS_READ).
const adjOffsetSSRead = 0xa001

type kernelState struct {
	state int
	tx    unix.Timex
	ssUS  int64 // rest of an adjtime() slew
}

func readKernel() (kernelState, error) {
	var k kernelState
	var err error
	if k.state, err = unix.Adjtimex(&k.tx); err != nil {
		return k, err
	}
	var ss unix.Timex
	ss.Modes = adjOffsetSSRead
	if _, err := unix.Adjtimex(&ss); err != nil {
		return k, fmt.Errorf("ADJ_OFFSET_SS_READ: %w", err)
	}
	k.ssUS = int64(ss.Offset)
	return k, nil
}

func (k kernelState) String() string {
	tx := k.tx
	pllNS := int64(tx.Offset)
	if tx.Status&unix.STA_NANO == 0 {
		pllNS *= 1000
	}
	freq := float64(int64(tx.Tick)-10000)*100 + float64(tx.Freq)/65536
	return fmt.Sprintf("state=%d status=0x%x unsync=%t ins=%t del=%t pll=%t freq_ppm=%.6f tick=%d pll_offset_ns=%d adjtime_us=%d maxerror_us=%d esterror_us=%d tai=%d",
		k.state, tx.Status, tx.Status&unix.STA_UNSYNC != 0, tx.Status&unix.STA_INS != 0, tx.Status&unix.STA_DEL != 0,
		tx.Status&unix.STA_PLL != 0, freq, tx.Tick, pllNS, k.ssUS, tx.Maxerror, tx.Esterror, tx.Tai)
}

func kernel() error {
	k, err := readKernel()
	if err != nil {
		return err
	}
	fmt.Println(k)
	return nil
}

// shift steps CLOCK_REALTIME by d (ADJ_SETOFFSET, exact).
func shift(d time.Duration) error {
	var tx unix.Timex
	tx.Modes = unix.ADJ_SETOFFSET | unix.ADJ_NANO
	sec, nsec := int64(d/time.Second), int64(d%time.Second)
	if nsec < 0 {
		sec, nsec = sec-1, nsec+1e9
	}
	tx.Time.Sec, tx.Time.Usec = sec, nsec
	if _, err := unix.Adjtimex(&tx); err != nil {
		return fmt.Errorf("step by %v: %w", d, err)
	}
	fmt.Printf("shifted_ns=%d\n", d.Nanoseconds())
	return nil
}

// waitSync polls every second until the kernel says synchronized and
// three offsets in a row are within tol; it prints the last kernel state
// and measurement and how long it waited (by CLOCK_MONOTONIC, which steps
// do not move).
func waitSync(addr string, timeout, tol time.Duration) error {
	start := time.Now()
	good := 0
	var k kernelState
	var m measurement
	var err error
	for time.Since(start) < timeout {
		if k, err = readKernel(); err != nil {
			return err
		}
		m, err = measure(addr, 4)
		if err == nil && k.tx.Status&unix.STA_UNSYNC == 0 && m.off.Abs() <= tol {
			good++
			if good == 3 {
				fmt.Printf("ok=true waited_ms=%d %s %s\n", time.Since(start).Milliseconds(), m, k)
				return nil
			}
		} else {
			good = 0
		}
		time.Sleep(time.Second)
	}
	fmt.Printf("ok=false waited_ms=%d %s %s\n", time.Since(start).Milliseconds(), m, k)
	return nil
}

// hold measures the offset once a second n times (each the least-delay of
// four queries) and prints the largest and the RMS, the mean delay, and
// the largest distance of the clock from the server that the measurements
// prove: |offset| − delay/2 (a sample only bounds the true offset to
// within half its round trip, which a busy host stretches).
func hold(addr string, n int) error {
	var maxAbs, maxExcess time.Duration
	var sumSq, sumDelay float64
	got := 0
	var each []string
	for i := 0; i < n; i++ {
		if i > 0 {
			time.Sleep(time.Second)
		}
		m, err := measure(addr, 4)
		if err != nil {
			continue
		}
		got++
		maxAbs = max(maxAbs, m.off.Abs())
		maxExcess = max(maxExcess, m.off.Abs()-m.delay/2)
		sumSq += float64(m.off) * float64(m.off)
		sumDelay += float64(m.delay)
		each = append(each, fmt.Sprintf("%d/%d", m.off.Microseconds(), m.delay.Microseconds()))
	}
	if got == 0 {
		return fmt.Errorf("no answers from %s", addr)
	}
	fmt.Printf("samples=%d max_abs_ns=%d rms_ns=%.0f mean_delay_ns=%.0f max_excess_ns=%d offsets_delays_us=%s\n", got, maxAbs.Nanoseconds(),
		math.Sqrt(sumSq/float64(got)), sumDelay/float64(got), maxExcess.Nanoseconds(), strings.Join(each, ","))
	return nil
}

// waitLeap polls every second until STA_INS is set.
func waitLeap(timeout time.Duration) error {
	start := time.Now()
	for {
		k, err := readKernel()
		if err != nil {
			return err
		}
		ok := k.tx.Status&unix.STA_INS != 0
		if ok || time.Since(start) >= timeout {
			fmt.Printf("ok=%t waited_ms=%d %s\n", ok, time.Since(start).Milliseconds(), k)
			return nil
		}
		time.Sleep(time.Second)
	}
}

// leftover leaves the kernel as a previous daemon might: a frequency, the
// PLL on with a phase offset it keeps slewing out, and an adjtime() slew.
func leftover(freqPPM float64, pllUS, adjUS int64) error {
	var tx unix.Timex
	tx.Modes = unix.ADJ_FREQUENCY | unix.ADJ_TICK | unix.ADJ_STATUS | unix.ADJ_OFFSET
	tx.Tick = 10000
	tx.Freq = int64(freqPPM * 65536)
	tx.Status = unix.STA_PLL
	tx.Offset = pllUS
	if _, err := unix.Adjtimex(&tx); err != nil {
		return fmt.Errorf("PLL offset and frequency: %w", err)
	}
	var ss unix.Timex
	ss.Modes = unix.ADJ_OFFSET_SINGLESHOT
	ss.Offset = adjUS
	if _, err := unix.Adjtimex(&ss); err != nil {
		return fmt.Errorf("adjtime slew: %w", err)
	}
	return kernel()
}
