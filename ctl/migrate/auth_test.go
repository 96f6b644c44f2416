package migrate

import (
	"strings"
	"testing"
)

// parseMigrated is config.Parse of a migration's output, except that a
// key file the output names but this machine lacks (chrony's
// /etc/chrony/absent-test.keys where chrony is not installed) is not the
// migrator's error: config checks that file where gnomond runs.
func parseMigrated(name string, toml []byte) error {
	keys, err := Check(name, toml)
	for _, e := range keys {
		if !((e.Key == "authentication.key-file" || e.Key == "synchronization.leap-seconds-file") && strings.Contains(e.Msg, "cannot open")) {
			return keys
		}
	}
	return err
}

func TestMigrateKeys(t *testing.T) {
	res := migrateText(t, threeSources+"keyfile /etc/chrony/absent-test.keys\nserver d.example.net key 10 iburst\n"+
		"pool p.example.net key 11\nserver n.example.net nts key 12\nserver x.example.net key zz\n")
	out := string(res.TOML)
	for _, want := range []string{"[authentication]\n# chrony: /etc/chrony/chrony.conf:4: keyfile /etc/chrony/absent-test.keys\n",
		"key-file = \"/etc/chrony/absent-test.keys\"", "address = \"d.example.net\"\niburst = true\nkey = 10\n", "count = 4\nkey = 11\n"} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "key = 12") || strings.Contains(out, "key = zz") {
		t.Errorf("NTS or bad key carried over:\n%s", out)
	}
	ws := warningsText(res.Warnings)
	for _, want := range []string{"server key: chronyd does not combine key with nts", "server key: \"zz\" is not a key ID"} {
		if !strings.Contains(ws, want) {
			t.Errorf("warnings lack %q:\n%s", want, ws)
		}
	}
	// Without a keyfile, the key is dropped with a warning.
	res = migrateText(t, threeSources+"server d.example.net key 10\n")
	if strings.Contains(string(res.TOML), "key = ") || !strings.Contains(warningsText(res.Warnings), "no keyfile directive") {
		t.Errorf("key without keyfile:\n%s\n%s", res.TOML, warningsText(res.Warnings))
	}
}
