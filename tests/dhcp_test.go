package tests

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"gnomon.dev/gnomon/tests/peers"
)

// runHook runs the dhclient exit hook as dhclient-script does (sourced by
// sh) with the given environment.
func runHook(t *testing.T, env ...string) {
	t.Helper()
	hook, _ := filepath.Abs("../units/dhcp/dhclient-exit-hook")
	cmd := exec.Command("sh", "-c", ". "+hook)
	cmd.Env = append(os.Environ(), env...)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("dhclient hook %v: %v\n%s", env, err, out)
	}
}

func runDispatcher(t *testing.T, iface, action string, env ...string) {
	t.Helper()
	script, _ := filepath.Abs("../units/dhcp/nm-dispatcher")
	cmd := exec.Command("sh", script, iface, action)
	cmd.Env = append(os.Environ(), env...)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("dispatcher %s %s: %v\n%s", iface, action, err, out)
	}
}

func serversIn(t *testing.T, path string) []string {
	t.Helper()
	b, err := os.ReadFile(path)
	if os.IsNotExist(err) {
		return nil
	}
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, l := range strings.Split(string(b), "\n") {
		if l = strings.TrimSpace(l); l != "" && !strings.HasPrefix(l, "#") {
			out = append(out, l)
		}
	}
	return out
}

// The hooks write one file per interface and remove it when the lease or
// the link goes away.
func TestDHCPHooks(t *testing.T) {
	t.Parallel()
	dir := filepath.Join(t.TempDir(), "dhcp")
	d := "GNOMON_DHCP_DIR=" + dir
	runHook(t, d, "reason=BOUND", "interface=eth7", "new_ntp_servers=192.0.2.1 192.0.2.2")
	if got := serversIn(t, filepath.Join(dir, "eth7.servers")); strings.Join(got, ",") != "192.0.2.1,192.0.2.2" {
		t.Errorf("after BOUND: %v", got)
	}
	runHook(t, d, "reason=RENEW", "interface=eth7", "new_ntp_servers=192.0.2.3", "old_ntp_servers=192.0.2.1 192.0.2.2")
	if got := serversIn(t, filepath.Join(dir, "eth7.servers")); strings.Join(got, ",") != "192.0.2.3" {
		t.Errorf("after RENEW: %v", got)
	}
	runHook(t, d, "reason=EXPIRE", "interface=eth7")
	if _, err := os.Stat(filepath.Join(dir, "eth7.servers")); !os.IsNotExist(err) {
		t.Errorf("after EXPIRE the file is still there (%v)", err)
	}
	runDispatcher(t, "wlan3", "up", d, "DHCP4_NTP_SERVERS=198.51.100.7")
	if got := serversIn(t, filepath.Join(dir, "wlan3.servers")); strings.Join(got, ",") != "198.51.100.7" {
		t.Errorf("after up: %v", got)
	}
	runDispatcher(t, "wlan3", "down", d)
	if _, err := os.Stat(filepath.Join(dir, "wlan3.servers")); !os.IsNotExist(err) {
		t.Errorf("after down the file is still there (%v)", err)
	}
	if left, _ := filepath.Glob(filepath.Join(dir, "*")); len(left) != 0 {
		t.Errorf("left behind: %v", left)
	}
}

// gnomond ([dhcp] servers-dir) takes the servers the hook writes, syncs to
// one (a chronyd on loopback, written with its port), and drops them when
// their files go.
func TestGnomondDHCPServers(t *testing.T) {
	peers.NeedRoot(t, rootFor)
	t.Parallel()
	dir := peers.TempDir(t, 0o777)
	dhcp := filepath.Join(dir, "dhcp")
	up := peers.StartChronyd(t, dir, peers.FreePort(t), "")
	g := startGnomond(t, dir, observeConfig("[dhcp]\nservers-dir = \""+dhcp+"\"\n"), gnomondOpts{})

	waitLog := func(what string) {
		t.Helper()
		deadline := time.Now().Add(15 * time.Second)
		for !strings.Contains(g.Tail(1<<16), what) {
			if time.Now().After(deadline) {
				t.Fatalf("gnomond did not log %q:\n%s", what, g.Tail(4096))
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	runHook(t, "GNOMON_DHCP_DIR="+dhcp, "reason=BOUND", "interface=gnA", "new_ntp_servers=127.0.0.2")
	waitLog(`adding a server from DHCP" address=127.0.0.2:123`)

	peer := peers.Loop4(up.Port).String()
	if err := os.WriteFile(filepath.Join(dhcp, "gnB.servers"), []byte("# test\n"+peer+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	waitLog(`adding a server from DHCP" address=` + peer)
	waitSynced(t, g, peer, 15*time.Second)

	runHook(t, "GNOMON_DHCP_DIR="+dhcp, "reason=RELEASE", "interface=gnA")
	if err := os.Remove(filepath.Join(dhcp, "gnB.servers")); err != nil {
		t.Fatal(err)
	}
	waitLog(`dropping a server from DHCP" address=127.0.0.2:123`)
	waitLog(`dropping a server from DHCP" address=` + peer)
	// The newest list is empty.
	lastList := func() string {
		last := ""
		for _, l := range strings.Split(g.Tail(1<<16), "\n") {
			if strings.Contains(l, `msg="DHCP NTP servers"`) {
				last = l
			}
		}
		return last
	}
	if l := lastList(); !strings.HasSuffix(l, `servers=""`) {
		t.Errorf("gnomond's newest DHCP server list is not empty: %s", l)
	}
}
