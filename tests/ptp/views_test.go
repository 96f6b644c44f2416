package ptp

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"gnomon.dev/gnomon/tests/peers"
)

// TestViews: a PTP port is a source object on org.gnomon.Gnomon1 (on a
// private system bus) with its port state, grandmaster, parent, offset
// and mean path delay, and gnomonctl sources shows them.
func TestViews(t *testing.T) {
	t.Parallel()
	tag, dir := setup(t)
	peers.NeedTool(t, "dbus-daemon")
	bus := peers.StartSystemBus(t, dir, peers.PermissiveBusPolicy)
	m, g := netns(t, tag, "m"), netns(t, tag, "g")
	link(t, tag, m, "m0", "10.80.0.1/24", g, "g0", "10.80.0.2/24")
	gm := identityOf(t, m, "m0")
	peers.Start(t, dir, "ptp4l-master", nil, safeIn(t, m, append([]string{"ptp4l", "-i", "m0", "--masterOnly", "1",
		"--uds_address", dir + "/m.sock", "--logAnnounceInterval", "0"}, ptp4lFlags("udp4", "E2E")...)...)...)
	cfg := gnomondHead + "[[source]]\nmode = \"ptp\"\ninterface = \"g0\"\ntimestamping = \"software\"\n"
	path := filepath.Join(dir, "gnomond.toml")
	if err := os.WriteFile(path, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	peers.Start(t, dir, "gnomond", []string{"DBUS_SYSTEM_BUS_ADDRESS=" + bus.Addr},
		safeIn(t, g, gnomondBin, "--config", path, "--user", "", "--state-dir", "", "--system-root", peers.NewSystemRoot(t, dir, "UTC"))...)

	type src struct {
		Kind        string `json:"kind"`
		Name        string `json:"name"`
		State       string `json:"state"`
		OffsetNS    int64  `json:"offset_ns"`
		DelayNS     uint64 `json:"delay_ns"`
		PortState   string `json:"ptp_port_state"`
		Grandmaster string `json:"ptp_grandmaster"`
		Parent      string `json:"ptp_parent"`
		Decision    string `json:"ptp_decision"`
	}
	var got src
	var last string
	ok := waitFor(50*time.Second, func() bool {
		cmd := exec.Command(gnomonctlBin, "sources", "--json")
		cmd.Env = append(os.Environ(), "DBUS_SYSTEM_BUS_ADDRESS="+bus.Addr)
		out, err := cmd.CombinedOutput()
		last = string(out)
		if err != nil {
			return false
		}
		var v struct{ Sources []src }
		if json.Unmarshal(out, &v) != nil || len(v.Sources) != 1 {
			return false
		}
		got = v.Sources[0]
		// The port's state, and the engine's selection of its source
		// (a source of the system clock, docs/ptp.md).
		return got.PortState == "SLAVE" && got.State == "selected"
	})
	if !ok {
		t.Fatalf("no SLAVE, selected PTP source on D-Bus; gnomonctl sources --json said:\n%s", last)
	}
	if got.Kind != "ptp" || got.Name != "ptp:g0" || got.State != "selected" || got.Grandmaster != gm ||
		got.Parent != gm+"-1" || got.Decision != "S1" || got.DelayNS == 0 || got.DelayNS > 1e6 || got.OffsetNS > 50_000 || got.OffsetNS < -50_000 {
		t.Errorf("PTP source %+v; want grandmaster and parent %s(-1)", got, gm)
	}
	cmd := exec.Command(gnomonctlBin, "sources")
	cmd.Env = append(os.Environ(), "DBUS_SYSTEM_BUS_ADDRESS="+bus.Addr)
	out, err := cmd.CombinedOutput()
	if err != nil || !strings.Contains(string(out), "PTP SLAVE (BMCA S1), grandmaster "+gm) {
		t.Errorf("gnomonctl sources (%v):\n%s", err, out)
	}
	t.Logf("gnomonctl sources:\n%s", out)
}
