package tests

// Helpers for the integration tests: building gnomond, starting real peers
// (chronyd, gnomond itself) without CAP_SYS_TIME, network namespaces, the
// sd_notify socket gnomond reports to, and a small NTP client built from
// engine/ntp.

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"math/big"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"gnomon.dev/gnomon/engine/ntp"
	"gnomon.dev/gnomon/engine/sample"
)

// gnomondBin is the daemon built once by TestMain.
var gnomondBin string

func TestMain(m *testing.M) {
	os.Exit(runMain(m))
}

func runMain(m *testing.M) int {
	dir, err := os.MkdirTemp("", "gnomon-h-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "tests:", err)
		return 1
	}
	defer os.RemoveAll(dir)
	// Daemons run as root but chronyd drops to _chrony: keep everything
	// the tests make traversable.
	if err := os.Chmod(dir, 0o755); err != nil {
		fmt.Fprintln(os.Stderr, "tests:", err)
		return 1
	}
	gnomondBin = filepath.Join(dir, "gnomond")
	goTool, err := exec.LookPath("go")
	if err != nil {
		goTool = "/usr/local/go/bin/go"
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	build := exec.CommandContext(ctx, goTool, "build", "-o", gnomondBin, "./cmd/gnomond")
	build.Dir = ".." // the module root
	if out, err := build.CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "tests: building gnomond: %v\n%s", err, out)
		return 1
	}
	return m.Run()
}

// inCI reports whether missing peers and privileges are failures.
func inCI() bool { return os.Getenv("CI") == "true" }

// skipOrFatal skips outside CI and fails under CI=true.
func skipOrFatal(t *testing.T, format string, args ...any) {
	t.Helper()
	msg := fmt.Sprintf(format, args...)
	if inCI() {
		t.Fatalf("%s (CI=true: this may not be skipped)", msg)
	}
	t.Skip(msg)
}

// needRoot: setpriv, network namespaces and chronyd's privilege drop need root.
func needRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		skipOrFatal(t, "needs root (setpriv, netns, chronyd)")
	}
}

// needTool returns the path of an installed peer program.
func needTool(t *testing.T, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		// sbin is not always on a test's PATH.
		for _, dir := range []string{"/usr/sbin", "/sbin", "/usr/bin"} {
			if _, serr := os.Stat(filepath.Join(dir, name)); serr == nil {
				return filepath.Join(dir, name)
			}
		}
		skipOrFatal(t, "peer %s is not installed: %v", name, err)
	}
	return p
}

// safe is the prefix that starts a time daemon without CAP_SYS_TIME, so
// that anything it tries on CLOCK_REALTIME fails with EPERM.
func safe(t *testing.T, argv ...string) []string {
	t.Helper()
	return append([]string{needTool(t, "setpriv"), "--bounding-set=-sys_time", "--inh-caps=-sys_time"}, argv...)
}

// inNetns prefixes argv with `ip netns exec ns` when ns is not "".
func inNetns(t *testing.T, ns string, argv []string) []string {
	t.Helper()
	if ns == "" {
		return argv
	}
	return append([]string{needTool(t, "ip"), "netns", "exec", ns}, argv...)
}

// tempDir is a scratch directory that chronyd (user _chrony) can use.
func tempDir(t *testing.T) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "gnomon-h-")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(dir, 0o777); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	return dir
}

var ports struct {
	mu   sync.Mutex
	used map[int]bool
}

// freePort picks a random high UDP port below the ephemeral range that is
// free on 127.0.0.1 and not handed out before in this run.
func freePort(t *testing.T) int {
	t.Helper()
	ports.mu.Lock()
	defer ports.mu.Unlock()
	if ports.used == nil {
		ports.used = map[int]bool{}
	}
	for range 200 {
		n, err := rand.Int(rand.Reader, big.NewInt(12000))
		if err != nil {
			t.Fatal(err)
		}
		p := 20000 + int(n.Int64())
		if ports.used[p] {
			continue
		}
		c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: p})
		if err != nil {
			continue
		}
		c.Close()
		ports.used[p] = true
		return p
	}
	t.Fatal("no free UDP port found")
	return 0
}

