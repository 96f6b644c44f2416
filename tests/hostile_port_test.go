package tests

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"gnomon.dev/gnomon/tests/peers"
)

// hnRunToExit runs gnomond on cfg as startGnomond would and returns its
// exit code and output; a daemon still running after 20 s is an error.
func hnRunToExit(t *testing.T, dir, cfg string) (int, string) {
	t.Helper()
	path := filepath.Join(dir, "x-"+peers.RandomHex(t, 3)+".toml")
	if err := os.WriteFile(path, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	argv := peers.Safe(t, gnomondBin, "--config", path, "--no-dbus", "--state-dir", "", "--user", "")
	out, err := exec.CommandContext(ctx, argv[0], argv[1:]...).CombinedOutput()
	var ee *exec.ExitError
	switch {
	case err == nil:
		return 0, string(out)
	case errors.As(err, &ee) && ctx.Err() == nil:
		return ee.ExitCode(), string(out)
	}
	t.Fatalf("gnomond did not exit: %v\n%s", err, out)
	return 0, ""
}

// TestNoSilentPortSharing (issue 11, item 5): gnomond's SO_REUSEPORT
// server workers share their port with nobody else. With a real chronyd
// serving 127.0.0.1:P, a gnomond [[server]] on the same address exits with
// status 1 and "address in use by another process", and every client keeps
// getting chronyd; the same against another gnomond.
func TestNoSilentPortSharing(t *testing.T) {
	peers.NeedRoot(t, rootFor)
	t.Parallel()
	dir := peers.TempDir(t, 0o777)
	up := peers.StartChronyd(t, dir, peers.FreePort(t), "")

	for _, workers := range []int{1, 2, 4} {
		code, out := hnRunToExit(t, dir, observeConfig(serverTable(peers.Loop4(up.Port).String(), fmt.Sprintf("workers = %d", workers))))
		if code != 1 || !strings.Contains(out, "address in use by another process") {
			t.Errorf("gnomond (%d workers) on chronyd's 127.0.0.1:%d: exit %d, want 1 with \"address in use by another process\":\n%s", workers, up.Port, code, out)
		}
	}
	// chronyd alone answers: stratum 1 (a gnomond in observe mode without
	// sources would answer stratum 16).
	cl := peers.NewNTPClient(t, "127.0.0.1")
	for i := range 16 {
		h, _, err := cl.Query(up.AddrPort(), time.Second)
		if err != nil || h.Stratum != 1 {
			t.Fatalf("query %d to chronyd: %+v %v", i, h, err)
		}
	}

	// Another gnomond holding the port, with its own workers.
	port := peers.FreePort(t)
	first := startGnomond(t, dir, observeConfig(serverTable(peers.Loop4(port).String(), "workers = 2", "rate-limit = { interval = 0 }")), gnomondOpts{})
	first.notify.WaitFor(t, 10*time.Second, "READY=1", func(l string) bool { return l == "READY=1" })
	code, out := hnRunToExit(t, dir, observeConfig(serverTable(peers.Loop4(port).String(), "workers = 2")))
	if code != 1 || !strings.Contains(out, "address in use by another process") {
		t.Errorf("a second gnomond on the first's 127.0.0.1:%d: exit %d, want 1 with \"address in use by another process\":\n%s", port, code, out)
	}
	if !first.Alive() {
		t.Error("the first gnomond died")
	}
}
