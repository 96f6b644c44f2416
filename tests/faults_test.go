package tests

// Fault injection: gnomond keeps serving and keeps every setting it
// acknowledged through kill -9 in the middle of state-file writes, a full
// and a read-only state directory, a restart of the bus, of polkitd and of
// its upstream server. Bounded: about a minute on a 2-core machine.
//
// Not covered: a clock jump. gnomond's observe mode reads CLOCK_REALTIME
// through a virtual clock that has no hook a test could use to make it
// jump; stepping the real clock is off limits on a shared machine.

import (
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"gnomon.dev/gnomon/tests/peers"
)

// startPolkitd starts the real polkitd on bus, in a mount namespace of its
// own where gnomon's action files and a rule letting user "nobody" manage
// gnomond are bind-mounted over /usr/share/polkit-1/actions and
// /etc/polkit-1/rules.d: the machine's polkit files are never touched.
func startPolkitd(t *testing.T, dir string, bus *peers.SystemBus) *peers.Proc {
	t.Helper()
	polkitd := peers.NeedTool(t, "/usr/lib/polkit-1/polkitd")
	actions, rules := filepath.Join(dir, "polkit-actions"), filepath.Join(dir, "polkit-rules")
	if _, err := os.Stat(actions); err != nil {
		for _, d := range []string{actions, rules} {
			if err := os.MkdirAll(d, 0o755); err != nil {
				t.Fatal(err)
			}
		}
		repo := peers.ModuleRoot(t)
		for _, f := range []string{"org.gnomon.timedate1.policy", "org.gnomon.Gnomon1.policy"} {
			b, err := os.ReadFile(filepath.Join(repo, "polkit", f))
			if err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(actions, f), b, 0o644); err != nil {
				t.Fatal(err)
			}
		}
		rule := `polkit.addRule(function(action, subject) {
    if (action.id == "org.gnomon.manage-sources" && subject.user == "nobody") {
        return polkit.Result.YES;
    }
});
`
		if err := os.WriteFile(filepath.Join(rules, "10-gnomon-test.rules"), []byte(rule), 0o644); err != nil {
			t.Fatal(err)
		}
		if pw, err := user.Lookup("polkitd"); err == nil {
			uid, _ := strconv.Atoi(pw.Uid)
			os.Chown(rules, uid, -1)
			os.Chown(filepath.Join(rules, "10-gnomon-test.rules"), uid, -1)
		}
	}
	script := `mount --bind "$0" /usr/share/polkit-1/actions && mount --bind "$1" /etc/polkit-1/rules.d && exec "$2" --no-debug`
	p := peers.Start(t, dir, "polkitd", []string{"DBUS_SYSTEM_BUS_ADDRESS=" + bus.Addr},
		peers.NeedTool(t, "unshare"), "--mount", "--propagation", "private", "sh", "-c", script, actions, rules, polkitd)
	peers.Eventually(t, 15*time.Second, "polkitd on the bus", func() error {
		out, err := exec.Command(peers.NeedTool(t, "busctl"), "--address="+bus.Addr, "status", "org.freedesktop.PolicyKit1").CombinedOutput()
		if err != nil {
			if !p.Alive() {
				t.Fatalf("polkitd exited: %v\n%s", p.Err(), p.Tail(2048))
			}
			return fmt.Errorf("%v: %s", err, out)
		}
		return nil
	})
	return p
}

// ctlAsNobody runs gnomonctl as user nobody.
func (b *busGnomond) ctlAsNobody(t *testing.T, args ...string) (string, error) {
	t.Helper()
	argv := append([]string{peers.NeedTool(t, "setpriv"), "--reuid=nobody", "--regid=nogroup", "--clear-groups",
		b.ctl, "--bus", b.bus.Addr}, args...)
	out, err := exec.Command(argv[0], argv[1:]...).CombinedOutput()
	return string(out), err
}