func randomHex(t *testing.T, n int) string {
	t.Helper()
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(b)
}

// newNetns makes a network namespace with loopback up, deleted when the
// test ends (after the processes started in it, which are cleaned up first).
func newNetns(t *testing.T) string {
	t.Helper()
	ip := needTool(t, "ip")
	name := "gtest-" + randomHex(t, 4)
	if out, err := exec.Command(ip, "netns", "add", name).CombinedOutput(); err != nil {
		skipOrFatal(t, "ip netns add %s: %v: %s", name, err, out)
	}
	t.Cleanup(func() {
		if out, err := exec.Command(ip, "netns", "del", name).CombinedOutput(); err != nil {
			t.Errorf("ip netns del %s: %v: %s", name, err, out)
		}
	})
	if out, err := exec.Command(ip, "-n", name, "link", "set", "lo", "up").CombinedOutput(); err != nil {
		t.Fatalf("ip -n %s link set lo up: %v: %s", name, err, out)
	}
	return name
}

// proc is a process a test started; it is killed when the test ends.
type proc struct {
	name string
	cmd  *exec.Cmd
	log  string
	done chan struct{}
	err  error // valid after done is closed
}

// startProc starts argv with stdout and stderr going to a log file in dir
// and kills it (SIGTERM, then SIGKILL) when the test ends. If the test
// failed, the log is shown.
func startProc(t *testing.T, dir, name string, env []string, argv ...string) *proc {
	t.Helper()
	logPath := filepath.Join(dir, name+".log")
	f, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Stdout, cmd.Stderr = f, f
	cmd.Env = append(os.Environ(), env...)
	cmd.Dir = dir
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", name, err)
	}
	p := &proc{name: name, cmd: cmd, log: logPath, done: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		close(p.done)
	}()
	t.Cleanup(func() {
		p.stop()
		if t.Failed() {
			t.Logf("--- %s (%s) log:\n%s", name, strings.Join(argv, " "), p.tail(8192))
		}
	})
	return p
}

// alive reports whether the process has not exited.
func (p *proc) alive() bool {
	select {
	case <-p.done:
		return false
	default:
		return true
	}
}

func (p *proc) stop() {
	if !p.alive() {
		return
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
		return
	case <-time.After(5 * time.Second):
	}
	_ = p.cmd.Process.Kill()
	<-p.done
}

func (p *proc) tail(n int) string {
	b, err := os.ReadFile(p.log)
	if err != nil {
		return err.Error()
	}
	if len(b) > n {
		b = b[len(b)-n:]
	}
	return string(b)
}

// chronyd is a chronyd -x serving `local stratum 1` on 127.0.0.1:port.
type chronyd struct {
	*proc
	port int
}

