package config

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// docTable is one table of settings in docs/configuration.md.
type docTable struct {
	name  string // "clock", "source", ...
	array bool   // [[name]]
	rows  []docRow
}

type docRow struct {
	key, def string // the key; the default cell as written
	line     int
}

var (
	sectionRE = regexp.MustCompile("^## `(\\[\\[?)([a-z-]+)\\]\\]?`$")
	keyCellRE = regexp.MustCompile("^`([a-z-]+)`$")
	literalRE = regexp.MustCompile("^`([^`]+)`(.*)$")
)

// readConfigDoc parses the settings tables of docs/configuration.md: under
// each "## `[table]`" heading, the rows of the table whose header has a
// "default" column.
func readConfigDoc(t *testing.T) []*docTable {
	t.Helper()
	b, err := os.ReadFile("../../docs/configuration.md")
	if err != nil {
		t.Fatal(err)
	}
	var tables []*docTable
	var cur *docTable
	defCol := -1
	for i, line := range strings.Split(string(b), "\n") {
		if m := sectionRE.FindStringSubmatch(line); m != nil {
			cur = &docTable{name: m[2], array: m[1] == "[["}
			tables = append(tables, cur)
			defCol = -1
			continue
		}
		if strings.HasPrefix(line, "## ") {
			cur = nil
			continue
		}
		if cur == nil || !strings.HasPrefix(line, "|") {
			continue
		}
		cells := strings.Split(strings.Trim(line, "|"), "|")
		for j := range cells {
			cells[j] = strings.TrimSpace(cells[j])
		}
		if cells[0] == "key" {
			defCol = slices.Index(cells, "default")
			continue
		}
		m := keyCellRE.FindStringSubmatch(cells[0])
		if m == nil || defCol < 0 || defCol >= len(cells) {
			continue
		}
		cur.rows = append(cur.rows, docRow{key: m[1], def: cells[defCol], line: i + 1})
	}
	return tables
}

// knownKeys is what the decoder itself says it accepts in a table: the
// "want one of" list of an unknown key's error.
func knownKeys(t *testing.T, doc string) []string {
	t.Helper()
	_, err := Parse("known.toml", []byte(doc), Options{})
	var es Errors
	if !errors.As(err, &es) || len(es) != 1 {
		t.Fatalf("probing the known keys: want one unknown-key error, got %v\n%s", err, doc)
	}
	_, list, ok := strings.Cut(es[0].Msg, "want one of ")
	if !ok {
		t.Fatalf("probing the known keys: %q lists none", es[0].Msg)
	}
	return strings.Split(strings.TrimSuffix(list, ")"), ", ")
}