// busctlCall calls a timedate1 method with the real busctl.
func (b *busGnomond) busctlCall(t *testing.T, method, sig string, args ...string) error {
	t.Helper()
	argv := append([]string{"--address=" + b.bus.Addr, "--timeout=5", "call", "org.freedesktop.timedate1",
		"/org/freedesktop/timedate1", "org.freedesktop.timedate1", method, sig}, args...)
	out, err := exec.Command(peers.NeedTool(t, "busctl"), argv...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("%v: %s", err, out)
	}
	return nil
}

// startNoWait starts gnomond without waiting for it to be ready.
func (b *busGnomond) startNoWait(t *testing.T) {
	t.Helper()
	n := peers.NewNotifier(t, b.dir)
	b.notify = n
	argv := append(append([]string(nil), b.wrap...), peers.Safe(t, b.argv...)...)
	b.Proc = peers.Start(t, b.dir, b.tag, []string{"NOTIFY_SOCKET=" + n.Path}, argv...)
}

// kill9 kills gnomond with SIGKILL and waits until it is gone.
func (b *busGnomond) kill9() {
	_ = b.Cmd.Process.Kill()
	<-b.Done()
}

func TestFaultInjection(t *testing.T) {
	peers.NeedRoot(t, rootFor+", mount tmpfs, unshare -m, polkitd")
	t.Parallel()
	dir := peers.TempDir(t, 0o755)
	cdir := peers.TempDir(t, 0o777)
	upPort := peers.FreePort(t)
	up := peers.StartChronyd(t, cdir, upPort, "")
	cert, key := ntsCert(t, cdir)
	ntpPort, kePort := peers.FreePort(t), peers.FreePort(t)
	ntpAddr := peers.Loop4(ntpPort)
	state := filepath.Join(dir, "state")
	mountTmpfs(t, state, "64k")
	cfg := observeConfig(sourceTable(upPort), serverTable(ntpAddr.String(), "rate-limit = { interval = 0 }"),
		fmt.Sprintf("[[nts-ke-server]]\nlisten = \"127.0.0.1:%d\"\ncertificate-chain-path = %q\nprivate-key-path = %q\n", kePort, cert, key))
	b := startBusGnomond(t, dir, cfg, state, "--key-save-retry=200ms")
	root := strings.TrimPrefix(b.argv[slicesIndex(b.argv, "--system-root")+1], "")
	localtime := filepath.Join(root, "etc/localtime")
	pk := startPolkitd(t, dir, b.bus)
	waitSynced(t, b.gnomond, peers.Loop4(upPort).String(), 15*time.Second)

	serving := func(when string) {
		t.Helper()
		if !answers(t, "127.0.0.1", ntpAddr, 5) {
			t.Errorf("%s: gnomond's NTP server does not answer", when)
		}
	}
	// What gnomond acknowledged last, and must keep.
	ackNTP := true
	ackZone := "Etc/UTC"
	zones := []string{"Europe/Berlin", "Asia/Tokyo", "America/Lima"}
	checkState := func(when string) {
		t.Helper()
		for _, n := range dirNames(t, state) {
			if strings.Contains(n, ".tmp-") {
				t.Errorf("%s: temporary file %s left in the state directory after a start", when, n)
			}
		}
		b2, err := os.ReadFile(filepath.Join(state, "ntp-disabled"))
		switch {
		case err == nil && string(b2) != "synchronization disabled through SetNTP\n":
			t.Errorf("%s: torn ntp-disabled: %q", when, b2)
		case err == nil && ackNTP, err != nil && !ackNTP:
			t.Errorf("%s: ntp-disabled present: %v, but the acknowledged setting is NTP=%v", when, err == nil, ackNTP)
		}
		target, err := os.Readlink(localtime)
		if err != nil || target != "../usr/share/zoneinfo/"+ackZone {
			t.Errorf("%s: /etc/localtime -> %q (%v), want the acknowledged %s", when, target, err, ackZone)
		}
		if b.ntp(t) != ackNTP {
			t.Errorf("%s: NTP is %v, acknowledged %v", when, !ackNTP, ackNTP)
		}
	}

	phase(t, "kill -9 while writing state", func(t *testing.T) {
		acked, cut := 0, 0
		defer func() { t.Logf("kill -9 rounds: %d calls acknowledged before the kill, %d cut off", acked, cut) }()
		for i := range 30 {
			// Every third round: no NTS key file, so the start writes
			// one, and the kill comes during start-up.
			if i%3 == 2 {
				os.Remove(filepath.Join(state, "nts-master-keys"))
				b.kill9()
				b.startNoWait(t)
				time.Sleep(time.Duration(rand.IntN(40)) * time.Millisecond)
				b.kill9()
				b.start(t)
				checkState(fmt.Sprintf("round %d (start-up killed)", i))
				if n := len(logRecords(t, b.gnomond, "NTS master key file unreadable; making new keys (clients will re-key)")); n > 0 {
					t.Errorf("round %d: a torn NTS master key file (%d)", i, n)
				}
				continue
			}
			wantNTP := i%2 == 1
			zone := zones[i%len(zones)]
			type result struct {
				what string
				err  error
			}
			done := make(chan result, 2)
			go func() { done <- result{"ntp", b.busctlCall(t, "SetNTP", "bb", fmt.Sprint(wantNTP), "false")} }()
			go func() { done <- result{"zone", b.busctlCall(t, "SetTimezone", "sb", zone, "false")} }()
			// Spread the kills from before the calls arrive to after
			// they are answered.
			time.Sleep(time.Duration((i%10)*3+rand.IntN(3)) * time.Millisecond)
			b.kill9()
			for range 2 {
				r := <-done
				if r.err != nil {
					cut++
					continue // not acknowledged: either outcome is allowed
				}
				acked++
				if r.what == "ntp" {
					ackNTP = wantNTP
				} else {
					ackZone = zone
				}
			}
			// An unacknowledged call may still have been carried out:
			// take what is on disk when it is one of the two outcomes.
			if _, err := os.Stat(filepath.Join(state, "ntp-disabled")); err == nil {
				ackNTP = false
			} else {
				ackNTP = true
			}
			if tgt, err := os.Readlink(localtime); err == nil {
				ackZone = strings.TrimPrefix(tgt, "../usr/share/zoneinfo/")
			}
			b.start(t)
			checkState(fmt.Sprintf("round %d", i))
		}
		serving("after the kill -9 rounds")
	})

	// From here on every call is acknowledged or refused, never cut off.
	if err := b.busctlCall(t, "SetNTP", "bb", "false", "false"); err != nil {
		t.Fatal(err)
	}
	ackNTP = false
	if err := b.busctlCall(t, "SetTimezone", "sb", "Europe/Berlin", "false"); err != nil {
		t.Fatal(err)
	}
	ackZone = "Europe/Berlin"

	phase(t, "full state directory", func(t *testing.T) {
		fill(t, state)
		// Removing a file needs no room: allowed, and acknowledged.
		if err := b.busctlCall(t, "SetNTP", "bb", "true", "false"); err != nil {
			t.Errorf("SetNTP(true) (a removal) on a full state directory: %v", err)
		} else {
			ackNTP = true
		}
		fill(t, state) // the removal freed a page
		if err := b.busctlCall(t, "SetNTP", "bb", "false", "false"); err == nil {
			t.Error("SetNTP(false) succeeded on a full state directory")
		}
		serving("state directory full")
		if _, err := chronydNTSQuery(t, ntpPort, kePort, cert); err != nil {
			t.Errorf("NTS with a full state directory: %v", err)
		}
		os.Remove(filepath.Join(state, "filler"))
		checkState("full state directory")
	})

	phase(t, "read-only state directory", func(t *testing.T) {
		remount(t, state, "ro")
		want := !ackNTP
		if err := b.busctlCall(t, "SetNTP", "bb", fmt.Sprint(want), "false"); err == nil {
			t.Error("SetNTP succeeded on a read-only state directory")
		}
		serving("state directory read-only")
		b.restart(t)
		serving("restarted on a read-only state directory")
		waitSynced(t, b.gnomond, peers.Loop4(upPort).String(), 15*time.Second)
		if _, err := chronydNTSQuery(t, ntpPort, kePort, cert); err != nil {
			t.Errorf("NTS after a restart on a read-only state directory: %v", err)
		}
		remount(t, state, "rw")
		checkState("read-only state directory")
	})

	phase(t, "bus restart", func(t *testing.T) {
		b.bus.Stop()
		pk.Stop()
		serving("bus gone")
		b.bus.Restart(t)
		pk = startPolkitd(t, dir, b.bus)
		peers.Eventually(t, 20*time.Second, "gnomond back on the restarted bus", func() error {
			_, err := b.ctlRun("status")
			return err
		})
		if err := b.busctlCall(t, "SetTimezone", "sb", "Asia/Tokyo", "false"); err != nil {
			t.Errorf("SetTimezone after the bus restart: %v", err)
		} else {
			ackZone = "Asia/Tokyo"
		}
		serving("after the bus restart")
	})

	phase(t, "polkitd restart", func(t *testing.T) {
		if out, err := b.ctlAsNobody(t, "reload", "--no-ask-password"); err != nil {
			t.Fatalf("nobody's reload with polkit granting it: %v\n%s", err, out)
		}
		pk.Stop()
		if out, err := b.ctlAsNobody(t, "reload", "--no-ask-password"); err == nil {
			t.Errorf("nobody's reload without polkitd succeeded (must fail closed):\n%s", out)
		}
		serving("polkitd gone")
		pk = startPolkitd(t, dir, b.bus)
		peers.Eventually(t, 15*time.Second, "polkit decisions again", func() error {
			out, err := b.ctlAsNobody(t, "reload", "--no-ask-password")
			if err != nil {
				return fmt.Errorf("%v: %s", err, out)
			}
			return nil
		})
	})

	phase(t, "upstream vanishes and returns", func(t *testing.T) {
		if !ackNTP { // with synchronization off nothing polls the upstream
			if err := b.busctlCall(t, "SetNTP", "bb", "true", "false"); err != nil {
				t.Fatal(err)
			}
			ackNTP = true
		}
		up.Stop()
		lastErr := func() (string, string) {
			srcs, err := b.sourcesJSON(t)
			if err != nil {
				t.Fatal(err)
			}
			for _, s := range srcs {
				if s.Address == peers.Loop4(upPort).String() {
					return s.LastError, s.State
				}
			}
			return "(missing)", ""
		}
		peers.Eventually(t, 20*time.Second, "the vanished upstream's error shown", func() error {
			if e, _ := lastErr(); !strings.Contains(e, "connection refused") {
				return fmt.Errorf("last error %q", e)
			}
			return nil
		})
		serving("upstream gone")
		up = peers.StartChronyd(t, cdir, upPort, "")
		peers.Eventually(t, 30*time.Second, "the returned upstream used again", func() error {
			if e, st := lastErr(); e != "" || (st != "selected" && st != "combined") {
				return fmt.Errorf("last error %q, state %q", e, st)
			}
			return nil
		})
	})

	phase(t, "settings after a clean restart", func(t *testing.T) {
		b.restart(t)
		checkState("final restart")
		serving("final restart")
		waitSynced(t, b.gnomond, peers.Loop4(upPort).String(), 15*time.Second)
		if _, err := chronydNTSQuery(t, ntpPort, kePort, cert); err != nil {
			t.Errorf("NTS after the final restart: %v", err)
		}
	})
}

// phase runs one step of a test that shares processes between its steps
// (a subtest would stop them when it ends).
func phase(t *testing.T, name string, f func(t *testing.T)) {
	t.Helper()
	start := time.Now()
	t.Logf("=== phase: %s", name)
	f(t)
	t.Logf("=== phase %s: %v", name, time.Since(start).Round(time.Millisecond))
}

func slicesIndex(s []string, v string) int {
	for i, x := range s {
		if x == v {
			return i
		}
	}
	return -1
}
