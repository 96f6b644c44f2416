package config

import (
	"errors"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/BurntSushi/toml"
)

// fuzzSeeds are real configurations: the packaged default, everything in
// testdata/, the golden bad configurations and the line-scanner torture test.
func fuzzSeeds(f *testing.F) {
	f.Add(embedded)
	files, _ := filepath.Glob("testdata/*.toml")
	for _, p := range files {
		data, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
	for _, tc := range goldenCases {
		f.Add([]byte(tc.in))
	}
	f.Add([]byte(trickyTOML))
	// Past the nesting limit, at it, and a long key over an array: the
	// shapes that once cost memory quadratic in their size.
	for _, doc := range []string{
		"x = " + strings.Repeat("[", MaxNesting+1) + strings.Repeat("]", MaxNesting+1),
		"x = " + strings.Repeat("[", MaxNesting-1) + strings.Repeat("]", MaxNesting-1),
		"x = " + strings.Repeat("{a=", MaxNesting) + "1" + strings.Repeat("}", MaxNesting),
		strings.Repeat("a.", MaxNesting) + "b = 1",
		"[" + strings.Repeat("a.", MaxNesting) + "b]",
		`"` + strings.Repeat("k", 200) + `" = [` + strings.Repeat("1,", 200) + "]",
	} {
		f.Add([]byte(doc))
	}
}

// allocBound is what parsing data may allocate: linear in its size (see
// TestParseHostileBounded), plus a constant.
func allocBound(data []byte) uint64 { return 8<<20 + 200*uint64(len(data)) }

// FuzzParse: arbitrary bytes never panic, and give either a configuration
// that passes Validate or errors; every error about a key in a document
// that is valid TOML carries that key's line.
func FuzzParse(f *testing.F) {
	fuzzSeeds(f)
	f.Fuzz(func(t *testing.T, data []byte) {
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		c, err := Parse("fuzz.toml", data, Options{CanSetClock: true})
		runtime.ReadMemStats(&after)
		if alloc := after.TotalAlloc - before.TotalAlloc; alloc > allocBound(data) {
			t.Fatalf("parsing %d bytes allocated %d bytes, over %d", len(data), alloc, allocBound(data))
		}
		if err == nil {
			if c == nil {
				t.Fatal("nil config without error")
			}
			if verr := c.Validate(); verr != nil {
				t.Fatalf("Parse accepted a config that Validate refuses: %v", verr)
			}
			c.Check()
			return
		}
		if c != nil {
			t.Fatal("config returned along with errors")
		}
		var es Errors
		if !errors.As(err, &es) || len(es) == 0 {
			t.Fatalf("error is not a non-empty Errors: %#v", err)
		}
		var tree map[string]any
		_, syntaxErr := toml.Decode(string(data), &tree)
		for _, e := range es {
			if e.File != "fuzz.toml" {
				t.Errorf("error without the file name: %v", e)
			}
			if syntaxErr == nil && e.Line == 0 {
				t.Errorf("error without a line: %v", e)
			}
		}
	})
}

// FuzzKeyLines: the line scanner never panics or hangs, even on what the
// TOML parser would refuse, and gives lines inside the document.
func FuzzKeyLines(f *testing.F) {
	fuzzSeeds(f)
	f.Fuzz(func(t *testing.T, data []byte) {
		n := 1
		for _, b := range data {
			if b == '\n' {
				n++
			}
		}
		for k, l := range keyLines(data) {
			if l < 1 || l > n {
				t.Fatalf("key %q on line %d of %d", k, l, n)
			}
		}
	})
}

// FuzzSourceAddress: addresses also come from D-Bus and the command line.
// What is accepted has a host and a port, and is accepted again unchanged.
func FuzzSourceAddress(f *testing.F) {
	for _, s := range []string{"ntp.example.org", "time.cloudflare.com:4460", "192.0.2.1:123", "[::1]:123",
		"::1", "[fe80::1%eth0]:123", "a..b", "x:0", "[::1", "1.2.3.400", ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		got, err := ParseSourceAddress(s, SourceServer)
		if err != nil {
			return
		}
		host, port, err := net.SplitHostPort(got)
		if err != nil || host == "" || port == "" || port == "0" {
			t.Fatalf("ParseSourceAddress(%q) = %q: host %q port %q err %v", s, got, host, port, err)
		}
		again, err := ParseSourceAddress(got, SourceNTS)
		if err != nil || again != got {
			t.Fatalf("ParseSourceAddress(%q) = %q, but again = %q, %v", s, got, again, err)
		}
	})
}
