package peers

import (
	"bufio"
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// The pieces a test that boots the VM ring's Debian guest needs
// (scripts/vm/image.sh; tests/refclock's TestVMPPS uses them, tests/vm has
// its own copies).

// GuestImage builds (once) or finds the cached guest image and returns its
// directory (vmlinuz, initrd.img, root.img) and the guest's kernel version.
func GuestImage(t testing.TB) (dir, kernelVersion string) {
	t.Helper()
	out := strings.TrimSpace(RunIn(t, ModuleRoot(t), "scripts/vm/image.sh"))
	if i := strings.LastIndexByte(out, '\n'); i >= 0 {
		out = out[i+1:]
	}
	kv, err := os.ReadFile(filepath.Join(out, "kernel-version"))
	if err != nil {
		t.Fatal(err)
	}
	return out, strings.TrimSpace(string(kv))
}

// GuestDeb is the gnomon .deb a guest installs: GNOMON_VM_DEB, or else one
// make deb builds into dir.
func GuestDeb(t testing.TB, dir string) string {
	t.Helper()
	if deb := os.Getenv("GNOMON_VM_DEB"); deb != "" {
		return deb
	}
	out := filepath.Join(dir, "deb")
	RunIn(t, ModuleRoot(t), "make", "--no-print-directory", "deb", "DEB_OUT="+out)
	m, _ := filepath.Glob(filepath.Join(out, "gnomon_*_amd64.deb"))
	if len(m) != 1 {
		t.Fatalf("make deb made %v", m)
	}
	return m[0]
}

// RunIn runs argv in dir and returns its output; it fails the test when
// the command fails.
func RunIn(t testing.TB, dir string, argv ...string) string {
	t.Helper()
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Dir = dir
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%s: %v\n%s", strings.Join(argv, " "), err, out)
	}
	return string(out)
}

// CopyFile copies from to to, executable (a job disk's scripts are).
func CopyFile(t testing.TB, from, to string) {
	t.Helper()
	b, err := os.ReadFile(from)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(to, b, 0o755); err != nil {
		t.Fatal(err)
	}
}

// GuestLine is one "GNOMON-VM name key=value ..." line a guest job printed
// on its console.
type GuestLine struct {
	Name string
	KV   map[string]string
}

// GuestLines returns the console's GNOMON-VM lines in order, and calls raw
// (when not nil) with every other line.
func GuestLines(console []byte, raw func(line string)) []GuestLine {
	var out []GuestLine
	sc := bufio.NewScanner(bytes.NewReader(console))
	sc.Buffer(make([]byte, 1<<16), 1<<22)
	for sc.Scan() {
		line := strings.TrimRight(sc.Text(), "\r")
		i := strings.Index(line, "GNOMON-VM ")
		var f []string
		if i >= 0 {
			f = strings.Fields(line[i+len("GNOMON-VM "):])
		}
		if len(f) == 0 {
			if raw != nil {
				raw(line)
			}
			continue
		}
		kv := map[string]string{}
		for _, p := range f[1:] {
			if k, v, ok := strings.Cut(p, "="); ok {
				kv[k] = v
			}
		}
		out = append(out, GuestLine{Name: f[0], KV: kv})
	}
	return out
}
