package config

import (
	"strings"
	"testing"

	"github.com/BurntSushi/toml"
)

// A document with the TOML constructs that could throw the line scanner
// off: brackets and '=' inside strings and comments, multi-line strings and
// arrays, multi-line inline tables (TOML 1.1), dotted and quoted keys, nested
// arrays of tables, CRLF line ends.
const trickyTOML = "\ufeff# [[source]] in a comment\n" + // 1
	`a = "x = [y]" # a = 2` + "\n" + // 2
	`b = """` + "\n" + // 3
	`[[source]]` + "\n" + // 4
	`mode = "fake" """` + "\n" + // 5
	`c = '''it's ''' ` + "\n" + // 6
	`d = [` + "\n" + // 7
	`  1, # ]` + "\n" + // 8
	`  [2, 3],` + "\n" + // 9
	`  "]",` + "\n" + // 10
	`]` + "\n" + // 11
	`e.f."g.h" = 1979-05-27 07:32:00Z` + "\n" + // 12
	`[[source]]` + "\r\n" + // 13
	`mode = "server"` + "\r\n" + // 14
	`poll-interval-limits = {` + "\n" + // 15
	`  min = 4,` + "\n" + // 16
	`  max = 10,` + "\n" + // 17
	`}` + "\n" + // 18
	`[[source.sub]]` + "\n" + // 19
	`x = 1` + "\n" + // 20
	`[[source]]` + "\n" + // 21
	`[[source.sub]]` + "\n" + // 22
	`[[source.sub]]` + "\n" + // 23
	`  y = "\"quoted\""` + "\n" + // 24
	`[ 'server' . "a b" ]` + "\n" + // 25
	`"k\u0041" = [ { p = 1 }, { q = 2,` + "\n" + // 26
	`  r = 3 } ]` + "\n" + // 27
	`s = """a""""` + "\n" + // 28
	`t = 5` + "\n" + // 29
	`u = '''` + "\n" + // 30
	`[[source]]` + "\n" + // 31
	`mode = 'x' '''` + "\n" + // 32
	`v = 1` + "\n" // 33

func TestKeyLines(t *testing.T) {
	var tree map[string]any
	if _, err := toml.Decode(trickyTOML, &tree); err != nil {
		t.Fatalf("the test document is not valid TOML: %v", err)
	}
	got := keyLines([]byte(trickyTOML))
	for key, want := range map[string]int{
		"a":                                  2,
		"b":                                  3,
		"c":                                  6,
		"d":                                  7,
		"d[0]":                               8,
		"d[1]":                               9,
		"d[1][1]":                            9,
		"d[2]":                               10,
		"e":                                  12,
		`e.f."g.h"`:                          12,
		"source":                             13,
		"source[0]":                          13,
		"source[0].mode":                     14,
		"source[0].poll-interval-limits":     15,
		"source[0].poll-interval-limits.min": 16,
		"source[0].poll-interval-limits.max": 17,
		"source[0].sub[0]":                   19,
		"source[0].sub[0].x":                 20,
		"source[1]":                          21,
		"source[1].sub[0]":                   22,
		"source[1].sub[1]":                   23,
		"source[1].sub[1].y":                 24,
		`server."a b"`:                       25,
		`server."a b".kA`:                    26,
		`server."a b".kA[0].p`:               26,
		`server."a b".kA[1].q`:               26,
		`server."a b".kA[1].r`:               27,
		`server."a b".s`:                     28,
		`server."a b".t`:                     29,
		`server."a b".u`:                     30,
		`server."a b".v`:                     33,
	} {
		if got[key] != want {
			t.Errorf("line of %s = %d, want %d", key, got[key], want)
		}
	}
	for key := range got {
		if strings.Contains(key, "fake") || key == "mode" || strings.HasPrefix(key, "source[2]") {
			t.Errorf("key %q read from inside a string", key)
		}
	}
}

func TestParentKey(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"source[2].poll-interval-limits.min", "source[2].poll-interval-limits"},
		{"source[2].poll-interval-limits", "source[2]"},
		{"source[2]", "source"},
		{"source", ""},
		{`clock."a.b"`, "clock"},
		{`clock."a[\"b.c"`, "clock"},
		{`"x.y"."z"`, `"x.y"`},
	} {
		if got := parentKey(tc.in); got != tc.want {
			t.Errorf("parentKey(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}
