package peers

import (
	"os/exec"
	"testing"
)

// NewNetns makes a network namespace named gtest-<random> with its
// loopback up and deletes it when the test ends. Processes started in it
// afterwards (with InNetns) are cleaned up before it is deleted, since
// test cleanups run last-in first-out. Failing to make one is
// SkipOrFatal.
func NewNetns(t testing.TB) string {
	t.Helper()
	ip := NeedTool(t, "ip")
	name := "gtest-" + RandomHex(t, 4)
	if out, err := exec.Command(ip, "netns", "add", name).CombinedOutput(); err != nil {
		SkipOrFatal(t, "ip netns add %s: %v: %s", name, err, out)
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
