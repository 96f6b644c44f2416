package tests

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"gnomon.dev/gnomon/ctl/client"
	"gnomon.dev/gnomon/tests/peers"
)

// privateResolver is a wrap for startBusGnomondWrapped: gnomond runs in a
// mount namespace of its own where /etc/hosts names only localhost and
// /etc/resolv.conf points at 127.0.0.1, where no DNS server answers: a
// name outside hosts fails quickly, and no query leaves the machine.
func privateResolver(t *testing.T, dir string) []string {
	t.Helper()
	hosts, resolv := filepath.Join(dir, "hosts"), filepath.Join(dir, "resolv.conf")
	if err := os.WriteFile(hosts, []byte("127.0.0.1 localhost\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(resolv, []byte("nameserver 127.0.0.1\noptions timeout:1 attempts:1\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	script := `"$2" --bind "$0" /etc/hosts && "$2" --bind "$1" /etc/resolv.conf && shift 3 && exec "$@"`
	return []string{peers.NeedTool(t, "unshare"), "--mount", "--propagation", "private",
		"sh", "-c", script, hosts, resolv, peers.NeedTool(t, "mount"), "--"}
}

// sourcesJSON reads gnomonctl sources --json.
func (b *busGnomond) sourcesJSON(t *testing.T) ([]client.Source, error) {
	t.Helper()
	out, err := b.ctlRun("sources", "--json")
	if err != nil {
		return nil, fmt.Errorf("gnomonctl sources --json: %v\n%s", err, out)
	}
	var v struct {
		Sources []client.Source `json:"sources"`
	}
	if err := json.Unmarshal([]byte(out), &v); err != nil {
		return nil, fmt.Errorf("%v: %s", err, out)
	}
	return v.Sources, nil
}

// TestSourcesVisible: every configured source shows in gnomonctl sources
// (read over D-Bus, the Manager's Sources and each source object), resolved
// or not, with its last error: a name that does not resolve, a server port
// that refuses, an NTS-KE server that refuses. add-source of an existing
// source says it exists; of a name that does not resolve, says so. At
// debug level the log limiter hides none of the repeated socket errors.
func TestSourcesVisible(t *testing.T) {
	peers.NeedRoot(t, rootFor+", unshare -m, mount --bind")
	t.Parallel()
	dir := peers.TempDir(t, 0o777)
	up := peers.StartChronyd(t, dir, peers.FreePort(t), "")
	closed, closedKE := peers.FreePort(t), peers.FreePort(t)
	srcs := sourceTable(up.Port) + sourceTable(closed) +
		"[[source]]\nmode = \"server\"\naddress = \"nowhere.gnomon.test:123\"\n" +
		fmt.Sprintf("[[source]]\nmode = \"nts\"\naddress = \"127.0.0.1:%d\"\n", closedKE)
	b := startBusGnomondWrapped(t, dir, observeConfig(srcs), "", privateResolver(t, dir), "--log-level=debug")

	want := map[string]string{ // address → what its last error must say
		fmt.Sprintf("127.0.0.1:%d", closed):   "connection refused",
		"nowhere.gnomon.test:123":             "resolving",
		fmt.Sprintf("127.0.0.1:%d", closedKE): "NTS key exchange",
	}
	peers.Eventually(t, 20*time.Second, "every source with its last error in gnomonctl sources", func() error {
		got, err := b.sourcesJSON(t)
		if err != nil {
			return err
		}
		if len(got) != 4 {
			return fmt.Errorf("%d sources, want 4: %+v", len(got), got)
		}
		for addr, sub := range want {
			found := false
			for _, s := range got {
				if s.Address == addr {
					found = true
					if !strings.Contains(s.LastError, sub) {
						return fmt.Errorf("source %s: last error %q, want it to say %q", addr, s.LastError, sub)
					}
				}
			}
			if !found {
				return fmt.Errorf("source %s missing: %+v", addr, got)
			}
		}
		return nil
	})
	out, err := b.ctlRun("sources")
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("gnomonctl sources:\n%s", out)
	mustContain(t, "gnomonctl sources", out, "nowhere.gnomon.test", "last error: resolving")

	// add-source of a source that is there already.
	out, err = b.ctlRun("add-source", "--no-ask-password", "server", fmt.Sprintf("127.0.0.1:%d", up.Port))
	if err == nil || !strings.Contains(out, "already exists") {
		t.Errorf("add-source of an existing source: err %v:\n%s", err, out)
	}
	// add-source of a name that does not resolve: added, and says why it
	// is not usable yet.
	out, err = b.ctlRun("add-source", "--no-ask-password", "server", "elsewhere.gnomon.test")
	if err != nil || !strings.Contains(out, "not usable yet (resolving") {
		t.Errorf("add-source of an unresolvable name: err %v:\n%s", err, out)
	}

	// At debug level, every repetition of the refused port's error is
	// in the log (polled every second or two).
	peers.Eventually(t, 20*time.Second, "repeated socket errors in the debug log", func() error {
		n := len(logRecords(t, b.gnomond, "source socket error"))
		if n < 5 {
			return fmt.Errorf("%d records", n)
		}
		return nil
	})
}
