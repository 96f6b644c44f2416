package main

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"io"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// runConfig is one load run.
type runConfig struct {
	target   netip.AddrPort
	clients  int
	rate     float64 // requests/s over all clients; 0 = as fast as possible
	duration time.Duration
	drain    time.Duration // how long to wait for replies after the last send
	tick     time.Duration // longest sleep of a sender between batches
	base     netip.Addr    // first client address
	// nts, when set, makes the run NTS: the clients send NTS requests
	// sealed by its sessions to its NTP server (target is then ignored).
	nts *ntsState
	// serverPIDs, when set, are the server's processes: the run reports
	// the CPU time they used while it sent and drained.
	serverPIDs []int
	// pad, when not 0, makes each plain request pad bytes long: the
	// header and one extension field (padType). An NTS request with one
	// cookie is 228 bytes; a server that echoes it (ntpfloor -echo)
	// answers with a datagram as long, as an NTS server does.
	pad int
}

// result is what one run measured.
type result struct {
	rate       float64 // asked for
	sent       uint64
	clientSent []uint64 // sent, by client
	sendErrs   uint64
	elapsed    time.Duration // sending time
	stats      stats
	hist       histogram
	clientDrop uint64 // datagrams the kernel dropped at our sockets (/proc/net/udp)
	serverDrop uint64 // ... at the sockets listening on the target port
	dropsKnown bool
	lastErr    error
	skipped    uint64 // due by the schedule, not sent: no free NTS session
	genCPU     float64
	nts        bool
	keys       uint64 // NTS: key exchanges during the run (re-keying)
	keyFails   uint64
	serverCPU  time.Duration // -1: not measured
}

// serverCPUPerAnswer is the server's CPU time per answer, 0 if unknown.
func (r *result) serverCPUPerAnswer() time.Duration {
	if r.serverCPU < 0 || r.stats.answers() == 0 {
		return 0
	}
	return r.serverCPU / time.Duration(r.stats.answers())
}

// loss is the share of requests sent that got no answer (in NTS: no
// authenticated answer; a NAK is not an answer).
func (r *result) loss() float64 {
	if r.sent == 0 {
		return 0
	}
	return 1 - float64(r.stats.answers())/float64(r.sent)
}

func (r *result) sendRate() float64   { return float64(r.sent) / r.elapsed.Seconds() }
func (r *result) answerRate() float64 { return float64(r.stats.answers()) / r.elapsed.Seconds() }

// generatorLimited: the generator could not send at the rate asked for, so
// the run says nothing about the server beyond the rate actually sent.
func (r *result) generatorLimited() bool {
	return r.rate > 0 && r.sendRate() < 0.97*r.rate
}

