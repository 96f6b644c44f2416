package main

// gnomonctl against the real gnomond: a private system bus (dbus-daemon),
// the real polkitd with gnomon's action file, chronyd -x as a stratum-1
// server on loopback, gnomond in observe mode syncing from it. Every daemon
// runs without CAP_SYS_TIME.

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"gnomon.dev/gnomon/tests/peers"
)

type ctlResult struct {
	code           int
	stdout, stderr string
}

// ctl runs the built gnomonctl on the private bus, as root or (with
// asNobody) as the unprivileged user nobody.
func ctl(t *testing.T, bin, addr string, asNobody bool, args ...string) ctlResult {
	t.Helper()
	argv := append([]string{bin, "--bus", addr}, args...)
	if asNobody {
		argv = append([]string{peers.NeedTool(t, "setpriv"), "--reuid=65534", "--regid=65534", "--clear-groups"}, argv...)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatalf("%v: %v", argv, err)
	}
	return ctlResult{code, stdout.String(), stderr.String()}
}

func TestAgainstGnomond(t *testing.T) {
	if testing.Short() {
		t.Skip("starts daemons")
	}
	peers.NeedRoot(t, "polkitd, setpriv")
	for _, tool := range []string{"dbus-daemon", "chronyd", "setpriv"} {
		peers.NeedTool(t, tool)
	}
	polkitd := peers.NeedTool(t, "/usr/lib/polkit-1/polkitd")

	// nobody must reach the binaries and the bus socket.
	dir := peers.TempDir(t, 0o755)
	gnomond := peers.Build(t, dir, "./cmd/gnomond")
	gnomonctl := peers.Build(t, dir, "./cmd/gnomonctl")

	// A private system bus that everyone may use (polkit decides).
	addr := peers.StartSystemBus(t, dir, peers.PermissiveBusPolicy).Addr

	// gnomon's polkit action, under a name of this test's own, so that
	// other tests installing polkit/org.gnomon.Gnomon1.policy are not
	// disturbed (polkit takes the same definition twice).
	policy, err := os.ReadFile(filepath.Join(peers.ModuleRoot(t), "polkit", "org.gnomon.Gnomon1.policy"))
	if err != nil {
		peers.SkipOrFatal(t, "polkit action file: %v", err)
	}
	actionFile := "/usr/share/polkit-1/actions/org.gnomon.Gnomon1.gnomonctl-test-" + peers.RandomHex(t, 4) + ".policy"
	if err := os.WriteFile(actionFile, policy, 0o644); err != nil {
		peers.SkipOrFatal(t, "installing the polkit action: %v", err)
	}
	t.Cleanup(func() { os.Remove(actionFile) })
	peers.Start(t, dir, "polkitd", []string{"DBUS_SYSTEM_BUS_ADDRESS=" + addr}, polkitd, "--no-debug")

	// chronyd -x: a stratum-1 server on loopback.
	port := peers.FreePort(t)
	peers.StartChronyd(t, peers.TempDir(t, 0o777), port, "")

	// gnomond in observe mode, polling chronyd quickly.
	cfg := filepath.Join(dir, "gnomon.toml")
	os.WriteFile(cfg, []byte(fmt.Sprintf(`[clock]
mode = "observe"
drift-file = ""

[[source]]
mode = "server"
address = "127.0.0.1:%d"
poll-interval-limits = { min = 0, max = 2 }
`, port)), 0o644)
	state := filepath.Join(dir, "state")
	os.Mkdir(state, 0o755)
	peers.Start(t, dir, "gnomond", []string{"DBUS_SYSTEM_BUS_ADDRESS=" + addr},
		peers.Safe(t, gnomond, "--config", cfg, "--user", "", "--state-dir", state, "--system-root", dir, "--log-level", "debug")...)

	// status shows the chronyd source as selected.
	var st ctlResult
	peers.Eventually(t, 60*time.Second, "gnomonctl status shows chronyd selected", func() error {
		st = ctl(t, gnomonctl, addr, false, "status")
		if st.code != 0 {
			return fmt.Errorf("exit %d: %s", st.code, st.stderr)
		}
		if !strings.Contains(st.stdout, "Synchronized:     yes") || !strings.Contains(st.stdout, "^* 127.0.0.1 ") {
			return fmt.Errorf("not yet:\n%s", st.stdout)
		}
		return nil
	})
	t.Logf("gnomonctl status:\n%s", st.stdout)

	// --json parses, and says the same.
	js := ctl(t, gnomonctl, addr, false, "status", "--json")
	var s struct {
		SchemaVersion int    `json:"schema_version"`
		Synchronized  bool   `json:"synchronized"`
		ClockMode     string `json:"clock_mode"`
		Stratum       int    `json:"stratum"`
		SelectedName  string `json:"selected_name"`
		Sources       []struct {
			Address  string `json:"address"`
			State    string `json:"state"`
			Selected bool   `json:"selected"`
			Stratum  int    `json:"stratum"`
			Reach    int    `json:"reach"`
		} `json:"sources"`
	}
	if err := json.Unmarshal([]byte(js.stdout), &s); err != nil || js.code != 0 {
		t.Fatalf("status --json: exit %d, %v\n%s", js.code, err, js.stdout)
	}
	want := fmt.Sprintf("127.0.0.1:%d", port)
	if s.SchemaVersion != 1 || !s.Synchronized || s.ClockMode != "observe" || s.Stratum != 2 || len(s.Sources) != 1 ||
		s.Sources[0].Address != want || !s.Sources[0].Selected || s.Sources[0].State != "selected" || s.Sources[0].Stratum != 1 || s.Sources[0].Reach == 0 {
		t.Errorf("status --json = %+v", s)
	}
	if src := ctl(t, gnomonctl, addr, false, "sources", "--json"); src.code != 0 || !json.Valid([]byte(src.stdout)) {
		t.Errorf("sources --json: exit %d\n%s%s", src.code, src.stdout, src.stderr)
	}
	if w := ctl(t, gnomonctl, addr, false, "sources", "--watch", "--count", "2", "--interval", "100ms"); w.code != 0 || strings.Count(w.stdout, "MS Name/IP") != 2 {
		t.Errorf("sources --watch: exit %d\n%s%s", w.code, w.stdout, w.stderr)
	}

	// An unprivileged user may read, but polkit refuses changes.
	if r := ctl(t, gnomonctl, addr, true, "status"); r.code != 0 {
		t.Errorf("status as nobody: exit %d %s", r.code, r.stderr)
	}
	for _, args := range [][]string{
		{"add-source", "127.0.0.2"},
		{"add-source", "--no-ask-password", "127.0.0.2"},
		{"remove-source", want},
		{"burst"},
		{"reload", "--no-ask-password"},
	} {
		r := ctl(t, gnomonctl, addr, true, args...)
		if r.code != 1 || !strings.Contains(r.stderr, "hint: polkit refused") {
			t.Errorf("%v as nobody: exit %d, stderr %q; want 1 and the polkit hint", args, r.code, r.stderr)
		}
	}
	// Root may: add a second source, see it, remove it.
	add := ctl(t, gnomonctl, addr, false, "add-source", "127.0.0.3:"+fmt.Sprint(port))
	if add.code != 0 || !strings.Contains(add.stdout, "added server") {
		t.Fatalf("add-source as root: exit %d\n%s%s", add.code, add.stdout, add.stderr)
	}
	peers.Eventually(t, 10*time.Second, "the new source listed", func() error {
		r := ctl(t, gnomonctl, addr, false, "sources")
		if !strings.Contains(r.stdout, "127.0.0.3") {
			return fmt.Errorf("%s", r.stdout)
		}
		return nil
	})
	if r := ctl(t, gnomonctl, addr, false, "burst", "127.0.0.3:"+fmt.Sprint(port)); r.code != 0 {
		t.Errorf("burst as root: exit %d %s", r.code, r.stderr)
	}
	if r := ctl(t, gnomonctl, addr, false, "remove-source", "127.0.0.3:"+fmt.Sprint(port)); r.code != 0 {
		t.Errorf("remove-source as root: exit %d %s", r.code, r.stderr)
	}
	if r := ctl(t, gnomonctl, addr, false, "remove-source", "127.0.0.3:"+fmt.Sprint(port)); r.code != 1 {
		t.Errorf("remove-source of a removed source: exit %d %s", r.code, r.stderr)
	}
}
