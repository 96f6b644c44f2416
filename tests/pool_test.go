package tests

// Pools: gnomond resolves a pool's name, takes count members, and
// replaces a member that stays a falseticker or unreachable with a new
// address from a fresh resolution. The name is resolved from an
// /etc/hosts of gnomond's own, bind-mounted in a private mount namespace:
// no DNS, and the machine's /etc/hosts is never touched.

import (
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"gnomon.dev/gnomon/tests/peers"
)

// poolName is the made-up name of the test pool (.test is reserved, RFC 2606).
const poolName = "pool.gnomon.test"

// writeHosts writes an /etc/hosts naming poolName at every address, in
// order. It rewrites the file in place (same inode), so a bind mount of
// it sees the new text.
func writeHosts(t *testing.T, path string, addrs ...netip.Addr) {
	t.Helper()
	var b strings.Builder
	b.WriteString("127.0.0.1 localhost\n")
	for _, a := range addrs {
		fmt.Fprintf(&b, "%s %s\n", a, poolName)
	}
	if err := os.WriteFile(path, []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
}

// privateHosts is a wrap for startGnomond: gnomond runs in a mount
// namespace of its own (unshare -m, private propagation) in which
// hostsFile is bind-mounted over /etc/hosts; the namespace ends with
// gnomond. extra flags are appended to gnomond's command line.
func privateHosts(t *testing.T, hostsFile string, extra ...string) []string {
	t.Helper()
	env := peers.NeedTool(t, "env")
	unshare := peers.NeedTool(t, "unshare")
	mount := peers.NeedTool(t, "mount")
	script := `"$1" --bind "$0" /etc/hosts && shift && exec "$@"`
	for _, f := range extra {
		script += " " + shellQuote(f)
	}
	return []string{env, "NOTIFY_SOCKET=@NOTIFY@", unshare, "--mount", "--propagation", "private",
		"sh", "-c", script, hostsFile, mount}
}

// shellQuote quotes s for sh.
func shellQuote(s string) string {
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// logRecord is one line of gnomond's text log: its attributes by key
// (msg, level, address, ...).
type logRecord map[string]string

var logAttrRE = regexp.MustCompile(`([A-Za-z_][A-Za-z0-9_.]*)=("(?:[^"\\]|\\.)*"|\S*)`)

// logRecords is every record of gnomond's log whose msg is msg, in order.
func logRecords(t *testing.T, g *gnomond, msg string) []logRecord {
	t.Helper()
	b, err := os.ReadFile(g.Log)
	if err != nil {
		t.Fatal(err)
	}
	var out []logRecord
	for _, line := range strings.Split(string(b), "\n") {
		r := logRecord{}
		for _, m := range logAttrRE.FindAllStringSubmatch(line, -1) {
			v := m[2]
			if strings.HasPrefix(v, `"`) {
				if u, err := strconv.Unquote(v); err == nil {
					v = u
				}
			}
			r[m[1]] = v
		}
		if r["msg"] == msg {
			out = append(out, r)
		}
	}
	return out
}

// waitLog waits until gnomond has logged at least n records with msg
// that satisfy match, and returns all of them; it fails the test if
// gnomond exits first or timeout passes.
func waitLog(t *testing.T, g *gnomond, timeout time.Duration, n int, msg string, match func(logRecord) bool) []logRecord {
	t.Helper()
	var got []logRecord
	peers.Eventually(t, timeout, fmt.Sprintf("%d log records %q", n, msg), func() error {
		got = got[:0]
		for _, r := range logRecords(t, g, msg) {
			if match == nil || match(r) {
				got = append(got, r)
			}
		}
		if len(got) >= n {
			return nil
		}
		if !g.Alive() {
			t.Fatalf("gnomond exited: %v", g.Err())
		}
		return fmt.Errorf("%d so far", len(got))
	})
	return got
}

// poolAdds is the addresses of the pool members gnomond added, in order.
func poolAdds(t *testing.T, g *gnomond) []string {
	t.Helper()
	var out []string
	for _, r := range logRecords(t, g, "source added") {
		if r["name"] == poolName {
			out = append(out, r["address"])
		}
	}
	return out
}

// waitSyncedAfter waits for a "synchronized to" STATUS, received after the
// first `after` notify lines, naming one of good; it returns it.
func waitSyncedAfter(t *testing.T, g *gnomond, after int, good map[string]bool, timeout time.Duration) status {
	t.Helper()
	var st status
	peers.Eventually(t, timeout, "a synchronized STATUS naming a good member", func() error {
		lines := g.notify.All()
		for _, l := range lines[min(after, len(lines)):] {
			if s, ok := parseStatus(l); ok && good[s.peer] && !s.holdover {
				st = s
				return nil
			}
		}
		if !g.Alive() {
			t.Fatalf("gnomond exited: %v", g.Err())
		}
		return fmt.Errorf("last STATUS %q", g.notify.LastStatus())
	})
	return st
}

func poolTable(port, count int) string {
	return fmt.Sprintf("[[source]]\nmode = \"pool\"\naddress = \"%s:%d\"\ncount = %d\npoll-interval-limits = { min = -1, max = 1 }\n",
		poolName, port, count)
}

// TestPool runs three chronyds on 127.0.0.11-13, one port, as the good
// members of a pool, and gnomonds whose /etc/hosts names the pool.
func TestPool(t *testing.T) {
	peers.NeedRoot(t, rootFor+", unshare -m, mount --bind")
	t.Parallel()
	dir := peers.TempDir(t, 0o777)
	port := peers.FreePort(t)
	var goodAddrs []netip.Addr
	good := map[string]bool{}
	for i := range 3 {
		a := netip.AddrFrom4([4]byte{127, 0, 0, byte(11 + i)})
		c := peers.StartChronydAt(t, dir, a, port)
		goodAddrs = append(goodAddrs, a)
		good[c.AddrPort().String()] = true
	}
	at := func(a netip.Addr) string { return netip.AddrPortFrom(a, uint16(port)).String() }

	// A member that is bad from the start is replaced, after
	// --pool-replace-after, by an address the name gains meanwhile.
	for _, tc := range []struct {
		name string
		bad  netip.Addr
		liar bool // a server 1 s ahead; otherwise nothing answers
		// what the replacement log record says of the bad member
		key, want string
	}{
		{"falseticker", netip.MustParseAddr("127.0.0.14"), true, "selection", "falseticker"},
		{"unreachable", netip.MustParseAddr("127.0.0.15"), false, "state", "unreachable"},
	} {
		t.Run("replaces "+tc.name, func(t *testing.T) {
			t.Parallel()
			bad := at(tc.bad)
			if tc.liar {
				peers.StartLiar(t, netip.AddrPortFrom(tc.bad, uint16(port)), time.Second)
			}
			hosts := filepath.Join(dir, "hosts-"+tc.name)
			// The bad address first: the Go resolver keeps the order of
			// /etc/hosts for loopback addresses, so count = 3 takes it.
			writeHosts(t, hosts, tc.bad, goodAddrs[0], goodAddrs[1])
			g := startGnomond(t, dir, observeConfig(poolTable(port, 3)), gnomondOpts{
				wrap: privateHosts(t, hosts, "--pool-replace-after=6s", "--log-level=debug"),
			})
			waitLog(t, g, 15*time.Second, 3, "source added", func(r logRecord) bool { return r["name"] == poolName })
			first := poolAdds(t, g)
			if want := []string{bad, at(goodAddrs[0]), at(goodAddrs[1])}; !slices.Equal(first, want) {
				t.Fatalf("pool members %v, want %v (the order of the hosts file)", first, want)
			}
			// Now the name gains the third chronyd, for the re-resolution
			// that replacing the bad member starts (6 s after it was
			// found useless, so after the resolver's 5 s hosts cache).
			writeHosts(t, hosts, tc.bad, goodAddrs[0], goodAddrs[1], goodAddrs[2])

			repl := waitLog(t, g, 60*time.Second, 1, "replacing pool member", nil)
			seen := len(g.notify.All())
			if repl[0]["address"] != bad || repl[0]["pool"] != poolName {
				t.Errorf("replaced %s of pool %s, want %s of %s", repl[0]["address"], repl[0]["pool"], bad, poolName)
			}
			if repl[0][tc.key] != tc.want {
				t.Errorf("replaced member's %s is %q, want %q: %v", tc.key, repl[0][tc.key], tc.want, repl[0])
			}
			waitLog(t, g, 15*time.Second, 4, "source added", func(r logRecord) bool { return r["name"] == poolName })
			adds := poolAdds(t, g)
			if want := append(first, at(goodAddrs[2])); !slices.Equal(adds, want) {
				t.Errorf("pool members added %v, want %v", adds, want)
			}
			// The resolution that found the replacement saw the new name
			// (it is logged after the member it added).
			res := waitLog(t, g, 5*time.Second, 1, "pool resolved", func(r logRecord) bool { return r["addresses"] == "4" })
			if r := res[0]; r["members"] != "3" || r["count"] != "3" {
				t.Errorf("the pool's re-resolution %v, want addresses=4 members=3 count=3", r)
			}

			// It stays synchronized to a good member, and never was to the bad one.
			last := waitSyncedAfter(t, g, seen, good, 30*time.Second)
			for _, st := range syncedLines(g) {
				if !good[st.peer] {
					t.Errorf("synchronized to %s, not a good member: %+v", st.peer, st)
				}
			}
			if abs(last.offset) >= maxOffset || !last.observeKnown || abs(last.sysErr) >= maxOffset {
				t.Errorf("after the replacement: offset %v, system clock error %v (known %v), want both < %v",
					last.offset, last.sysErr, last.observeKnown, maxOffset)
			}
			if n := len(logRecords(t, g, "replacing pool member")); n != 1 {
				t.Errorf("%d replacements, want 1 (only the bad member)", n)
			}
			t.Logf("replaced %s (%s=%s); synchronized to %s, offset %v", bad, tc.key, repl[0][tc.key], last.peer, last.offset)
		})
	}

	// count = 2 of a name with four addresses: exactly two members.
	t.Run("count 2", func(t *testing.T) {
		t.Parallel()
		hosts := filepath.Join(dir, "hosts-count2")
		writeHosts(t, hosts, append(goodAddrs, netip.MustParseAddr("127.0.0.14"))...)
		g := startGnomond(t, dir, observeConfig(poolTable(port, 2)), gnomondOpts{
			wrap: privateHosts(t, hosts, "--log-level=debug"),
		})
		res := waitLog(t, g, 15*time.Second, 1, "pool resolved", nil)
		if r := res[0]; r["pool"] != poolName || r["addresses"] != "4" || r["members"] != "2" || r["count"] != "2" {
			t.Errorf("pool resolution %v, want pool=%s addresses=4 members=2 count=2", r, poolName)
		}
		members := map[string]bool{}
		for _, a := range poolAdds(t, g) {
			members[a] = true
		}
		st := waitSyncedAfter(t, g, 0, members, 15*time.Second)
		adds := poolAdds(t, g)
		if want := []string{at(goodAddrs[0]), at(goodAddrs[1])}; !slices.Equal(adds, want) {
			t.Errorf("pool members %v, want exactly %v", adds, want)
		}
		if n := len(logRecords(t, g, "pool resolved")); n != 1 {
			t.Errorf("the pool was resolved %d times, want once (it has its 2 members)", n)
		}
		t.Logf("members %v; synchronized to %s", adds, st.peer)
	})
}