// runLoad runs one load test and returns its result. It stops by itself
// after duration + drain, or earlier when ctx ends.
func runLoad(ctx context.Context, cfg runConfig) (*result, error) {
	if cfg.clients < 1 {
		return nil, fmt.Errorf("need at least one client")
	}
	if cfg.nts != nil {
		if cfg.clients > len(cfg.nts.pools) {
			return nil, fmt.Errorf("%d clients, but NTS sessions for %d", cfg.clients, len(cfg.nts.pools))
		}
		cfg.target = cfg.nts.ntp
	}
	if !cfg.target.Addr().Is4() || !cfg.target.Addr().IsLoopback() {
		return nil, fmt.Errorf("target %v is not an IPv4 loopback address: this generator only sends on 127.0.0.0/8", cfg.target)
	}
	clients := make([]*client, 0, cfg.clients)
	defer func() {
		for _, c := range clients {
			c.conn.Close()
		}
	}()
	for i := range cfg.clients {
		src, err := sourceAddr(cfg.base, i)
		if err != nil {
			return nil, err
		}
		var seed [4]byte
		rand.Read(seed[:])
		tr := newTracker(binary.LittleEndian.Uint32(seed[:]))
		tr.pad = cfg.pad
		var p protocol = tr
		blen := pktLen
		switch {
		case cfg.nts != nil && cfg.nts.cfg.replay:
			rt := cfg.nts.replayTracker(i, tr)
			if rt == nil {
				return nil, fmt.Errorf("client %d: -replay: no session could seal a request", i)
			}
			p = rt
			blen = ntsPktLen
		case cfg.nts != nil:
			p = cfg.nts.tracker(i, tr)
			blen = ntsPktLen
		}
		c, err := newClient(src, cfg.target, p, blen)
		if err != nil {
			return nil, fmt.Errorf("client %d on %v: %w", i, src, err)
		}
		clients = append(clients, c)
	}
	dropsBefore, _ := readUDPDrops(clients, cfg.target.Port())
	var keys0, keyFails0 uint64
	if cfg.nts != nil {
		keys0, keyFails0 = cfg.nts.keys.Load(), cfg.nts.keyFails.Load()
	}
	cpu0 := cpuTime()
	srvCPU0, srvErr := procCPU(cfg.serverPIDs)

	start := time.Now()
	stop := start.Add(cfg.duration)
	perClient := cfg.rate / float64(cfg.clients)
	var recv, send sync.WaitGroup
	for _, c := range clients {
		recv.Add(1)
		go func() { defer recv.Done(); c.recvLoop(start) }()
		send.Add(1)
		go func() { defer send.Done(); c.sendLoop(ctx, start, stop, perClient, cfg.tick) }()
	}
	send.Wait()
	elapsed := time.Since(start)

	res := &result{rate: cfg.rate, elapsed: elapsed, nts: cfg.nts != nil}
	for _, c := range clients {
		res.sent += c.sent.Load()
		res.clientSent = append(res.clientSent, c.sent.Load())
		res.skipped += c.skipped.Load()
	}
	// Drain: wait until every request is answered or the drain time is up.
	deadline := time.Now().Add(cfg.drain)
	for time.Now().Before(deadline) && ctx.Err() == nil {
		var answered uint64
		for _, c := range clients {
			answered += c.answered.Load()
		}
		if answered >= res.sent {
			break
		}
		time.Sleep(min(10*time.Millisecond, time.Until(deadline)))
	}
	dropsAfter, derr := readUDPDrops(clients, cfg.target.Port())
	res.genCPU = cpuShare(cpu0, time.Since(start))
	res.serverCPU = -1
	if srvCPU1, err := procCPU(cfg.serverPIDs); len(cfg.serverPIDs) > 0 && srvErr == nil && err == nil {
		res.serverCPU = srvCPU1 - srvCPU0
	}
	for _, c := range clients {
		c.conn.Close()
	}
	recv.Wait()
	if cfg.nts != nil {
		res.keys = cfg.nts.keys.Load() - keys0
		res.keyFails = cfg.nts.keyFails.Load() - keyFails0
		if e, ok := cfg.nts.lastErr.Load().(error); ok && res.keyFails > 0 {
			res.lastErr = e
		}
	}
	for _, c := range clients {
		st, h := c.p.counts()
		res.stats.add(st)
		res.hist.merge(h)
		res.sendErrs += c.sendErrs.Load()
		if e, ok := c.lastErr.Load().(error); ok && res.lastErr == nil {
			res.lastErr = e
		}
	}
	clients = nil
	if derr == nil {
		res.dropsKnown = true
		res.clientDrop = dropsAfter.client - dropsBefore.client
		res.serverDrop = dropsAfter.server - dropsBefore.server
	}
	return res, nil
}

type udpDrops struct{ client, server uint64 }

// readUDPDrops sums the "drops" column of /proc/net/udp for our client
// sockets and for the sockets bound to the target port (the server's).
func readUDPDrops(clients []*client, port uint16) (udpDrops, error) {
	f, err := os.Open("/proc/net/udp")
	if err != nil {
		return udpDrops{}, err
	}
	defer f.Close()
	ours := make(map[netip.AddrPort]bool, len(clients))
	for _, c := range clients {
		ours[c.local] = true
	}
	return parseUDPDrops(f, ours, port)
}

func parseUDPDrops(r io.Reader, ours map[netip.AddrPort]bool, port uint16) (udpDrops, error) {
	var d udpDrops
	sc := bufio.NewScanner(r)
	first := true
	for sc.Scan() {
		if first {
			first = false
			continue
		}
		f := strings.Fields(sc.Text())
		if len(f) < 13 {
			continue
		}
		local, ok := parseProcAddr(f[1])
		if !ok {
			continue
		}
		drops, err := strconv.ParseUint(f[len(f)-1], 10, 64)
		if err != nil {
			continue
		}
		switch {
		case ours[local]:
			d.client += drops
		case local.Port() == port:
			d.server += drops
		}
	}
	return d, sc.Err()
}

