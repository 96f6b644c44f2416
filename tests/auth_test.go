package tests

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"gnomon.dev/gnomon/engine/ntp"
	"gnomon.dev/gnomon/tests/peers"
)

// Test keys (never use these anywhere else): one of each type chrony 4.3
// and gnomond share.
const sharedKeys = `1 MD5 HEX:6B2C1F5E9A0D4C3B8E7F6A5D4C3B2A19
2 SHA1 HEX:0F1E2D3C4B5A69788796A5B4C3D2E1F00F1E2D3C
3 SHA256 HEX:00112233445566778899AABBCCDDEEFF00112233445566778899AABBCCDDEEFF
4 AES128 HEX:7EA62AE64D190114D46D5A082F948EC1
5 AES256 HEX:37DDCBC67BB902BCB8E995977FAB4D2B5642F5B32EBCEEE421921D97E5CBFE39
6 tulip-and-crocus
`

// writeKeyFile writes a key file readable by its owner (root) and group
// only, as both chronyd and gnomond want it.
func writeKeyFile(t *testing.T, dir, name, text string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(text), 0o640); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(p, 0o640); err != nil {
		t.Fatal(err)
	}
	return p
}

// chronydKeyQuery runs chronyd -Q as a client of 127.0.0.1:port signing
// with key id from keyfile, and returns its output and whether it measured.
func chronydKeyQuery(t *testing.T, dir string, port int, keyfile string, id, timeoutS int) (string, bool) {
	t.Helper()
	bin := peers.NeedTool(t, "chronyd")
	ctx, cancel := context.WithTimeout(context.Background(), time.Duration(timeoutS+10)*time.Second)
	defer cancel()
	argv := peers.Safe(t, bin, "-Q", "-x", "-t", strconv.Itoa(timeoutS), "-f", "/dev/null",
		fmt.Sprintf("server 127.0.0.1 port %d iburst key %d maxsamples 1", port, id), "keyfile "+keyfile)
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	cmd.Dir = dir
	out, err := cmd.CombinedOutput()
	return string(out), err == nil && wrongByRE.Match(out)
}

// chronyd -x as a client of gnomond's server with a shared key file:
// every key type is answered, signed with the request's key (chronyd
// refuses an unsigned or wrongly signed answer); a key gnomond does not
// have and a key with the same ID but another secret are refused and
// counted.
func TestChronydClientOfGnomondWithKeys(t *testing.T) {
	peers.NeedRoot(t, rootFor)
	t.Parallel()
	dir := peers.TempDir(t, 0o777)
	gkeys := writeKeyFile(t, dir, "gnomon.keys", sharedKeys)
	srvPort := peers.FreePort(t)
	g := startGnomond(t, dir, observeConfig(
		"[synchronization]\nlocal-stratum = 2\n",
		"[authentication]\nkey-file = \""+gkeys+"\"\n",
		serverTable(peers.Loop4(srvPort).String(), "rate-limit = { interval = 0 }")), gnomondOpts{})

	// The server answers once it runs; the first query may race its start.
	ckeys := writeKeyFile(t, dir, "chrony.keys", sharedKeys+
		"7 AES128 HEX:000102030405060708090A0B0C0D0E0F\n"+ // unknown to gnomond
		"8 AES128 HEX:7EA62AE64D190114D46D5A082F948EC1\n") // gnomond has no key 8
	for id := 1; id <= 6; id++ {
		var out string
		var ok bool
		for try := 0; try < 3 && !ok; try++ {
			out, ok = chronydKeyQuery(t, dir, srvPort, ckeys, id, 5)
		}
		if !ok {
			t.Fatalf("chronyd -Q with key %d against gnomond did not measure:\n%s\ngnomond:\n%s", id, out, g.Tail(2000))
		}
		t.Logf("key %d: %s", id, wrongByRE.FindString(out))
	}
	for _, id := range []int{7, 8} {
		if out, ok := chronydKeyQuery(t, dir, srvPort, ckeys, id, 3); ok {
			t.Errorf("chronyd -Q with key %d (unknown to gnomond) measured:\n%s", id, out)
		}
	}
	// Same ID, another secret: the MAC does not verify.
	wrong := writeKeyFile(t, dir, "wrong.keys", "4 AES128 HEX:00000000000000000000000000000001\n")
	if out, ok := chronydKeyQuery(t, dir, srvPort, wrong, 4, 3); ok {
		t.Errorf("chronyd -Q with a wrong key 4 measured:\n%s", out)
	}
	// A client of our own: a SHA1-signed request is answered signed with
	// key 2; the same request with its MAC cut by 4 bytes, or an AES128
	// one cut by 4 bytes (then no longer a well-formed NTPv4 packet), gets
	// no answer.
	keys, err := ntp.ParseKeyFile([]byte(sharedKeys))
	if err != nil {
		t.Fatal(err)
	}
	var reply []byte
	for try := 0; try < 3 && reply == nil; try++ {
		reply = signedQuery(t, srvPort, keys.Key(2), 0)
	}
	var p ntp.Packet
	if reply == nil || ntp.Parse(reply, &p) != nil {
		t.Fatalf("no valid answer to a SHA1-signed request: %x", reply)
	}
	if k, err := keys.Verify(reply, &p); err != nil || k.ID != 2 {
		t.Errorf("answer to a SHA1-signed request: key %v, %v; want signed with key 2", k, err)
	}
	for _, id := range []uint32{2, 4} {
		if r := signedQuery(t, srvPort, keys.Key(id), 4); r != nil {
			t.Errorf("a request signed with key %d, MAC cut by 4 bytes, was answered: %x", id, r)
		}
	}

	log := g.Tail(1 << 16)
	for _, want := range []string{"request with an unknown key refused", "request with a bad MAC refused"} {
		if !strings.Contains(log, want) {
			t.Errorf("gnomond did not log %q:\n%s", want, log)
		}
	}
}

