package tests

import (
	"context"
	"crypto/x509"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"gnomon.dev/gnomon/service/ntsio"
	"gnomon.dev/gnomon/tests/peers"
)

// hnFlood holds about n idle TCP connections from `from` to addr, each
// reopened as soon as the server closes it, until stop is closed; it
// returns how many connections it opened.
func hnFlood(t *testing.T, from, addr string, n int, stop <-chan struct{}) (opened *atomic.Int64, wait func()) {
	t.Helper()
	opened = new(atomic.Int64)
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(from)}, Timeout: 2 * time.Second}
	var wg sync.WaitGroup
	for range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			buf := make([]byte, 512)
			for {
				select {
				case <-stop:
					return
				default:
				}
				c, err := d.Dial("tcp", addr)
				if err != nil {
					select {
					case <-stop:
						return
					case <-time.After(10 * time.Millisecond):
					}
					continue
				}
				opened.Add(1)
				// Idle: send nothing, wait for the server to hang up.
				go func() { <-stop; c.Close() }()
				c.SetReadDeadline(time.Now().Add(30 * time.Second))
				for {
					if _, err := c.Read(buf); err != nil {
						break
					}
				}
				c.Close()
			}
		}()
	}
	return opened, wg.Wait
}

// TestNTSKEFloodFairness (issue 11, item 1): one address holding ~500 idle
// connections to gnomond's NTS-KE server, reopened as the server closes
// them, must not shut out clients from other addresses: at least 95 % of
// honest key exchanges from 127.0.0.1 succeed during the flood, both a
// plain Go TLS client and chronyd's NTS client (chronyd -Q), and gnomond
// logs the flooding address.
func TestNTSKEFloodFairness(t *testing.T) {
	peers.NeedRoot(t, rootFor)
	chronyd := peers.NeedTool(t, "chronyd")
	dir := peers.TempDir(t, 0o777)
	cert, key := ntsCert(t, dir)
	up := peers.StartChronyd(t, dir, peers.FreePort(t), "")
	ntpPort, kePort := peers.FreePort(t), peers.FreePort(t)
	ke := fmt.Sprintf("[[nts-ke-server]]\nlisten = \"127.0.0.1:%d\"\ncertificate-chain-path = %q\nprivate-key-path = %q\n", kePort, cert, key)
	g := startGnomond(t, dir, observeConfig(sourceTable(up.Port), serverTable(peers.Loop4(ntpPort).String(), "rate-limit = { interval = 0 }"), ke), gnomondOpts{})
	waitSynced(t, g, peers.Loop4(up.Port).String(), 15*time.Second)

	pem, err := os.ReadFile(cert)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(pem)
	keAddr := net.JoinHostPort("127.0.0.1", strconv.Itoa(kePort))
	cfg := ntsio.ClientConfig{Address: keAddr, RootCAs: pool, Timeout: 5 * time.Second}
	if _, err := ntsio.KeyExchange(context.Background(), cfg); err != nil {
		t.Fatalf("key exchange before the flood: %v", err)
	}

	stop := make(chan struct{})
	opened, waitFlood := hnFlood(t, "127.0.0.2", keAddr, 500, stop)
	stopped := false
	stopFlood := func() {
		if !stopped {
			stopped = true
			close(stop)
			waitFlood()
		}
	}
	defer stopFlood()
	time.Sleep(2 * time.Second) // let the flood fill whatever it can

	// Honest clients, side by side during the flood: a Go TLS client every
	// 400 ms, and chronyd -Q runs back to back.
	const goRuns, chronydRuns = 40, 8
	var goOK, chOK atomic.Int64
	var goErrs, chErrs []string
	var mu sync.Mutex
	var wg sync.WaitGroup
	wg.Add(2)
	go func() {
		defer wg.Done()
		for range goRuns {
			start := time.Now()
			if _, err := ntsio.KeyExchange(context.Background(), cfg); err != nil {
				mu.Lock()
				goErrs = append(goErrs, err.Error())
				mu.Unlock()
			} else {
				goOK.Add(1)
			}
			time.Sleep(max(0, 400*time.Millisecond-time.Since(start)))
		}
	}()
	go func() {
		defer wg.Done()
		argv := peers.Safe(t, chronyd, "-Q", "-x", "-t", "10", "-f", "/dev/null",
			"server 127.0.0.1 port "+strconv.Itoa(ntpPort)+" iburst nts ntsport "+strconv.Itoa(kePort)+" maxsamples 1",
			"ntstrustedcerts "+cert)
		for range chronydRuns {
			out, err := exec.Command(argv[0], argv[1:]...).CombinedOutput()
			if err == nil && wrongByRE.Match(out) {
				chOK.Add(1)
				continue
			}
			mu.Lock()
			chErrs = append(chErrs, fmt.Sprintf("%v: %s", err, strings.TrimSpace(string(out))))
			mu.Unlock()
		}
	}()
	wg.Wait()
	flooded := opened.Load()
	stopFlood()

	t.Logf("flood from 127.0.0.2: %d connections opened; honest key exchanges from 127.0.0.1: Go TLS %d/%d, chronyd -Q %d/%d",
		flooded, goOK.Load(), goRuns, chOK.Load(), chronydRuns)
	if goOK.Load()*100 < 95*goRuns {
		t.Errorf("Go TLS client: %d of %d key exchanges succeeded during the flood, want at least 95 %%; errors: %q", goOK.Load(), goRuns, hnFirst(goErrs, 5))
	}
	if chOK.Load()*100 < 95*chronydRuns {
		t.Errorf("chronyd -Q: %d of %d NTS queries succeeded during the flood, want at least 95 %%; errors: %q", chOK.Load(), chronydRuns, hnFirst(chErrs, 3))
	}
	if flooded < 500 {
		t.Errorf("the flood opened only %d connections: no test", flooded)
	}
	log, _ := os.ReadFile(g.Log)
	if !strings.Contains(string(log), "NTS-KE: refusing connections from an address") || !strings.Contains(string(log), "address=127.0.0.2") {
		t.Errorf("gnomond's log does not name the flooding address 127.0.0.2")
	}
	if strings.Contains(string(log), "address=127.0.0.1 ") {
		t.Errorf("gnomond refused the honest address 127.0.0.1")
	}
	// Afterwards the server is whole.
	if _, err := ntsio.KeyExchange(context.Background(), cfg); err != nil {
		t.Errorf("key exchange after the flood: %v", err)
	}
	if !g.Alive() {
		t.Error("gnomond died")
	}
}