// parseProcAddr reads /proc/net/udp's "0100007F:1F90": the IPv4 address as
// a host-order (little-endian here) hex word, the port in hex.
func parseProcAddr(s string) (netip.AddrPort, bool) {
	a, p, ok := strings.Cut(s, ":")
	if !ok || len(a) != 8 {
		return netip.AddrPort{}, false
	}
	b, err := hex.DecodeString(a)
	if err != nil {
		return netip.AddrPort{}, false
	}
	port, err := strconv.ParseUint(p, 16, 16)
	if err != nil {
		return netip.AddrPort{}, false
	}
	ip := netip.AddrFrom4([4]byte{b[3], b[2], b[1], b[0]})
	return netip.AddrPortFrom(ip, uint16(port)), true
}

// report writes one human line about r.
func report(w io.Writer, label string, r *result) {
	rate := "max"
	if r.rate > 0 {
		rate = fmt.Sprintf("%.0f/s", r.rate)
	}
	proto := ""
	if r.nts {
		proto = " nts"
	}
	fmt.Fprintf(w, "%s%s rate=%s sent=%d answered=%d loss=%.3f%% answers/s=%.0f p50=%s p99=%s",
		label, proto, rate, r.sent, r.stats.answers(), 100*r.loss(), r.answerRate(),
		fmtDur(r.hist.quantile(0.5)), fmtDur(r.hist.quantile(0.99)))
	if r.nts {
		fmt.Fprintf(w, " naks=%d unauth=%d late=%d rekeys=%d", r.stats.nak, r.stats.unauth, r.stats.late, r.keys)
		if r.keyFails > 0 {
			fmt.Fprintf(w, " ke-failures=%d", r.keyFails)
		}
	}
	if r.stats.kod > 0 {
		fmt.Fprintf(w, " kod=%d", r.stats.kod)
	}
	if n := r.stats.unsync + r.stats.invalid; n > 0 {
		fmt.Fprintf(w, " not-valid=%d(unsync=%d)", n, r.stats.unsync)
	}
	if n := r.stats.unmatched + r.stats.malformed; n > 0 {
		fmt.Fprintf(w, " unmatched=%d malformed=%d", r.stats.unmatched, r.stats.malformed)
	}
	if r.dropsKnown {
		fmt.Fprintf(w, " drops(server=%d client=%d)", r.serverDrop, r.clientDrop)
	}
	if r.sendErrs > 0 {
		fmt.Fprintf(w, " send-errors=%d", r.sendErrs)
	}
	if r.skipped > 0 {
		fmt.Fprintf(w, " no-free-session=%d", r.skipped)
	}
	if d := r.serverCPUPerAnswer(); d > 0 {
		fmt.Fprintf(w, " server-cpu/answer=%s", fmtDur(d))
	}
	fmt.Fprintf(w, " gen-cpu=%.0f%%", 100*r.genCPU)
	if r.generatorLimited() {
		fmt.Fprintf(w, " GENERATOR-LIMITED(sent %.0f/s)", r.sendRate())
	}
	fmt.Fprintln(w)
}

func fmtDur(d time.Duration) string {
	switch {
	case d < time.Microsecond:
		return fmt.Sprintf("%dns", d)
	case d < time.Millisecond:
		return fmt.Sprintf("%.1fµs", float64(d)/1e3)
	default:
		return fmt.Sprintf("%.2fms", float64(d)/1e6)
	}
}

// waitValid sends one request every 100 ms from base until the server at
// target gives a reply that passes ntp.CheckReply (it is up and
// synchronized), or fails after timeout.
func waitValid(ctx context.Context, target netip.AddrPort, base netip.Addr, timeout time.Duration) error {
	tr := newTracker(1)
	c, err := newClient(base, target, tr, pktLen)
	if err != nil {
		return err
	}
	defer c.conn.Close()
	deadline := time.Now().Add(timeout)
	buf := make([]byte, pktLen)
	var last string
	for time.Now().Before(deadline) && ctx.Err() == nil {
		req := make([]byte, pktLen)
		n := tr.request(req, time.Now(), 0)
		before := tr.stats
		if _, err := c.conn.Write(req[:n]); err != nil {
			last = err.Error()
		} else {
			c.conn.SetReadDeadline(time.Now().Add(100 * time.Millisecond))
			if m, err := c.conn.Read(buf); err == nil {
				tr.reply(buf[:m], 0)
				switch {
				case tr.valid > before.valid:
					return nil
				case tr.unsync > before.unsync:
					last = "answers, but unsynchronized"
				default:
					last = "answers that fail the client checks"
				}
				time.Sleep(100 * time.Millisecond)
			} else {
				last = err.Error()
			}
		}
	}
	return fmt.Errorf("%v gave no valid answer within %v (last: %s)", target, timeout, last)
}