// TestDocumentedDefaults checks docs/configuration.md (and so gnomon.toml(5),
// generated from it) against the code: the documented tables and keys are
// exactly those the parser accepts, and writing a key with its documented
// default gives the same configuration as leaving it out.
func TestDocumentedDefaults(t *testing.T) {
	tables := readConfigDoc(t)
	if len(tables) < 6 {
		t.Fatalf("docs/configuration.md: found only %d settings tables", len(tables))
	}
	dir := t.TempDir()
	cert, key := filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	for _, f := range []string{cert, key} {
		if err := os.WriteFile(f, []byte("not read by Parse\n"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	// The smallest valid entry of each array table.
	entries := map[string]string{
		"source":        "mode = \"server\"\naddress = \"192.0.2.1\"\n",
		"server":        "listen = \"127.0.0.1:11123\"\n",
		"nts-ke-server": fmt.Sprintf("listen = \"127.0.0.1:11124\"\ncertificate-chain-path = %q\nprivate-key-path = %q\n", cert, key),
	}
	header := func(tb *docTable) string {
		if tb.array {
			return "[[" + tb.name + "]]\n" + entries[tb.name]
		}
		return "[" + tb.name + "]\n"
	}
	parse := func(doc string) (*Config, error) {
		c, err := Parse("doc.toml", []byte(doc), Options{})
		if c != nil {
			c.lines, c.Path = nil, ""
		}
		return c, err
	}

	var names []string
	for _, tb := range tables {
		names = append(names, tb.name)
		var keys []string
		for _, r := range tb.rows {
			keys = append(keys, r.key)
		}
		slices.Sort(keys)
		known := knownKeys(t, header(tb)+"zzzzzzzzzzzzzzzz = 1\n")
		slices.Sort(known)
		if !slices.Equal(keys, known) {
			t.Errorf("docs/configuration.md [%s] documents %v; the parser accepts %v", tb.name, keys, known)
		}
		for _, r := range tb.rows {
			at := fmt.Sprintf("docs/configuration.md:%d: %s.%s", r.line, tb.name, r.key)
			m := literalRE.FindStringSubmatch(r.def)
			switch {
			case strings.HasPrefix(r.def, "(required)"):
				// Leaving it out must be an error about it.
				base := header(tb)
				if !tb.array || !strings.Contains(base, r.key+" =") {
					t.Errorf("%s: documented as required, but no entry for [[%s]] in this test has it", at, tb.name)
					continue
				}
				var kept []string
				for _, l := range strings.Split(base, "\n") {
					if !strings.HasPrefix(l, r.key+" =") {
						kept = append(kept, l)
					}
				}
				if _, err := parse(strings.Join(kept, "\n")); err == nil || !strings.Contains(err.Error(), r.key) {
					t.Errorf("%s: documented as required, but leaving it out gives %v", at, err)
				}
				continue
			case m == nil:
				// A default that is not a value: none, or inherited.
				if !strings.HasPrefix(r.def, "none") && !strings.HasPrefix(r.def, "from ") {
					t.Errorf("%s: default %q is neither a value in backquotes, (required), none nor from ...", at, r.def)
				}
				continue
			case tb.name == "clock" && r.key == "mode" && strings.TrimSpace(m[2]) != "":
				continue // depends on the process (see the key's text), checked by the config tests
			}
			lit, qualifier := m[1], strings.TrimSpace(m[2])
			base := header(tb)
			if strings.Contains(qualifier, "pool only") {
				base = "[[source]]\nmode = \"pool\"\naddress = \"pool.example.org\"\n"
			}
			want, err := parse(base)
			if err != nil {
				t.Fatalf("%s: %v", at, err)
			}
			got, err := parse(base + r.key + " = " + lit + "\n")
			if err != nil {
				t.Errorf("%s: the documented default %s is refused: %v", at, lit, err)
				continue
			}
			if !reflect.DeepEqual(got, want) {
				t.Errorf("%s: documented default %s differs from the code's:\nwith it: %+v\nwithout: %+v", at, lit, got, want)
			}
		}
	}
	slices.Sort(names)
	known := knownKeys(t, "zzzzzzzzzzzzzzzz = 1\n")
	slices.Sort(known)
	if !slices.Equal(names, known) {
		t.Errorf("docs/configuration.md has tables %v; the parser accepts %v", names, known)
	}
}

// TestDocumentedRateLimit checks the defaults docs/configuration.md gives in
// the text for the fields of [[server]] rate-limit.
func TestDocumentedRateLimit(t *testing.T) {
	b, err := os.ReadFile("../../docs/configuration.md")
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile("\\*\\*`rate-limit`\\*\\* = `(\\{[^`]*\\})`").FindSubmatch(b)
	if m == nil {
		t.Fatal("docs/configuration.md: no **`rate-limit`** = `{ ... }` with the defaults")
	}
	c, err := Parse("doc.toml", []byte("[[server]]\nlisten = \"127.0.0.1:11123\"\nrate-limit = "+string(m[1])+"\n"), Options{})
	if err != nil {
		t.Fatal(err)
	}
	if got := c.Servers[0].RateLimit; got != defaultRateLimit {
		t.Errorf("documented rate-limit %s is %+v; the defaults are %+v", m[1], got, defaultRateLimit)
	}
}
