package tests

import (
	"errors"
	"strings"
	"testing"
	"time"

	"gnomon.dev/gnomon/tests/peers"
)

// Without CAP_SYS_TIME (every gnomond on a test machine runs so), a
// configuration that does not ask for observe mode still ends up in it:
// gnomond decides on the capability, not on the uid (it runs as root
// here), and says so loudly: an error in the log and the STATUS= line.
// The packaged unit, which grants CAP_SYS_TIME, is shown disciplining a
// real kernel clock by tests/vm.
func TestObserveFallbackWithoutCapSysTime(t *testing.T) {
	peers.NeedRoot(t, rootFor)
	t.Parallel()
	dir := peers.TempDir(t, 0o777)
	// No mode: the default would discipline the clock.
	g := startGnomond(t, dir, "[clock]\ndrift-file = \"\"\n", gnomondOpts{})
	g.notify.WaitFor(t, 10*time.Second, "READY=1", func(l string) bool { return l == "READY=1" })
	st := g.notify.LastStatus()
	if !strings.HasPrefix(st, "STATUS=OBSERVE MODE") || !strings.Contains(st, "lacks CAP_SYS_TIME") {
		t.Errorf("STATUS=%q, want it to start with OBSERVE MODE and name CAP_SYS_TIME", st)
	}
	peers.Eventually(t, 5*time.Second, "the observe-mode error in the log", func() error {
		if l := g.Tail(1 << 16); !strings.Contains(l, "OBSERVE MODE") || !strings.Contains(l, "lacks CAP_SYS_TIME") {
			return errors.New("not yet")
		}
		return nil
	})
	g.Stop()

	// Asked for, observe mode is quiet.
	g = startGnomond(t, dir, observeConfig(), gnomondOpts{})
	g.notify.WaitFor(t, 10*time.Second, "READY=1", func(l string) bool { return l == "READY=1" })
	if st := g.notify.LastStatus(); strings.Contains(st, "OBSERVE MODE") {
		t.Errorf("explicit observe mode: STATUS=%q warns", st)
	}
	if l := g.Tail(1 << 16); strings.Contains(l, "OBSERVE MODE") {
		t.Errorf("explicit observe mode warned:\n%s", l)
	}
	g.Stop()
}
