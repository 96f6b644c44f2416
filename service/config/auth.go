package config

import (
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"gnomon.dev/gnomon/engine/ntp"
)

// AuthConfig is [authentication]: symmetric keys shared with NTP servers
// and clients (chrony's keyfile).
type AuthConfig struct {
	// KeyFile is the key file, in chrony's format ("ID TYPE KEY" lines);
	// "" for none. It must not be readable by everyone.
	KeyFile string
}

// maxKeyFileSize bounds what LoadKeyFile reads.
const maxKeyFileSize = 1 << 20

// LoadKeyFile reads and parses a key file. It refuses a file that is not
// a regular file or that every user may read (mode o+r), and reports bad
// lines as "path:line: message".
func LoadKeyFile(path string) (*ntp.KeySet, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("%s: %s", path, describeIOError(err))
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("%s: %s", path, describeIOError(err))
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("%s: not a regular file (%s)", path, fi.Mode().Type())
	}
	if fi.Mode().Perm()&0o004 != 0 {
		return nil, fmt.Errorf("%s: key file is readable by everyone (mode %04o); refusing to use shared keys "+
			"anyone on this machine can read (chmod o-rwx %s)", path, fi.Mode().Perm(), path)
	}
	data, err := io.ReadAll(io.LimitReader(f, maxKeyFileSize+1))
	if err != nil {
		return nil, fmt.Errorf("%s: %s", path, describeIOError(err))
	}
	if len(data) > maxKeyFileSize {
		return nil, fmt.Errorf("%s: larger than %d bytes; is this the right file?", path, maxKeyFileSize)
	}
	keys, err := ntp.ParseKeyFile(data)
	if err != nil {
		var msgs []string
		for _, l := range strings.Split(err.Error(), "\n") {
			if rest, ok := strings.CutPrefix(l, "line "); ok {
				msgs = append(msgs, path+":"+rest)
			} else {
				msgs = append(msgs, path+": "+l)
			}
		}
		return nil, errors.New(strings.Join(msgs, "\n"))
	}
	return keys, nil
}

func (d *decoder) authentication(t *table, a *AuthConfig) {
	t.str("key-file", &a.KeyFile)
	t.finish()
}

// sourceKey reads a [[source]]'s key = ID.
func (d *decoder) sourceKey(t *table, s *SourceConfig) {
	var id int
	if t.integer("key", &id) {
		if id < 1 || int64(id) > 1<<32-1 {
			d.errorf(t.key("key"), "key ID must be from 1 to 4294967295 (got %d)", id)
			return
		}
		s.Key = uint32(id)
	}
}

// serverKeys reads a [[server]]'s keys = [ID, ...] and require-key.
func (d *decoder) serverKeys(t *table, s *ServerConfig) {
	t.boolean("require-key", &s.RequireKey)
	v, ok := t.get("keys")
	if !ok {
		return
	}
	a, isArray := v.([]any)
	if !isArray {
		d.errorf(t.key("keys"), "want an array of key IDs, got %s", describe(v))
		return
	}
	s.Keys = []uint32{}
	for i, e := range a {
		n, isInt := e.(int64)
		if !isInt || n < 1 || n > 1<<32-1 {
			d.errorf(indexKey(t.key("keys"), i), "want a key ID from 1 to 4294967295, got %s", describe(e))
			continue
		}
		s.Keys = append(s.Keys, uint32(n))
	}
}

// auth checks [authentication] and the keys sources and servers name.
func (v *validator) auth() {
	c := v.c
	var keys *ntp.KeySet
	if c.Authentication.KeyFile != "" && v.absPath("authentication.key-file", c.Authentication.KeyFile) {
		var err error
		if keys, err = LoadKeyFile(c.Authentication.KeyFile); err != nil {
			v.errorf("authentication.key-file", "%s", err.Error())
		}
	}
	check := func(key string, id uint32) {
		switch {
		case c.Authentication.KeyFile == "":
			v.errorf(key, "key %d named but there is no [authentication] key-file", id)
		case keys != nil && keys.Key(id) == nil:
			v.errorf(key, "key %d is not in %s (it has %v)", id, c.Authentication.KeyFile, keys.IDs())
		}
	}
	for i, s := range c.Sources {
		if s.Key == 0 {
			continue
		}
		key := indexKey("source", i) + ".key"
		if s.Mode == SourceNTS {
			v.errorf(key, "not allowed with mode = %q (NTS brings its own keys)", SourceNTS)
			continue
		}
		check(key, s.Key)
	}
	for i, s := range c.Servers {
		for j, id := range s.Keys {
			check(indexKey(indexKey("server", i)+".keys", j), id)
		}
		if s.RequireKey && c.Authentication.KeyFile == "" {
			v.errorf(indexKey("server", i)+".require-key", "needs [authentication] key-file")
		}
		if s.LeapSmear != 0 && (s.LeapSmear < time.Minute || s.LeapSmear > ntp.MaxSmearWindow) {
			v.errorf(indexKey("server", i)+".leap-smear", "must be 0 (off) or from 60 to 86400 s (got %s)", secs(s.LeapSmear))
		}
		if s.RequireKey && s.Keys != nil && len(s.Keys) == 0 {
			v.errorf(indexKey("server", i)+".keys", "empty, so require-key would refuse every client")
		}
	}
}

// checkAuth warns about weak symmetric keys the sources use: MD5 and SHA1
// digests (RFC 8573 wants AES-CMAC) and keys shorter than 128 bits.
func (c *Config) checkAuth() []Warning {
	if c.Authentication.KeyFile == "" {
		return nil
	}
	keys, err := LoadKeyFile(c.Authentication.KeyFile)
	if err != nil {
		return nil // an error already
	}
	var ws []Warning
	for i, s := range c.Sources {
		k := keys.Key(s.Key)
		if k == nil {
			continue
		}
		key := indexKey("source", i) + ".key"
		var why []string
		if k.Type == ntp.KeyMD5 || k.Type == ntp.KeySHA1 {
			why = append(why, k.Type.String()+" is a weak MAC (use AES128, RFC 8573)")
		}
		if k.Bits() < 128 {
			why = append(why, fmt.Sprintf("the key has %d bits (use 128 random bits or more)", k.Bits()))
		}
		if len(why) > 0 {
			ws = append(ws, Warning{File: c.Path, Line: lineOf(c.lines, key), Key: key, Msg: fmt.Sprintf("key %d: %s", k.ID, strings.Join(why, "; "))})
		}
	}
	return ws
}
