//go:build linux && (amd64 || arm64)

package seccomp_test

import (
	"bufio"
	"context"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"gnomon.dev/gnomon/engine/ntp"
	"gnomon.dev/gnomon/engine/sample"
	"gnomon.dev/gnomon/service/config"
	"gnomon.dev/gnomon/service/daemon"
	"gnomon.dev/gnomon/service/seccomp"
	"gnomon.dev/gnomon/service/sysclock"
	"gnomon.dev/gnomon/tests/peers"
)

// workloadChild runs gnomond's daemon on the configuration the parent
// wrote, installs Default once the daemon is ready, with Kill as the
// action so that any call outside the list ends the process, and keeps
// serving until SIGTERM. On the way it drives the paths the parent cannot
// reach from outside: the SetNTP state file and adjtimex reads.
func workloadChild() int {
	cfg, err := config.Load(os.Getenv("GNOMON_SECCOMP_CONFIG"), config.Options{})
	if err != nil {
		fmt.Println("config:", err)
		return 1
	}
	ready := make(chan struct{})
	var once sync.Once
	notify := func(state string) error {
		fmt.Printf("notify %s\n", strings.ReplaceAll(state, "\n", " | "))
		if strings.Contains(state, "READY=1") {
			once.Do(func() { close(ready) })
		}
		return nil
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
	d, err := daemon.New(daemon.Options{Config: cfg, Logger: log, Notify: notify, StateDir: os.Getenv("GNOMON_SECCOMP_DIR")})
	if err != nil {
		fmt.Println("daemon:", err)
		return 1
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	errc := make(chan error, 1)
	go func() { errc <- d.Run(ctx) }()
	select {
	case <-ready:
	case err := <-errc:
		fmt.Println("stopped before ready:", err)
		return 1
	}
	p := seccomp.Default
	p.Action = seccomp.Kill
	if err := seccomp.Install(p); err != nil {
		fmt.Println("install:", err)
		return 1
	}
	fmt.Println("installed")
	// SetNTP writes and removes a file in the state directory.
	for _, on := range []bool{false, true} {
		if err := d.SetNTP(ctx, on); err != nil {
			fmt.Println("SetNTP:", err)
			return 1
		}
	}
	sys, err := sysclock.NewSystem()
	if err == nil {
		_, err = sys.KernelStatus()
	}
	if err != nil {
		fmt.Println("adjtimex:", err)
		return 1
	}
	fmt.Println("exercised")
	err = <-errc
	fmt.Printf("stopped %v\n", err)
	if err != nil {
		return 1
	}
	return 0
}

func inCI() bool { return os.Getenv("CI") == "true" }

func skipOrFatal(t *testing.T, format string, args ...any) {
	t.Helper()
	msg := fmt.Sprintf(format, args...)
	if inCI() {
		t.Fatalf("%s (CI=true: this may not be skipped)", msg)
	}
	t.Skip(msg)
}

func tool(t *testing.T, name string) string {
	t.Helper()
	if p, err := exec.LookPath(name); err == nil {
		return p
	}
	for _, dir := range []string{"/usr/sbin", "/sbin"} {
		if p := filepath.Join(dir, name); fileExists(p) {
			return p
		}
	}
	skipOrFatal(t, "%s is not installed", name)
	return ""
}

func fileExists(p string) bool { _, err := os.Stat(p); return err == nil }

// freeUDPPort is a free port on 127.0.0.1 outside the kernel's ephemeral
// range, so that no client socket opened meanwhile (this machine runs other
// tests and benchmarks) takes it before chronyd or the daemon binds it.
func freeUDPPort(t *testing.T) int { return peers.FreePort(t) }

// query sends one NTPv4 client request to 127.0.0.1:port.
func query(port int, timeout time.Duration) (ntp.Header, error) {
	conn, err := net.DialUDP("udp4", nil, &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: port})
	if err != nil {
		return ntp.Header{}, err
	}
	defer conn.Close()
	tx := ntp.TimestampFromTime(time.Now())
	req := ntp.Header{Version: 4, Mode: ntp.ModeClient, TransmitTime: tx}
	b := make([]byte, 512)
	if _, err := req.MarshalTo(b); err != nil {
		return ntp.Header{}, err
	}
	if _, err := conn.Write(b[:ntp.HeaderLen]); err != nil {
		return ntp.Header{}, err
	}
	if err := conn.SetReadDeadline(time.Now().Add(timeout)); err != nil {
		return ntp.Header{}, err
	}
	for {
		n, err := conn.Read(b)
		if err != nil {
			return ntp.Header{}, err
		}
		var p ntp.Packet
		if ntp.Parse(b[:n], &p) == nil && p.OriginTime == tx && p.Mode == ntp.ModeServer {
			return p.Header, nil
		}
	}
}

// proc is a started process whose stdout lines arrive on a channel.
type proc struct {
	cmd  *exec.Cmd
	done chan struct{}
	err  error
	mu   sync.Mutex
	all  []string
}

func start(t *testing.T, env []string, argv ...string) *proc {
	t.Helper()
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Env = append(os.Environ(), env...)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = cmd.Stdout
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p := &proc{cmd: cmd, done: make(chan struct{})}
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			p.mu.Lock()
			p.all = append(p.all, sc.Text())
			p.mu.Unlock()
		}
		p.err = cmd.Wait()
		close(p.done)
	}()
	t.Cleanup(func() {
		select {
		case <-p.done:
		default:
			_ = cmd.Process.Kill()
			<-p.done
		}
	})
	return p
}

