package config

import (
	"strings"
	"testing"
)

// trust is a key of every NTP and reference-clock source (chrony's
// trust), a boolean.
func TestTrustKey(t *testing.T) {
	c, err := Parse("t.toml", []byte(`
[[source]]
mode = "server"
address = "ntp1.example.org"
trust = true

[[source]]
mode = "pool"
address = "pool.example.org"

[[source]]
mode = "nts"
address = "nts.example.org"
trust = true

[[source]]
mode = "shm"
trust = true
`), Options{})
	if err != nil {
		t.Fatal(err)
	}
	for i, want := range []bool{true, false, true, true} {
		if c.Sources[i].Trust != want {
			t.Errorf("source[%d] (%s): trust %v, want %v", i, c.Sources[i].Mode, c.Sources[i].Trust, want)
		}
	}
	_, err = Parse("t.toml", []byte("[[source]]\nmode = \"server\"\naddress = \"a.example.org\"\ntrust = \"yes\"\n"), Options{})
	if err == nil || !strings.Contains(err.Error(), "t.toml:4: source[0].trust") {
		t.Errorf("trust = \"yes\": %v, want an error naming t.toml:4 and source[0].trust", err)
	}
}
