package config

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/user"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// The files an NTS configuration names are loaded here the way gnomond
// loads them (crypto/tls for the NTS-KE server's pair, a certificate pool
// for a source's CA file), so that check-config, gnomonctl validate and a
// reload refuse what gnomond would refuse at start, with the key's line.

// maxPEMFile bounds what is read of a certificate, key or CA file.
const maxPEMFile = 4 << 20

// pemFile is a file read for its PEM blocks.
type pemFile struct {
	data   []byte
	types  []string // PEM block types, in order
	denied bool     // could not be read for lack of permission (not root)
	err    string   // why it could not be read, else ""
}

func readPEMFile(path string) pemFile {
	f, err := os.Open(path)
	if err != nil {
		var pe *fs.PathError
		if errors.As(err, &pe) {
			err = pe.Err
		}
		if errors.Is(err, fs.ErrPermission) && os.Geteuid() != 0 {
			// gnomond reads it as root: whether it can is not known here.
			return pemFile{denied: true}
		}
		return pemFile{err: fmt.Sprintf("%s: %v", path, err)}
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxPEMFile+1))
	switch {
	case err != nil:
		return pemFile{err: fmt.Sprintf("%s: %v", path, err)}
	case len(data) > maxPEMFile:
		return pemFile{err: fmt.Sprintf("%s: larger than %d bytes; is this the right file?", path, maxPEMFile)}
	}
	pf := pemFile{data: data}
	for rest := data; ; {
		var b *pem.Block
		b, rest = pem.Decode(rest)
		if b == nil {
			break
		}
		pf.types = append(pf.types, b.Type)
	}
	return pf
}

func (p pemFile) has(isType func(string) bool) bool {
	for _, t := range p.types {
		if isType(t) {
			return true
		}
	}
	return false
}

func isCertType(t string) bool { return t == "CERTIFICATE" }
func isKeyType(t string) bool  { return strings.HasSuffix(t, "PRIVATE KEY") }

// keyPair checks an NTS-KE server's certificate chain and private key as
// crypto/tls.LoadX509KeyPair (what gnomond uses) would, reporting on the key
// of the file at fault.
func (v *validator) keyPair(key string, s *NTSKEServerConfig) {
	certKey, keyKey := key+".certificate-chain-path", key+".private-key-path"
	cf, kf := readPEMFile(s.CertificateChainPath), readPEMFile(s.PrivateKeyPath)
	if cf.err != "" {
		v.errorf(certKey, "%s", cf.err)
	}
	if kf.err != "" {
		v.errorf(keyKey, "%s", kf.err)
	}
	if cf.err != "" || kf.err != "" || cf.denied || kf.denied {
		return
	}
	certOK, keyOK := cf.has(isCertType), kf.has(isKeyType)
	if !certOK && !keyOK && cf.has(isKeyType) && kf.has(isCertType) {
		v.errorf(certKey, "%s holds a private key and %s a certificate: certificate-chain-path and private-key-path are swapped",
			s.CertificateChainPath, s.PrivateKeyPath)
		return
	}
	if !certOK {
		v.errorf(certKey, "%s: %s", s.CertificateChainPath, wrongPEM(cf, "a PEM certificate (-----BEGIN CERTIFICATE-----)"))
	}
	if !keyOK {
		v.errorf(keyKey, "%s: %s", s.PrivateKeyPath, wrongPEM(kf, "a PEM private key (-----BEGIN PRIVATE KEY-----)"))
	}
	if !certOK || !keyOK {
		return
	}
	for rest := cf.data; ; {
		var b *pem.Block
		b, rest = pem.Decode(rest)
		if b == nil {
			break
		}
		if isCertType(b.Type) {
			if _, err := x509.ParseCertificate(b.Bytes); err != nil {
				v.errorf(certKey, "%s: a certificate does not parse: %v", s.CertificateChainPath, err)
				return
			}
		}
	}
	if _, err := tls.X509KeyPair(cf.data, kf.data); err != nil {
		msg := strings.TrimPrefix(err.Error(), "tls: ")
		if strings.Contains(msg, "does not match") {
			msg = "does not match the certificate in " + s.CertificateChainPath + " (" + msg + ")"
		}
		v.errorf(keyKey, "%s: %s", s.PrivateKeyPath, msg)
	}
}

// wrongPEM says what a file holds instead of what was wanted.
func wrongPEM(p pemFile, want string) string {
	switch {
	case len(p.types) == 0 && len(bytes.TrimSpace(p.data)) == 0:
		return "empty, want " + want
	case len(p.types) == 0:
		return "not PEM, want " + want
	case p.has(isKeyType):
		return "holds a private key, want " + want
	case p.has(isCertType):
		return "holds a certificate, want " + want
	}
	return fmt.Sprintf("holds %s, want %s", strings.Join(p.types, ", "), want)
}

// caFile checks an NTS source's certificate-authority file as the key
// exchange reads it: PEM certificates that a pool accepts.
func (v *validator) caFile(key, path string) {
	f := readPEMFile(path)
	switch {
	case f.err != "":
		v.errorf(key, "%s", f.err)
	case f.denied:
	case !x509.NewCertPool().AppendCertsFromPEM(f.data):
		v.errorf(key, "%s: %s", path, wrongPEM(f, "PEM CA certificates"))
	}
}

