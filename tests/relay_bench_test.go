package tests

import (
	"context"
	"encoding/binary"
	"fmt"
	"math"
	"math/rand/v2"
	"net/netip"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"

	"gnomon.dev/gnomon/tests/ntpshift"
	"gnomon.dev/gnomon/tests/peers"
)

// relay is a userspace UDP relay between one client and one server that
// delays each datagram by Base plus an exponentially distributed extra
// (mean Jitter) in each direction, loses a fraction Loss of the datagrams
// in each direction, and, as a falseticker, shifts the server's clock by
// Shift (the replies' receive and transmit timestamps, and back the origin
// of interleaved requests, which echo one of them): the same path for
// chronyd and gnomond, which this kernel's missing netem cannot give.
//
// The same packets: each request draws its whole exchange at once (lost
// or not and the delay each way) from the relay's own generator, so two
// relays seeded alike give the n-th exchange of their two clients the
// same fate. They were drawn per datagram from generators seeded
// differently for chronyd's and gnomond's relays, and alike in every
// round: over the second half of a 15-minute run gnomond's exchanges
// through the 30 %-loss relays had their way out longer than the way back
// by 10 µs in the mean, chronyd's by −2 µs, the same in every round
// (docs/accuracy.md, "The path asymmetry traced").
//
// The delay counts from the kernel's receive timestamp, and the relay must
// be as late on the way out as on the way back. A first version, Go's
// netpoller and timers, was not: on this loaded 2-core machine a relay
// idle for seconds woke up for the request hundreds of µs late, while the
// reply, ~100 µs after its last send, found it awake — the way out was
// 100 µs longer than the way back in the median (up to milliseconds), a
// path asymmetry every client reads as a +50 µs offset. Now each direction
// is one OS thread at real-time priority (SCHED_FIFO, when allowed) that
// blocks in recvmsg, sleeps in nanosleep until relayWake before the due
// time and spins the rest; the lateness of every datagram is counted per
// direction (dirStats) so that a run shows the two were alike. They were
// not: requests were late more often than replies (on this 2-vCPU
// machine, 14 % of requests against 8 % of replies more than 50 µs late,
// tails to milliseconds; likely a thread woken after seconds of quiet
// waits longer for a CPU than one woken ~150 µs after activity on the same
// path), and an exact client reads half the difference as an offset. With MaxLate set the
// relay makes each exchange symmetric by construction: a request's
// lateness is added to its reply's delay (the way back waits as long
// extra as the way out was late), and a reply that would still leave more
// than MaxLate after its due time is dropped (dirStats.dropped).
type relay struct {
	lnFD, upFD int
	listen     netip.AddrPort
	cfg        relayConfig
	mu         sync.Mutex
	rng        *rand.Rand    // the exchanges' fates, under mu
	spare      *rand.Rand    // a reply nobody asked for (a duplicate), under mu
	back       backDraw      // the pending request's reply, under mu
	client     unix.Sockaddr // the newest client, under mu
	st         [2]dirStats   // [0] to the server, [1] to the client
	requests   atomic.Int64
	realtime   atomic.Int32                                  // threads that got SCHED_FIFO
	trace      func(toServer bool, at time.Time, pkt []byte) // every datagram received, with its kernel time
	wg         sync.WaitGroup
}

// relayConfig is one relay's path.
type relayConfig struct {
	Base, Jitter time.Duration // each way: Base + Exp(mean Jitter)
	Loss         float64       // probability of losing a datagram, each way
	Shift        time.Duration // falseticker: the server's clock seems this far ahead
	Seed         uint64
	// MaxLate, when not zero, delays each reply by its request's
	// lateness as well and drops a reply that would leave more than this
	// after its due time (relayMaxLate).
	MaxLate time.Duration
}

// backDraw is the fate a request drew for its reply.
type backDraw struct {
	delay      time.Duration
	extra      time.Duration // the request's lateness, with MaxLate
	lost, want bool
}

