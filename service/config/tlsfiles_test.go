package config

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"os"
	"os/user"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// testPair makes a self-signed certificate valid from notBefore for a day
// and returns it and its key as PEM.
func testPair(t *testing.T, notBefore time.Time) (certPEM, keyPEM []byte) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "localhost"},
		NotBefore: notBefore, NotAfter: notBefore.Add(24 * time.Hour), DNSNames: []string{"localhost"},
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kder})
}

// TestNTSKEServerFiles: the certificate and key are loaded as gnomond
// loads them, and each way they can be wrong is an error on its key's line.
func TestNTSKEServerFiles(t *testing.T) {
	dir := t.TempDir()
	put := func(name string, data []byte, mode os.FileMode) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, data, mode); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(p, mode); err != nil {
			t.Fatal(err)
		}
		return p
	}
	certA, keyA := testPair(t, time.Now().Add(-time.Hour))
	certB, keyB := testPair(t, time.Now().Add(-time.Hour))
	_ = certB
	ca, ka := put("a.crt", certA, 0o644), put("a.key", keyA, 0o600)
	kb := put("b.key", keyB, 0o600)
	junk := put("junk", []byte("hello\n"), 0o644)
	empty := put("empty", nil, 0o644)
	cfg := func(cert, key string) string {
		return fmt.Sprintf("[log]\nlevel = \"info\"\n[[nts-ke-server]]\nlisten = \"127.0.0.1:4460\"\ncertificate-chain-path = %q\nprivate-key-path = %q\n", cert, key)
	}
	for _, tc := range []struct {
		name, cert, key string
		want            string // "" for valid
	}{
		{"good", ca, ka, ""},
		{"swapped", ka, ca, "t.toml:5: nts-ke-server[0].certificate-chain-path: " + ka + " holds a private key and " + ca + " a certificate: certificate-chain-path and private-key-path are swapped"},
		{"mismatched", ca, kb, "t.toml:6: nts-ke-server[0].private-key-path: " + kb + ": does not match the certificate in " + ca},
		{"key not PEM", ca, junk, "t.toml:6: nts-ke-server[0].private-key-path: " + junk + ": not PEM, want a PEM private key"},
		{"cert not PEM", junk, ka, "t.toml:5: nts-ke-server[0].certificate-chain-path: " + junk + ": not PEM, want a PEM certificate"},
		{"cert empty", empty, ka, "t.toml:5: nts-ke-server[0].certificate-chain-path: " + empty + ": empty"},
		{"key is the certificate", ca, ca, "t.toml:6: nts-ke-server[0].private-key-path: " + ca + ": holds a certificate, want a PEM private key"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse("t.toml", []byte(cfg(tc.cert, tc.key)), Options{CanSetClock: true})
			switch {
			case tc.want == "" && err != nil:
				t.Fatalf("refused: %v", err)
			case tc.want != "" && (err == nil || !strings.HasPrefix(err.Error(), tc.want)):
				t.Fatalf("got %v\nwant %s...", err, tc.want)
			}
		})
	}

	// Loadable but risky: a key others may read, an expired certificate.
	old, oldKey := testPair(t, time.Now().Add(-48*time.Hour))
	c, err := Parse("t.toml", []byte(cfg(put("old.crt", old, 0o644), put("old.key", oldKey, 0o644))), Options{CanSetClock: true})
	if err != nil {
		t.Fatal(err)
	}
	var ws []string
	for _, w := range c.Check() {
		ws = append(ws, w.String())
	}
	all := strings.Join(ws, "\n")
	for _, want := range []string{"t.toml:6: nts-ke-server[0].private-key-path: " + dir + "/old.key is readable by every user (mode 0644)",
		"t.toml:5: nts-ke-server[0].certificate-chain-path: " + dir + "/old.crt expired on "} {
		if !strings.Contains(all, want) {
			t.Errorf("warnings lack %q:\n%s", want, all)
		}
	}
}

// TestSourceCAFile: an NTS source's CA file must hold PEM certificates.
func TestSourceCAFile(t *testing.T) {
	dir := t.TempDir()
	cert, key := testPair(t, time.Now().Add(-time.Hour))
	good, bad := filepath.Join(dir, "ca.pem"), filepath.Join(dir, "key.pem")
	if os.WriteFile(good, cert, 0o644) != nil || os.WriteFile(bad, key, 0o644) != nil {
		t.Fatal("write")
	}
	src := "[[source]]\nmode = \"nts\"\naddress = \"localhost\"\ncertificate-authority = %q\n"
	if _, err := Parse("t.toml", []byte(fmt.Sprintf(src, good)), Options{}); err != nil {
		t.Errorf("good CA file refused: %v", err)
	}
	_, err := Parse("t.toml", []byte(fmt.Sprintf(src, bad)), Options{})
	if want := "t.toml:4: source[0].certificate-authority: " + bad + ": holds a private key, want PEM CA certificates"; err == nil || err.Error() != want {
		t.Errorf("got %v, want %s", err, want)
	}
}

// TestUserFileWarnings: files the configured user cannot read, which
// gnomond reads after becoming that user, are warned about.
func TestUserFileWarnings(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to make files another user cannot read")
	}
	if _, err := user.Lookup("nobody"); err != nil {
		t.Skip("no user nobody")
	}
	dir := t.TempDir()
	for _, d := range []string{dir, filepath.Dir(dir)} { // testing makes them 0700
		if err := os.Chmod(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	cert, key := testPair(t, time.Now().Add(-time.Hour))
	open, closed := filepath.Join(dir, "ca.pem"), filepath.Join(dir, "secret.pem")
	if os.WriteFile(open, cert, 0o644) != nil || os.WriteFile(closed, append(cert, key...), 0o600) != nil {
		t.Fatal("write")
	}
	doc := "[security]\nuser = \"nobody\"\n[[source]]\nmode = \"nts\"\naddress = \"localhost\"\ncertificate-authority = %q\n"
	for _, tc := range []struct {
		path string
		warn bool
	}{{open, false}, {closed, true}} {
		c, err := Parse("t.toml", []byte(fmt.Sprintf(doc, tc.path)), Options{CanSetClock: true})
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, w := range c.Check() {
			if strings.Contains(w.String(), "user nobody cannot") {
				got = append(got, w.String())
			}
		}
		if tc.warn != (len(got) == 1) {
			t.Fatalf("%s: warnings %q, want one: %v", tc.path, got, tc.warn)
		}
		if tc.warn && !strings.HasPrefix(got[0], "t.toml:6: source[0].certificate-authority: "+closed+": user nobody cannot read it (mode 0600)") {
			t.Errorf("warning %q lacks file:line: key", got[0])
		}
	}
}
