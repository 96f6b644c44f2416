package ptp

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"gnomon.dev/gnomon/tests/peers"
)

// TestSystemPeerFallback: a PTP source is a source of the system clock
// like the NTP ones. ptp4l (master only, clockClass 6 like a GPS-locked
// grandmaster, free_running) in one namespace and a chronyd NTP server on
// the loopback of gnomond's namespace: gnomond (observe mode) selects the
// PTP source as its system peer (stratum 1, reference "PTP"). When ptp4l
// dies, the port's announce receipt timeout (3 announce intervals of
// 1 s) ends its SLAVE state and gnomond falls back to chronyd.
func TestSystemPeerFallback(t *testing.T) {
	t.Parallel()
	tag, dir := setup(t)
	peers.NeedTool(t, "dbus-daemon")
	bus := peers.StartSystemBus(t, dir, peers.PermissiveBusPolicy)
	m, g := netns(t, tag, "m"), netns(t, tag, "g")
	link(t, tag, m, "m0", "10.81.0.1/24", g, "g0", "10.81.0.2/24")
	gm := identityOf(t, m, "m0")
	ntpPort := peers.FreePort(t)
	peers.StartChronyd(t, dir, ntpPort, g)
	master := peers.Start(t, dir, "ptp4l-master", nil, safeIn(t, m, append([]string{"ptp4l", "-i", "m0", "--masterOnly", "1",
		"--clockClass", "6", "--uds_address", dir + "/m.sock", "--logAnnounceInterval", "0"}, ptp4lFlags("udp4", "E2E")...)...)...)
	cfg := gnomondHead + "[[source]]\nmode = \"ptp\"\ninterface = \"g0\"\ntimestamping = \"software\"\n" +
		fmt.Sprintf("[[source]]\nmode = \"server\"\naddress = \"127.0.0.1:%d\"\npoll-interval-limits = { min = 0, max = 1 }\n", ntpPort)
	path := filepath.Join(dir, "gnomond.toml")
	if err := os.WriteFile(path, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	gn := peers.Start(t, dir, "gnomond", []string{"DBUS_SYSTEM_BUS_ADDRESS=" + bus.Addr},
		safeIn(t, g, gnomondBin, "--config", path, "--user", "", "--state-dir", "", "--system-root", peers.NewSystemRoot(t, dir, "UTC"))...)

	ctl := func(v any, args ...string) string {
		cmd := exec.Command(gnomonctlBin, append(args, "--json")...)
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
	type status struct {
		Synchronized bool   `json:"synchronized"`
		Stratum      uint8  `json:"stratum"`
		Reference    string `json:"reference"`
		Selected     string `json:"selected_source"`
	}
	type source struct {
		Path        string `json:"path"`
		Kind        string `json:"kind"`
		Name        string `json:"name"`
		State       string `json:"state"`
		OffsetNS    int64  `json:"offset_ns"`
		PortState   string `json:"ptp_port_state"`
		Grandmaster string `json:"ptp_grandmaster"`
	}
	// peer is the status and the kind of the system peer's source.
	peer := func() (status, source, string) {
		var st status
		var srcs struct{ Sources []source }
		out := ctl(&st, "status") + "\n" + ctl(&srcs, "sources")
		for _, s := range srcs.Sources {
			if s.Path == st.Selected {
				return st, s, out
			}
		}
		return st, source{}, out
	}

	var last string
	var st status
	var sel source
	if !waitFor(60*time.Second, func() bool {
		st, sel, last = peer()
		// UNCALIBRATED feeds the engine too (docs/ptp.md); wait for the
		// port's own servo to lock as well.
		return st.Synchronized && sel.Kind == "ptp" && sel.PortState == "SLAVE"
	}) {
		t.Fatalf("gnomond did not select the PTP source; gnomonctl said:\n%s\ngnomond:\n%s", last, gn.Tail(30))
	}
	if st.Stratum != 1 || st.Reference != "PTP" || sel.PortState != "SLAVE" || sel.Grandmaster != gm ||
		sel.OffsetNS > 50_000 || sel.OffsetNS < -50_000 {
		t.Errorf("with PTP as the system peer: status %+v, source %+v", st, sel)
	}
	t.Logf("PTP selected: status %+v, source %+v", st, sel)

	// The bound: the announce receipt timeout (3 s) plus a margin for a
	// loaded machine; the fallback itself is immediate once the port
	// leaves SLAVE (system.ExternalLost reselects at once).
	const announceTimeout = 3 * time.Second
	master.Stop()
	stopped := time.Now()
	if !waitFor(announceTimeout+12*time.Second, func() bool {
		st, sel, last = peer()
		return st.Synchronized && sel.Kind == "server"
	}) {
		t.Fatalf("gnomond did not fall back to chronyd within %v of ptp4l's end; gnomonctl said:\n%s\ngnomond:\n%s",
			announceTimeout+12*time.Second, last, gn.Tail(30))
	}
	t.Logf("fell back to chronyd %.1f s after ptp4l stopped: status %+v", time.Since(stopped).Seconds(), st)
	if st.Stratum != 2 || st.Reference != "127.0.0.1" {
		t.Errorf("after the fallback: status %+v, want stratum 2 from 127.0.0.1", st)
	}
	if !logHas(t, gn, "PTP source lost its master") {
		t.Error("gnomond did not log the loss of the PTP master")
	}
	if logHas(t, gn, "WARNING: DATA RACE") { // a gnomond built with -race (GNOMON_TEST_GNOMOND)
		t.Errorf("gnomond reported a data race:\n%s", gn.Tail(60))
	}
}
