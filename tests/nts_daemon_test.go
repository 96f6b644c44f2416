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

	bin := needTool(t, "chronyd")
	var out []byte
	var err error
	argv := safe(t, bin, "-Q", "-x", "-t", "15", "-f", "/dev/null",
		"server 127.0.0.1 port "+strconv.Itoa(ntpPort)+" iburst nts ntsport "+strconv.Itoa(kePort)+" maxsamples 1",
		"ntstrustedcerts "+cert)
	for try := 0; try < 3; try++ { // UDP: a lost datagram is not a wrong answer
		out, err = exec.Command(argv[0], argv[1:]...).CombinedOutput()
		if err == nil {
			break
		}
	}
	if err != nil {
		t.Fatalf("chronyd -Q with NTS against gnomond: %v\n%s", err, out)
	}
	m := wrongByRE.FindSubmatch(out)
	if m == nil {
		t.Fatalf("chronyd printed no measurement:\n%s", out)
	}
	v, _ := strconv.ParseFloat(string(m[1]), 64)
	if d := time.Duration(v * 1e9); abs(d) >= maxOffset {
		t.Errorf("chronyd measured gnomond's NTS server off by %v, want under %v", d, maxOffset)
	}
}
