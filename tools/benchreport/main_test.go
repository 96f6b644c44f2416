package main

import (
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestStat(t *testing.T) {
	s := statOf([]float64{8, 6, 7})
	if s.med != 7 || s.min != 6 || s.max != 8 {
		t.Errorf("statOf = %+v", s)
	}
	if got := s.fmt(1); got != "7.0 (6.0–8.0)" {
		t.Errorf("fmt = %q", got)
	}
	if got := statOf([]float64{1, 2, 3, 4}).med; got != 2.5 {
		t.Errorf("even median = %v", got)
	}
	if got := statOf(nil).fmt(0); got != "–" {
		t.Errorf("empty = %q", got)
	}
}

func TestReport(t *testing.T) {
	dir := t.TempDir()
	doc := filepath.Join(dir, "b.md")
	if err := os.WriteFile(doc, []byte("# Benchmarks\n\nintro\n\n## Older\n\ntext\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	plots := filepath.Join(dir, "bench")
	for range 2 {
		if err := run("testdata/run", doc, plots, io.Discard); err != nil {
			t.Fatal(err)
		}
	}
	b, err := os.ReadFile(doc)
	if err != nil {
		t.Fatal(err)
	}
	s := string(b)
	if strings.Count(s, begin) != 1 || strings.Count(s, end) != 1 {
		t.Fatalf("want one generated section:\n%s", s)
	}
	if !strings.HasPrefix(s, "# Benchmarks\n\nintro\n\n## Side by side") || !strings.Contains(s, "## Older\n\ntext\n") {
		t.Errorf("section not placed before the first ## heading, or text lost:\n%s", s)
	}
	for _, want := range []string{
		"| 10000 | 10000 (9900–10000), loss 0.00 (0.00–1.00) % | 10000 | 10000 |",    // answers/s; loss shown when any round lost
		"| 10000 | 7.50 (7.00–8.10) | 9.00 | 7.00 (6.00–8.00) | 1.07× | 1.29× | – |", // CPU per answer and ÷ floor
		"| CPU per answer at 10000/s offered | 0.83 | – |",
		"#### NTS server: CPU per answer",
		"| 5000 | 20.00 | 24.00 |",
		"| answers/s at overload (generator flat out) | 1.33 | – |",
		"| gnomond | 8.5 (8.0–9.0) | 8.5 (8.0–9.0) | 7.0 | 9.0 |",
		"| gnomond | 16 s | 180 s | 0.0500 | 1.000 | 3600 | 7.0 |",
		"| gnomond | 1024 s | 180 s | 0.0010 | 0.020 | – | 7.0 |",
		"| gnomond | 1.00 (0.90–1.10) | 0 | ≤ 2 s on loopback |",
		"| chronyd | 2.30 | 1 |  |",
	} {
		if !strings.Contains(s, want) {
			t.Errorf("report lacks %q:\n%s", want, s)
		}
	}
	for _, f := range []string{"data/throughput.csv", "data/gnomond.dat", "data/nts-gnomond.dat", "answers.gp", "rss.gp", "nts-cpu.gp"} {
		if _, err := os.Stat(filepath.Join(plots, f)); err != nil {
			t.Error(err)
		}
	}
}
