package ptp

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"gnomon.dev/gnomon/tests/peers"
)

// TestBenchPTP is make bench-ptp: gnomond and ptp4l as slaves of the same
// ptp4l master (two ports of one clock, equal veth links) at the same
// time for GNOMON_PTP_BENCH_SECONDS (default 120) at GNOMON_PTP_BENCH_SYNC
// (log2 s, default -3: eight Syncs a second); it prints the offset and
// path-delay statistics of both, their ratio, and the CPU time per second
// and RSS of both daemons. Speed and accuracy figures, no bounds: it only
// runs when GNOMON_PTP_BENCH=1.
func TestBenchPTP(t *testing.T) {
	if os.Getenv("GNOMON_PTP_BENCH") != "1" {
		t.Skip("set GNOMON_PTP_BENCH=1 (make bench-ptp)")
	}
	secs, _ := strconv.Atoi(os.Getenv("GNOMON_PTP_BENCH_SECONDS"))
	if secs <= 0 {
		secs = 120
	}
	sync := os.Getenv("GNOMON_PTP_BENCH_SYNC")
	if sync == "" {
		sync = "-3"
	}
	tag, dir := setup(t)
	m, g, p := netns(t, tag, "m"), netns(t, tag, "g"), netns(t, tag, "p")
	link(t, tag, m, "m0", "10.78.0.1/24", g, "g0", "10.78.0.2/24")
	link(t, tag, m, "m1", "10.78.1.1/24", p, "p0", "10.78.1.2/24")
	peers.Start(t, dir, "ptp4l-master", nil, safeIn(t, m, append([]string{"ptp4l", "-i", "m0", "-i", "m1",
		"--masterOnly", "1", "--uds_address", dir + "/m.sock", "--logSyncInterval", sync,
		"--logMinDelayReqInterval", sync}, ptp4lFlags("udp4", "E2E")...)...)...)
	slave := peers.Start(t, dir, "ptp4l-slave", nil, safeIn(t, p, append([]string{"ptp4l", "-i", "p0", "-s",
		"--uds_address", dir + "/s.sock", "--summary_interval", sync}, ptp4lFlags("udp4", "E2E")...)...)...)
	gn := startGnomond(t, dir, g, "gnomond", gnomondHead+"[[source]]\nmode = \"ptp\"\ninterface = \"g0\"\ntimestamping = \"software\"\n")

	warm := 30 * time.Second
	time.Sleep(warm)
	nG0, nP0 := len(gnomondMeasurements(t, gn)), len(func() []float64 { o, _ := ptp4lOffsets(t, slave); return o }())
	cpuG0, cpuP0 := cpuTicks(t, gn), cpuTicks(t, slave)
	start := time.Now()
	time.Sleep(time.Duration(secs) * time.Second)
	elapsed := time.Since(start).Seconds()
	cpuG, cpuP := cpuTicks(t, gn)-cpuG0, cpuTicks(t, slave)-cpuP0
	ms := gnomondMeasurements(t, gn)[nG0:]
	var raw, dly []float64
	for _, x := range ms {
		raw = append(raw, float64(x.RawOffsetNS))
		dly = append(dly, float64(x.PathDelayNS))
	}
	po, pd := ptp4lOffsets(t, slave)
	po, pd = po[nP0:], pd[nP0:]
	for i := range po {
		po[i] = -po[i]
	}
	gs, ps := statsOf(raw, dly), statsOf(po, pd)
	const hz = 100 // USER_HZ
	row := func(name string, s stats, ticks int64, proc *peers.Proc) string {
		return fmt.Sprintf("| %s | %d | %+.0f | %.0f | %.0f | %.0f | %.0f | %.2f | %s |", name, s.N, s.Mean, s.RMS, s.Max,
			s.DelayMean, s.DelayJitt, 1000*float64(ticks)/hz/elapsed, rss(t, proc))
	}
	t.Logf("%d s after %v of warm-up, Sync and Delay_Req every 2^%s s, UDPv4 E2E, software timestamps:", secs, warm, sync)
	t.Log("| slave | samples | mean offset (ns) | RMS (ns) | max (ns) | path delay (ns) | path delay sd (ns) | CPU (ms/s) | RSS |")
	t.Log("|---|---|---|---|---|---|---|---|---|")
	t.Log(row("gnomond", gs, cpuG, gn))
	t.Log(row("ptp4l", ps, cpuP, slave))
	if ps.RMS > 0 {
		t.Logf("ratio gnomond/ptp4l: offset RMS %.2f, path delay sd %.2f", gs.RMS/ps.RMS, gs.DelayJitt/max(ps.DelayJitt, 1))
	}
}

func cpuTicks(t testing.TB, p *peers.Proc) int64 {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", p.Cmd.Process.Pid))
	if err != nil {
		t.Fatal(err)
	}
	f := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+2:]))
	u, _ := strconv.ParseInt(f[11], 10, 64)
	s, _ := strconv.ParseInt(f[12], 10, 64)
	return u + s
}

func rss(t testing.TB, p *peers.Proc) string {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", p.Cmd.Process.Pid))
	if err != nil {
		return "?"
	}
	for _, l := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(l, "VmRSS:") {
			return strings.Join(strings.Fields(l)[1:], " ")
		}
	}
	return "?"
}