// fileWarnings are the risky but loadable sides of the files a
// configuration names: a private key others may read, a certificate out of
// its validity, a file this user could not read to check.
func (c *Config) fileWarnings(warn func(key, format string, args ...any)) {
	for i, s := range c.NTSKEServers {
		key := indexKey("nts-ke-server", i)
		cf, kf := readPEMFile(s.CertificateChainPath), readPEMFile(s.PrivateKeyPath)
		for _, x := range []struct {
			f    pemFile
			key  string
			path string
		}{{cf, key + ".certificate-chain-path", s.CertificateChainPath}, {kf, key + ".private-key-path", s.PrivateKeyPath}} {
			if x.f.denied {
				warn(x.key, "%s: cannot read it as this user to check it (gnomond reads it as root)", x.path)
			}
		}
		if fi, err := os.Stat(s.PrivateKeyPath); err == nil && fi.Mode().IsRegular() && fi.Mode().Perm()&0o004 != 0 {
			warn(key+".private-key-path", "%s is readable by every user (mode %04o): anyone on this machine can impersonate this server (chmod o-r)",
				s.PrivateKeyPath, fi.Mode().Perm())
		}
		if cf.err == "" && !cf.denied {
			if b, _ := pem.Decode(cf.data); b != nil && isCertType(b.Type) {
				if cert, err := x509.ParseCertificate(b.Bytes); err == nil {
					now := time.Now()
					switch {
					case now.After(cert.NotAfter):
						warn(key+".certificate-chain-path", "%s expired on %s: clients will refuse it", s.CertificateChainPath, cert.NotAfter.UTC().Format(time.RFC3339))
					case now.Before(cert.NotBefore):
						warn(key+".certificate-chain-path", "%s is not valid before %s: clients will refuse it until then", s.CertificateChainPath, cert.NotBefore.UTC().Format(time.RFC3339))
					}
				}
			}
		}
	}
	for i, s := range c.Sources {
		if s.CertificateAuthority != "" && readPEMFile(s.CertificateAuthority).denied {
			warn(indexKey("source", i)+".certificate-authority", "%s: cannot read it as this user to check it", s.CertificateAuthority)
		}
	}
}

// readableBy reports why the user uid (with groups gids) could not read
// the file at p, judging by the permission bits of p and of every
// directory above it; "" when it could. Root reads everything.
func readableBy(p string, uid int, gids []int) string {
	if uid == 0 {
		return ""
	}
	may := func(fi os.FileInfo, bit fs.FileMode) bool {
		st, ok := fi.Sys().(*syscall.Stat_t)
		if !ok {
			return true
		}
		perm := fi.Mode().Perm()
		switch {
		case int(st.Uid) == uid:
			return perm&(bit<<6) != 0
		case slices.Contains(gids, int(st.Gid)):
			return perm&(bit<<3) != 0
		}
		return perm&bit != 0
	}
	abs := filepath.Clean(p)
	for dir := filepath.Dir(abs); ; dir = filepath.Dir(dir) {
		if fi, err := os.Stat(dir); err == nil && !may(fi, 0o1) {
			return "cannot enter " + dir
		}
		if dir == "/" || dir == "." {
			break
		}
	}
	if fi, err := os.Stat(abs); err == nil && !may(fi, 0o4) {
		return fmt.Sprintf("cannot read it (mode %04o)", fi.Mode().Perm())
	}
	return ""
}

// userFileWarnings warns about the files gnomond reads after it has become
// the configured user: an NTS source's CA file (read at every key
// exchange) and an NTS-KE server's certificate and key (read again on
// every reload).
func (c *Config) userFileWarnings(warn func(key, format string, args ...any)) {
	name := c.Security.User
	if name == "" {
		return
	}
	u, err := user.Lookup(name)
	if err != nil {
		return // reported by Check when set in the file; gnomond refuses it
	}
	uid, err := strconv.Atoi(u.Uid)
	if err != nil {
		return
	}
	var gids []int
	if ids, err := u.GroupIds(); err == nil {
		for _, s := range ids {
			if g, err := strconv.Atoi(s); err == nil {
				gids = append(gids, g)
			}
		}
	}
	if g, err := strconv.Atoi(u.Gid); err == nil {
		gids = append(gids, g)
	}
	for i, s := range c.Sources {
		if s.CertificateAuthority == "" {
			continue
		}
		if why := readableBy(s.CertificateAuthority, uid, gids); why != "" {
			warn(indexKey("source", i)+".certificate-authority", "%s: user %s %s, and gnomond reads it as %s at every key exchange: they will fail", s.CertificateAuthority, name, why, name)
		}
	}
	for i, s := range c.NTSKEServers {
		key := indexKey("nts-ke-server", i)
		for _, f := range []struct{ key, path string }{{key + ".certificate-chain-path", s.CertificateChainPath}, {key + ".private-key-path", s.PrivateKeyPath}} {
			if why := readableBy(f.path, uid, gids); why != "" {
				warn(f.key, "%s: user %s %s: gnomond reads it as root at start, but a reload (as %s) cannot renew the certificate", f.path, name, why, name)
			}
		}
	}
}
