package main

import (
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/spf13/pflag"
)

// TestDocumentedFlags checks docs/gnomond.md's flag table against the
// flags gnomond has: every flag documented, every documented flag real,
// the same one-letter forms, and each default the flag has (other than
// empty or false) written in the table as "default `VALUE`".
func TestDocumentedFlags(t *testing.T) {
	b, err := os.ReadFile("../../docs/gnomond.md")
	if err != nil {
		t.Fatal(err)
	}
	type row struct{ short, meaning string }
	documented := map[string]row{}
	nameRE := regexp.MustCompile("`(--?[a-z][a-z-]*)`")
	for _, line := range strings.Split(string(b), "\n") {
		if !strings.HasPrefix(line, "| `--") {
			continue
		}
		cells := strings.Split(strings.Trim(line, "|"), " | ")
		if len(cells) < 2 {
			t.Errorf("docs/gnomond.md: flag row without a meaning: %s", line)
			continue
		}
		var long, short string
		for _, m := range nameRE.FindAllStringSubmatch(cells[0], -1) {
			if strings.HasPrefix(m[1], "--") {
				long = strings.TrimPrefix(m[1], "--")
			} else {
				short = strings.TrimPrefix(m[1], "-")
			}
		}
		if _, dup := documented[long]; dup {
			t.Errorf("docs/gnomond.md: --%s documented twice", long)
		}
		documented[long] = row{short, strings.Join(cells[1:], " | ")}
	}
	if len(documented) < 5 {
		t.Fatalf("docs/gnomond.md: found only %d flag rows", len(documented))
	}

	root := newRoot()
	var real []string
	root.Flags().VisitAll(func(f *pflag.Flag) {
		if f.Name == "help" || f.Hidden {
			return
		}
		real = append(real, f.Name)
		doc, ok := documented[f.Name]
		if !ok {
			t.Errorf("--%s (%s) is missing from docs/gnomond.md", f.Name, f.Usage)
			return
		}
		if doc.short != f.Shorthand {
			t.Errorf("--%s: docs/gnomond.md gives the short form %q, gnomond has %q", f.Name, doc.short, f.Shorthand)
		}
		if f.DefValue != "" && f.DefValue != "false" && !strings.Contains(doc.meaning, "default `"+f.DefValue+"`") {
			t.Errorf("--%s: default %q is not in docs/gnomond.md (want \"default `%s`\" in: %s)", f.Name, f.DefValue, f.DefValue, doc.meaning)
		}
	})
	for name := range documented {
		if !slices.Contains(real, name) {
			t.Errorf("docs/gnomond.md documents --%s, which gnomond does not have", name)
		}
	}
}
