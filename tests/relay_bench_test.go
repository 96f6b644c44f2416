package tests

import (
	"context"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"

	"gnomon.dev/gnomon/tests/peers"
)

// relay is a userspace UDP relay between one client and one server that
// delays each datagram by Base plus an exponentially distributed extra
// (mean Jitter) in each direction, and loses a fraction Loss of requests:
// the same path for chronyd and gnomond, which this kernel's missing netem
// cannot give. The delay counts from the kernel's receive timestamp, not
// from when the relay woke up: a relay idle for seconds wakes up tens of
// µs slower than one that just sent, which made the way out longer than
// the way back by 10–20 µs.
type relay struct {
	ln       *net.UDPConn // the client sends here
	up       *net.UDPConn // connected to the server
	client   atomic.Pointer[net.UDPAddr]
	base     time.Duration
	jitter   time.Duration
	loss     float64
	mu       sync.Mutex
	rng      *rand.Rand
	requests atomic.Int64
	out      chan queued
}

// queued is a datagram waiting for its delay to pass.
type queued struct {
	due      time.Time
	toServer bool
	pkt      []byte
}

func startRelay(t *testing.T, ctx context.Context, listen netip.Addr, server netip.AddrPort, base, jitter time.Duration, loss float64, seed uint64) *relay {
	t.Helper()
	ln, err := net.ListenUDP("udp4", net.UDPAddrFromAddrPort(netip.AddrPortFrom(listen, 0)))
	if err != nil {
		t.Fatal(err)
	}
	up, err := net.DialUDP("udp4", nil, net.UDPAddrFromAddrPort(server))
	if err != nil {
		t.Fatal(err)
	}
	r := &relay{ln: ln, up: up, base: base, jitter: jitter, loss: loss, rng: rand.New(rand.NewPCG(seed, 7)),
		out: make(chan queued, 64)}
	t.Cleanup(func() { ln.Close(); up.Close() })
	go r.pump(ctx, true)
	go r.pump(ctx, false)
	go r.send(ctx)
	return r
}

// send releases each datagram at its due time: Go's timers may fire late
// by up to a millisecond here, so it sleeps to just before and then
// spins (a few hundred µs per datagram, a few datagrams a second).
func (r *relay) send(ctx context.Context) {
	for {
		var q queued
		select {
		case <-ctx.Done():
			return
		case q = <-r.out:
		}
		if d := time.Until(q.due); d > 500*time.Microsecond {
			time.Sleep(d - 500*time.Microsecond)
		}
		for time.Now().Before(q.due) {
		}
		if q.toServer {
			_, _ = r.up.Write(q.pkt)
		} else if c := r.client.Load(); c != nil {
			_, _ = r.ln.WriteToUDP(q.pkt, c)
		}
	}
}

func (r *relay) addr() netip.AddrPort { return r.ln.LocalAddr().(*net.UDPAddr).AddrPort() }

func (r *relay) delay() (time.Duration, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	lost := r.rng.Float64() < r.loss
	return r.base + time.Duration(r.rng.ExpFloat64()*float64(r.jitter)), lost
}

func (r *relay) pump(ctx context.Context, toServer bool) {
	buf := make([]byte, 2048)
	oob := make([]byte, 128)
	conn := r.up
	if toServer {
		conn = r.ln
	}
	if rc, err := conn.SyscallConn(); err == nil {
		_ = rc.Control(func(fd uintptr) { _ = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_TIMESTAMPNS, 1) })
	}
	for ctx.Err() == nil {
		n, oobn, _, from, err := conn.ReadMsgUDP(buf, oob)
		now := time.Now()
		if err == nil {
			if at, ok := kernelRx(oob[:oobn]); ok {
				now = at
			}
			if toServer {
				r.client.Store(from)
				r.requests.Add(1)
			}
		}
		if errors.Is(err, net.ErrClosed) {
			return
		}
		if err != nil {
			continue
		}
		d, lost := r.delay()
		if lost && toServer {
			continue
		}
		r.out <- queued{due: now.Add(d), toServer: toServer, pkt: slices.Clone(buf[:n])}
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
// RELAY_JITTER each way, as issue 18's runs, RELAY_LOSS of requests lost), each
// serving its corrected clock. Every RELAY_EVERY their served time is
// measured against the system clock both share (true offset zero, up to
// the query's own few µs); the RMS, mean and spread over the last 40 % of
// RELAY_DURATION are printed with the requests each sent per server. It
// fails only when gnomond's RMS is more than twice chronyd's plus 5 µs.
func TestRelayComparison(t *testing.T) {
	if os.Getenv("GNOMON_BENCH_RELAY") == "" {
		t.Skip("set GNOMON_BENCH_RELAY=1 (make bench-relay): minutes of real time")
	}
	peers.NeedRoot(t, rootFor)
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
	for i, s := range servers {
		// chronyd tells sources apart by address: each relay has its own.
		cRelays = append(cRelays, startRelay(t, ctx, netip.AddrFrom4([4]byte{127, 0, 0, byte(31 + i)}), s.AddrPort(), base, jitter, loss, uint64(2*i+1)))
		gRelays = append(gRelays, startRelay(t, ctx, netip.AddrFrom4([4]byte{127, 0, 0, byte(41 + i)}), s.AddrPort(), base, jitter, loss, uint64(2*i+2)))
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
		tables = append(tables, fmt.Sprintf("[[source]]\nmode = \"server\"\naddress = %q\npoll-interval-limits = { min = %d, max = %d }\n",
			r.addr().String(), minPoll, maxPoll))
	}
	gAddr := netip.MustParseAddrPort(fmt.Sprintf("127.0.0.3:%d", gPort))
	tables = append(tables, "[synchronization]\naccuracy = 0.00001\n", serverTable(gAddr.String(), "rate-limit = { interval = 0 }"))
	startGnomond(t, dir, observeConfig(tables...), gnomondOpts{})
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
	if cr < 0 || gr < 0 {
		t.Fatalf("no measurements (chronyd %d, gnomond %d)", len(cOff), len(gOff))
	}
	if gr > 2*cr+5*time.Microsecond {
		t.Errorf("gnomond's RMS %v is more than twice chronyd's %v plus 5 µs", gr, cr)
	}
}
