package ptp

import (
	"os/exec"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"gnomon.dev/gnomon/tests/peers"
)

// TestPMCLikePTP4l: pmc's GETs of the common datasets, answered by a
// gnomond master and by a ptp4l master in the same situation (alone on
// a veth link, priority1 100, Announce every second, software
// timestamps): the same fields, with the same values but for the clock
// identities (each derives its own from its MAC address).
func TestPMCLikePTP4l(t *testing.T) {
	t.Parallel()
	tag, dir := setup(t)
	pmc := peers.NeedTool(t, "pmc")
	gm, gq := netns(t, tag, "pg"), netns(t, tag, "qg")
	link(t, tag, gm, "m0", "10.83.0.1/24", gq, "q0", "10.83.0.2/24")
	pm, pq := netns(t, tag, "pp"), netns(t, tag, "qp")
	link(t, tag, pm, "n0", "10.83.1.1/24", pq, "r0", "10.83.1.2/24")
	startGnomond(t, dir, gm, "gnomond", gnomondHead+"[[ptp-port]]\ninterface = \"m0\"\ntimestamping = \"software\"\npriority1 = 100\nannounce-interval = 0\n")
	peers.Start(t, dir, "ptp4l", nil, safeIn(t, pm, "ptp4l", "-i", "n0", "-S", "-m", "-q", "-4", "--free_running", "1",
		"--priority1", "100", "--logAnnounceInterval", "0", "--uds_address", dir+"/p.sock")...)

	get := func(ns, iface, what string) map[string]string {
		out, err := exec.Command("ip", "netns", "exec", ns, pmc, "-4", "-i", iface, "-b", "0", "GET "+what).CombinedOutput()
		if err != nil {
			t.Fatalf("pmc GET %s in %s: %v\n%s", what, ns, err, out)
		}
		return pmcFields(string(out), what)
	}
	mastered := func(ns, iface string) bool { return get(ns, iface, "PORT_DATA_SET")["portState"] == "MASTER" }
	if !waitFor(30*time.Second, func() bool { return mastered(gq, "q0") && mastered(pq, "r0") }) {
		t.Fatalf("not both MASTER: gnomond %v, ptp4l %v", get(gq, "q0", "PORT_DATA_SET"), get(pq, "r0", "PORT_DATA_SET"))
	}
	// the clock identities differ by design
	identity := regexp.MustCompile(`^[0-9a-f]{6}\.[0-9a-f]{4}\.[0-9a-f]{6}(-\d+)?$`)
	for _, what := range []string{"CURRENT_DATA_SET", "PARENT_DATA_SET", "PORT_DATA_SET", "DEFAULT_DATA_SET", "TIME_PROPERTIES_DATA_SET"} {
		g, p := get(gq, "q0", what), get(pq, "r0", what)
		if len(g) == 0 || len(p) == 0 {
			t.Errorf("GET %s: gnomond answered %v, ptp4l %v", what, g, p)
			continue
		}
		var gk, pk []string
		for k := range g {
			gk = append(gk, k)
		}
		for k := range p {
			pk = append(pk, k)
		}
		slices.Sort(gk)
		slices.Sort(pk)
		if !slices.Equal(gk, pk) {
			t.Errorf("GET %s: gnomond's fields %v, ptp4l's %v", what, gk, pk)
		}
		same := 0
		for k, pv := range p {
			gv, ok := g[k]
			switch {
			case !ok:
			case identity.MatchString(pv) && identity.MatchString(gv):
				same++
			case gv != pv:
				t.Errorf("GET %s: %s is %q from gnomond, %q from ptp4l", what, k, gv, pv)
			default:
				same++
			}
		}
		t.Logf("GET %s: %d fields, %d alike (identities aside)", what, len(p), same)
	}
}

// pmcFields are the "name value" lines of pmc's response to GET what.
func pmcFields(out, what string) map[string]string {
	_, body, ok := strings.Cut(out, "RESPONSE MANAGEMENT "+what)
	if !ok {
		return nil
	}
	f := map[string]string{}
	for _, l := range strings.Split(body, "\n")[1:] {
		if !strings.HasPrefix(l, "\t\t") {
			break
		}
		k, v, _ := strings.Cut(strings.TrimSpace(l), " ")
		f[k] = strings.TrimSpace(v)
	}
	return f
}