// signedQuery sends 127.0.0.1:port a client request signed with key, its
// last cut bytes cut off, and returns the answer, or nil after a second.
func signedQuery(t *testing.T, port int, key *ntp.Key, cut int) []byte {
	t.Helper()
	conn, err := net.DialUDP("udp4", nil, &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: port})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	b, _ := peers.NTPRequest()
	b = append(b, make([]byte, 64)...)
	n, err := key.AppendMAC(b, ntp.HeaderLen)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := conn.Write(b[:n-cut]); err != nil {
		t.Fatal(err)
	}
	_ = conn.SetReadDeadline(time.Now().Add(time.Second))
	buf := make([]byte, 1024)
	m, err := conn.Read(buf)
	if err != nil {
		return nil
	}
	return buf[:m]
}

// gnomond (observe) as a client of chronyd -x signing with a shared key:
// it synchronizes with the right key, and never with a wrong one (chronyd
// answers a request it cannot verify with a crypto-NAK, which gnomond
// refuses).
func TestGnomondClientOfChronydWithKeys(t *testing.T) {
	peers.NeedRoot(t, rootFor)
	t.Parallel()
	dir := peers.TempDir(t, 0o777)
	ckeys := writeKeyFile(t, dir, "chrony.keys", sharedKeys)
	up := peers.StartChronydWith(t, dir, peers.FreePort(t), "keyfile "+ckeys)
	peer := peers.Loop4(up.Port).String()

	for _, id := range []int{4, 1, 5} {
		gkeys := writeKeyFile(t, dir, "gnomon"+strconv.Itoa(id)+".keys", sharedKeys)
		g := startGnomond(t, dir, observeConfig(
			"[authentication]\nkey-file = \""+gkeys+"\"\n",
			sourceTable(up.Port)+"key = "+strconv.Itoa(id)+"\n"), gnomondOpts{})
		st := waitSynced(t, g, peer, 15*time.Second)
		t.Logf("key %d: %+v", id, st)
		g.Stop()
	}

	// Through a relay that flips one bit of every reply's MAC: gnomond
	// must refuse every reply and never synchronize.
	relay := corruptingRelay(t, up.Port)
	gkeys := writeKeyFile(t, dir, "gnomon-bad.keys", sharedKeys)
	g := startGnomond(t, dir, observeConfig(
		"[authentication]\nkey-file = \""+gkeys+"\"\n",
		sourceTable(relay)+"key = 4\n"), gnomondOpts{})
	deadline := time.Now().Add(15 * time.Second) // polls every 1 s
	for !strings.Contains(g.Tail(1<<16), "reply not used") && time.Now().Before(deadline) {
		time.Sleep(200 * time.Millisecond)
	}
	log := g.Tail(1 << 16)
	if !strings.Contains(log, "MAC does not verify") {
		t.Errorf("gnomond did not refuse the altered MAC:\n%s", log)
	}
	if s := syncedLines(g); len(s) > 0 {
		t.Errorf("gnomond synchronized on replies with altered MACs: %+v", s)
	}
}

// corruptingRelay forwards UDP between a client and 127.0.0.1:port,
// flipping the last bit of every reply, and returns its port.
func corruptingRelay(t *testing.T, port int) int {
	return spyRelay(t, port, func(toServer bool, b []byte) {
		if !toServer && len(b) > 0 {
			b[len(b)-1] ^= 1
		}
	})
}

// relay forwards UDP between one client and 127.0.0.1:port, showing each
// datagram to look (which may change it) first, and returns its port.
func spyRelay(t *testing.T, port int, look func(toServer bool, b []byte)) int {
	t.Helper()
	in, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	out, err := net.DialUDP("udp4", nil, &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: port})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { in.Close(); out.Close() })
	var client atomic.Pointer[net.UDPAddr]
	go func() {
		buf := make([]byte, 2048)
		for {
			n, from, err := in.ReadFromUDP(buf)
			if err != nil {
				return
			}
			client.Store(from)
			look(true, buf[:n])
			_, _ = out.Write(buf[:n])
		}
	}()
	go func() {
		buf := make([]byte, 2048)
		for {
			n, err := out.Read(buf)
			if err != nil {
				return
			}
			if c := client.Load(); c != nil {
				look(false, buf[:n])
				_, _ = in.WriteToUDP(buf[:n], c)
			}
		}
	}()
	return in.LocalAddr().(*net.UDPAddr).Port
}

// A world-readable key file is refused at start, naming the file.
func TestWorldReadableKeyFileRefused(t *testing.T) {
	peers.NeedRoot(t, rootFor)
	t.Parallel()
	dir := peers.TempDir(t, 0o777)
	p := writeKeyFile(t, dir, "open.keys", sharedKeys)
	if err := os.Chmod(p, 0o644); err != nil {
		t.Fatal(err)
	}
	cfg := filepath.Join(dir, "open.toml")
	if err := os.WriteFile(cfg, []byte(observeConfig("[authentication]\nkey-file = \""+p+"\"\n")), 0o644); err != nil {
		t.Fatal(err)
	}
	argv := peers.Safe(t, gnomondBin, "--config", cfg, "--no-dbus", "--state-dir", "")
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, argv[0], argv[1:]...).CombinedOutput()
	if err == nil {
		t.Fatalf("gnomond started with a world-readable key file:\n%s", out)
	}
	if want := p + ": key file is readable by everyone"; !strings.Contains(string(out), want) {
		t.Errorf("gnomond said:\n%s\nwant it to contain %q", out, want)
	}
}