// startChronyd starts chronyd -x as an NTP server on 127.0.0.1:port (in
// netns ns if not ""). Outside a netns it waits until chronyd answers as a
// synchronized stratum-1 server.
func startChronyd(t *testing.T, dir string, port int, ns string) *chronyd {
	t.Helper()
	bin := needTool(t, "chronyd")
	tag := "chronyd-" + strconv.Itoa(port)
	conf := filepath.Join(dir, tag+".conf")
	// cmdport 0 and bindcmdaddress / close both command sockets, so any
	// number of instances can run side by side.
	text := fmt.Sprintf(`port %d
bindaddress 127.0.0.1
allow 127.0.0.1
local stratum 1
cmdport 0
bindcmdaddress /
pidfile %s
`, port, filepath.Join(dir, tag+".pid"))
	if err := os.WriteFile(conf, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	argv := inNetns(t, ns, safe(t, bin, "-x", "-d", "-f", conf))
	c := &chronyd{proc: startProc(t, dir, tag, nil, argv...), port: port}
	if ns == "" {
		addr := netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), uint16(port))
		cl := newClient(t, "127.0.0.1")
		deadline := time.Now().Add(15 * time.Second)
		for {
			h, _, err := cl.query(addr, 500*time.Millisecond)
			if err == nil && h.Stratum == 1 && h.Leap != sample.LeapUnsync {
				break
			}
			if !c.alive() {
				t.Fatalf("chronyd on port %d exited: %v\n%s", port, c.err, c.tail(4096))
			}
			if time.Now().After(deadline) {
				t.Fatalf("chronyd on port %d did not become a synchronized stratum-1 server within 15 s (last: %+v, %v)", port, h, err)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	return c
}

// notifier is the $NOTIFY_SOCKET a test gives gnomond: it collects every
// assignment (READY=1, STATUS=...) gnomond sends.
type notifier struct {
	path string
	conn *net.UnixConn

	mu      sync.Mutex
	lines   []string
	changed chan struct{} // closed and replaced on every new line
}

func newNotifier(t *testing.T, dir string) *notifier {
	t.Helper()
	path := filepath.Join(dir, "notify-"+randomHex(t, 3)+".sock")
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: path, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	os.Chmod(path, 0o777)
	n := &notifier{path: path, conn: conn, changed: make(chan struct{})}
	stopped := make(chan struct{})
	go func() {
		defer close(stopped)
		buf := make([]byte, 64<<10)
		for {
			k, err := conn.Read(buf)
			if err != nil {
				return
			}
			n.mu.Lock()
			for _, l := range strings.Split(string(buf[:k]), "\n") {
				if l != "" {
					n.lines = append(n.lines, l)
				}
			}
			close(n.changed)
			n.changed = make(chan struct{})
			n.mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		conn.Close()
		<-stopped
		if t.Failed() {
			t.Logf("--- sd_notify lines received:\n%s", strings.Join(n.all(), "\n"))
		}
	})
	return n
}

func (n *notifier) all() []string {
	n.mu.Lock()
	defer n.mu.Unlock()
	return append([]string(nil), n.lines...)
}

// waitFor waits until some line received so far satisfies match and
// returns the first such line, or fails the test with what after timeout.
func (n *notifier) waitFor(t *testing.T, timeout time.Duration, what string, match func(string) bool) string {
	t.Helper()
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	seen := 0
	for {
		n.mu.Lock()
		lines, ch := n.lines, n.changed
		n.mu.Unlock()
		for _, l := range lines[seen:] {
			if match(l) {
				return l
			}
		}
		seen = len(lines)
		select {
		case <-ch:
		case <-deadline.C:
			t.Fatalf("gnomond did not report %s within %v; last STATUS: %q", what, timeout, n.lastStatus())
			return ""
		}
	}
}

// lastStatus is the most recent STATUS= line, "" if none.
func (n *notifier) lastStatus() string {
	lines := n.all()
	for i := len(lines) - 1; i >= 0; i-- {
		if strings.HasPrefix(lines[i], "STATUS=") {
			return lines[i]
		}
	}
	return ""
}

// status is a parsed "synchronized to ..." STATUS line.
type status struct {
	peer     string
	stratum  int
	offset   time.Duration
	holdover bool
	// sysErr is, in observe mode, how far the untouched system clock is
	// from the time gnomond keeps (positive: ahead); ok in observeKnown.
	sysErr       time.Duration
	observeKnown bool
}

var statusRE = regexp.MustCompile(`^STATUS=synchronized to (\S+), stratum (\d+), offset ([+-])([0-9]+(?:\.[0-9]+)?) (µs|ms|s)( \(holdover\))?(?:; system clock ([0-9]+(?:\.[0-9]+)?) (µs|ms|s) (ahead|behind) \(observe mode\))?$`)

// parseStatus parses a STATUS line of a synchronized gnomond; ok is false
// for any other line.
func parseStatus(line string) (status, bool) {
	m := statusRE.FindStringSubmatch(line)
	if m == nil {
		return status{}, false
	}
	st, err := strconv.Atoi(m[2])
	if err != nil {
		return status{}, false
	}
	v, err := strconv.ParseFloat(m[4], 64)
	if err != nil {
		return status{}, false
	}
	unit := map[string]float64{"µs": 1e3, "ms": 1e6, "s": 1e9}[m[5]]
	off := time.Duration(v * unit)
	if m[3] == "-" {
		off = -off
	}
	out := status{peer: m[1], stratum: st, offset: off, holdover: m[6] != ""}
	if m[7] != "" {
		e, err := strconv.ParseFloat(m[7], 64)
		if err != nil {
			return status{}, false
		}
		out.sysErr = time.Duration(e * map[string]float64{"µs": 1e3, "ms": 1e6, "s": 1e9}[m[8]])
		if m[9] == "behind" {
			out.sysErr = -out.sysErr
		}
		out.observeKnown = true
	}
	return out, true
}

func abs(d time.Duration) time.Duration {
	if d < 0 {
		return -d
	}
	return d
}

// gnomond is a running daemon and the notify socket it reports to.
type gnomond struct {
	*proc
	notify *notifier
	config string
}

// gnomondOpts says how to start gnomond.
type gnomondOpts struct {
	netns string
	// wrap goes between setpriv and gnomond (systemd-socket-activate ...).
	wrap []string
}

// startGnomond writes cfg to a file and starts gnomond --config on it
// without CAP_SYS_TIME, with NOTIFY_SOCKET pointing at a socket the test reads.
func startGnomond(t *testing.T, dir, cfg string, o gnomondOpts) *gnomond {
	t.Helper()
	tag := "gnomond-" + randomHex(t, 3)
	path := filepath.Join(dir, tag+".toml")
	if err := os.WriteFile(path, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	n := newNotifier(t, dir)
	var argv []string
	env := []string{"NOTIFY_SOCKET=" + n.path}
	if len(o.wrap) > 0 {
		// The wrapper (systemd-socket-activate -E ...) passes the
		// environment on itself.
		argv = append(argv, o.wrap...)
		env = nil
		for i, a := range argv {
			argv[i] = strings.ReplaceAll(a, "@NOTIFY@", n.path)
		}
	}
	argv = append(argv, gnomondBin, "--config", path, "--no-dbus", "--state-dir", "")
	argv = inNetns(t, o.netns, safe(t, argv...))
	return &gnomond{proc: startProc(t, dir, tag, env, argv...), notify: n, config: path}
}

// observeConfig is gnomond in observe mode with the given sources and
// servers (TOML tables appended as is).
func observeConfig(tables ...string) string {
	return "[clock]\nmode = \"observe\"\ndrift-file = \"\"\n\n" + strings.Join(tables, "\n")
}

func sourceTable(port int) string {
	return fmt.Sprintf("[[source]]\nmode = \"server\"\naddress = \"127.0.0.1:%d\"\npoll-interval-limits = { min = 0, max = 2 }\n", port)
}

func serverTable(listen string, extra ...string) string {
	return fmt.Sprintf("[[server]]\nlisten = %q\n%s\n", listen, strings.Join(extra, "\n"))
}

// client is a small NTP client built from engine/ntp.
type client struct {
	conn *net.UDPConn
}

// newClient opens an unconnected UDP socket on ip (a loopback address).
func newClient(t *testing.T, ip string) *client {
	t.Helper()
	conn, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.ParseIP(ip)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return &client{conn: conn}
}

// request builds a mode-3 NTPv4 request whose transmit timestamp is now
// with random low bits, so that every request is told apart by its origin.
func request() ([]byte, ntp.Timestamp) {
	var r [4]byte
	rand.Read(r[:])
	tx := ntp.TimestampFromTime(time.Now()) ^ ntp.Timestamp(uint32(r[0])|uint32(r[1])<<8)
	h := ntp.Header{Version: 4, Mode: ntp.ModeClient, Poll: 0, Precision: -20, TransmitTime: tx}
	b := make([]byte, ntp.HeaderLen)
	if _, err := h.MarshalTo(b); err != nil {
		panic(err)
	}
	return b, tx
}

func (c *client) send(to netip.AddrPort, b []byte) error {
	_, err := c.conn.WriteToUDPAddrPort(b, to)
	return err
}

// await reads until a reply whose origin is tx arrives or timeout passes.
// Every other datagram received meanwhile is returned in strays.
func (c *client) await(tx ntp.Timestamp, timeout time.Duration) (h ntp.Header, strays [][]byte, err error) {
	deadline := time.Now().Add(timeout)
	buf := make([]byte, 4096)
	for {
		c.conn.SetReadDeadline(deadline)
		n, _, rerr := c.conn.ReadFromUDPAddrPort(buf)
		if rerr != nil {
			return ntp.Header{}, strays, fmt.Errorf("no reply with origin %#x: %w", uint64(tx), rerr)
		}
		var p ntp.Packet
		if perr := ntp.Parse(buf[:n], &p); perr == nil && p.OriginTime == tx {
			return p.Header, strays, nil
		}
		strays = append(strays, bytes.Clone(buf[:n]))
	}
}

// query sends one request to addr and waits for its reply.
func (c *client) query(to netip.AddrPort, timeout time.Duration) (ntp.Header, [][]byte, error) {
	b, tx := request()
	if err := c.send(to, b); err != nil {
		return ntp.Header{}, nil, err
	}
	h, strays, err := c.await(tx, timeout)
	if err == nil && h.Mode != ntp.ModeServer {
		err = fmt.Errorf("reply in mode %v, want server", h.Mode)
	}
	return h, strays, err
}

// loop4 is 127.0.0.1:port.
func loop4(port int) netip.AddrPort {
	return netip.AddrPortFrom(netip.AddrFrom4([4]byte{127, 0, 0, 1}), uint16(port))
}

// liar is an NTP server written with engine/ntp that claims to be a
// synchronized stratum-1 server but whose clock is shift ahead.
func startLiar(t *testing.T, port int, shift time.Duration) {
	t.Helper()
	conn, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: port})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		buf := make([]byte, 2048)
		out := make([]byte, ntp.HeaderLen)
		for {
			n, from, err := conn.ReadFromUDPAddrPort(buf)
			if err != nil {
				if errors.Is(err, net.ErrClosed) {
					return
				}
				continue
			}
			rx := time.Now().Add(shift)
			var p ntp.Packet
			if ntp.Parse(buf[:n], &p) != nil {
				continue
			}
			st := ntp.ServerState{
				Leap:           sample.LeapNone,
				Stratum:        1,
				Precision:      -20,
				RootDispersion: 100 * time.Microsecond,
				ReferenceID:    0x4c494152, // "LIAR"
				ReferenceTime:  rx.Add(-time.Second),
			}
			var h ntp.Header
			if !ntp.Respond(&p.Header, rx, time.Now().Add(shift), &st, &h) {
				continue
			}
			if _, err := h.MarshalTo(out); err == nil {
				conn.WriteToUDPAddrPort(out, from)
			}
		}
	}()
	t.Cleanup(func() {
		conn.Close()
		<-done
	})
}

// listenUDP binds 127.0.0.1:port.
func listenUDP(port int) (*net.UDPConn, error) {
	return net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: port})
}

// measure queries to and returns the offset of its clock from ours,
// ((T2-T1)+(T3-T4))/2, and the round-trip delay.
func (c *client) measure(to netip.AddrPort, timeout time.Duration) (offset, delay time.Duration, h ntp.Header, err error) {
	b, tx := request()
	t1 := time.Now()
	if err = c.send(to, b); err != nil {
		return 0, 0, h, err
	}
	h, _, err = c.await(tx, timeout)
	t4 := time.Now()
	if err != nil {
		return 0, 0, h, err
	}
	t2, t3 := h.ReceiveTime.Time(t1), h.TransmitTime.Time(t1)
	offset = (t2.Sub(t1) + t3.Sub(t4)) / 2
	delay = t4.Sub(t1) - t3.Sub(t2)
	return offset, delay, h, nil
}