// relayMaxLate: a reply the relay could not send within this of its due
// time is dropped rather than sent late (the bench's MaxLate).
const relayMaxLate = 50 * time.Microsecond

// relayThreads counts the relays' threads: each needs a Go P to run on
// when it wakes up, and with GOMAXPROCS at the machine's 2 cores two
// spinning relays held both while a third waited (a p99 lateness of 16
// ms), so GOMAXPROCS grows with them.
var relayThreads atomic.Int32

// relayWake is how long before a datagram's due time its thread stops
// sleeping and starts spinning.
const relayWake = 300 * time.Microsecond

// dirStats is one direction's record: datagrams relayed and lost, and how
// late each left after its due time.
type dirStats struct {
	relayed, lost int64
	dropped       int64 // later than MaxLate: not sent
	late          []time.Duration
}

func startRelay(t *testing.T, ctx context.Context, listen netip.Addr, server netip.AddrPort, cfg relayConfig, trace func(toServer bool, at time.Time, pkt []byte)) *relay {
	t.Helper()
	sock := func() int {
		fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
		if err != nil {
			t.Fatal(err)
		}
		_ = unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_TIMESTAMPNS, 1)
		// recvmsg wakes up to look at ctx this often
		tv := unix.NsecToTimeval(int64(100 * time.Millisecond))
		_ = unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv)
		return fd
	}
	if want := int(relayThreads.Add(2)) + 4; runtime.GOMAXPROCS(0) < want {
		runtime.GOMAXPROCS(want)
	}
	r := &relay{lnFD: sock(), upFD: sock(), cfg: cfg, rng: rand.New(rand.NewPCG(cfg.Seed, 7)),
		spare: rand.New(rand.NewPCG(cfg.Seed, 8)), trace: trace}
	if err := unix.Bind(r.lnFD, &unix.SockaddrInet4{Addr: listen.As4()}); err != nil {
		t.Fatalf("relay: bind %v: %v", listen, err)
	}
	if err := unix.Connect(r.upFD, &unix.SockaddrInet4{Addr: server.Addr().As4(), Port: int(server.Port())}); err != nil {
		t.Fatalf("relay: connect %v: %v", server, err)
	}
	sa, err := unix.Getsockname(r.lnFD)
	if err != nil {
		t.Fatal(err)
	}
	r.listen = netip.AddrPortFrom(listen, uint16(sa.(*unix.SockaddrInet4).Port))
	rctx, cancel := context.WithCancel(ctx)
	t.Cleanup(func() {
		cancel()
		r.wg.Wait()
		unix.Close(r.lnFD)
		unix.Close(r.upFD)
	})
	r.wg.Add(2)
	go r.forward(rctx, true)
	go r.forward(rctx, false)
	return r
}

func dirIndex(toServer bool) int {
	if toServer {
		return 0
	}
	return 1
}

func (r *relay) addr() netip.AddrPort { return r.listen }

// draw decides, under the lock, whether a datagram is lost and its delay:
// a request draws its reply's fate too (always four numbers, so that two
// relays seeded alike stay in step exchange by exchange), a reply takes
// what its request drew.
func (r *relay) draw(toServer bool) (time.Duration, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	st := &r.st[dirIndex(toServer)]
	one := func(g *rand.Rand) (time.Duration, bool) {
		lost := r.cfg.Loss > 0 && g.Float64() < r.cfg.Loss
		return r.cfg.Base + time.Duration(g.ExpFloat64()*float64(r.cfg.Jitter)), lost
	}
	var d time.Duration
	var lost bool
	switch {
	case toServer:
		d, lost = one(r.rng)
		var b backDraw
		b.delay, b.lost = one(r.rng)
		b.want = !lost
		r.back = b
	case r.back.want:
		d, lost = r.back.delay+r.back.extra, r.back.lost
		r.back = backDraw{}
	default:
		d, lost = one(r.spare)
	}
	if lost {
		st.lost++
		return 0, true
	}
	st.relayed++
	return d, false
}

