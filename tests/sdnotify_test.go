package tests

import (
	"fmt"
	"slices"
	"testing"
	"time"

	"gnomon.dev/gnomon/tests/peers"
)

// count is how many notify lines so far equal want.
func count(n *peers.Notifier, want string) int {
	k := 0
	for _, l := range n.All() {
		if l == want {
			k++
		}
	}
	return k
}

// The watchdog as systemd sets it up (WatchdogSec=2: WATCHDOG_USEC and
// WATCHDOG_PID, which is only known once gnomond runs, so a shell sets it
// to its own PID and execs gnomond), and STOPPING=1 on SIGTERM.
func TestWatchdogAndStopping(t *testing.T) {
	peers.NeedRoot(t, rootFor)
	t.Parallel()
	env := peers.NeedTool(t, "env")
	for _, tc := range []struct {
		name string
		pid  string // what WATCHDOG_PID is set to, in sh
		ping bool   // whether WATCHDOG=1 is expected
	}{
		{"own pid", "$$", true},
		// The watchdog is meant for another process (the shell's parent):
		// gnomond must not answer it.
		{"another pid", "$PPID", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			dir := peers.TempDir(t, 0o777)
			wrap := []string{env, "NOTIFY_SOCKET=@NOTIFY@", "WATCHDOG_USEC=2000000",
				"sh", "-c", `export WATCHDOG_PID=` + tc.pid + `; exec "$@"`, "sh"}
			g := startGnomond(t, dir, observeConfig(), gnomondOpts{wrap: wrap})
			g.notify.WaitFor(t, 10*time.Second, "READY=1", func(l string) bool { return l == "READY=1" })
			if tc.ping {
				// Every half of the 2 s timeout: twice within 5 s is the
				// least a service manager would accept.
				peers.Eventually(t, 5*time.Second, "two WATCHDOG=1", func() error {
					if k := count(g.notify, "WATCHDOG=1"); k < 2 {
						return fmt.Errorf("%d so far", k)
					}
					return nil
				})
			} else {
				// Three times the interval it would use: no ping.
				time.Sleep(3 * time.Second)
				if k := count(g.notify, "WATCHDOG=1"); k != 0 {
					t.Errorf("%d WATCHDOG=1 for a watchdog meant for another process", k)
				}
			}

			g.Stop() // SIGTERM
			if err := g.Err(); err != nil {
				t.Errorf("gnomond after SIGTERM: %v, want exit status 0", err)
			}
			g.notify.WaitFor(t, 5*time.Second, "STOPPING=1", func(l string) bool { return l == "STOPPING=1" })
			lines := g.notify.All()
			if lines[len(lines)-1] != "STOPPING=1" {
				t.Errorf("STOPPING=1 is not the last thing gnomond sent: %q", lines)
			}
			if i := slices.Index(lines, "READY=1"); i < 0 || i > slices.Index(lines, "STOPPING=1") {
				t.Errorf("READY=1 is not before STOPPING=1: %q", lines)
			}
			t.Logf("%d WATCHDOG=1, then STOPPING=1", count(g.notify, "WATCHDOG=1"))
		})
	}
}
