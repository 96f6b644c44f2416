package peers

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"
)

// PrebuiltGnomond is the environment variable that may name a gnomond
// binary (for example one built with -race) for BuildAndRun to use instead
// of building ./cmd/gnomond.
const PrebuiltGnomond = "GNOMON_TEST_GNOMOND"

// BuildAndRun is the body of a TestMain: it builds each main package named
// by a key of bins (module-relative, like "./cmd/gnomond") once into a
// temporary directory, stores the binary's path where the value points,
// runs the tests and returns the exit code for os.Exit. The directory is
// 0755, so that daemons that drop to another user can still run the
// binaries, and is removed afterwards. A failed build returns 1 before any
// test runs.
func BuildAndRun(m *testing.M, bins map[string]*string) int {
	dir, err := os.MkdirTemp("", "gnomon-test-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "peers:", err)
		return 1
	}
	defer os.RemoveAll(dir)
	if err := os.Chmod(dir, 0o755); err != nil {
		fmt.Fprintln(os.Stderr, "peers:", err)
		return 1
	}
	for pkg, path := range bins {
		if pre := os.Getenv(PrebuiltGnomond); pre != "" && pkg == "./cmd/gnomond" {
			*path = pre
			continue
		}
		bin, err := build(dir, pkg)
		if err != nil {
			fmt.Fprintln(os.Stderr, "peers:", err)
			return 1
		}
		*path = bin
	}
	return m.Run()
}

// Build builds the module's main package pkg ("./cmd/gnomonctl") into dir
// and returns the binary's path; a failed build fails the test.
func Build(t testing.TB, dir, pkg string) string {
	t.Helper()
	bin, err := build(dir, pkg)
	if err != nil {
		t.Fatal(err)
	}
	return bin
}

// build runs go build with CGO_ENABLED=0, as the Makefile and the Debian
// package do: gnomond can drop privileges on every thread only without cgo.
func build(dir, pkg string) (string, error) {
	root, err := moduleRoot()
	if err != nil {
		return "", err
	}
	goTool, err := exec.LookPath("go")
	if err != nil {
		goTool = "/usr/local/go/bin/go"
	}
	bin := filepath.Join(dir, filepath.Base(pkg))
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, goTool, "build", "-o", bin, pkg)
	cmd.Dir = root
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("building %s: %v\n%s", pkg, err, out)
	}
	return bin, nil
}
