package tests

import (
	"bufio"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"gnomon.dev/gnomon/tests/peers"
)

// busGnomond is gnomond on a private system bus (so gnomonctl can reach
// it), with a state directory, its configuration in a file the test
// rewrites.
type busGnomond struct {
	*gnomond
	bus   *peers.SystemBus
	state string
	ctl   string // gnomonctl
	dir   string
	argv  []string
	wrap  []string
	tag   string
}

// gnomonctlBin is built once per test binary by TestMain.
var gnomonctlBin string

func needGnomonctl(t *testing.T) string {
	t.Helper()
	if gnomonctlBin == "" {
		t.Fatal("gnomonctl was not built")
	}
	return gnomonctlBin
}

// startBusGnomond starts a private system bus and gnomond on it in observe
// mode (without CAP_SYS_TIME), running as root (--user ""), with state
// directory state ("" for a fresh one in dir) and extra flags.
func startBusGnomond(t *testing.T, dir, cfg, state string, extra ...string) *busGnomond {
	t.Helper()
	return startBusGnomondWrapped(t, dir, cfg, state, nil, extra...)
}

// startBusGnomondWrapped is startBusGnomond with wrap (a command that
// ends by exec'ing its arguments) before gnomond.
func startBusGnomondWrapped(t *testing.T, dir, cfg, state string, wrap []string, extra ...string) *busGnomond {
	t.Helper()
	peers.NeedTool(t, "dbus-daemon")
	bus := peers.StartSystemBus(t, filepath.Join(dir), peers.PermissiveBusPolicy)
	if state == "" {
		state = filepath.Join(dir, "state")
	}
	b := &busGnomond{bus: bus, state: state, ctl: needGnomonctl(t), dir: dir, tag: "gnomond-" + peers.RandomHex(t, 3), wrap: wrap}
	path := filepath.Join(dir, b.tag+".toml")
	if err := os.WriteFile(path, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	b.argv = append([]string{gnomondBin, "--config", path, "--user", "", "--state-dir", state, "--bus-address", bus.Addr,
		"--timedate-helper", "", "--system-root", peers.NewSystemRoot(t, dir, "Etc/UTC")}, extra...)
	b.gnomond = &gnomond{config: path}
	b.start(t)
	return b
}

// start (re)starts the daemon with the same flags and a new notifier.
func (b *busGnomond) start(t *testing.T) {
	t.Helper()
	n := peers.NewNotifier(t, b.dir)
	b.notify = n
	argv := append(append([]string(nil), b.wrap...), peers.Safe(t, b.argv...)...)
	b.Proc = peers.Start(t, b.dir, b.tag, []string{"NOTIFY_SOCKET=" + n.Path}, argv...)
	n.WaitFor(t, 15*time.Second, "READY=1", func(l string) bool { return l == "READY=1" })
	peers.Eventually(t, 15*time.Second, "gnomond on the bus", func() error {
		if !b.Alive() {
			t.Fatalf("gnomond exited: %v\n%s", b.Err(), b.Tail(4096))
		}
		_, err := b.ctlRun("status")
		return err
	})
}

// ctlRun runs gnomonctl on the private bus.
func (b *busGnomond) ctlRun(args ...string) (string, error) {
	cmd := exec.Command(b.ctl, append([]string{"--bus", b.bus.Addr}, args...)...)
	cmd.Env = append(os.Environ(), "LC_ALL=C")
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// rewrite replaces the configuration file.
func (b *busGnomond) rewrite(t *testing.T, cfg string) {
	t.Helper()
	if err := os.WriteFile(b.config, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
}

// reload runs gnomonctl reload and returns its output; wantOK says
// whether it must succeed.
func (b *busGnomond) reload(t *testing.T, wantOK bool) string {
	t.Helper()
	out, err := b.ctlRun("reload", "--no-ask-password")
	if (err == nil) != wantOK {
		t.Fatalf("gnomonctl reload: err %v, want success %v:\n%s", err, wantOK, out)
	}
	return out
}

// answers reports whether the NTP server at to answers a query from ip
// (one try, or up to tries).
func answers(t *testing.T, ip string, to netip.AddrPort, tries int) bool {
	t.Helper()
	c := peers.NewNTPClient(t, ip)
	for range tries {
		if _, _, err := c.Query(to, 300*time.Millisecond); err == nil {
			return true
		}
	}
	return false
}

func mustContain(t *testing.T, what, out string, subs ...string) {
	t.Helper()
	for _, s := range subs {
		if !strings.Contains(out, s) {
			t.Errorf("%s: %q missing from:\n%s", what, s, out)
		}
	}
}

// TestReloadAppliesEverySection: a reload opens a new [[server]] listen
// address and closes the old, enforces a new denylist and rate limit at
// once, opens, re-keys and closes NTS-KE servers, applies clock and
// synchronization limits and the log level, and prints each change; a file
// changing a key only a restart applies, or naming a port already taken,
// is refused whole (the old configuration keeps serving). SIGHUP reloads
// too, reporting RELOADING=1 with MONOTONIC_USEC and READY=1 to systemd,
// and units/gnomond.service's ExecReload does the same reload.
func TestReloadAppliesEverySection(t *testing.T) {
	peers.NeedRoot(t, rootFor)
	t.Parallel()
	dir := peers.TempDir(t, 0o777)
	up := peers.StartChronyd(t, dir, peers.FreePort(t), "")
	p1, p2, ke := peers.FreePort(t), peers.FreePort(t), peers.FreePort(t)
	a1, a2 := peers.Loop4(p1), peers.Loop4(p2)
	src := sourceTable(up.Port)
	cfg1 := observeConfig(src, serverTable(a1.String()))
	b := startBusGnomond(t, dir, cfg1, "")
	waitSynced(t, b.gnomond, peers.Loop4(up.Port).String(), 15*time.Second)
	if !answers(t, "127.0.0.1", a1, 3) {
		t.Fatal("the first [[server]] does not answer")
	}

	// 1. Move the server to another port.
	b.rewrite(t, observeConfig(src, serverTable(a2.String())))
	out := b.reload(t, true)
	mustContain(t, "reload moving the server", out, "server "+a2.String()+": opened", "server "+a1.String()+": closed")
	if !answers(t, "127.0.0.1", a2, 3) {
		t.Error("after the reload the new listen address does not answer")
	}
	if answers(t, "127.0.0.1", a1, 2) {
		t.Error("after the reload the old listen address still answers")
	}

	// 2. A denylist and a strict rate limit on the kept server.
	strict := serverTable(a2.String(), `denylist = { filter = ["127.0.0.1/32"] }`,
		`rate-limit = { interval = 60.0, burst = 1, kod = false }`)
	b.rewrite(t, observeConfig(src, strict))
	out = b.reload(t, true)
	mustContain(t, "reload adding a denylist and a rate limit", out, "server "+a2.String()+": denylist changed",
		"server "+a2.String()+": rate-limit changed")
	if answers(t, "127.0.0.1", a2, 2) {
		t.Error("127.0.0.1 is answered after it was denied")
	}
	c := peers.NewNTPClient(t, "127.0.0.5")
	answered := 0
	for range 5 {
		if _, _, err := c.Query(a2, 300*time.Millisecond); err == nil {
			answered++
		}
	}
	if answered == 0 || answered > 2 {
		t.Errorf("with burst = 1 per minute, %d of 5 quick queries from 127.0.0.5 were answered, want 1 or 2", answered)
	}

	// 3. A key only a restart applies: refused whole, naming the key; the
	// denylist of step 2 still holds.
	bad := strings.Replace(observeConfig(src, serverTable(a1.String())), `mode = "observe"`, `mode = "system"`, 1)
	b.rewrite(t, bad)
	out = b.reload(t, false)
	mustContain(t, "refused reload", out, "clock.mode", "restart")
	if answers(t, "127.0.0.1", a2, 2) || answers(t, "127.0.0.1", a1, 1) {
		t.Error("a refused reload changed the servers")
	}

	// 4. A listen address another socket holds: refused, nothing changed.
	holder, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: p1})
	if err != nil {
		t.Fatal(err)
	}
	b.rewrite(t, observeConfig(src, serverTable(a1.String())))
	out = b.reload(t, false)
	holder.Close()
	mustContain(t, "reload onto a taken port", out, a1.String())
	if answers(t, "127.0.0.1", a2, 2) {
		t.Error("the reload that failed to bind lifted the denylist")
	}

	// 5. An NTS-KE server, limits and the log level; NTS clients get keys.
	certA, keyA := ntsCert(t, dir)
	keTable := fmt.Sprintf("[[nts-ke-server]]\nlisten = \"127.0.0.1:%d\"\ncertificate-chain-path = %q\nprivate-key-path = %q\n", ke, certA, keyA)
	limits := "[synchronization]\nmax-distance = 2.5\n[log]\nlevel = \"debug\"\n"
	cfg5 := strings.Replace(observeConfig(src, serverTable(a2.String(), "rate-limit = { interval = 0 }"), keTable, limits),
		"drift-file = \"\"", "drift-file = \"\"\nstep-threshold = 1.0", 1)
	b.rewrite(t, cfg5)
	out = b.reload(t, true)
	mustContain(t, "reload adding NTS-KE", out, fmt.Sprintf("nts-ke-server 127.0.0.1:%d: opened", ke),
		"clock.step-threshold: 100ms → 1s", "synchronization.max-distance: 3s → 2.5s", "log.level: info → debug",
		"server "+a2.String()+": denylist changed")
	if _, err := chronydNTSQuery(t, p2, ke, certA); err != nil {
		t.Errorf("NTS after the reload that added the NTS-KE server: %v", err)
	}

	// 6. A certificate at another path: the same socket serves it.
	certDir := filepath.Join(dir, "b")
	os.Mkdir(certDir, 0o755)
	certB, keyB := ntsCert(t, certDir)
	b.rewrite(t, strings.Replace(strings.Replace(cfg5, certA, certB, 1), keyA, keyB, 1))
	out = b.reload(t, true)
	mustContain(t, "reload with a new certificate path", out, fmt.Sprintf("nts-ke-server 127.0.0.1:%d: certificate", ke))
	if _, err := chronydNTSQuery(t, p2, ke, certB); err != nil {
		t.Errorf("NTS with the certificate at its new path: %v", err)
	}

	// 7. SIGHUP: the same reload, with systemd's reload protocol.
	before := len(b.notify.All())
	b.rewrite(t, observeConfig(src, serverTable(a2.String(), "rate-limit = { interval = 0 }")))
	if err := b.Cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	b.notify.WaitFor(t, 10*time.Second, "READY=1 after RELOADING=1", func(string) bool {
		lines := b.notify.All()[before:]
		reloading := -1
		for i, l := range lines {
			if l == "RELOADING=1" && i+1 < len(lines) && strings.HasPrefix(lines[i+1], "MONOTONIC_USEC=") {
				reloading = i
			}
			if reloading >= 0 && i > reloading && l == "READY=1" {
				return true
			}
		}
		return false
	})
	peers.Eventually(t, 5*time.Second, "NTS-KE port closed after SIGHUP", func() error {
		conn, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", ke), time.Second)
		if err == nil {
			conn.Close()
			return errors.New("still accepting")
		}
		return nil
	})

	// 8. ExecReload of the packaged unit, run as systemd would.
	execReload := unitExecReload(t)
	argv := strings.Fields(strings.ReplaceAll(execReload, "$MAINPID", strconv.Itoa(b.Cmd.Process.Pid)))
	if argv[0] == "/usr/bin/gnomonctl" {
		argv = append([]string{b.ctl, "--bus", b.bus.Addr}, argv[1:]...)
	}
	b.rewrite(t, observeConfig(src, serverTable(a1.String(), "rate-limit = { interval = 0 }")))
	if out, err := exec.Command(argv[0], argv[1:]...).CombinedOutput(); err != nil {
		t.Fatalf("ExecReload=%s: %v\n%s", execReload, err, out)
	}
	if !answers(t, "127.0.0.1", a1, 3) {
		t.Error("after ExecReload the new listen address does not answer")
	}
	if !b.Alive() {
		t.Fatal("gnomond died")
	}
}

// unitExecReload is units/gnomond.service's ExecReload= command line.
func unitExecReload(t *testing.T) string {
	t.Helper()
	f, err := os.Open(filepath.Join(peers.ModuleRoot(t), "units/gnomond.service"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "ExecReload="); ok {
			return strings.TrimLeft(v, "-@:+!")
		}
	}
	t.Fatal("units/gnomond.service has no ExecReload=")
	return ""
}

// TestReloadActivatedSockets: with the NTP socket passed by systemd
// (systemd-socket-activate), a reload applies the new policy to that
// socket (a denylist is enforced at once) and says a listen change cannot
// apply there.
func TestReloadActivatedSockets(t *testing.T) {
	peers.NeedRoot(t, rootFor)
	t.Parallel()
	ssa := peers.NeedTool(t, "systemd-socket-activate")
	dir := peers.TempDir(t, 0o777)
	port := peers.FreePort(t)
	addr := peers.Loop4(port)
	wrap := []string{ssa, "-l", addr.String(), "--datagram", "--fdname=ntp", "-E", "NOTIFY_SOCKET=@NOTIFY@"}
	g := startGnomond(t, dir, observeConfig(serverTable(addr.String(), "rate-limit = { interval = 0 }")), gnomondOpts{wrap: wrap})
	deadline := time.Now().Add(10 * time.Second)
	for portFree(port) {
		if !g.Alive() || time.Now().After(deadline) {
			t.Fatalf("systemd-socket-activate did not bind %v", addr)
		}
		time.Sleep(50 * time.Millisecond)
	}
	c := peers.NewNTPClient(t, "127.0.0.1")
	if _, _, err := c.Query(addr, 10*time.Second); err != nil {
		t.Fatalf("the activating request: %v", err)
	}
	g.notify.WaitFor(t, 5*time.Second, "READY=1", func(l string) bool { return l == "READY=1" })

	other := peers.Loop4(peers.FreePort(t))
	cfg := observeConfig(serverTable(other.String(), `denylist = { filter = ["127.0.0.1/32"] }`, "rate-limit = { interval = 0 }"))
	if err := os.WriteFile(g.config, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := g.Cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	recs := waitLog(t, g, 10*time.Second, 1, "configuration reloaded", nil)
	mustContain(t, "reload on activated sockets", recs[0]["changes"], "server (systemd sockets): denylist changed",
		"server listen: not applied")
	if answers(t, "127.0.0.1", addr, 2) {
		t.Error("127.0.0.1 is still answered on the activated socket after it was denied")
	}
	if !answers(t, "127.0.0.2", addr, 3) {
		t.Error("127.0.0.2 is not answered on the activated socket")
	}
	if answers(t, "127.0.0.2", other, 1) {
		t.Error("the listen address of the reloaded file was opened, but the sockets come from systemd")
	}
}
