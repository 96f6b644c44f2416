package main

// Real-peer tests: chronyd and ntpdig must accept the answers that
// engine/ntp.Respond builds, and the capture tool must read a real chronyd
// server's reply. They need root (the daemons are started without
// CAP_SYS_TIME through setpriv, which needs CAP_SETPCAP, and ntpdig only
// talks to port 123, so it runs in a network namespace of its own). When a
// peer or root is missing they skip, except under CI=true, where they fail.

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

const runMainEnv = "NTPCAPTURE_TEST_RUN_MAIN"

// TestMain lets the tests run this program as a child process (inside a
// network namespace where needed) by re-executing the test binary.
func TestMain(m *testing.M) {
	if os.Getenv(runMainEnv) == "1" {
		main()
		os.Exit(0)
	}
	os.Exit(m.Run())
}

func need(t *testing.T, what string, ok bool) {
	t.Helper()
	if ok {
		return
	}
	if os.Getenv("CI") == "true" {
		t.Fatalf("%s is required under CI=true", what)
	}
	t.Skipf("%s not available", what)
}

func lookPath(t *testing.T, names ...string) []string {
	t.Helper()
	paths := make([]string, len(names))
	for i, n := range names {
		p, err := exec.LookPath(n)
		need(t, n, err == nil)
		paths[i] = p
	}
	need(t, "root", os.Geteuid() == 0)
	return paths
}

// noClock runs argv without CAP_SYS_TIME, so no clock can be set or slewed.
func noClock(argv ...string) []string {
	return append([]string{"setpriv", "--bounding-set=-sys_time", "--inh-caps=-sys_time"}, argv...)
}

// tool is this program running as a child.
type tool struct {
	cmd   *exec.Cmd
	lines chan string
	addr  string
}

// startTool runs the program with args, prefixed by prefix (e.g. ip netns
// exec NS), and waits for its "# listening on" line.
func startTool(t *testing.T, ctx context.Context, prefix []string, args ...string) *tool {
	t.Helper()
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	argv := append(append(prefix, self), args...)
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	cmd.Env = append(os.Environ(), runMainEnv+"=1")
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	tl := &tool{cmd: cmd, lines: make(chan string, 100)}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	})
	go func() {
		defer close(tl.lines)
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			tl.lines <- sc.Text()
		}
	}()
	select {
	case line := <-tl.lines:
		addr, ok := strings.CutPrefix(line, "# listening on ")
		if !ok {
			t.Fatalf("tool said %q", line)
		}
		tl.addr = addr
	case <-ctx.Done():
		t.Fatal("tool did not start")
	}
	return tl
}

// rest collects the tool's remaining output after it exits.
func (tl *tool) rest(t *testing.T) string {
	t.Helper()
	var sb strings.Builder
	for line := range tl.lines {
		sb.WriteString(line + "\n")
	}
	if err := tl.cmd.Wait(); err != nil {
		t.Errorf("tool: %v\n%s", err, sb.String())
	}
	return sb.String()
}

func TestChronydAcceptsRespond(t *testing.T) {
	bins := lookPath(t, "chronyd", "setpriv")
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	tl := startTool(t, ctx, nil, "listen", "-count", "1", "-timeout", "15s", "-answer", "-stratum", "2", "127.0.0.1:0")
	port := tl.addr[strings.LastIndexByte(tl.addr, ':')+1:]
	cmd := exec.CommandContext(ctx, "setpriv", noClock(bins[0], "-x", "-Q", "-t", "10", "-f", "/dev/null",
		"server 127.0.0.1 port "+port+" iburst maxsamples 1")[1:]...)
	out, err := cmd.CombinedOutput()
	if err != nil || !strings.Contains(string(out), "System clock wrong by") {
		t.Fatalf("chronyd -Q did not take a sample from Respond's answer: %v\n%s", err, out)
	}
	got := tl.rest(t)
	if !strings.Contains(got, "mode=client") || !strings.Contains(got, "\nreply 24") {
		t.Errorf("tool output:\n%s", got)
	}
}

