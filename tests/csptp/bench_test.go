package csptp

import (
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	eptp "gnomon.dev/gnomon/engine/ptp"
	"gnomon.dev/gnomon/tests/peers"
)

// load sends SPTP Delay_Reqs to 10.77.0.1:319 from `conns` sockets, each
// keeping `window` exchanges in flight, for d, and returns the Syncs
// answered per second.
func load(t testing.TB, cli string, conns, window int, d time.Duration) float64 {
	t.Helper()
	var answered atomic.Int64
	var wg sync.WaitGroup
	dst := &net.UDPAddr{IP: net.IPv4(10, 77, 0, 1), Port: 319}
	for c := range conns {
		var conn *net.UDPConn
		peers.InNetnsDo(t, cli, func() {
			var err error
			conn, err = net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(10, 77, 0, 2)})
			if err != nil {
				t.Error(err)
			}
		})
		if conn == nil {
			t.FailNow()
		}
		defer conn.Close()
		wg.Add(1)
		go func() {
			defer wg.Done()
			id := eptp.ClockIdentity{0x02, byte(c), 0, 0xff, 0xfe, 0, 0, byte(c)}
			buf := make([]byte, eptp.MaxLen)
			rb := make([]byte, 2048)
			end := time.Now().Add(d)
			var seq uint16
			for time.Now().Before(end) {
				for range window {
					seq++
					m := eptp.DelayReq{Header: eptp.Header{Flags: eptp.FlagUnicast | eptp.FlagProfile1, Sequence: seq,
						Source: eptp.PortIdentity{Clock: id, Port: 11}, LogInterval: 0x7f}}
					n, _ := m.MarshalTo(buf)
					conn.WriteToUDP(buf[:n], dst)
				}
				got := 0
				conn.SetReadDeadline(time.Now().Add(50 * time.Millisecond))
				for got < window {
					n, _, err := conn.ReadFromUDP(rb)
					if err != nil {
						break
					}
					if h, err := eptp.ParseHeader(rb[:n]); err == nil && h.Type == eptp.MsgSync {
						got++
						answered.Add(1)
					}
				}
			}
		}()
	}
	wg.Wait()
	return float64(answered.Load()) / d.Seconds()
}

func cpuSeconds(t testing.TB, p *peers.Proc) float64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", p.Cmd.Process.Pid))
	if err != nil {
		return 0
	}
	f := splitStat(string(b))
	if len(f) < 15 {
		return 0
	}
	u, _ := strconv.ParseFloat(f[13], 64)
	s, _ := strconv.ParseFloat(f[14], 64)
	return (u + s) / 100
}

func splitStat(s string) []string {
	// the command name may hold spaces: fields start after the last ')'
	i := len(s) - 1
	for i >= 0 && s[i] != ')' {
		i--
	}
	out := []string{"pid", "comm"}
	field := ""
	for _, r := range s[i+2:] {
		if r == ' ' {
			out = append(out, field)
			field = ""
			continue
		}
		field += string(r)
	}
	return append(out, field)
}

// TestBenchCSPTP (GNOMON_CSPTP_BENCH=1, make bench-csptp): SPTP exchanges
// per second that gnomond's [[csptp-server]] and ptp4u answer on the same
// veth link with the same load (8 clients, 32 exchanges in flight each),
// two workers each, software timestamps, no rate limit.
func TestBenchCSPTP(t *testing.T) {
	if os.Getenv("GNOMON_CSPTP_BENCH") != "1" {
		t.Skip("a benchmark: GNOMON_CSPTP_BENCH=1 (make bench-csptp)")
	}
	d := 10 * time.Second
	results := map[string][2]float64{}
	run := func(name string, start func(dir, srv string) *peers.Proc) {
		t.Run(name, func(t *testing.T) {
			srv, cli := pair(t)
			dir := peers.TempDir(t, 0o755)
			p := start(dir, srv)
			time.Sleep(time.Second)
			load(t, cli, 8, 32, time.Second) // warm-up
			c0 := cpuSeconds(t, p)
			rate := load(t, cli, 8, 32, d)
			cpu := (cpuSeconds(t, p) - c0) / d.Seconds()
			results[name] = [2]float64{rate, cpu}
			t.Logf("%s: %.0f exchanges/s, %.2f CPU", name, rate, cpu)
		})
	}
	run("gnomond", func(dir, srv string) *peers.Proc {
		return startGnomond(t, dir, srv, "server", "[[csptp-server]]\nlisten = \"10.77.0.1\"\nclock-class = 6\nrate-limit = { interval = 0 }\nworkers = 2\n")
	})
	run("ptp4u", func(dir, srv string) *peers.Proc {
		bin := fbtool(t, "ptp4u")
		cfg := filepath.Join(dir, "ptp4u.yaml")
		os.WriteFile(cfg, []byte("clockaccuracy: 33\nclockclass: 6\ndraininterval: \"30s\"\nmaxsubduration: \"1h\"\nmetricinterval: \"1m\"\nminsubinterval: \"1s\"\nutcoffset: \"37s\"\n"), 0o644)
		return peers.Start(t, dir, "ptp4u", nil, safeIn(t, srv, bin, "-iface", "srv0", "-ip", "10.77.0.1", "-timestamptype", "software",
			"-config", cfg, "-pidfile", filepath.Join(dir, "ptp4u.pid"), "-drainfile", filepath.Join(dir, "drain"),
			"-undrainfile", filepath.Join(dir, "undrain"), "-monitoringport", "0", "-workers", "2", "-recvworkers", "2", "-loglevel", "error")...)
	})
	if g, p := results["gnomond"], results["ptp4u"]; p[0] > 0 {
		t.Logf("gnomond/ptp4u: %.2f× the exchanges/s, %.2f× the CPU per exchange", g[0]/p[0], (g[1]/g[0])/(p[1]/p[0]))
	}
}
