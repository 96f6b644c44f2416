package tests

//lint:file-ignore ST1011 RMS is "root mean square", not a unit of milliseconds.

import (
	"context"
	"encoding/binary"
	"encoding/csv"
	"fmt"
	"math"
	"net/netip"
	"os"
	"path/filepath"
	"runtime/debug"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"gnomon.dev/gnomon/tests/peers"
)

// make bench-accuracy (issue 17 item 4, issue 18 item 9): gnomond --observe
// and chronyd -x, each a client of the same four local chronyd servers
// through its own relays (relay_bench_test.go), serving its corrected
// clock; every process here reads the one system clock, so the true offset
// is zero and each daemon's error is its served time, queried from
// outside the same way for both. NTPsec's ntpd cannot be read this way:
// with `disable ntp` (it must not touch this machine's clock) it serves
// the raw system clock, not its estimate, and never claims to be
// synchronized (docs/benchmarks.md).

// accScenario is one path and polling setting.
type accScenario struct {
	Name         string
	Base, Jitter time.Duration // each way
	Loss         float64       // each datagram, each way
	Shift        time.Duration // server 0 seems this far ahead (a falseticker)
	Equal        bool          // both polling every 16 s; otherwise each daemon's defaults
}

// lossPerWay loses 30 % of the exchanges: 1 - (1-p)² = 0.3.
var lossPerWay = 1 - math.Sqrt(0.7)

var accScenarios = []accScenario{
	{Name: "lan", Base: 100 * time.Microsecond, Jitter: 50 * time.Microsecond},
	{Name: "lan-equal", Base: 100 * time.Microsecond, Jitter: 50 * time.Microsecond, Equal: true},
	{Name: "wan", Base: 10 * time.Millisecond, Jitter: 2 * time.Millisecond},
	{Name: "wan-equal", Base: 10 * time.Millisecond, Jitter: 2 * time.Millisecond, Equal: true},
	{Name: "loss", Base: 100 * time.Microsecond, Jitter: 50 * time.Microsecond, Loss: lossPerWay},
	{Name: "loss-equal", Base: 100 * time.Microsecond, Jitter: 50 * time.Microsecond, Loss: lossPerWay, Equal: true},
	{Name: "falseticker", Base: 100 * time.Microsecond, Jitter: 50 * time.Microsecond, Shift: 100 * time.Millisecond},
	{Name: "falseticker-equal", Base: 100 * time.Microsecond, Jitter: 50 * time.Microsecond, Shift: 100 * time.Millisecond, Equal: true},
}

// accPoll is the equal polling: every 16 s.
const accPoll = 4

// accDaemons is one scenario's pair of clients and their relays.
type accDaemons struct {
	chronyd, gnomond netip.AddrPort // where each serves
	cRelays, gRelays []*relay
}