// cpuTime is the CPU time (user+system) this process has used so far.
func cpuTime() time.Duration {
	var ru unix.Rusage
	if unix.Getrusage(unix.RUSAGE_SELF, &ru) != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// cpuShare is the share of the CPUs this process may run on that it used
// since cpuTime returned cpu0, wall ago: near 1, the generator itself was
// the limit.
func cpuShare(cpu0 time.Duration, wall time.Duration) float64 {
	var set unix.CPUSet
	n := 1
	if unix.SchedGetaffinity(0, &set) == nil && set.Count() > 0 {
		n = set.Count()
	}
	if wall <= 0 {
		return 0
	}
	return float64(cpuTime()-cpu0) / float64(wall) / float64(n)
}

// procCPU is the CPU time (user+system, all threads) the processes pids
// have used so far, from /proc/PID/stat.
func procCPU(pids []int) (time.Duration, error) {
	var sum time.Duration
	for _, pid := range pids {
		if d, ok := schedCPU(pid); ok {
			sum += d
			continue
		}
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		if err != nil {
			return 0, err
		}
		d, err := parseProcStat(b)
		if err != nil {
			return 0, fmt.Errorf("/proc/%d/stat: %w", pid, err)
		}
		sum += d
	}
	return sum, nil
}

// userHZ is the unit of the times in /proc/PID/stat (USER_HZ, 100 on
// every Linux architecture that matters here).
const userHZ = 100

// parseProcStat reads utime and stime (fields 14 and 15) from a
// /proc/PID/stat line. The command name (field 2) is in parentheses and
// may itself hold spaces and parentheses, so the fields are counted from
// the last ')'.
func parseProcStat(b []byte) (time.Duration, error) {
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return 0, fmt.Errorf("no command name")
	}
	f := strings.Fields(s[i+1:])
	if len(f) < 13 {
		return 0, fmt.Errorf("%d fields after the command name", len(f))
	}
	var ticks uint64
	for _, x := range f[11:13] {
		// At most 2^36 ticks (21 years) each, so that the sum in
		// nanoseconds stays far inside a time.Duration.
		v, err := strconv.ParseUint(x, 10, 64)
		if err != nil || v > 1<<36 {
			return 0, fmt.Errorf("bad time %q", x)
		}
		ticks += v
	}
	return time.Duration(ticks) * (time.Second / userHZ), nil
}

// parsePIDs parses a comma-separated list of process ids.
func parsePIDs(s string) ([]int, error) {
	var pids []int
	for _, x := range strings.Split(s, ",") {
		if x = strings.TrimSpace(x); x == "" {
			continue
		}
		v, err := strconv.Atoi(x)
		if err != nil || v <= 0 {
			return nil, fmt.Errorf("bad process id %q", x)
		}
		pids = append(pids, v)
	}
	return pids, nil
}

// schedCPU is the on-CPU time of pid's threads from
// /proc/PID/task/*/schedstat (nanoseconds, where /proc/PID/stat counts
// 10 ms ticks: at a few thousand answers a run the ticks alone would
// quantize CPU per answer to several µs). Threads that already exited are
// not counted; ok is false when schedstat is unavailable.
func schedCPU(pid int) (time.Duration, bool) {
	dirs, err := os.ReadDir(fmt.Sprintf("/proc/%d/task", pid))
	if err != nil || len(dirs) == 0 {
		return 0, false
	}
	var sum time.Duration
	for _, d := range dirs {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/task/%s/schedstat", pid, d.Name()))
		if err != nil {
			continue // the thread exited
		}
		f := strings.Fields(string(b))
		if len(f) < 1 {
			return 0, false
		}
		ns, err := strconv.ParseInt(f[0], 10, 64)
		if err != nil {
			return 0, false
		}
		sum += time.Duration(ns)
	}
	return sum, true
}
