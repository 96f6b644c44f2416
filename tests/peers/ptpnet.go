package peers

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// The helpers the PTP-family tests (tests/gptp, tests/csptp, tests/ptp)
// share to build their links and read gnomond's JSON log.

// IP runs ip(8) with args and fails the test when it fails.
func IP(t testing.TB, args ...string) string {
	t.Helper()
	out, err := exec.Command(NeedTool(t, "ip"), args...).CombinedOutput()
	if err != nil {
		t.Fatalf("ip %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

// Netns makes the network namespace name with lo up, deleted when the
// test ends (after the processes in it: cleanups run in reverse).
func Netns(t testing.TB, name string) string {
	t.Helper()
	IP(t, "netns", "add", name)
	t.Cleanup(func() {
		if out, err := exec.Command("ip", "netns", "del", name).CombinedOutput(); err != nil {
			t.Errorf("ip netns del %s: %v: %s", name, err, out)
		}
	})
	IP(t, "-n", name, "link", "set", "lo", "up")
	return name
}

// Veth joins namespaces a and b with a veth pair, ifA in a and ifB in b,
// each with its address when one is given ("" for none), both up. tmp
// prefixes the pair's names in the root namespace (unique per test).
func Veth(t testing.TB, tmp, a, ifA, addrA, b, ifB, addrB string) {
	t.Helper()
	tmpA, tmpB := tmp+ifA, tmp+ifB
	IP(t, "link", "add", tmpA, "type", "veth", "peer", "name", tmpB)
	IP(t, "link", "set", tmpA, "netns", a, "name", ifA)
	IP(t, "link", "set", tmpB, "netns", b, "name", ifB)
	if addrA != "" {
		IP(t, "-n", a, "addr", "add", addrA, "dev", ifA)
	}
	if addrB != "" {
		IP(t, "-n", b, "addr", "add", addrB, "dev", ifB)
	}
	IP(t, "-n", a, "link", "set", ifA, "up")
	IP(t, "-n", b, "link", "set", ifB, "up")
}

var macRE = regexp.MustCompile(`link/ether ([0-9a-f:]{17})`)

// MACIdentity is the PTP clock identity ptp4l, ptp4u and gnomond derive
// from an interface's MAC address (001122.fffe.334455).
func MACIdentity(t testing.TB, ns, iface string) string {
	t.Helper()
	out := IP(t, "-n", ns, "-o", "link", "show", iface)
	m := macRE.FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("no MAC address for %s in %s: %s", iface, ns, out)
	}
	h := strings.ReplaceAll(m[1], ":", "")
	return h[0:6] + ".fffe." + h[6:12]
}

// SafeIn is argv run in namespace ns without CAP_SYS_TIME.
func SafeIn(t testing.TB, ns string, argv ...string) []string {
	t.Helper()
	return InNetns(t, ns, Safe(t, argv...))
}

// GnomondObserveHead starts a test's gnomond configuration: observe
// mode, no drift file, debug log in JSON.
const GnomondObserveHead = `[clock]
mode = "observe"
drift-file = ""
[log]
level = "debug"
format = "json"
`

// StartGnomondIn writes cfg (after GnomondObserveHead) to dir/name.toml
// and runs bin in ns on it without D-Bus, a user or a state directory;
// the test fails if a gnomond built with -race reports a race.
func StartGnomondIn(t testing.TB, bin, dir, ns, name, cfg string) *Proc {
	t.Helper()
	path := filepath.Join(dir, name+".toml")
	if err := os.WriteFile(path, []byte(GnomondObserveHead+cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	failOnRace(t, dir, name)
	return Start(t, dir, name, nil, SafeIn(t, ns, bin, "--config", path, "--no-dbus", "--user", "", "--state-dir", "")...)
}

// failOnRace fails the test if the log of process name in dir reports a
// data race (a gnomond built with -race, GNOMON_TEST_GNOMOND). Registered
// before the process starts, it runs after it has stopped.
func failOnRace(t testing.TB, dir, name string) {
	t.Cleanup(func() {
		if b, err := os.ReadFile(filepath.Join(dir, name+".log")); err == nil && strings.Contains(string(b), "WARNING: DATA RACE") {
			t.Errorf("%s reported a data race:\n%s", name, b)
		}
	})
}

// LogRecords decodes each JSON line of p's log whose "msg" is msg into a
// T (a struct with the fields wanted).
func LogRecords[T any](t testing.TB, p *Proc, msg string) []T {
	t.Helper()
	f, err := os.Open(p.Log)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []T
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		var head struct {
			Msg string `json:"msg"`
		}
		if json.Unmarshal(sc.Bytes(), &head) != nil || head.Msg != msg {
			continue
		}
		var r T
		if json.Unmarshal(sc.Bytes(), &r) == nil {
			out = append(out, r)
		}
	}
	return out
}

// StartGnomondBus runs bin in ns on cfg (after GnomondObserveHead) with
// D-Bus on a private system bus, and returns the process and a function
// that runs ctlBin (gnomonctl) with args and --json against that bus,
// decodes its output into v and returns the output (or the error and
// the output) for failure messages.
func StartGnomondBus(t testing.TB, bin, ctlBin, dir, ns, name, cfg string) (*Proc, func(v any, args ...string) string) {
	t.Helper()
	NeedTool(t, "dbus-daemon")
	bus := StartSystemBus(t, dir, PermissiveBusPolicy)
	path := filepath.Join(dir, name+".toml")
	if err := os.WriteFile(path, []byte(GnomondObserveHead+cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	failOnRace(t, dir, name)
	p := Start(t, dir, name, []string{"DBUS_SYSTEM_BUS_ADDRESS=" + bus.Addr},
		SafeIn(t, ns, bin, "--config", path, "--user", "", "--state-dir", "", "--system-root", NewSystemRoot(t, dir, "UTC"))...)
	return p, func(v any, args ...string) string {
		cmd := exec.Command(ctlBin, append(args, "--json")...)
		cmd.Env = append(os.Environ(), "DBUS_SYSTEM_BUS_ADDRESS="+bus.Addr)
		out, err := cmd.CombinedOutput()
		if err == nil {
			err = json.Unmarshal(out, v)
		}
		if err != nil {
			return fmt.Sprintf("%v: %s", err, out)
		}
		return string(out)
	}
}
