package sim

import (
	"bytes"
	"flag"
	"os"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite docs/accuracy.md's tables (make accuracy-table)")

// TableSeeds is how many seeds docs/accuracy.md's tables are made from.
const TableSeeds = 20

const (
	docPath    = "../../docs/accuracy.md"
	tableBegin = "<!-- accuracy-table: begin (make accuracy-table) -->\n"
	tableEnd   = "<!-- accuracy-table: end -->\n"
)

// TestAccuracyTable fails when docs/accuracy.md's tables are not what the
// simulator prints today (over TableSeeds fixed seeds, so deterministic);
// make accuracy-table (-update) rewrites them.
func TestAccuracyTable(t *testing.T) {
	sums, _ := runAll(TableSeeds)
	want := Tables(sums)
	doc, err := os.ReadFile(docPath)
	if err != nil {
		t.Fatal(err)
	}
	i := bytes.Index(doc, []byte(tableBegin))
	j := bytes.Index(doc, []byte(tableEnd))
	if i < 0 || j < i {
		t.Fatalf("%s: the markers %q and %q are missing", docPath, strings.TrimSpace(tableBegin), strings.TrimSpace(tableEnd))
	}
	got := string(doc[i+len(tableBegin) : j])
	if got == want {
		return
	}
	if *update {
		var b bytes.Buffer
		b.Write(doc[:i+len(tableBegin)])
		b.WriteString(want)
		b.Write(doc[j:])
		if err := os.WriteFile(docPath, b.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
		t.Logf("rewrote the tables of %s", docPath)
		return
	}
	t.Errorf("%s's tables are stale: run make accuracy-table. The simulator prints:\n%s", docPath, want)
}
