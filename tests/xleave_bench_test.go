package tests

import (
	"fmt"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"gnomon.dev/gnomon/tests/peers"
)

// TestBenchXleave is make bench-xleave (skipped unless
// GNOMON_BENCH=xleave): how much the interleaved mode gains where transmit
// timestamps matter. gnomond serves (xleave = true, one worker) while
// ntpload keeps it busy at several rates, and two chronyd -x clients
// measure it at 16 Hz, one in the interleaved mode, one in the basic mode.
// Both ends are this machine's clock, so every measured offset is error.
// It prints, per load, the median and the 95th percentile of |offset|
// for each mode; it asserts only that both modes measured.
func TestBenchXleave(t *testing.T) {
	if os.Getenv("GNOMON_BENCH") != "xleave" {
		t.Skip("a benchmark: run make bench-xleave")
	}
	peers.NeedRoot(t, rootFor)
	chronyd := peers.NeedTool(t, "chronyd")
	dir := peers.TempDir(t, 0o777)
	load := peers.Build(t, dir, "./tests/ntpload")
	srvPort := peers.FreePort(t)
	startGnomond(t, dir, observeConfig("[synchronization]\nlocal-stratum = 1\n",
		serverTable(peers.Loop4(srvPort).String(), "xleave = true", "workers = 1")), gnomondOpts{})
	dur := 20 * time.Second
	if s := os.Getenv("DURATION"); s != "" {
		if d, err := time.ParseDuration(s); err == nil {
			dur = d
		}
	}
	fmt.Printf("%-12s %-12s %8s %14s %14s\n", "load req/s", "mode", "samples", "median |off|", "p95 |off|")
	for _, rate := range []int{0, 20000, 60000} {
		var loadCmd *exec.Cmd
		if rate > 0 {
			loadCmd = exec.Command(load, "-target", peers.Loop4(srvPort).String(), "-rate", strconv.Itoa(rate),
				"-duration", (dur + 5*time.Second).String(), "-label", "load")
			if err := loadCmd.Start(); err != nil {
				t.Fatal(err)
			}
		}
		res := map[string][]float64{}
		logs := map[string]string{}
		var procs []*peers.Proc
		for _, mode := range []string{"interleaved", "basic"} {
			tag := fmt.Sprintf("bx-%s-%d", mode, rate)
			logdir := filepath.Join(dir, tag)
			if err := os.MkdirAll(logdir, 0o777); err != nil {
				t.Fatal(err)
			}
			_ = os.Chmod(logdir, 0o777)
			opt := ""
			if mode == "interleaved" {
				opt = " xleave"
			}
			conf := filepath.Join(dir, tag+".conf")
			lines := []string{"server 127.0.0.1 port " + strconv.Itoa(srvPort) + " minpoll -4 maxpoll -4" + opt,
				"cmdport 0", "bindcmdaddress /", "port 0", "pidfile " + filepath.Join(dir, tag+".pid"),
				"log measurements", "logdir " + logdir}
			if err := os.WriteFile(conf, []byte(strings.Join(lines, "\n")+"\n"), 0o644); err != nil {
				t.Fatal(err)
			}
			procs = append(procs, peers.Start(t, dir, tag, nil, peers.Safe(t, chronyd, "-x", "-d", "-f", conf)...))
			logs[mode] = filepath.Join(logdir, "measurements.log")
		}
		time.Sleep(dur)
		for _, p := range procs {
			p.Stop()
		}
		if loadCmd != nil {
			_ = loadCmd.Process.Kill()
			_ = loadCmd.Wait()
		}
		for mode, path := range logs {
			b, _ := os.ReadFile(path)
			for _, l := range strings.Split(string(b), "\n") {
				f := strings.Fields(l)
				if len(f) < 19 || !strings.Contains(l, "127.0.0.1") {
					continue
				}
				m := f[len(f)-3]
				if (mode == "interleaved") != strings.HasSuffix(m, "I") {
					continue
				}
				if off, err := strconv.ParseFloat(f[11], 64); err == nil {
					res[mode] = append(res[mode], math.Abs(off))
				}
			}
		}
		for _, mode := range []string{"interleaved", "basic"} {
			v := res[mode]
			if len(v) < 10 {
				t.Errorf("load %d: only %d %s measurements", rate, len(v), mode)
				continue
			}
			slices.Sort(v)
			fmt.Printf("%-12d %-12s %8d %12.1fµs %12.1fµs\n", rate, mode, len(v), v[len(v)/2]*1e6, v[len(v)*95/100]*1e6)
		}
	}
}
