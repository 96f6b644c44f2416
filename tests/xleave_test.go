package tests

import (
	"encoding/binary"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"gnomon.dev/gnomon/tests/peers"
)

// xleaveWatch counts, on the wire, client requests in the interleaved
// format and the answers that complete them interleaved (origin = the
// request's receive field).
type xleaveWatch struct {
	mu                  sync.Mutex
	lastRecv            uint64 // receive field of the newest interleaved request
	requests, responses int
}

func (w *xleaveWatch) look(toServer bool, b []byte) {
	if len(b) < 48 {
		return
	}
	origin, recv, xmt := binary.BigEndian.Uint64(b[24:]), binary.BigEndian.Uint64(b[32:]), binary.BigEndian.Uint64(b[40:])
	w.mu.Lock()
	defer w.mu.Unlock()
	switch {
	case toServer && b[0]&7 == 3 && origin != 0 && recv != xmt:
		w.requests++
		w.lastRecv = recv
	case !toServer && b[0]&7 == 4 && origin != 0 && origin == w.lastRecv:
		w.responses++
	}
}

func (w *xleaveWatch) counts() (int, int) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.requests, w.responses
}

// waitInterleaved waits (bounded) for n interleaved answers through w.
func waitInterleaved(t *testing.T, w *xleaveWatch, n int, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		req, resp := w.counts()
		if resp >= n {
			t.Logf("%d interleaved requests, %d interleaved answers", req, resp)
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("after %v: %d interleaved requests, %d interleaved answers; want %d answers", timeout, req, resp, n)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// gnomond (observe) with xleave = true against chronyd 4.3: chronyd answers
// interleaved, and gnomond synchronizes on those answers.
func TestGnomondXleaveClientOfChronyd(t *testing.T) {
	peers.NeedRoot(t, rootFor)
	t.Parallel()
	dir := peers.TempDir(t, 0o777)
	up := peers.StartChronyd(t, dir, peers.FreePort(t), "")
	w := &xleaveWatch{}
	port := spyRelay(t, up.Port, w.look)
	g := startGnomond(t, dir, observeConfig(fmt.Sprintf("[[source]]\nmode = \"server\"\naddress = \"127.0.0.1:%d\"\n"+
		"poll-interval-limits = { min = -1, max = -1 }\nxleave = true\n", port)), gnomondOpts{})
	waitSynced(t, g, peers.Loop4(port).String(), 20*time.Second)
	// Once the clock filter holds only interleaved samples, the offset is
	// the measurement of this machine's clock against itself.
	// The engine asks for the mode once its frequency is known well
	// enough (engine/system InterleavedMaxPoll): some seconds in.
	waitInterleaved(t, w, 16, 45*time.Second)
	lines := syncedLines(g)
	st := lines[len(lines)-1]
	if abs(st.offset) >= maxOffset {
		t.Errorf("offset %v, want under %v (every status: %+v)", st.offset, maxOffset, lines)
	}
}

// chronyd -x with xleave as a client of gnomond's server (xleave = true):
// gnomond answers interleaved, and chronyd's measurement log shows it took
// them as interleaved (mode I).
func TestChronydXleaveClientOfGnomond(t *testing.T) {
	peers.NeedRoot(t, rootFor)
	t.Parallel()
	bin := peers.NeedTool(t, "chronyd")
	dir := peers.TempDir(t, 0o777)
	srvPort := peers.FreePort(t)
	startGnomond(t, dir, observeConfig("[synchronization]\nlocal-stratum = 2\n",
		serverTable(peers.Loop4(srvPort).String(), "xleave = true")), gnomondOpts{})
	w := &xleaveWatch{}
	port := spyRelay(t, srvPort, w.look)
	logdir := filepath.Join(dir, "chrony-xleave-log")
	if err := os.MkdirAll(logdir, 0o777); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(logdir, 0o777); err != nil {
		t.Fatal(err)
	}
	conf := filepath.Join(dir, "chrony-xleave.conf")
	lines := []string{
		"server 127.0.0.1 port " + strconv.Itoa(port) + " minpoll -2 maxpoll -2 xleave iburst",
		"cmdport 0", "bindcmdaddress /", "port 0",
		"pidfile " + filepath.Join(dir, "chrony-xleave.pid"),
		"log measurements", "logdir " + logdir,
	}
	if err := os.WriteFile(conf, []byte(strings.Join(lines, "\n")+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	peers.Start(t, dir, "chronyd-xleave-client", nil, peers.Safe(t, bin, "-x", "-d", "-f", conf)...)
	waitInterleaved(t, w, 4, 30*time.Second)

	// chronyd logs each measurement; the last three fields are version
	// and mode, local TX and RX timestamp sources ("4I K K": NTPv4,
	// interleaved, kernel, kernel).
	deadline := time.Now().Add(15 * time.Second)
	for {
		b, _ := os.ReadFile(filepath.Join(logdir, "measurements.log"))
		n, last := 0, ""
		for _, l := range strings.Split(string(b), "\n") {
			f := strings.Fields(l)
			if len(f) > 3 && strings.HasSuffix(f[len(f)-3], "I") && strings.Contains(l, "127.0.0.1") {
				n++
				last = l
				// Offset (field 12): the same clock on both ends, known
				// to within half the round trip (field 13) when a loaded
				// machine stretches that beyond maxOffset.
				bound := maxOffset.Seconds()
				if dl, err := strconv.ParseFloat(f[12], 64); err == nil {
					bound = math.Max(bound, dl/2)
				}
				if off, err := strconv.ParseFloat(f[11], 64); err != nil || math.Abs(off) >= bound {
					t.Fatalf("chronyd measured gnomond at offset %q (%v), want under %v s:\n%s", f[11], err, bound, l)
				}
			}
		}
		if n >= 2 {
			t.Logf("chronyd logged %d interleaved measurements; the last:\n%s", n, last)
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("chronyd logged no interleaved measurement of gnomond:\n%s", b)
		}
		time.Sleep(200 * time.Millisecond)
	}
}