// startAccDaemons starts, on 127.0.net.x, a chronyd -x and a gnomond
// --observe, each a client of servers through its own relays (the
// falseticker shift on server 0's), serving on .2 and .3. poll < 0 leaves
// each daemon's default polling.
func startAccDaemons(t *testing.T, ctx context.Context, dir string, net byte, seed uint64, servers []netip.AddrPort, path relayConfig, shift time.Duration, poll int, tracePath string) *accDaemons {
	t.Helper()
	d := &accDaemons{}
	relayTrace := func(string, int) func(bool, time.Time, []byte) { return nil }
	if tracePath != "" {
		relayTrace = relayTracer(t, strings.TrimSuffix(tracePath, "-gnomond.trace")+"-relays.trace")
	}
	for i, s := range servers {
		rc := path
		if i == 0 {
			rc.Shift = shift
		}
		// chronyd tells sources apart by address: each relay has its own.
		// The two relays to one server are seeded alike (the same
		// exchanges for both daemons), each round differently.
		rc.Seed = seed<<16 | uint64(net)<<8 | uint64(i+1)
		d.cRelays = append(d.cRelays, startRelay(t, ctx, netip.AddrFrom4([4]byte{127, 0, net, byte(31 + i)}), s, rc, relayTrace("c", i)))
		d.gRelays = append(d.gRelays, startRelay(t, ctx, netip.AddrFrom4([4]byte{127, 0, net, byte(41 + i)}), s, rc, relayTrace("g", i)))
	}
	cPort, gPort := peers.FreePort(t), peers.FreePort(t)
	d.chronyd = netip.AddrPortFrom(netip.AddrFrom4([4]byte{127, 0, net, 2}), uint16(cPort))
	d.gnomond = netip.AddrPortFrom(netip.AddrFrom4([4]byte{127, 0, net, 3}), uint16(gPort))

	tag := "chronyd-client-" + strconv.Itoa(cPort)
	conf := filepath.Join(dir, tag+".conf")
	var lines []string
	for _, r := range d.cRelays {
		pollOpt := ""
		if poll >= 0 {
			pollOpt = fmt.Sprintf(" minpoll %d maxpoll %d", poll, poll)
		}
		lines = append(lines, fmt.Sprintf("server %s port %d iburst%s", r.addr().Addr(), r.addr().Port(), pollOpt))
	}
	lines = append(lines, "port "+strconv.Itoa(cPort), "bindaddress "+d.chronyd.Addr().String(), "allow 127.0.0.0/8",
		"cmdport 0", "bindcmdaddress /", "pidfile "+filepath.Join(dir, tag+".pid"))
	if tracePath != "" {
		// chronyd's own samples (measurements.log: every raw sample's
		// offset, delay, and its mode and timestamp sources) beside
		// gnomond's trace.
		logDir := strings.TrimSuffix(tracePath, "-gnomond.trace") + "-chronyd"
		if err := os.MkdirAll(logDir, 0o777); err != nil {
			t.Fatal(err)
		}
		_ = os.Chmod(logDir, 0o777)
		lines = append(lines, "logdir "+logDir, "log measurements rawmeasurements statistics tracking")
	}
	if err := os.WriteFile(conf, []byte(strings.Join(lines, "\n")+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	peers.Start(t, dir, tag, nil, peers.Safe(t, peers.NeedTool(t, "chronyd"), "-4", "-x", "-d", "-f", conf)...)

	var tables []string
	for _, r := range d.gRelays {
		pollOpt := ""
		if poll >= 0 {
			pollOpt = fmt.Sprintf("poll-interval-limits = { min = %d, max = %d }\n", poll, poll)
		}
		tables = append(tables, fmt.Sprintf("[[source]]\nmode = \"server\"\naddress = %q\n%s", r.addr().String(), pollOpt))
	}
	tables = append(tables, serverTable(d.gnomond.String(), "rate-limit = { interval = 0 }"))
	var o gnomondOpts
	if tracePath != "" {
		o.env = []string{"GNOMON_ENGINE_TRACE=" + tracePath}
	}
	startGnomond(t, dir, observeConfig(tables...), o)
	return d
}

// relayTracer writes every datagram the relays see to path, one line each:
// whose relay (c or g) and which, the direction (true: to the server), the
// relay's kernel receive time (ns) and the packet's origin, receive and
// transmit fields; and after each send "S" with the time just after it. A
// datagram without its S line was lost.
func relayTracer(t *testing.T, path string) func(who string, i int) func(bool, time.Time, []byte) {
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	var mu sync.Mutex
	return func(who string, i int) func(bool, time.Time, []byte) {
		return func(toServer bool, at time.Time, b []byte) {
			mu.Lock()
			defer mu.Unlock()
			if len(b) < 48 {
				fmt.Fprintf(f, "%s,%d,S%v,%d,0,0,0\n", who, i, toServer, at.UnixNano())
				return
			}
			fmt.Fprintf(f, "%s,%d,%v,%d,%x,%x,%x\n", who, i, toServer, at.UnixNano(),
				binary.BigEndian.Uint64(b[24:]), binary.BigEndian.Uint64(b[32:]), binary.BigEndian.Uint64(b[40:]))
		}
	}
}

// servedOffset is the min-delay-of-4 offset of the time served at ap
// against this machine's clock, both ends stamped by the kernel
// (kernelQuery); false when it did not answer as a synchronized server.
func servedOffset(q *kernelQuery, ap netip.AddrPort) (time.Duration, time.Duration, bool) {
	off, delay, h, err := q.measureBest(ap, 4, 300*time.Millisecond)
	if err != nil || h.Stratum == 0 || h.Stratum >= 16 {
		return 0, 0, false
	}
	return off, delay, true
}

// servedOffsetUser is servedOffset with the user-space stamps of
// peers.NTPClient (what the bench used before kernelQuery), kept for the
// reference server only, to show what the kernel stamps take off.
func servedOffsetUser(cl *peers.NTPClient, ap netip.AddrPort) (time.Duration, time.Duration, bool) {
	off, delay, h, err := cl.MeasureBest(ap, 4, 300*time.Millisecond)
	if err != nil || h.Stratum == 0 || h.Stratum >= 16 {
		return 0, 0, false
	}
	return off, delay, true
}

// checkServesCorrected is the check issue 17 asks for first: does each
// daemon serve its own corrected clock, so that its error can be read from
// outside? Each is a client of one server that a relay makes seem shift
// ahead; both must serve within shift/4 of shift before timeout. It
// returns how long each took.
func checkServesCorrected(t *testing.T, ctx context.Context, dir string, server netip.AddrPort, shift, timeout time.Duration) (chronydAt, gnomondAt time.Duration) {
	t.Helper()
	start := time.Now()
	d := startAccDaemons(t, ctx, dir, 9, 0, []netip.AddrPort{server}, relayConfig{Base: 100 * time.Microsecond}, shift, 1, "")
	cl := newKernelQuery(t, netip.AddrFrom4([4]byte{127, 0, 0, 1}))
	var last [2]time.Duration
	var read [2]bool
	for time.Since(start) < timeout && (chronydAt == 0 || gnomondAt == 0) {
		time.Sleep(time.Second)
		for i, ap := range []netip.AddrPort{d.chronyd, d.gnomond} {
			off, _, ok := servedOffset(cl, ap)
			if !ok {
				continue
			}
			last[i], read[i] = off, true
			at := &chronydAt
			if i == 1 {
				at = &gnomondAt
			}
			if *at == 0 && (off-shift).Abs() < shift/4 {
				*at = time.Since(start)
			}
		}
	}
	t.Logf("serves its corrected clock? one server made to seem %v ahead: chronyd -x served %v (within %v after %v), gnomond --observe %v (after %v)",
		shift, last[0], shift/4, chronydAt.Round(time.Second), last[1], gnomondAt.Round(time.Second))
	if !read[0] || !read[1] {
		t.Fatalf("served time not read: chronyd %v, gnomond %v", read[0], read[1])
	}
	if chronydAt == 0 || gnomondAt == 0 {
		t.Fatalf("after %v a daemon does not serve its corrected clock: chronyd %v, gnomond %v (want %v ± %v)", timeout, last[0], last[1], shift, shift/4)
	}
	return chronydAt, gnomondAt
}

// accPoint is one query of a served time.
type accPoint struct {
	at     time.Duration // since the daemons started
	who    string        // chronyd, gnomond, reference
	offset time.Duration
	delay  time.Duration
}

// accFigures sums up one daemon's run.
type accFigures struct {
	RMS, Max, P95, Mean time.Duration // over the error window (ACC_FROM on; the second half by default)
	To1ms, To100us      time.Duration // from start until it stayed below; -1: never
	Requests            int64         // sent to all servers together
	Points              int
}

// accMaxQueryDelay: a query whose own round trip was longer can be off by
// half of it (a test process descheduled between its timestamps), more
// than what is measured; such points (about 1 % here) are left out.
const accMaxQueryDelay = 100 * time.Microsecond

func figuresOf(pts []accPoint, who string, floor, half time.Duration, requests int64) accFigures {
	f := accFigures{To1ms: -1, To100us: -1, Requests: requests}
	var errs []float64
	var abs []time.Duration
	var s, s2 float64
	var series []accPoint
	for _, p := range pts {
		if p.who != who || p.delay > accMaxQueryDelay {
			continue
		}
		p.offset -= floor
		series = append(series, p)
		if p.at < half {
			continue
		}
		e := float64(p.offset)
		errs = append(errs, e)
		s += e
		s2 += e * e
		abs = append(abs, p.offset.Abs())
	}
	f.Points = len(errs)
	if len(errs) == 0 {
		f.RMS = -1
		return f
	}
	n := float64(len(errs))
	f.RMS, f.Mean = time.Duration(math.Sqrt(s2/n)), time.Duration(s/n)
	slices.Sort(abs)
	f.Max, f.P95 = abs[len(abs)-1], abs[min(len(abs)-1, int(math.Ceil(0.95*n))-1)]
	settled := func(bound time.Duration) time.Duration {
		at := time.Duration(-1)
		for i := len(series) - 1; i >= 0; i-- {
			if series[i].offset.Abs() >= bound {
				break
			}
			at = series[i].at
		}
		return at
	}
	f.To1ms, f.To100us = settled(time.Millisecond), settled(100*time.Microsecond)
	return f
}

func relayRequests(rs []*relay) int64 {
	var n int64
	for _, r := range rs {
		n += r.requests.Load()
	}
	return n
}

// lateness is the median and 99th percentile of how late the relays let
// datagrams go in one direction.
func lateness(rs []*relay, toServer bool) (p50, p99 time.Duration) {
	p50, p99, _ = latenessMean(rs, toServer)
	return p50, p99
}

// latenessMean is lateness and the mean: the difference of the two
// directions' means is an asymmetry of the relayed path that no client
// can see (it moves an exact client's offset by half of it).
func latenessMean(rs []*relay, toServer bool) (p50, p99, mean time.Duration) {
	var all []time.Duration
	for _, r := range rs {
		all = append(all, r.stats(toServer).late...)
	}
	if len(all) == 0 {
		return 0, 0, 0
	}
	slices.Sort(all)
	var sum time.Duration
	for _, d := range all {
		sum += d
	}
	return all[len(all)/2], all[min(len(all)-1, len(all)*99/100)], sum / time.Duration(len(all))
}

// accResult is one scenario's run.
type accResult struct {
	sc               accScenario
	round            int
	chronyd, gnomond accFigures
	floor, noise     time.Duration // the reference's median and RMS scatter about it, kernel stamps
	floorUser        time.Duration // the same with user-space stamps
	noiseUser        time.Duration
	kernelTx, userTx int                 // queries whose T1 was the kernel's, or user space's
	late             [2][3]time.Duration // [out, back][p50, p99, mean]
	dropped, sent    [2]int64            // [out, back]: later than relayMaxLate, and sent
}

// medianAndScatter is the median of who's offsets (round trip at most
// accMaxQueryDelay) and their RMS about it; 0, -1 without points.
func medianAndScatter(pts []accPoint, who string) (median, scatter time.Duration) {
	var v []time.Duration
	for _, p := range pts {
		if p.who == who && p.delay <= accMaxQueryDelay {
			v = append(v, p.offset)
		}
	}
	if len(v) == 0 {
		return 0, -1
	}
	slices.Sort(v)
	median = v[len(v)/2]
	var s2 float64
	for _, x := range v {
		s2 += float64(x-median) * float64(x-median)
	}
	return median, time.Duration(math.Sqrt(s2 / float64(len(v))))
}

// runAccScenario runs one scenario for dur against servers, querying
// every every, writes its points to csvPath and returns its figures.
func runAccScenario(t *testing.T, sc accScenario, round int, net byte, servers []netip.AddrPort, reference netip.AddrPort, dur, from, every time.Duration, csvPath string) accResult {
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	dir := peers.TempDir(t, 0o777)
	poll := -1
	if sc.Equal {
		poll = accPoll
	}
	start := time.Now()
	tracePath := ""
	if os.Getenv("ACC_TRACE") != "" && csvPath != "" {
		// gnomond's engine trace (service/daemon/trace.go) beside the CSV.
		tracePath = strings.TrimSuffix(csvPath, ".csv") + "-gnomond.trace"
	}
	d := startAccDaemons(t, ctx, dir, net, uint64(round), servers, relayConfig{Base: sc.Base, Jitter: sc.Jitter, Loss: sc.Loss, MaxLate: relayMaxLate}, sc.Shift, poll, tracePath)
	kq := newKernelQuery(t, netip.AddrFrom4([4]byte{127, 0, 0, 1}))
	uq := peers.NewNTPClient(t, "127.0.0.1")
	var pts []accPoint
	for next := start.Add(every); next.Before(start.Add(dur)); next = next.Add(every) {
		time.Sleep(time.Until(next))
		for _, q := range []struct {
			who string
			ap  netip.AddrPort
		}{{"chronyd", d.chronyd}, {"gnomond", d.gnomond}, {"reference", reference}} {
			if off, delay, ok := servedOffset(kq, q.ap); ok {
				pts = append(pts, accPoint{at: time.Since(start), who: q.who, offset: off, delay: delay})
			}
		}
		if off, delay, ok := servedOffsetUser(uq, reference); ok {
			pts = append(pts, accPoint{at: time.Since(start), who: "reference-user", offset: off, delay: delay})
		}
	}
	// The reference (a server serving the system clock directly) is the
	// query's own bias: its median is taken off every daemon's reading,
	// and its scatter about that median is the query's noise, which every
	// daemon's figure carries too. The same server read with user-space
	// stamps shows what the kernel's take off.
	res := accResult{sc: sc, round: round, kernelTx: kq.kernTx, userTx: kq.userTx}
	res.floor, res.noise = medianAndScatter(pts, "reference")
	res.floorUser, res.noiseUser = medianAndScatter(pts, "reference-user")
	res.chronyd = figuresOf(pts, "chronyd", res.floor, from, relayRequests(d.cRelays))
	res.gnomond = figuresOf(pts, "gnomond", res.floor, from, relayRequests(d.gRelays))
	all := append(slices.Clone(d.cRelays), d.gRelays...)
	res.late[0][0], res.late[0][1], res.late[0][2] = latenessMean(all, true)
	res.late[1][0], res.late[1][1], res.late[1][2] = latenessMean(all, false)
	for _, r := range all {
		for k, toServer := range []bool{true, false} {
			st := r.stats(toServer)
			res.dropped[k] += st.dropped
			res.sent[k] += int64(len(st.late))
		}
	}
	if csvPath != "" {
		writeAccCSV(t, csvPath, pts)
	}
	return res
}

func writeAccCSV(t *testing.T, path string, pts []accPoint) {
	f, err := os.Create(path)
	if err != nil {
		t.Error(err)
		return
	}
	defer f.Close()
	w := csv.NewWriter(f)
	_ = w.Write([]string{"seconds", "daemon", "offset_ns", "delay_ns"})
	for _, p := range pts {
		_ = w.Write([]string{strconv.FormatFloat(p.at.Seconds(), 'f', 3, 64), p.who,
			strconv.FormatInt(int64(p.offset), 10), strconv.FormatInt(int64(p.delay), 10)})
	}
	w.Flush()
	if err := w.Error(); err != nil {
		t.Error(err)
	}
}

func fmtDur(d time.Duration) string {
	if d < 0 {
		return "never"
	}
	return d.Round(time.Second).String()
}

func us(d time.Duration) string { return strconv.FormatFloat(float64(d)/1e3, 'f', 1, 64) }

// TestAccuracyBench is make bench-accuracy (skipped unless
// GNOMON_BENCH_ACCURACY=1): ACC_ROUNDS rounds (3) of every scenario in
// ACC_SCENARIOS (all), each ACC_DURATION (10m) long, all scenarios of a
// round at once (each its own pair of daemons and relays, the same four
// servers), served times queried every ACC_EVERY (2s). Raw points go to
// ACC_RESULTS (bench-results/accuracy/DATE) as SCENARIO-rROUND.csv, the figures
// to summary.csv; ACC_TRACE=1 adds, per scenario and round, gnomond's
// engine trace (with its datagrams' raw times), the relays' datagrams
// (relayTracer) and chronyd's measurements log. Run it with go test
// -parallel 8 or more (make
// bench-accuracy does): go test runs only GOMAXPROCS parallel subtests at
// once otherwise. It fails only when a daemon's served time was never
// read: no accuracy is asserted.
func TestAccuracyBench(t *testing.T) {
	if os.Getenv("GNOMON_BENCH_ACCURACY") == "" {
		t.Skip("set GNOMON_BENCH_ACCURACY=1 (make bench-accuracy): tens of minutes of real time")
	}
	peers.NeedRoot(t, rootFor)
	relayQuiet(t)
	envDur := func(k string, def time.Duration) time.Duration {
		if v := os.Getenv(k); v != "" {
			d, err := time.ParseDuration(v)
			if err != nil || d <= 0 {
				t.Fatalf("%s=%q: want a positive duration", k, v)
			}
			return d
		}
		return def
	}
	dur, every := envDur("ACC_DURATION", 10*time.Minute), envDur("ACC_EVERY", 2*time.Second)
	// The error window: from ACC_FROM after the start to the end (the
	// second half by default).
	from := envDur("ACC_FROM", dur/2)
	if from >= dur {
		t.Fatalf("ACC_FROM=%v: want less than ACC_DURATION=%v", from, dur)
	}
	envInt := func(k string, def, lo, hi int) int {
		v := os.Getenv(k)
		if v == "" {
			return def
		}
		n, err := strconv.Atoi(v)
		if err != nil || n < lo || n > hi {
			t.Fatalf("%s=%q: want %d..%d", k, v, lo, hi)
		}
		return n
	}
	rounds := envInt("ACC_ROUNDS", 3, 1, 20)
	// The relays' draws are seeded by the round's number: ACC_FIRST_ROUND
	// (1) numbers the first, so a run split into several invocations, or
	// repeated, can draw new exchanges instead of the same ones again.
	first := envInt("ACC_FIRST_ROUND", 1, 1, 1000)
	scs := accScenarios
	if v := os.Getenv("ACC_SCENARIOS"); v != "" {
		scs = nil
		for _, name := range strings.Split(v, ",") {
			i := slices.IndexFunc(accScenarios, func(s accScenario) bool { return s.Name == name })
			if i < 0 {
				t.Fatalf("ACC_SCENARIOS: no scenario %q", name)
			}
			scs = append(scs, accScenarios[i])
		}
	}
	results := os.Getenv("ACC_RESULTS")
	if results == "" {
		results = filepath.Join(peers.ModuleRoot(t), "bench-results", "accuracy", time.Now().UTC().Format("20060102T150405Z"))
	}
	if err := os.MkdirAll(results, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Logf("%d rounds of %d scenarios at once, %v each, served time every %v, error figures from %v on; raw CSV in %s", rounds, len(scs), dur, every, from, results)
	if b, err := os.ReadFile("/proc/loadavg"); err == nil {
		t.Logf("load average before: %s", strings.TrimSpace(string(b)))
	}

	dir := peers.TempDir(t, 0o777)
	var servers []netip.AddrPort
	for i := range 4 {
		servers = append(servers, peers.StartChronydAt(t, dir, netip.AddrFrom4([4]byte{127, 0, 0, byte(21 + i)}), peers.FreePort(t)).AddrPort())
	}
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	t.Run("serves-corrected-clock", func(t *testing.T) {
		checkServesCorrected(t, ctx, peers.TempDir(t, 0o777), servers[1], 2*time.Millisecond, 90*time.Second)
	})

	var mu sync.Mutex
	var all []accResult
	for round := first; round < first+rounds; round++ {
		t.Run(fmt.Sprintf("round%d", round), func(t *testing.T) {
			for k, sc := range scs {
				t.Run(sc.Name, func(t *testing.T) {
					t.Parallel()
					res := runAccScenario(t, sc, round, byte(10+k), servers, servers[1], dur, from, every,
						filepath.Join(results, fmt.Sprintf("%s-r%d.csv", sc.Name, round)))
					logAccResult(t, res)
					if res.chronyd.RMS < 0 || res.gnomond.RMS < 0 {
						t.Errorf("served time not read in the error window: chronyd %d points, gnomond %d", res.chronyd.Points, res.gnomond.Points)
					}
					mu.Lock()
					all = append(all, res)
					mu.Unlock()
				})
			}
		})
		if b, err := os.ReadFile("/proc/loadavg"); err == nil {
			t.Logf("load average after round %d: %s", round, strings.TrimSpace(string(b)))
		}
	}
	writeAccSummary(t, filepath.Join(results, "summary.csv"), all)
	printAccMedians(t, scs, all)
}

func logAccResult(t *testing.T, r accResult) {
	t.Helper()
	t.Logf("%s round %d (query floor %s µs, noise %s µs RMS with kernel stamps (T1 from the kernel in %d of %d), %s / %s µs with user-space stamps; relay lateness out p50/p99/mean %s/%s/%s µs, back %s/%s/%s µs):",
		r.sc.Name, r.round, us(r.floor), us(r.noise), r.kernelTx, r.kernelTx+r.userTx, us(r.floorUser), us(r.noiseUser),
		us(r.late[0][0]), us(r.late[0][1]), us(r.late[0][2]), us(r.late[1][0]), us(r.late[1][1]), us(r.late[1][2]))
	t.Logf("  relays dropped %d of %d replies, later than %v after their due time (requests' lateness carried onto their replies)",
		r.dropped[1], r.dropped[1]+r.sent[1], relayMaxLate)
	for _, x := range []struct {
		who string
		f   accFigures
	}{{"chronyd -x", r.chronyd}, {"gnomond --observe", r.gnomond}} {
		t.Logf("  %-18s RMS %s µs, max %s, p95 %s, mean %s µs; < 1 ms from %s, < 100 µs from %s; %d requests",
			x.who, us(x.f.RMS), us(x.f.Max), us(x.f.P95), us(x.f.Mean), fmtDur(x.f.To1ms), fmtDur(x.f.To100us), x.f.Requests)
	}
	if r.chronyd.RMS > 0 {
		t.Logf("  gnomond/chronyd: RMS %.2f, requests %.2f", float64(r.gnomond.RMS)/float64(r.chronyd.RMS),
			float64(r.gnomond.Requests)/math.Max(1, float64(r.chronyd.Requests)))
	}
}

func writeAccSummary(t *testing.T, path string, all []accResult) {
	f, err := os.Create(path)
	if err != nil {
		t.Error(err)
		return
	}
	defer f.Close()
	w := csv.NewWriter(f)
	_ = w.Write([]string{"scenario", "round", "daemon", "rms_ns", "max_ns", "p95_ns", "mean_ns", "to_1ms_s", "to_100us_s", "requests", "points", "query_floor_ns", "query_noise_ns", "query_floor_user_ns", "query_noise_user_ns"})
	for _, r := range all {
		for _, x := range []struct {
			who string
			f   accFigures
		}{{"chronyd", r.chronyd}, {"gnomond", r.gnomond}} {
			_ = w.Write([]string{r.sc.Name, strconv.Itoa(r.round), x.who,
				strconv.FormatInt(int64(x.f.RMS), 10), strconv.FormatInt(int64(x.f.Max), 10), strconv.FormatInt(int64(x.f.P95), 10),
				strconv.FormatInt(int64(x.f.Mean), 10), strconv.FormatFloat(x.f.To1ms.Seconds(), 'f', 0, 64),
				strconv.FormatFloat(x.f.To100us.Seconds(), 'f', 0, 64), strconv.FormatInt(x.f.Requests, 10),
				strconv.Itoa(x.f.Points), strconv.FormatInt(int64(r.floor), 10), strconv.FormatInt(int64(r.noise), 10),
				strconv.FormatInt(int64(r.floorUser), 10), strconv.FormatInt(int64(r.noiseUser), 10)})
		}
	}
	w.Flush()
}

// printAccMedians prints, per scenario, the median RMS of the rounds with
// their range, for both daemons, and the ratio of the medians.
func printAccMedians(t *testing.T, scs []accScenario, all []accResult) {
	t.Helper()
	med := func(v []time.Duration) (m, lo, hi time.Duration) {
		if len(v) == 0 {
			return -1, -1, -1
		}
		slices.Sort(v)
		return v[len(v)/2], v[0], v[len(v)-1]
	}
	t.Logf("| scenario | chronyd -x RMS median (range) | gnomond RMS median (range) | gnomond/chronyd | requests chronyd/gnomond | query noise kernel / user-space stamps |")
	for _, sc := range scs {
		var c, g, nk, nu []time.Duration
		var cr, gr int64
		for _, r := range all {
			if r.sc.Name == sc.Name {
				c, g = append(c, r.chronyd.RMS), append(g, r.gnomond.RMS)
				nk, nu = append(nk, r.noise), append(nu, r.noiseUser)
				cr, gr = cr+r.chronyd.Requests, gr+r.gnomond.Requests
			}
		}
		cm, clo, chi := med(c)
		gm, glo, ghi := med(g)
		nkm, _, _ := med(nk)
		num, _, _ := med(nu)
		n := int64(max(1, len(c)))
		t.Logf("| %s | %s (%s … %s) µs | %s (%s … %s) µs | %.2f | %d / %d | %s / %s µs |", sc.Name, us(cm), us(clo), us(chi), us(gm), us(glo), us(ghi),
			float64(gm)/math.Max(1, float64(cm)), cr/n, gr/n, us(nkm), us(num))
	}
}

// relayQuiet keeps Go's garbage collector out of the relays' way for the
// test: its stop-the-world phases wait for this process's ordinary threads,
// which on a loaded machine get the CPU milliseconds late, and a relay
// thread returning from a system call waits with them (the 1 % of
// datagrams that left milliseconds late, mostly requests). A run allocates
// a few tens of MiB; the limit still collects past 1 GiB.
func relayQuiet(t *testing.T) {
	old := debug.SetGCPercent(-1)
	oldLimit := debug.SetMemoryLimit(1 << 30)
	t.Cleanup(func() { debug.SetGCPercent(old); debug.SetMemoryLimit(oldLimit) })
}

// TestAccuracyBenchSmoke is the bounded part of make bench-accuracy in
// make test: each daemon's served time is read and is its corrected clock
// (one server made to seem 2 ms ahead), and a relay delays as configured
// (a query through a 5 ms + Exp(1 ms) relay takes at least 10 ms, and its
// offset stays within the jitter). Nothing about speed or accuracy against
// chronyd is asserted.
func TestAccuracyBenchSmoke(t *testing.T) {
	peers.NeedRoot(t, rootFor)
	peers.NeedTool(t, "chronyd")
	dir := peers.TempDir(t, 0o777)
	srv := peers.StartChronydAt(t, dir, netip.AddrFrom4([4]byte{127, 0, 0, 25}), peers.FreePort(t))
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)

	cfg := relayConfig{Base: 5 * time.Millisecond, Jitter: time.Millisecond, Seed: 3}
	r := startRelay(t, ctx, netip.AddrFrom4([4]byte{127, 0, 9, 50}), srv.AddrPort(), cfg, nil)
	cl := peers.NewNTPClient(t, "127.0.0.1")
	for i := range 5 {
		off, delay, _, err := cl.Measure(r.addr(), time.Second)
		if err != nil {
			t.Fatalf("query %d through the relay: %v", i, err)
		}
		if delay < 2*cfg.Base {
			t.Errorf("query %d: round trip %v through a relay of %v each way", i, delay, cfg.Base)
		}
		if off.Abs() > 20*cfg.Jitter {
			t.Errorf("query %d: offset %v through a symmetric relay (jitter %v each way)", i, off, cfg.Jitter)
		}
	}
	time.Sleep(50 * time.Millisecond) // the sender counts a datagram after sending it
	for _, toServer := range []bool{true, false} {
		if st := r.stats(toServer); st.relayed != 5 || len(st.late) != 5 {
			t.Errorf("relay (to server %v): %d relayed, %d sent, want 5", toServer, st.relayed, len(st.late))
		}
	}
	if n := r.requests.Load(); n != 5 {
		t.Errorf("relay counted %d requests, want 5", n)
	}
	checkQueryNoise(t, srv.AddrPort(), 40)
	checkServesCorrected(t, ctx, dir, srv.AddrPort(), 2*time.Millisecond, 60*time.Second)
}

// checkQueryNoise reads a server that serves this machine's clock
// directly n times (each the best of 4) with kernel stamps and with
// user-space stamps, logs the median and RMS scatter of each, and fails
// when the kernel stamps were not used or read it more than 50 µs off:
// its true offset is zero.
func checkQueryNoise(t *testing.T, server netip.AddrPort, n int) {
	t.Helper()
	kq := newKernelQuery(t, netip.AddrFrom4([4]byte{127, 0, 0, 1}))
	uq := peers.NewNTPClient(t, "127.0.0.1")
	var pts []accPoint
	for range n {
		if off, delay, ok := servedOffset(kq, server); ok {
			pts = append(pts, accPoint{who: "kernel", offset: off, delay: delay})
		}
		if off, delay, ok := servedOffsetUser(uq, server); ok {
			pts = append(pts, accPoint{who: "user", offset: off, delay: delay})
		}
		time.Sleep(20 * time.Millisecond)
	}
	km, ks := medianAndScatter(pts, "kernel")
	um, ushat := medianAndScatter(pts, "user")
	t.Logf("query of a server serving the system clock, %d × best of 4: kernel stamps median %s µs, RMS scatter %s µs (T1 from the kernel in %d of %d requests); user-space stamps median %s µs, scatter %s µs",
		n, us(km), us(ks), kq.kernTx, kq.kernTx+kq.userTx, us(um), us(ushat))
	if kq.kernTx == 0 {
		t.Errorf("no kernel transmit timestamp came back in %d requests", kq.userTx)
	}
	if ks < 0 || km.Abs() > 50*time.Microsecond {
		t.Errorf("kernel-stamped query of a server on this clock read %v (scatter %v), want within 50µs of 0", km, ks)
	}
}
