package tests

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"gnomon.dev/gnomon/tests/peers"
)

// gnomond (not check-config) started on an invalid configuration: it
// exits 3, names file:line: key on stderr, and never tells systemd it is
// ready.
func TestBadConfigStart(t *testing.T) {
	peers.NeedRoot(t, "setpriv")
	t.Parallel()
	dir := peers.TempDir(t, 0o755)
	const observe = "[clock]\nmode = \"observe\"\n"
	for i, tc := range []struct {
		name string
		text string
		want []string // in stderr; @PATH@ is the file
	}{
		{"unknown key", observe + "bogus-key = 1\n", []string{"@PATH@:3: ", "clock.bogus-key"}},
		{"wrong type", observe + "step-threshold = \"x\"\n", []string{"@PATH@:3: ", "clock.step-threshold"}},
		{"pool count 0", observe + "[[source]]\nmode = \"pool\"\naddress = \"pool.gnomon.test\"\ncount = 0\n",
			[]string{"@PATH@:6: ", "source[0].count"}},
		{"poll limits reversed", observe + "[[source]]\nmode = \"server\"\naddress = \"127.0.0.1:123\"\npoll-interval-limits = { min = 5, max = 2 }\n",
			[]string{"@PATH@:6: ", "source[0].poll-interval-limits"}},
		// A good source and server before the bad key: nothing starts
		// half-configured.
		{"bad listen after good tables", observe + sourceTable(123) + serverTable(peers.Loop4(peers.FreePort(t)).String()) + serverTable("127.0.0.1:99999"),
			[]string{"@PATH@:11: ", "server[1].listen"}},
		{"not TOML", observe + "drift-file =\n", []string{"@PATH@:3:", "invalid TOML"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			path := filepath.Join(dir, fmt.Sprintf("bad%d.toml", i))
			if err := os.WriteFile(path, []byte(tc.text), 0o644); err != nil {
				t.Fatal(err)
			}
			n := peers.NewNotifier(t, dir)
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			argv := peers.Safe(t, gnomondBin, "--config", path, "--no-dbus", "--state-dir", "")
			cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
			cmd.Env = append(os.Environ(), "NOTIFY_SOCKET="+n.Path)
			cmd.Dir = dir
			var stdout, stderr strings.Builder
			cmd.Stdout, cmd.Stderr = &stdout, &stderr
			err := cmd.Run()
			var ee *exec.ExitError
			if !errors.As(err, &ee) || ee.ExitCode() != 3 {
				t.Errorf("gnomond on an invalid configuration: %v, want exit status 3\nstderr: %s", err, stderr.String())
			}
			for _, w := range tc.want {
				if w = strings.ReplaceAll(w, "@PATH@", path); !strings.Contains(stderr.String(), w) {
					t.Errorf("stderr lacks %q:\n%s", w, stderr.String())
				}
			}
			if stdout.Len() != 0 {
				t.Errorf("stdout: %q, want nothing", stdout.String())
			}
			// Whatever gnomond sent is queued before this marker.
			c, err := net.Dial("unixgram", n.Path)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			const marker = "X-TEST-END=1"
			if _, err := c.Write([]byte(marker)); err != nil {
				t.Fatal(err)
			}
			n.WaitFor(t, 10*time.Second, "the test's marker", func(l string) bool { return l == marker })
			if lines := n.All(); slices.Contains(lines, "READY=1") {
				t.Errorf("gnomond sent READY=1 on an invalid configuration: %q", lines)
			} else if len(lines) > 1 {
				t.Logf("gnomond sent %q", lines[:len(lines)-1])
			}
		})
	}
}