// stats is a copy of one direction's record.
func (r *relay) stats(toServer bool) dirStats {
	r.mu.Lock()
	defer r.mu.Unlock()
	st := r.st[dirIndex(toServer)]
	st.late = slices.Clone(st.late)
	return st
}

// forward relays one direction until ctx ends, on its own OS thread (which
// dies with it: it may have a real-time priority). One datagram is held at
// a time — an NTP client has one request out, a server one reply — and a
// datagram that came meanwhile keeps its kernel receive time, so its due
// time does not move.
func (r *relay) forward(ctx context.Context, toServer bool) {
	defer r.wg.Done()
	runtime.LockOSThread() // never unlocked: the thread ends with the goroutine
	if unix.SchedSetAttr(0, &unix.SchedAttr{Policy: unix.SCHED_FIFO, Priority: 1}, 0) == nil {
		r.realtime.Add(1)
	}
	from, to := r.upFD, r.lnFD
	if toServer {
		from, to = r.lnFD, r.upFD
	}
	buf := make([]byte, 2048)
	oob := make([]byte, 128)
	for ctx.Err() == nil {
		n, oobn, _, sa, err := unix.Recvmsg(from, buf, oob, 0)
		if err != nil {
			continue // the receive timeout (EAGAIN), EINTR, ICMP errors
		}
		at, ok := kernelRx(oob[:oobn])
		if !ok {
			at = time.Now()
		}
		if toServer {
			r.mu.Lock()
			r.client = sa
			r.mu.Unlock()
			r.requests.Add(1)
		}
		if r.trace != nil {
			r.trace(toServer, at, buf[:n])
		}
		d, lost := r.draw(toServer)
		if lost {
			continue
		}
		pkt := buf[:n]
		if r.cfg.Shift != 0 {
			ntpshift.Shift(pkt, toServer, r.cfg.Shift)
		}
		due := at.Add(d)
		for w := time.Until(due) - relayWake; w > 0; w = time.Until(due) - relayWake {
			ts := unix.NsecToTimespec(int64(w))
			_ = unix.Nanosleep(&ts, nil)
		}
		for time.Now().Before(due) {
		}
		late := time.Since(due)
		if r.cfg.MaxLate > 0 {
			r.mu.Lock()
			drop := false
			if toServer {
				if r.back.want {
					r.back.extra = late
				}
			} else if late > r.cfg.MaxLate {
				r.st[1].dropped++
				drop = true
			}
			r.mu.Unlock()
			if drop {
				continue
			}
		}
		if toServer {
			_, _ = unix.Write(to, pkt)
		} else {
			r.mu.Lock()
			c := r.client
			r.mu.Unlock()
			if c != nil {
				_ = unix.Sendto(to, pkt, 0, c)
			}
		}
		r.mu.Lock()
		st := &r.st[dirIndex(toServer)]
		st.late = append(st.late, late)
		r.mu.Unlock()
		if r.trace != nil {
			r.trace(toServer, time.Now(), nil)
		}
	}
}

// kernelRx is the SCM_TIMESTAMPNS receive time in oob, if any.
func kernelRx(oob []byte) (time.Time, bool) {
	msgs, err := unix.ParseSocketControlMessage(oob)
	if err != nil {
		return time.Time{}, false
	}
	for _, m := range msgs {
		if m.Header.Level == unix.SOL_SOCKET && m.Header.Type == unix.SO_TIMESTAMPNS && len(m.Data) >= 16 {
			ts := *(*unix.Timespec)(unsafe.Pointer(&m.Data[0]))
			return time.Unix(ts.Unix()), true
		}
	}
	return time.Time{}, false
}

