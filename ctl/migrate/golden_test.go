package migrate

import (
	"bytes"
	"context"
	"flag"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"testing/fstest"
	"time"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/golden")

// verbatim are distribution files kept exactly as shipped; they are read as
// /etc/chrony/chrony.conf from a file system holding only them, so the
// directories they name (/etc/chrony/conf.d, ...) are empty whatever this
// machine has.
var verbatim = map[string]bool{"debian.conf": true, "example1.conf": true, "example2.conf": true, "example3.conf": true}

// copyCorpus copies testdata/chrony to a temporary directory, replacing
// @DIR@ with that directory's path.
func copyCorpus(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	err := filepath.WalkDir("testdata/chrony", func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel("testdata/chrony", p)
		dst := filepath.Join(dir, rel)
		if d.IsDir() {
			return os.MkdirAll(dst, 0o755)
		}
		data, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		return os.WriteFile(dst, bytes.ReplaceAll(data, []byte("@DIR@"), []byte(dir)), 0o644)
	})
	if err != nil {
		t.Fatal(err)
	}
	return dir
}

func warningsText(ws []Warning) string {
	var b strings.Builder
	for _, w := range ws {
		b.WriteString(w.String())
		b.WriteByte('\n')
	}
	return b.String()
}

func checkGolden(t *testing.T, name string, got []byte) {
	t.Helper()
	path := filepath.Join("testdata", "golden", name)
	if *update {
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -update to create it)", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s differs from the golden file (go test -update rewrites it):\n--- got\n%s\n--- want\n%s", name, got, want)
	}
}

// migrated is every corpus file's output, for the gnomond test.
type migrated struct {
	name string
	toml []byte
}

func migrateCorpus(t *testing.T) (string, []migrated) {
	t.Helper()
	dir := copyCorpus(t)
	confs, err := filepath.Glob(filepath.Join(dir, "*.conf"))
	if err != nil || len(confs) < 8 {
		t.Fatalf("corpus: %v, %d files", err, len(confs))
	}
	var out []migrated
	for _, p := range confs {
		name := filepath.Base(p)
		var res *Result
		if verbatim[name] {
			data, err := os.ReadFile(p)
			if err != nil {
				t.Fatal(err)
			}
			fsys := fstest.MapFS{"etc/chrony/chrony.conf": {Data: data}}
			res, err = Chrony(DefaultChronyConf, Options{FS: fsys})
			if err != nil {
				t.Fatalf("%s: %v", name, err)
			}
		} else {
			res, err = Chrony(p, Options{})
			if err != nil {
				t.Fatalf("%s: %v", name, err)
			}
		}
		out = append(out, migrated{name, res.TOML})
	}
	return dir, out
}

func TestGolden(t *testing.T) {
	dir := copyCorpus(t)
	confs, err := filepath.Glob(filepath.Join(dir, "*.conf"))
	if err != nil || len(confs) < 8 {
		t.Fatalf("corpus: %v, %d files", err, len(confs))
	}
	for _, p := range confs {
		name := filepath.Base(p)
		t.Run(name, func(t *testing.T) {
			var res *Result
			if verbatim[name] {
				data, err := os.ReadFile(p)
				if err != nil {
					t.Fatal(err)
				}
				res, err = Chrony(DefaultChronyConf, Options{FS: fstest.MapFS{"etc/chrony/chrony.conf": {Data: data}}})
				if err != nil {
					t.Fatal(err)
				}
			} else {
				res, err = Chrony(p, Options{})
				if err != nil {
					t.Fatal(err)
				}
			}
			// The promise: gnomond reads the output without error.
			if err := parseMigrated(name, res.TOML); err != nil {
				t.Fatalf("migrated %s does not parse:\n%v\n%s", name, err, res.TOML)
			}
			base := strings.TrimSuffix(name, ".conf")
			unplace := func(b []byte) []byte { return bytes.ReplaceAll(b, []byte(dir), []byte("@DIR@")) }
			checkGolden(t, base+".toml", unplace(res.TOML))
			checkGolden(t, base+".warnings", unplace([]byte(warningsText(res.Warnings))))
		})
	}
}

var (
	gnomondOnce sync.Once
	gnomondPath string
	gnomondErr  error
)

// buildGnomond builds cmd/gnomond once for the tests of this package.
func buildGnomond(t *testing.T) string {
	t.Helper()
	gnomondOnce.Do(func() {
		dir, err := os.MkdirTemp("", "gnomon-migrate-test-")
		if err != nil {
			gnomondErr = err
			return
		}
		gnomondPath = filepath.Join(dir, "gnomond")
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
		defer cancel()
		_, file, _, _ := runtime.Caller(0)
		root := filepath.Join(filepath.Dir(file), "..", "..")
		cmd := exec.CommandContext(ctx, "go", "build", "-o", gnomondPath, "./cmd/gnomond")
		cmd.Dir = root
		if out, err := cmd.CombinedOutput(); err != nil {
			gnomondErr = err
			gnomondPath = string(out)
		}
	})
	if gnomondErr != nil {
		t.Fatalf("building gnomond: %v\n%s", gnomondErr, gnomondPath)
	}
	return gnomondPath
}

func TestMain(m *testing.M) {
	code := m.Run()
	if gnomondPath != "" && gnomondErr == nil {
		os.RemoveAll(filepath.Dir(gnomondPath))
	}
	os.Exit(code)
}

// TestGnomondAcceptsMigrated runs the real gnomond check-config on every
// migrated corpus file and on this machine's own chrony.conf.
func TestGnomondAcceptsMigrated(t *testing.T) {
	if testing.Short() {
		t.Skip("builds gnomond")
	}
	bin := buildGnomond(t)
	dir, outs := migrateCorpus(t)
	if _, err := os.Stat(DefaultChronyConf); err == nil {
		res, err := Chrony(DefaultChronyConf, Options{})
		if err != nil {
			t.Fatalf("%s: %v", DefaultChronyConf, err)
		}
		outs = append(outs, migrated{"installed-chrony.conf", res.TOML})
	} else if os.Getenv("CI") == "true" {
		t.Fatalf("%s: %v (chrony is installed in CI)", DefaultChronyConf, err)
	}
	for _, o := range outs {
		t.Run(o.name, func(t *testing.T) {
			p := filepath.Join(dir, o.name+".gnomon.toml")
			if err := os.WriteFile(p, o.toml, 0o644); err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			out, err := exec.CommandContext(ctx, bin, "check-config", p).CombinedOutput()
			if err != nil {
				t.Fatalf("gnomond check-config %s: %v\n%s\n%s", p, err, out, o.toml)
			}
			if !bytes.Contains(out, []byte(": ok (")) {
				t.Fatalf("gnomond check-config said:\n%s", out)
			}
		})
	}
}
