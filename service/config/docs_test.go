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
	"time"
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
	// sub is the "### " subsection the row is in ("" for none); modes the
	// row's "modes" cell, when its table has one.
	sub, modes string
}

var (
	sectionRE = regexp.MustCompile("^## `(\\[\\[?)([a-z-]+)\\]\\]?`$")
	keyCellRE = regexp.MustCompile("^`([a-z0-9-]+)`$")
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
	defCol, modesCol := -1, -1
	sub := ""
	for i, line := range strings.Split(string(b), "\n") {
		if m := sectionRE.FindStringSubmatch(line); m != nil {
			cur = &docTable{name: m[2], array: m[1] == "[["}
			tables = append(tables, cur)
			defCol, sub = -1, ""
			continue
		}
		if t, ok := strings.CutPrefix(line, "### "); ok {
			sub, defCol = t, -1
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
			defCol, modesCol = slices.Index(cells, "default"), slices.Index(cells, "modes")
			continue
		}
		if defCol < 0 || defCol >= len(cells) {
			continue
		}
		// One key a row, or several with the same default ("`a`, `b`").
		for _, k := range strings.Split(cells[0], ", ") {
			m := keyCellRE.FindStringSubmatch(k)
			if m == nil {
				continue
			}
			r := docRow{key: m[1], def: cells[defCol], line: i + 1, sub: sub}
			if modesCol >= 0 && modesCol < len(cells) {
				r.modes = cells[modesCol]
			}
			cur.rows = append(cur.rows, r)
		}
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
	certPEM, keyPEM := testPair(t, time.Now().Add(-time.Hour))
	for f, b := range map[string][]byte{cert: certPEM, key: keyPEM} {
		if err := os.WriteFile(f, b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	// The smallest valid entry of each array table.
	entries := map[string]string{
		"source":        "mode = \"server\"\naddress = \"192.0.2.1\"\n",
		"server":        "listen = \"127.0.0.1:11123\"\n",
		"nts-ke-server": fmt.Sprintf("listen = \"127.0.0.1:11124\"\ncertificate-chain-path = %q\nprivate-key-path = %q\n", cert, key),
	}
	// The smallest valid [[source]] of each mode whose keys have a table
	// of their own (the "### " subsections of [[source]]).
	modeEntries := map[string]string{
		"gpsd":  "mode = \"gpsd\"\n",
		"shm":   "mode = \"shm\"\n",
		"sock":  "mode = \"sock\"\npath = \"/run/chrony.test.sock\"\n",
		"pps":   "mode = \"pps\"\ndevice = \"/dev/pps0\"\n",
		"ptp":   "mode = \"ptp\"\ninterface = \"eth0\"\n",
		"csptp": "mode = \"csptp\"\naddress = \"192.0.2.1\"\n",
	}
	entries["ptp-port"] = "interface = \"eth0\"\n"
	entries["csptp-server"] = "listen = \"127.0.0.1:11319\"\n"
	header := func(tb *docTable) string {
		if tb.array {
			return "[[" + tb.name + "]]\n" + entries[tb.name]
		}
		return "[" + tb.name + "]\n"
	}
	// rowMode is the source mode a row of a subsection is checked in.
	rowMode := func(r docRow) string {
		switch {
		case r.sub == "PTP sources":
			return "ptp"
		case r.sub == "CSPTP sources":
			return "csptp"
		case r.sub == "Reference clocks":
			first, _, _ := strings.Cut(r.modes, ",")
			if first = strings.TrimSpace(first); first == "all" {
				return "gpsd"
			}
			if first == "pps" && strings.Contains(r.modes, "sock") {
				return "sock" // no PPS device on the machine running the test
			}
			return first
		}
		return ""
	}
	rowHeader := func(tb *docTable, r docRow) string {
		if m := rowMode(r); m != "" {
			return "[[" + tb.name + "]]\n" + modeEntries[m]
		}
		return header(tb)
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
		if tb.name == "ptp-port" {
			// "Besides the keys of PTP sources": that table's rows.
			for _, other := range tables {
				for _, r := range other.rows {
					if other.name == "source" && r.sub == "PTP sources" {
						keys = append(keys, r.key)
					}
				}
			}
		}
		slices.Sort(keys)
		keys = slices.Compact(keys)
		known := knownKeys(t, header(tb)+"zzzzzzzzzzzzzzzz = 1\n")
		if tb.name == "source" {
			for _, e := range modeEntries {
				known = append(known, knownKeys(t, "[[source]]\n"+e+"zzzzzzzzzzzzzzzz = 1\n")...)
			}
		}
		slices.Sort(known)
		known = slices.Compact(known)
		if !slices.Equal(keys, known) {
			t.Errorf("docs/configuration.md [%s] documents %v; the parser accepts %v", tb.name, keys, known)
		}
		for _, r := range tb.rows {
			at := fmt.Sprintf("docs/configuration.md:%d: %s.%s", r.line, tb.name, r.key)
			def := r.def
			if mode := rowMode(r); mode != "" {
				// "gpsd: any; pps: (required)", "gpsd `0.001`, others
				// `1e-6`": the part for the mode the row is checked in.
				for _, part := range strings.Split(def, ";") {
					part = strings.TrimSpace(part)
					if rest, ok := strings.CutPrefix(part, mode); ok {
						def = strings.TrimSpace(strings.TrimPrefix(rest, ":"))
						break
					}
				}
				if def == "any" {
					def = "none"
				}
			}
			m := literalRE.FindStringSubmatch(def)
			switch {
			case strings.HasPrefix(def, "(required)"):
				// Leaving it out must be an error about it.
				base := rowHeader(tb, r)
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
				if !strings.HasPrefix(def, "none") && !strings.HasPrefix(def, "from ") {
					t.Errorf("%s: default %q is neither a value in backquotes, (required), none nor from ...", at, def)
				}
				continue
			case tb.name == "clock" && r.key == "mode" && strings.TrimSpace(m[2]) != "":
				continue // depends on the process (see the key's text), checked by the config tests
			}
			lit, qualifier := m[1], strings.TrimSpace(m[2])
			base := rowHeader(tb, r)
			if strings.Contains(qualifier, "pool only") {
				base = "[[source]]\nmode = \"pool\"\naddress = \"pool.example.org\"\n"
			}
			want, err := parse(base)
			if err != nil {
				t.Fatalf("%s: %v", at, err)
			}
			got, err := parse(base + r.key + " = " + lit + "\n")
			if err != nil && !strings.HasPrefix(lit, "\"") {
				// A string written bare in the table (`GPS`).
				got, err = parse(base + r.key + " = " + fmt.Sprintf("%q", lit) + "\n")
			}
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
