package main

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"
)

// TestPages generates the three pages from a freshly built gnomond and the
// real docs/configuration.md, and has groff (when installed) read them.
func TestPages(t *testing.T) {
	if testing.Short() {
		t.Skip("builds gnomond")
	}
	_, file, _, _ := runtime.Caller(0)
	root := filepath.Join(filepath.Dir(file), "..", "..")
	dir := t.TempDir()
	gnomond := filepath.Join(dir, "gnomond")
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	build := exec.CommandContext(ctx, "go", "build", "-o", gnomond, "./cmd/gnomond")
	build.Dir = root
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	out := filepath.Join(dir, "man")
	if err := run(out, gnomond, filepath.Join(root, "docs", "configuration.md"), "9.9", "2026-01-02"); err != nil {
		t.Fatal(err)
	}
	want := map[string][]string{
		"gnomonctl.1":   {`.TH "GNOMONCTL" 1 "2026\-01\-02" "Gnomon 9.9"`, `.SS "gnomonctl status"`, `.SS "gnomonctl migrate chrony"`, `.SS "gnomonctl remove\-source"`, `.SH "EXIT STATUS"`},
		"gnomond.8":     {`.TH "GNOMOND" 8`, `\fB\-x\fR, \fB\-\-observe\fR`, `.SS "gnomond check\-config"`, `.SH "EXIT STATUS"`},
		"gnomon.toml.5": {`.TH "GNOMON.TOML" 5`, `.SH "[clock]"`, `step\-threshold`, `.SH "COMING FROM CHRONY OR NTPD\-RS"`},
	}
	groff, _ := exec.LookPath("groff")
	for name, subs := range want {
		b, err := os.ReadFile(filepath.Join(out, name))
		if err != nil {
			t.Fatal(err)
		}
		for _, s := range subs {
			if !bytes.Contains(b, []byte(s)) {
				t.Errorf("%s lacks %q", name, s)
			}
		}
		if groff == "" {
			continue
		}
		cmd := exec.CommandContext(ctx, groff, "-man", "-Tutf8", "-ww", "-z", filepath.Join(out, name))
		if msg, err := cmd.CombinedOutput(); err != nil || len(bytes.TrimSpace(msg)) > 0 {
			t.Errorf("groff %s: %v\n%s", name, err, msg)
		}
	}
	if groff == "" && os.Getenv("CI") == "true" {
		t.Fatal("groff is not installed")
	}
	if t.Failed() {
		b, _ := os.ReadFile(filepath.Join(out, "gnomond.8"))
		t.Logf("gnomond.8:\n%s", strings.TrimSpace(string(b)))
	}
}
