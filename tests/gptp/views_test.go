package gptp

import (
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"gnomon.dev/gnomon/ctl/client"
	"gnomon.dev/gnomon/tests/peers"
)

// pmc asks ptp4l's management socket sock (pmc -u, transportSpecific 1
// as gPTP.cfg wants) for what, and returns each answering port's fields
// by port number.
func pmc(t testing.TB, dir, sock, what string) map[int]map[string]string {
	t.Helper()
	out, err := exec.Command(peers.NeedTool(t, "pmc"), "-u", "-b", "0", "-t", "1", "-s", sock,
		"-i", filepath.Join(dir, "pmc-"+peers.RandomHex(t, 3)+".sock"), "GET "+what).CombinedOutput()
	if err != nil {
		t.Fatalf("pmc GET %s: %v\n%s", what, err, out)
	}
	ports := map[int]map[string]string{}
	var cur map[string]string
	for _, l := range strings.Split(string(out), "\n") {
		f := strings.Fields(l)
		switch {
		case len(f) >= 4 && f[3] == "RESPONSE":
			// "001122.fffe.334455-1 seq 0 RESPONSE MANAGEMENT ..."
			n, _ := strconv.Atoi(f[0][strings.LastIndex(f[0], "-")+1:])
			cur = map[string]string{}
			ports[n] = cur
		case len(f) == 2 && cur != nil:
			cur[f[0]] = f[1]
		}
	}
	if len(ports) == 0 {
		t.Fatalf("pmc GET %s: no answer:\n%s", what, out)
	}
	return ports
}

// startGnomondBus runs gnomond in ns with D-Bus on a private system bus,
// and returns a function that reads its sources with gnomonctl.
func startGnomondBus(t testing.TB, dir, ns, name, cfg string) (*peers.Proc, func() ([]client.Source, string)) {
	t.Helper()
	p, ctl := peers.StartGnomondBus(t, gnomondBin, gnomonctlBin, dir, ns, name, cfg)
	return p, func() ([]client.Source, string) {
		var v struct{ Sources []client.Source }
		out := ctl(&v, "sources")
		return v.Sources, out
	}
}

// ptpLink is the first PTP source's 802.1AS link as gnomonctl shows it.
func ptpLink(srcs []client.Source) *client.PTPLink {
	for _, s := range srcs {
		if s.Kind == "ptp" {
			return s.PTPLink
		}
	}
	return nil
}
