package config

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

func writeKeys(t *testing.T, mode os.FileMode, text string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "gnomon.keys")
	if err := os.WriteFile(p, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(p, mode); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestAuthentication(t *testing.T) {
	keys := writeKeys(t, 0o640, "1 AES128 HEX:7EA62AE64D190114D46D5A082F948EC1\n2 SHA1 HEX:0F1E2D3C4B5A69788796A5B4C3D2E1F00F1E2D3C\n")
	c, err := Parse("t.toml", []byte(`
[authentication]
key-file = "`+keys+`"
[[source]]
mode = "server"
address = "127.0.0.1"
key = 1
[[server]]
listen = "127.0.0.1:1123"
keys = [1, 2]
require-key = true
`), Options{})
	if err != nil {
		t.Fatal(err)
	}
	if c.Authentication.KeyFile != keys || c.Sources[0].Key != 1 || len(c.Servers[0].Keys) != 2 || !c.Servers[0].RequireKey {
		t.Errorf("decoded %+v %+v %+v", c.Authentication, c.Sources[0], c.Servers[0])
	}
	if ks, err := LoadKeyFile(keys); err != nil || ks.Len() != 2 {
		t.Errorf("LoadKeyFile: %v %v", ks, err)
	}
	if ws := c.Check(); len(ws) != 1 || !strings.Contains(ws[0].String(), "only one source") {
		t.Errorf("AES128 key: warnings %v", ws)
	}
	c.Sources[0].Key = 2
	ws := c.Check()
	var got []string
	for _, w := range ws {
		got = append(got, w.String())
	}
	if want := "t.toml:7: source[0].key: key 2: SHA1 is a weak MAC (use AES128, RFC 8573)"; !slices.Contains(got, want) {
		t.Errorf("SHA1 key: warnings %q, want %q", got, want)
	}
}

func TestAuthenticationErrors(t *testing.T) {
	good := writeKeys(t, 0o600, "1 AES128 HEX:7EA62AE64D190114D46D5A082F948EC1\n")
	open := writeKeys(t, 0o644, "1 AES128 HEX:7EA62AE64D190114D46D5A082F948EC1\n")
	bad := writeKeys(t, 0o600, "1 AES128 HEX:7EA62AE64D190114D46D5A082F948EC1\n\n3 MD5 HEX:xyz\n")
	for _, tc := range []struct{ toml, want string }{
		{"[authentication]\nkey-file = \"" + open + "\"\n",
			"t.toml:2: authentication.key-file: " + open + ": key file is readable by everyone (mode 0644)"},
		{"[authentication]\nkey-file = \"" + bad + "\"\n", bad + ":3: key 3: bad hexadecimal"},
		{"[authentication]\nkey-file = \"relative\"\n", "is not an absolute path"},
		{"[authentication]\nkey-file = \"/nonexistent/k\"\n", "/nonexistent/k: cannot open: no such file or directory"},
		{"[authentication]\nkey-file = \"" + good + "\"\n[[source]]\nmode = \"server\"\naddress = \"h\"\nkey = 5\n",
			"t.toml:6: source[0].key: key 5 is not in " + good + " (it has [1])"},
		{"[[source]]\nmode = \"server\"\naddress = \"h\"\nkey = 1\n", "key 1 named but there is no [authentication] key-file"},
		{"[authentication]\nkey-file = \"" + good + "\"\n[[source]]\nmode = \"nts\"\naddress = \"h\"\nkey = 1\n",
			"source[0].key: not allowed with mode = \"nts\""},
		{"[[source]]\nmode = \"server\"\naddress = \"h\"\nkey = 0\n", "key ID must be from 1 to 4294967295 (got 0)"},
		{"[[server]]\nlisten = \"127.0.0.1:1\"\nkeys = [\"a\"]\n", "server[0].keys[0]: want a key ID"},
		{"[[server]]\nlisten = \"127.0.0.1:1\"\nrequire-key = true\n", "server[0].require-key: needs [authentication] key-file"},
		{"keyfile = \"/etc/chrony/chrony.keys\"\n", "keyfile: unknown key"},
	} {
		_, err := Parse("t.toml", []byte(tc.toml), Options{})
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q:\n got %v\nwant %q", tc.toml, err, tc.want)
		}
	}
}

func TestLeapSecondsFile(t *testing.T) {
	good := writeKeys(t, 0o644, "#@ 3865363200\n2272060800 10\n2287785600 11\n")
	c, err := Parse("t.toml", []byte("[synchronization]\nleap-seconds-file = \""+good+"\"\n"), Options{})
	if err != nil || c.Synchronization.LeapSecondsFile != good {
		t.Fatalf("%v %+v", err, c)
	}
	bad := writeKeys(t, 0o644, "#@ 3865363200\n2272060800 10\n2287785600 12\n")
	_, err = Parse("t.toml", []byte("[synchronization]\nleap-seconds-file = \""+bad+"\"\n"), Options{})
	if want := "t.toml:2: synchronization.leap-seconds-file: " + bad + ": line 3: TAI-UTC goes from 10 to 12"; err == nil || !strings.Contains(err.Error(), want) {
		t.Errorf("got %v, want %q", err, want)
	}
}