func TestNtpdigAcceptsRespond(t *testing.T) {
	bins := lookPath(t, "ntpdig", "ip", "setpriv")
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	ns := fmt.Sprintf("gnomon-ntpcap-%d-%d", os.Getpid(), rand.IntN(1e6))
	if out, err := exec.CommandContext(ctx, bins[1], "netns", "add", ns).CombinedOutput(); err != nil {
		t.Fatalf("ip netns add: %v: %s", err, out)
	}
	t.Cleanup(func() {
		if out, err := exec.Command(bins[1], "netns", "del", ns).CombinedOutput(); err != nil {
			t.Errorf("ip netns del %s: %v: %s", ns, err, out)
		}
	})
	if out, err := exec.CommandContext(ctx, bins[1], "-n", ns, "link", "set", "lo", "up").CombinedOutput(); err != nil {
		t.Fatalf("lo up: %v: %s", err, out)
	}
	inNS := []string{bins[1], "netns", "exec", ns}
	tl := startTool(t, ctx, inNS, "listen", "-count", "1", "-timeout", "15s", "-answer", "-stratum", "3", "-refid", "GNMN", "127.0.0.1:123")
	out, err := exec.CommandContext(ctx, bins[1], "netns", "exec", ns, bins[0], "-j", "127.0.0.1").Output()
	if err != nil {
		t.Fatalf("ntpdig: %v\n%s", err, out)
	}
	var res struct {
		Stratum int    `json:"stratum"`
		Leap    string `json:"leap"`
		Offset  float64
	}
	if err := json.Unmarshal(out, &res); err != nil {
		t.Fatalf("ntpdig output %q: %v", out, err)
	}
	if res.Stratum != 3 || res.Leap != "no-leap" || res.Offset > 0.1 || res.Offset < -0.1 {
		t.Errorf("ntpdig saw %+v (%s)", res, out)
	}
	if got := tl.rest(t); !strings.Contains(got, "\nreply 24") {
		t.Errorf("tool output:\n%s", got)
	}
}

func TestQueryChronydServer(t *testing.T) {
	bins := lookPath(t, "chronyd", "setpriv")
	dir := t.TempDir()
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	var chronyd *exec.Cmd
	var port int
	// chronyd cannot be handed port 0: try a few random high ports.
	for attempt := 0; attempt < 5 && chronyd == nil; attempt++ {
		port = 20000 + rand.IntN(40000)
		conf := filepath.Join(dir, "chrony.conf")
		err := os.WriteFile(conf, []byte(fmt.Sprintf(
			"port %d\nbindaddress 127.0.0.1\nallow 127.0.0.1\nlocal stratum 3\ncmdport 0\npidfile %s\n",
			port, filepath.Join(dir, "chronyd.pid"))), 0o644)
		if err != nil {
			t.Fatal(err)
		}
		cmd := exec.CommandContext(ctx, "setpriv", noClock(bins[0], "-x", "-d", "-u", "root", "-f", conf)[1:]...)
		logf, err := os.Create(filepath.Join(dir, fmt.Sprintf("chronyd-%d.log", attempt)))
		if err != nil {
			t.Fatal(err)
		}
		cmd.Stdout, cmd.Stderr = logf, logf
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		done := make(chan struct{})
		go func() { _ = cmd.Wait(); close(done) }()
		select {
		case <-done: // failed to start (port taken?)
			logf.Close()
			continue
		case <-time.After(500 * time.Millisecond):
		}
		chronyd = cmd
		t.Cleanup(func() {
			_ = cmd.Process.Kill()
			<-done
			logf.Close()
		})
	}
	if chronyd == nil {
		t.Fatal("chronyd did not start")
	}
	// The local reference takes a moment to become active: retry.
	var out strings.Builder
	var err error
	for i := 0; i < 20; i++ {
		out.Reset()
		err = runQuery(ctx, []string{"-timeout", "1s", fmt.Sprintf("127.0.0.1:%d", port)}, &out)
		if err == nil && strings.Contains(out.String(), "# check: ok") {
			break
		}
		time.Sleep(250 * time.Millisecond)
	}
	if err != nil {
		t.Fatalf("query: %v\n%s", err, out.String())
	}
	for _, want := range []string{"mode=server", "stratum=3", "version=4", "refid=7f7f0101", "# check: ok"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("output lacks %q:\n%s", want, out.String())
		}
	}
}