// TestRelayComparison is a bounded version of issue 18's real-time
// comparison (make bench-relay; minutes of real time, so `go test` skips it
// unless GNOMON_BENCH_RELAY=1): four chronyd servers, and a chronyd -x and
// a gnomond --observe, each a client of all four through its own relays
// with identically distributed delays (RELAY_BASE plus exponential
// RELAY_JITTER each way, as issue 18's runs, RELAY_LOSS of the datagrams lost
// each way), each serving its corrected clock. Every RELAY_EVERY their
// served time is measured against the system clock both share (true offset
// zero, up to the query's own few µs); the RMS, mean and spread over the
// last 40 % of RELAY_DURATION are printed with the requests each sent per
// server and the relays' lateness. RELAY_GNOMOND_SOURCE adds lines to
// gnomond's [[source]] tables ("xleave = false"), RELAY_TRACE=FILE writes
// every datagram gnomond's relays saw (relay, direction, kernel time, origin,
// receive, transmit) and copies gnomond's log to FILE.gnomond.log. It fails
// only when gnomond's RMS is more than twice chronyd's plus 5 µs.
// make bench-accuracy (accuracy_bench_test.go) is the full comparison.
func TestRelayComparison(t *testing.T) {
	if os.Getenv("GNOMON_BENCH_RELAY") == "" {
		t.Skip("set GNOMON_BENCH_RELAY=1 (make bench-relay): minutes of real time")
	}
	peers.NeedRoot(t, rootFor)
	relayQuiet(t)
	env := func(k string, def time.Duration) time.Duration {
		if v := os.Getenv(k); v != "" {
			d, err := time.ParseDuration(v)
			if err != nil {
				t.Fatalf("%s=%q: %v", k, v, err)
			}
			return d
		}
		return def
	}
	dur := env("RELAY_DURATION", 10*time.Minute)
	base, jitter := env("RELAY_BASE", 100*time.Microsecond), env("RELAY_JITTER", 50*time.Microsecond)
	every := env("RELAY_EVERY", 5*time.Second)
	loss := 0.0
	if v := os.Getenv("RELAY_LOSS"); v != "" {
		f, err := strconv.ParseFloat(v, 64)
		if err != nil || f < 0 || f >= 1 {
			t.Fatalf("RELAY_LOSS=%q: want a fraction in [0, 1)", v)
		}
		loss = f
	}
	minPoll, maxPoll := 4, 6
	if v := os.Getenv("RELAY_POLL"); v != "" {
		// "min,max" as log2 seconds, for both daemons
		if _, err := fmt.Sscanf(v, "%d,%d", &minPoll, &maxPoll); err != nil {
			t.Fatalf("RELAY_POLL=%q: want min,max (log2 s)", v)
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	dir := peers.TempDir(t, 0o777)

	var servers []*peers.Chronyd
	for i := range 4 {
		servers = append(servers, peers.StartChronydAt(t, dir, netip.AddrFrom4([4]byte{127, 0, 0, byte(21 + i)}), peers.FreePort(t)))
	}
	var cRelays, gRelays []*relay
	var traceMu sync.Mutex
	var traceF *os.File
	if p := os.Getenv("RELAY_TRACE"); p != "" {
		f, err := os.Create(p)
		if err != nil {
			t.Fatal(err)
		}
		traceF = f
		t.Cleanup(func() { f.Close() })
	}
	tracer := func(i int) func(bool, time.Time, []byte) {
		if traceF == nil {
			return nil
		}
		return func(toServer bool, at time.Time, b []byte) {
			traceMu.Lock()
			defer traceMu.Unlock()
			if len(b) < 48 {
				fmt.Fprintf(traceF, "%d,S%v,%d,0,0,0\n", i, toServer, at.UnixNano())
				return
			}
			fmt.Fprintf(traceF, "%d,%v,%d,%x,%x,%x\n", i, toServer, at.UnixNano(),
				binary.BigEndian.Uint64(b[24:]), binary.BigEndian.Uint64(b[32:]), binary.BigEndian.Uint64(b[40:]))
		}
	}
	for i, s := range servers {
		// chronyd tells sources apart by address: each relay has its own.
		cRelays = append(cRelays, startRelay(t, ctx, netip.AddrFrom4([4]byte{127, 0, 0, byte(31 + i)}), s.AddrPort(), relayConfig{Base: base, Jitter: jitter, Loss: loss, Seed: uint64(i + 1), MaxLate: relayMaxLate}, nil))
		gRelays = append(gRelays, startRelay(t, ctx, netip.AddrFrom4([4]byte{127, 0, 0, byte(41 + i)}), s.AddrPort(), relayConfig{Base: base, Jitter: jitter, Loss: loss, Seed: uint64(i + 1), MaxLate: relayMaxLate}, tracer(i)))
	}

	// chronyd -x, serving on 127.0.0.2.
	cPort := peers.FreePort(t)
	tag := "chronyd-client-" + strconv.Itoa(cPort)
	conf := filepath.Join(dir, tag+".conf")
	var lines []string
	for _, r := range cRelays {
		lines = append(lines, fmt.Sprintf("server %s port %d minpoll %d maxpoll %d iburst", r.addr().Addr(), r.addr().Port(), minPoll, maxPoll))
	}
	lines = append(lines, "port "+strconv.Itoa(cPort), "bindaddress 127.0.0.2", "allow 127.0.0.0/8",
		"cmdport 0", "bindcmdaddress /", "pidfile "+filepath.Join(dir, tag+".pid"))
	if err := os.WriteFile(conf, []byte(strings.Join(lines, "\n")+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	peers.Start(t, dir, tag, nil, peers.Safe(t, peers.NeedTool(t, "chronyd"), "-4", "-x", "-d", "-f", conf)...)

	// gnomond --observe, serving on 127.0.0.3.
	gPort := peers.FreePort(t)
	var tables []string
	for _, r := range gRelays {
		tables = append(tables, fmt.Sprintf("[[source]]\nmode = \"server\"\naddress = %q\npoll-interval-limits = { min = %d, max = %d }\n%s",
			r.addr().String(), minPoll, maxPoll, os.Getenv("RELAY_GNOMOND_SOURCE")))
	}
	gAddr := netip.MustParseAddrPort(fmt.Sprintf("127.0.0.3:%d", gPort))
	tables = append(tables, "[synchronization]\naccuracy = 0.00001\n", serverTable(gAddr.String(), "rate-limit = { interval = 0 }"))
	g := startGnomond(t, dir, observeConfig(tables...), gnomondOpts{})
	if p := os.Getenv("RELAY_TRACE"); p != "" {
		t.Cleanup(func() {
			if b, err := os.ReadFile(g.Log); err == nil {
				_ = os.WriteFile(p+".gnomond.log", b, 0o644)
			}
		})
	}
	cAddr := netip.MustParseAddrPort(fmt.Sprintf("127.0.0.2:%d", cPort))

	cl := peers.NewNTPClient(t, "127.0.0.1")
	measure := func(ap netip.AddrPort) (time.Duration, bool) {
		best, bestDelay := time.Duration(0), time.Duration(-1)
		for range 4 {
			off, delay, h, err := cl.Measure(ap, 500*time.Millisecond)
			if err != nil || h.Stratum == 0 || h.Stratum >= 16 {
				continue
			}
			if bestDelay < 0 || delay < bestDelay {
				best, bestDelay = off, delay
			}
		}
		return best, bestDelay >= 0
	}
	var cOff, gOff []time.Duration
	from := time.Now().Add(dur * 6 / 10)
	end := time.Now().Add(dur)
	for time.Now().Before(end) {
		time.Sleep(every)
		if time.Now().Before(from) {
			continue
		}
		if o, ok := measure(cAddr); ok {
			cOff = append(cOff, o)
		}
		if o, ok := measure(gAddr); ok {
			gOff = append(gOff, o)
		}
	}
	stat := func(v []time.Duration) (rms, mean, lo, hi time.Duration) {
		if len(v) == 0 {
			return -1, 0, 0, 0
		}
		var s, s2 float64
		for _, x := range v {
			s += float64(x)
			s2 += float64(x) * float64(x)
		}
		n := float64(len(v))
		return time.Duration(math.Sqrt(s2 / n)), time.Duration(s / n), slices.Min(v), slices.Max(v)
	}
	reqs := func(rs []*relay) string {
		var out []string
		for _, r := range rs {
			out = append(out, strconv.FormatInt(r.requests.Load(), 10))
		}
		return strings.Join(out, "/")
	}
	cr, cm, clo, chi := stat(cOff)
	gr, gm, glo, ghi := stat(gOff)
	t.Logf("relay %v + exp %v each way, loss %.0f%%, poll %d..%d, %v (last 40%%, every %v):", base, jitter, loss*100, minPoll, maxPoll, dur, every)
	t.Logf("  chronyd -x:        RMS %v, mean %v, range %v … %v, %d points, requests per server %s", cr, cm, clo, chi, len(cOff), reqs(cRelays))
	t.Logf("  gnomond --observe: RMS %v, mean %v, range %v … %v, %d points, requests per server %s", gr, gm, glo, ghi, len(gOff), reqs(gRelays))
	all := append(slices.Clone(cRelays), gRelays...)
	o50, o99 := lateness(all, true)
	b50, b99 := lateness(all, false)
	t.Logf("  relay lateness: out p50 %v p99 %v, back p50 %v p99 %v; real-time threads %d", o50, o99, b50, b99, all[0].realtime.Load())
	if cr < 0 || gr < 0 {
		t.Fatalf("no measurements (chronyd %d, gnomond %d)", len(cOff), len(gOff))
	}
	if gr > 2*cr+5*time.Microsecond {
		t.Errorf("gnomond's RMS %v is more than twice chronyd's %v plus 5 µs", gr, cr)
	}
}

// TestRelaySameExchanges: two relays seeded alike give their clients' n-th
// exchanges the same fate (lost or not, the delay each way), whatever else
// one of them saw: a reply nobody asked for.
func TestRelaySameExchanges(t *testing.T) {
	cfg := relayConfig{Base: 100 * time.Microsecond, Jitter: 50 * time.Microsecond, Loss: 0.3, Seed: 42}
	mk := func() *relay {
		return &relay{cfg: cfg, rng: rand.New(rand.NewPCG(cfg.Seed, 7)), spare: rand.New(rand.NewPCG(cfg.Seed, 8))}
	}
	a, b := mk(), mk()
	type fate struct {
		out, back         time.Duration
		outLost, backLost bool
	}
	exchange := func(r *relay, extraReply bool) fate {
		var f fate
		f.out, f.outLost = r.draw(true)
		if !f.outLost {
			f.back, f.backLost = r.draw(false)
		}
		if extraReply {
			r.draw(false) // a duplicate, or a reply to a request it lost
		}
		return f
	}
	lost, same := 0, 0
	for n := range 200 {
		fa, fb := exchange(a, false), exchange(b, n%7 == 3)
		if fa != fb {
			t.Fatalf("exchange %d: %+v through one relay, %+v through the other", n, fa, fb)
		}
		if fa.outLost || fa.backLost {
			lost++
		}
		if !fa.outLost && !fa.backLost && fa.out == fa.back {
			same++
		}
	}
	if lost < 80 || lost > 125 {
		t.Errorf("%d of 200 exchanges lost at 30 %% each way (51 %% expected)", lost)
	}
	if same > 0 {
		t.Errorf("%d exchanges with equal delays both ways: the two are not drawn apart", same)
	}
}