func (p *proc) output() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return strings.Join(p.all, "\n")
}

// waitLine waits until the process has printed a line for which match
// is true (at any time since it started) and returns it.
func (p *proc) waitLine(t *testing.T, timeout time.Duration, what string, match func(string) bool) string {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		p.mu.Lock()
		for _, l := range p.all {
			if match(l) {
				p.mu.Unlock()
				return l
			}
		}
		p.mu.Unlock()
		select {
		case <-p.done:
			t.Fatalf("process ended (%v) before %s:\n%s", p.err, what, p.output())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("no %s within %v:\n%s", what, timeout, p.output())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestWorkloadUnderFilter runs the daemon under Default with Kill as the
// action: it synchronizes to a chronyd -x on loopback, serves a client,
// writes and removes its state file, reads the kernel clock state and
// shuts down cleanly, all after the filter is on. Both processes run
// without CAP_SYS_TIME.
func TestWorkloadUnderFilter(t *testing.T) {
	if os.Geteuid() != 0 {
		skipOrFatal(t, "needs root to start chronyd")
	}
	chronyd := tool(t, "chronyd")
	setpriv := tool(t, "setpriv")
	safe := []string{setpriv, "--bounding-set=-sys_time", "--inh-caps=-sys_time"}

	dir, err := os.MkdirTemp("", "gnomon-seccomp-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil { // chronyd drops to _chrony
		t.Fatal(err)
	}
	upPort, srvPort := freeUDPPort(t), freeUDPPort(t)
	for upPort == srvPort {
		srvPort = freeUDPPort(t)
	}
	chronyConf := filepath.Join(dir, "chrony.conf")
	if err := os.WriteFile(chronyConf, []byte(fmt.Sprintf(
		"port %d\nbindaddress 127.0.0.1\nallow 127.0.0.1\nlocal stratum 1\ncmdport 0\nbindcmdaddress /\npidfile %s\n",
		upPort, filepath.Join(dir, "chronyd.pid"))), 0o644); err != nil {
		t.Fatal(err)
	}
	up := start(t, nil, append(safe, chronyd, "-x", "-d", "-f", chronyConf)...)
	for deadline := time.Now().Add(15 * time.Second); ; {
		h, err := query(upPort, 300*time.Millisecond)
		if err == nil && h.Stratum == 1 && h.Leap != sample.LeapUnsync {
			break
		}
		select {
		case <-up.done:
			t.Fatalf("chronyd exited: %v\n%s", up.err, up.output())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("chronyd did not serve within 15 s: %v\n%s", err, up.output())
		}
	}

	cfgPath := filepath.Join(dir, "gnomon.toml")
	cfg := fmt.Sprintf(`[clock]
mode = "observe"
drift-file = ""

# The test installs the filter itself, in Kill mode, once the daemon is
# ready: any syscall outside the list then ends the process.
[security]
seccomp = false

[[source]]
mode = "server"
address = "127.0.0.1:%d"
poll-interval-limits = { min = 0, max = 2 }

[[server]]
listen = "127.0.0.1:%d"
rate-limit = { interval = 0 }
`, upPort, srvPort)
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	state := filepath.Join(dir, "state")
	if err := os.Mkdir(state, 0o755); err != nil {
		t.Fatal(err)
	}
	g := start(t, []string{childEnv + "=workload", "GNOMON_SECCOMP_CONFIG=" + cfgPath, "GNOMON_SECCOMP_DIR=" + state},
		append(safe, os.Args[0], "-test.run=^$")...)

	g.waitLine(t, 10*time.Second, "the filter installed", func(l string) bool { return l == "installed" })
	peer := fmt.Sprintf("127.0.0.1:%d", upPort)
	sync := g.waitLine(t, 20*time.Second, "synchronization to "+peer, func(l string) bool {
		return strings.HasPrefix(l, "notify ") && strings.Contains(l, "STATUS=synchronized to "+peer)
	})
	g.waitLine(t, 10*time.Second, "the state file and adjtimex paths", func(l string) bool { return l == "exercised" })
	var h ntp.Header
	for range 3 { // UDP: allow a lost datagram
		if h, err = query(srvPort, 2*time.Second); err == nil {
			break
		}
	}
	if err != nil {
		t.Fatalf("gnomond under the filter does not serve: %v\n%s", err, g.output())
	}
	t.Logf("under the filter: %s; reply stratum %d, reference %#x", strings.TrimPrefix(sync, "notify "), h.Stratum, h.ReferenceID)
	if h.Stratum != 2 || h.Leap == sample.LeapUnsync {
		t.Errorf("reply stratum %d leap %v, want a synchronized stratum 2", h.Stratum, h.Leap)
	}
	if fileExists(filepath.Join(state, "ntp-disabled")) {
		t.Error("SetNTP(true) under the filter left the state file behind")
	}

	if err := g.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case <-g.done:
	case <-time.After(10 * time.Second):
		t.Fatalf("gnomond did not stop on SIGTERM:\n%s", g.output())
	}
	if g.err != nil {
		t.Fatalf("gnomond under the filter ended with %v (SIGSYS means a call outside the list):\n%s", g.err, g.output())
	}
	out := g.output()
	for _, want := range []string{"notify STOPPING=1", "stopped <nil>"} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
}