func hnFirst(s []string, n int) []string { return s[:min(len(s), n)] }

// TestNTSClientBackAfterOutage (issue 11, item 1, the client side): a
// gnomond NTS client whose key-exchange server is down at first (refusing
// connections for 20 s, long enough for a backoff of 16 s, 32 s, ... to
// grow) is back within three of its longest poll intervals once the server
// answers again, and then synchronizes to it.
func TestNTSClientBackAfterOutage(t *testing.T) {
	peers.NeedRoot(t, rootFor)
	t.Parallel()
	dir := peers.TempDir(t, 0o777)
	cert, key := ntsCert(t, dir)
	up := peers.StartChronyd(t, dir, peers.FreePort(t), "")
	ntpPort, kePort := peers.FreePort(t), peers.FreePort(t)
	const maxPoll = 2 // log2 s
	src := fmt.Sprintf("[[source]]\nmode = \"nts\"\naddress = \"127.0.0.1:%d\"\ncertificate-authority = %q\npoll-interval-limits = { min = 0, max = %d }\n", kePort, cert, maxPoll)
	client := startGnomond(t, dir, observeConfig(src), gnomondOpts{})

	const outage = 20 * time.Second
	time.Sleep(outage)
	if n := strings.Count(hnLog(t, client), "NTS key exchange failed"); n == 0 {
		t.Fatalf("no failed key exchange logged during the outage")
	}
	if strings.Contains(hnLog(t, client), "NTS key exchange done") {
		t.Fatal("a key exchange succeeded with the server down")
	}

	ke := fmt.Sprintf("[[nts-ke-server]]\nlisten = \"127.0.0.1:%d\"\ncertificate-chain-path = %q\nprivate-key-path = %q\n", kePort, cert, key)
	server := startGnomond(t, dir, observeConfig(sourceTable(up.Port), serverTable(peers.Loop4(ntpPort).String(), "rate-limit = { interval = 0 }"), ke), gnomondOpts{})
	keAddr := net.JoinHostPort("127.0.0.1", strconv.Itoa(kePort))
	peers.Eventually(t, 10*time.Second, "the NTS-KE server accepting", func() error {
		c, err := net.DialTimeout("tcp", keAddr, time.Second)
		if err == nil {
			c.Close()
		}
		return err
	})
	back := time.Now()
	bound := 3 * (time.Second << maxPoll)
	peers.Eventually(t, bound, "the client's key exchange after the server came back", func() error {
		if !strings.Contains(hnLog(t, client), "NTS key exchange done") {
			return fmt.Errorf("no key exchange yet (%v after the server came back)", time.Since(back).Round(time.Millisecond))
		}
		return nil
	})
	t.Logf("key exchange done %v after the server came back (bound: 3 polls of %v)", time.Since(back).Round(time.Millisecond), time.Second<<maxPoll)
	waitSynced(t, server, peers.Loop4(up.Port).String(), 20*time.Second)
	waitSynced(t, client, peers.Loop4(ntpPort).String(), 30*time.Second)
}

// hnLog is a daemon's log so far.
func hnLog(t *testing.T, g *gnomond) string {
	t.Helper()
	b, err := os.ReadFile(g.Log)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
