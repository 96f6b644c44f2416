package atomicfile

import (
	"os"
	"path/filepath"
	"testing"
)

func entries(t *testing.T, dir string) []string {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range ents {
		out = append(out, e.Name())
	}
	return out
}

func TestWriteFileReplaces(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "state")
	if err := os.WriteFile(p, []byte("old"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := WriteFile(p, []byte("new"), 0o640); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(p)
	if err != nil || string(b) != "new" {
		t.Fatalf("content %q, %v", b, err)
	}
	fi, _ := os.Stat(p)
	if fi.Mode().Perm() != 0o640 {
		t.Errorf("mode %v, want 0640", fi.Mode().Perm())
	}
	if e := entries(t, dir); len(e) != 1 {
		t.Errorf("directory holds %v, want only the file", e)
	}
}

// A failed write leaves the old file and no temporary file.
func TestWriteFileFailureChangesNothing(t *testing.T) {
	dir := t.TempDir()
	target := filepath.Join(dir, "target")
	// A non-empty directory where the file should be: the rename fails
	// after the temporary file was written and synced.
	if err := os.MkdirAll(filepath.Join(target, "x"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := WriteFile(target, []byte("new"), 0o644); err == nil {
		t.Fatal("WriteFile over a non-empty directory succeeded")
	}
	if e := entries(t, dir); len(e) != 1 || e[0] != "target" {
		t.Errorf("directory holds %v after a failed write, want only target", e)
	}
	if err := WriteFile(filepath.Join(dir, "missing", "f"), []byte("x"), 0o644); err == nil {
		t.Error("WriteFile into a missing directory succeeded")
	}
}

func TestSymlinkAndRemove(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "localtime")
	for _, target := range []string{"../a", "../b"} {
		if err := Symlink(target, p); err != nil {
			t.Fatal(err)
		}
		if got, err := os.Readlink(p); err != nil || got != target {
			t.Fatalf("link %q, %v; want %q", got, err, target)
		}
	}
	if err := Remove(p); err != nil {
		t.Fatal(err)
	}
	if err := Remove(p); err != nil {
		t.Errorf("Remove of a missing file: %v", err)
	}
	if e := entries(t, dir); len(e) != 0 {
		t.Errorf("directory holds %v", e)
	}
}

func TestClean(t *testing.T) {
	dir := t.TempDir()
	for _, n := range []string{".drift.tmp-0123456789abcdef", ".ntp-disabled.tmp-aa", "drift", ".hidden"} {
		if err := os.WriteFile(filepath.Join(dir, n), nil, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	n, err := Clean(dir)
	if err != nil || n != 2 {
		t.Fatalf("Clean = %d, %v; want 2", n, err)
	}
	if e := entries(t, dir); len(e) != 2 {
		t.Errorf("left %v, want .hidden and drift", e)
	}
}
