package tests

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
	"time"
)

// ntsCert writes a self-signed certificate for localhost and 127.0.0.1
// that chronyd (as _chrony) can read: a throwaway test key.
func ntsCert(t *testing.T, dir string) (certFile, keyFile string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(time.Now().UnixNano()),
		Subject:               pkix.Name{CommonName: "localhost"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		DNSNames:              []string{"localhost"},
		IPAddresses:           []net.IP{net.IPv4(127, 0, 0, 1)},
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	certFile, keyFile = filepath.Join(dir, "nts.crt"), filepath.Join(dir, "nts.key")
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kder}), 0o644); err != nil {
		t.Fatal(err)
	}
	return certFile, keyFile
}

// TestNTSClientSyncsFromChronyd: gnomond's default path, an NTS source,
// against chronyd 4.3 as an NTS server: key exchange over TLS 1.3, the NTP
// port from the exchange, authenticated NTP.
func TestNTSClientSyncsFromChronyd(t *testing.T) {
	needRoot(t)
	t.Parallel()
	dir := tempDir(t)
	cert, key := ntsCert(t, dir)
	bin := needTool(t, "chronyd")
	ntpPort, kePort := freePort(t), freePort(t)
	conf := filepath.Join(dir, "chronyd-nts.conf")
	text := fmt.Sprintf(`port %d
bindaddress 127.0.0.1
allow 127.0.0.1
local stratum 1
cmdport 0
bindcmdaddress /
pidfile %s
ntsport %d
ntsserverkey %s
ntsservercert %s
ntsdumpdir %s
`, ntpPort, filepath.Join(dir, "chronyd-nts.pid"), kePort, key, cert, dir)
	if err := os.WriteFile(conf, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	startProc(t, dir, "chronyd-nts", nil, safe(t, bin, "-x", "-d", "-f", conf)...)

	src := fmt.Sprintf("[[source]]\nmode = \"nts\"\naddress = \"127.0.0.1:%d\"\ncertificate-authority = %q\npoll-interval-limits = { min = 0, max = 2 }\n", kePort, cert)
	g := startGnomond(t, dir, observeConfig(src), gnomondOpts{})
	// chronyd names its own NTP port in the key exchange.
	waitSynced(t, g, loop4(ntpPort).String(), 20*time.Second)
	st, _ := parseStatus(g.notify.lastStatus())
	if abs(st.offset) >= maxOffset || !st.observeKnown || abs(st.sysErr) >= maxOffset {
		t.Errorf("synchronized over NTS but %+v, want offsets under %v", st, maxOffset)
	}
}

// TestChronydNTSClientAgainstGnomond: chronyd 4.3's NTS client gets cookies
// from gnomond's NTS-KE server and a measurement from its NTP server.
func TestChronydNTSClientAgainstGnomond(t *testing.T) {
	needRoot(t)
	t.Parallel()
	dir := tempDir(t)
	cert, key := ntsCert(t, dir)
	up := startChronyd(t, dir, freePort(t), "")
	ntpPort, kePort := freePort(t), freePort(t)
	ke := fmt.Sprintf("[[nts-ke-server]]\nlisten = \"127.0.0.1:%d\"\ncertificate-chain-path = %q\nprivate-key-path = %q\n", kePort, cert, key)
	g := startGnomond(t, dir, observeConfig(sourceTable(up.port), serverTable(loop4(ntpPort).String(), "rate-limit = { interval = 0 }"), ke), gnomondOpts{})
	waitSynced(t, g, loop4(up.port).String(), 10*time.Second)

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
	bin := needTool(t, "chronyd")
	argv := safe(t, bin, "-Q", "-x", "-t", strconv.Itoa(timeoutS), "-f", "/dev/null",
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
	needRoot(t)
	t.Parallel()
	dir := tempDir(t)
	certA, key := ntsCert(t, dir)
	oldDir := filepath.Join(dir, "old")
	if err := os.Mkdir(oldDir, 0o755); err != nil {
		t.Fatal(err)
	}
	trustA := filepath.Join(oldDir, "a.crt")
	if b, err := os.ReadFile(certA); err != nil || os.WriteFile(trustA, b, 0o644) != nil {
		t.Fatal("copy certificate A")
	}
	up := startChronyd(t, dir, freePort(t), "")
	ntpPort, kePort := freePort(t), freePort(t)
	ke := fmt.Sprintf("[[nts-ke-server]]\nlisten = \"127.0.0.1:%d\"\ncertificate-chain-path = %q\nprivate-key-path = %q\n", kePort, certA, key)
	g := startGnomond(t, dir, observeConfig(sourceTable(up.port), serverTable(loop4(ntpPort).String(), "rate-limit = { interval = 0 }"), ke), gnomondOpts{})
	waitSynced(t, g, loop4(up.port).String(), 10*time.Second)
	if _, err := chronydNTSQuery(t, ntpPort, kePort, trustA); err != nil {
		t.Fatalf("before the reload: %v", err)
	}
	// Renew: a new key and certificate in the same files.
	certB, _ := ntsCert(t, dir)
	if err := g.cmd.Process.Signal(syscall.SIGHUP); err != nil {
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
	if !g.alive() {
		t.Error("gnomond died on SIGHUP")
	}
}
