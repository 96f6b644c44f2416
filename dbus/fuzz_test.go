package dbus

import (
	"bytes"
	"strings"
	"testing"
)

// FuzzRewriteAdjtime: any /etc/adjtime content is rewritten so that the
// first two lines survive byte for byte and the third says what was asked.
func FuzzRewriteAdjtime(f *testing.F) {
	for _, s := range []string{"0.0 0 0\n0\nUTC\n", "0.0 0 0\n0\nLOCAL\n", "0.013 1700000000 0.000000\n1700000000\nUTC\n",
		"0.0 0 0", "0.0 0 0\n", "0.0 0 0\n0", "1 2 3\n4\nLOCAL\nextra\n", "", "\n\n\n\n", "\x00\n\xff"} {
		f.Add([]byte(s), true, true)
		f.Add([]byte(s), true, false)
	}
	f.Fuzz(func(t *testing.T, old []byte, exists, local bool) {
		out, write, remove := RewriteAdjtime(old, exists, local)
		if write && remove {
			t.Fatal("both write and remove")
		}
		if remove {
			if local {
				t.Fatal("remove for LOCAL")
			}
			return
		}
		if !write {
			if exists || local {
				t.Fatalf("nothing to do for exists=%v local=%v", exists, local)
			}
			return
		}
		if AdjtimeLocal(out) != local {
			t.Fatalf("AdjtimeLocal(%q) != %v", out, local)
		}
		if exists {
			lines := bytes.SplitAfterN(old, []byte("\n"), 3)
			if len(lines) >= 3 && !bytes.HasPrefix(out, bytes.Join(lines[:2], nil)) {
				t.Fatalf("first two lines of %q not kept in %q", old, out)
			}
		}
		if bytes.Count(out, []byte("\n")) < 3 {
			t.Fatalf("fewer than three lines: %q", out)
		}
	})
}

// FuzzValidTimezoneName: accepted names can never leave the zoneinfo
// directory.
func FuzzValidTimezoneName(f *testing.F) {
	for _, s := range []string{"Europe/Berlin", "UTC", "Etc/GMT+5", "../etc/passwd", "a//b", "/abs", "a/", "a/../b", "America/Argentina/Buenos_Aires"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if !ValidTimezoneName(s) {
			return
		}
		if s == "" || strings.HasPrefix(s, "/") || strings.HasSuffix(s, "/") || strings.Contains(s, "//") {
			t.Fatalf("accepted %q", s)
		}
		for _, c := range strings.Split(s, "/") {
			if c == "." || c == ".." || c == "" {
				t.Fatalf("accepted %q with component %q", s, c)
			}
		}
	})
}

// FuzzParseTzdataZi: names come only from Zone and Link lines, never
// contain white space, and parsing never fails.
func FuzzParseTzdataZi(f *testing.F) {
	f.Add([]byte("# version 2024a\nR d 1916 o - Ap 30 23 1 S\nZ Europe/Berlin 0:53:28 - LMT 1893 Ap\nL Europe/Zurich Europe/Busingen\n"))
	f.Add([]byte("Z\nL a\nz x y\nl a b c\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		for _, n := range ParseTzdataZi(data) {
			if n == "" || strings.ContainsAny(n, " \t\n") {
				t.Fatalf("bad name %q", n)
			}
		}
		for _, n := range ParseZoneTab(data) {
			if n == "" || strings.ContainsAny(n, " \t\n") {
				t.Fatalf("bad zone.tab name %q", n)
			}
		}
	})
}

// FuzzValidServerName: an accepted runtime server is an address literal
// or a name whose labels hold no control character, no DEL and no empty
// label, 253 bytes at most once escaped (so never more than 253 bytes
// raw), as systemd's dns_name_is_valid_or_address.
func FuzzValidServerName(f *testing.F) {
	for _, s := range []string{"pool.ntp.org", "192.0.2.1", "2001:db8::1", "fe80::1%eth0", "a..b", "host:123", "x y", "time.", "a\\.b", "a\\065"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if !ValidServerName(s) {
			return
		}
		if strings.ContainsAny(s, "\x00\t\n\r\x7f") || s == "" || len(s) > 253*4 {
			t.Fatalf("accepted %q", s)
		}
	})
}

// FuzzParseNetifNTP: networkd's state file never yields an invalid or
// repeated name.
func FuzzParseNetifNTP(f *testing.F) {
	f.Add([]byte("# This is private data. Do not parse.\nOPER_STATE=routable\nNTP=192.0.2.1 ntp.example ntp.example\n"))
	f.Add([]byte("NTP=\nNTP=a..b x\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		got := ParseNetifNTP(data)
		seen := map[string]bool{}
		for _, n := range got {
			if !ValidServerName(n) || seen[n] {
				t.Fatalf("%q from %q", n, data)
			}
			seen[n] = true
		}
	})
}
