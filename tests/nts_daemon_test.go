package tests

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
	"time"

	"gnomon.dev/gnomon/tests/peers"
)

// ntsCert writes a throwaway self-signed certificate for localhost,
// 127.0.0.1 and ::1 as dir/nts.crt and dir/nts.key, replacing an earlier
// one (a renewal), readable by gnomond and chronyd.
func ntsCert(t *testing.T, dir string) (certFile, keyFile string) {
	t.Helper()
	certFile, keyFile, _ = peers.WriteCert(t, dir, "nts", 0o644)
	return certFile, keyFile
}

// TestNTSClientSyncsFromChronyd: gnomond's default path, an NTS source,
// against chronyd 4.3 as an NTS server: key exchange over TLS 1.3, the NTP
// port from the exchange, authenticated NTP.
func TestNTSClientSyncsFromChronyd(t *testing.T) {
	peers.NeedRoot(t, rootFor)
	t.Parallel()
	dir := peers.TempDir(t, 0o777)
	up := peers.StartChronydNTS(t, dir)
	ntpPort, kePort, cert := up.Port, up.KEPort, up.CertFile

	src := fmt.Sprintf("[[source]]\nmode = \"nts\"\naddress = \"127.0.0.1:%d\"\ncertificate-authority = %q\npoll-interval-limits = { min = 0, max = 2 }\n", kePort, cert)
	g := startGnomond(t, dir, observeConfig(src), gnomondOpts{})
	// chronyd names its own NTP port in the key exchange.
	waitSynced(t, g, peers.Loop4(ntpPort).String(), 20*time.Second)
	st, _ := parseStatus(g.notify.LastStatus())
	if abs(st.offset) >= maxOffset || !st.observeKnown || abs(st.sysErr) >= maxOffset {
		t.Errorf("synchronized over NTS but %+v, want offsets under %v", st, maxOffset)
	}
}

// TestChronydNTSClientAgainstGnomond: chronyd 4.3's NTS client gets cookies
// from gnomond's NTS-KE server and a measurement from its NTP server.
func TestChronydNTSClientAgainstGnomond(t *testing.T) {
	peers.NeedRoot(t, rootFor)
	t.Parallel()
	dir := peers.TempDir(t, 0o777)
	cert, key := ntsCert(t, dir)
	up := peers.StartChronyd(t, dir, peers.FreePort(t), "")
	ntpPort, kePort := peers.FreePort(t), peers.FreePort(t)
	ke := fmt.Sprintf("[[nts-ke-server]]\nlisten = \"127.0.0.1:%d\"\ncertificate-chain-path = %q\nprivate-key-path = %q\n", kePort, cert, key)
	g := startGnomond(t, dir, observeConfig(sourceTable(up.Port), serverTable(peers.Loop4(ntpPort).String(), "rate-limit = { interval = 0 }"), ke), gnomondOpts{})
	waitSynced(t, g, peers.Loop4(up.Port).String(), 10*time.Second)

	if d, err := chronydNTSQuery(t, ntpPort, kePort, cert); err != nil {
		t.Fatal(err)
	} else if abs(d) >= maxOffset {
		t.Errorf("chronyd measured gnomond's NTS server off by %v, want under %v", d, maxOffset)
	}
}

// chronydNTSQuery runs chronyd -Q as an NTS client of 127.0.0.1 (NTP port
// ntpPort, NTS-KE port kePort) trusting cert, and returns the offset it
// measured.
func chronydNTSQuery(t *testing.T, ntpPort, kePort int, cert string) (time.Duration, error) {
	return chronydNTSQueryTries(t, ntpPort, kePort, cert, 3, 15)
}

// chronydNTSQueryTries is chronydNTSQuery with tries attempts of timeoutS
// seconds each (one short try when failure is the expected outcome).
func chronydNTSQueryTries(t *testing.T, ntpPort, kePort int, cert string, tries, timeoutS int) (time.Duration, error) {
	t.Helper()
	bin := peers.NeedTool(t, "chronyd")
	argv := peers.Safe(t, bin, "-Q", "-x", "-t", strconv.Itoa(timeoutS), "-f", "/dev/null",
		"server 127.0.0.1 port "+strconv.Itoa(ntpPort)+" iburst nts ntsport "+strconv.Itoa(kePort)+" maxsamples 1",
		"ntstrustedcerts "+cert)
	var out []byte
	var err error
	for try := 0; try < tries; try++ { // UDP: a lost datagram is not a wrong answer
		out, err = exec.Command(argv[0], argv[1:]...).CombinedOutput()
		if err == nil {
			break
		}
	}
	if err != nil {
		return 0, fmt.Errorf("chronyd -Q with NTS against gnomond: %v\n%s", err, out)
	}
	m := wrongByRE.FindSubmatch(out)
	if m == nil {
		return 0, fmt.Errorf("chronyd printed no measurement:\n%s", out)
	}
	v, err := strconv.ParseFloat(string(m[1]), 64)
	if err != nil {
		return 0, err
	}
	return time.Duration(v * 1e9), nil
}

// TestNTSCertificateReload: SIGHUP makes gnomond's NTS-KE server take a
// renewed certificate from the same files; clients trusting only the old
// one are then refused, clients trusting the new one served.
func TestNTSCertificateReload(t *testing.T) {
	peers.NeedRoot(t, rootFor)
	t.Parallel()
	dir := peers.TempDir(t, 0o777)
	certA, key := ntsCert(t, dir)
	oldDir := filepath.Join(dir, "old")
	if err := os.Mkdir(oldDir, 0o755); err != nil {
		t.Fatal(err)
	}
	trustA := filepath.Join(oldDir, "a.crt")
	if b, err := os.ReadFile(certA); err != nil || os.WriteFile(trustA, b, 0o644) != nil {
		t.Fatal("copy certificate A")
	}
	up := peers.StartChronyd(t, dir, peers.FreePort(t), "")
	ntpPort, kePort := peers.FreePort(t), peers.FreePort(t)
	ke := fmt.Sprintf("[[nts-ke-server]]\nlisten = \"127.0.0.1:%d\"\ncertificate-chain-path = %q\nprivate-key-path = %q\n", kePort, certA, key)
	g := startGnomond(t, dir, observeConfig(sourceTable(up.Port), serverTable(peers.Loop4(ntpPort).String(), "rate-limit = { interval = 0 }"), ke), gnomondOpts{})
	waitSynced(t, g, peers.Loop4(up.Port).String(), 10*time.Second)
	if _, err := chronydNTSQuery(t, ntpPort, kePort, trustA); err != nil {
		t.Fatalf("before the reload: %v", err)
	}
	// Renew: a new key and certificate in the same files.
	certB, _ := ntsCert(t, dir)
	if err := g.Cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		_, errB := chronydNTSQueryTries(t, ntpPort, kePort, certB, 1, 5)
		if errB == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after SIGHUP a client trusting the renewed certificate is still refused: %v", errB)
		}
		time.Sleep(200 * time.Millisecond)
	}
	if _, err := chronydNTSQueryTries(t, ntpPort, kePort, trustA, 1, 4); err == nil {
		t.Error("after the reload a client trusting only the old certificate was still served")
	}
	if !g.Alive() {
		t.Error("gnomond died on SIGHUP")
	}
}
