package tests

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"gnomon.dev/gnomon/tests/peers"
)

// hnRun runs argv (under prlimit's address-space limit when limitAS > 0)
// and returns its exit code and output.
func hnRun(t *testing.T, limitAS int64, argv ...string) (code int, out string) {
	t.Helper()
	if limitAS > 0 {
		argv = append([]string{peers.NeedTool(t, "prlimit"), fmt.Sprintf("--as=%d", limitAS), "--"}, argv...)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	b, err := cmd.CombinedOutput()
	var ee *exec.ExitError
	switch {
	case ctx.Err() != nil:
		t.Fatalf("%s did not finish within 60 s", strings.Join(argv, " "))
	case err != nil && !errors.As(err, &ee):
		t.Fatalf("%s: %v", strings.Join(argv, " "), err)
	}
	return cmd.ProcessState.ExitCode(), string(b)
}

// TestConfigParsingBounded (issue 11, item 6): an 800 KB file of 400 000
// nested arrays (24 GB in gnomond check-config before) and one of 200 000
// nested inline tables (out of memory in the TOML library) are refused at
// once with file:line by gnomond check-config, gnomonctl validate and
// gnomond itself, each within 1 GiB of address space (of which the Go
// runtime reserves about 700 MiB at start). The wait4 peak RSS of a child
// of this process counts this process's own, so the allocations are
// counted in service/config's TestParseHostileBounded instead.
func TestConfigParsingBounded(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	ctl := peers.Build(t, dir, "./cmd/gnomonctl")
	files := map[string]string{
		"arrays.toml": "x = " + strings.Repeat("[", 400_000) + strings.Repeat("]", 400_000) + "\n",
		"tables.toml": "[clock]\nx = " + strings.Repeat("{a=", 200_000) + "1" + strings.Repeat("}", 200_000) + "\n",
	}
	const limitAS = 1 << 30
	for name, text := range files {
		path := filepath.Join(dir, name)
		if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
		line := 1
		if name == "tables.toml" {
			line = 2
		}
		want := fmt.Sprintf("%s:%d: nested more than 32 levels deep", path, line)
		for _, run := range []struct {
			argv []string
			code int
		}{
			{[]string{plainGnomond(t), "check-config", path}, 3},
			{[]string{ctl, "validate", "--config", path}, 1},
			{[]string{plainGnomond(t), "--config", path, "--no-dbus", "--state-dir", "", "--user", ""}, 3},
		} {
			code, out := hnRun(t, limitAS, run.argv...)
			if code != run.code || !strings.Contains(out, want) {
				t.Errorf("%s: exit %d, want %d with %q:\n%.2000s", strings.Join(run.argv, " "), code, run.code, want, out)
			}
		}
	}
}

// TestValidateLoadsWhatDaemonLoads (issue 11, item 7): NTS-KE certificate
// and key files that gnomond cannot load (swapped, belonging to different
// keys, not PEM) are refused with file:line by gnomonctl validate and
// gnomond check-config, as gnomond itself refuses them; a good pair passes
// all three.
func TestValidateLoadsWhatDaemonLoads(t *testing.T) {
	peers.NeedRoot(t, "setpriv")
	t.Parallel()
	dir := peers.TempDir(t, 0o755)
	ctl := peers.Build(t, dir, "./cmd/gnomonctl")
	certA, keyA, _ := peers.WriteCert(t, dir, "a", 0o600)
	_, keyB, _ := peers.WriteCert(t, dir, "b", 0o600)
	junk := filepath.Join(dir, "junk.pem")
	if err := os.WriteFile(junk, []byte("this is not a certificate\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name, cert, key string
		want            string // "" for a good pair; else after "PATH:LINE: "
	}{
		{"good pair", certA, keyA, ""},
		{"swapped", keyA, certA, "7: nts-ke-server[0].certificate-chain-path: " + keyA + " holds a private key and " + certA + " a certificate: certificate-chain-path and private-key-path are swapped"},
		{"mismatched", certA, keyB, "8: nts-ke-server[0].private-key-path: " + keyB + ": does not match the certificate in " + certA},
		{"key not PEM", certA, junk, "8: nts-ke-server[0].private-key-path: " + junk + ": not PEM"},
		{"certificate not PEM", junk, keyA, "7: nts-ke-server[0].certificate-chain-path: " + junk + ": not PEM"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := observeConfig(fmt.Sprintf("[[nts-ke-server]]\nlisten = %q\ncertificate-chain-path = %q\nprivate-key-path = %q\n",
				peers.Loop4(peers.FreePort(t)).String(), tc.cert, tc.key))
			path := filepath.Join(dir, "v-"+peers.RandomHex(t, 3)+".toml")
			if err := os.WriteFile(path, []byte(cfg), 0o644); err != nil {
				t.Fatal(err)
			}
			vCode, vOut := hnRun(t, 0, ctl, "validate", "--config", path)
			cCode, cOut := hnRun(t, 0, plainGnomond(t), "check-config", path)
			if tc.want == "" {
				if vCode != 0 || cCode != 0 {
					t.Fatalf("good pair refused: validate %d %s; check-config %d %s", vCode, vOut, cCode, cOut)
				}
				g := startGnomond(t, dir, cfg, gnomondOpts{})
				g.notify.WaitFor(t, 15*time.Second, "READY=1", func(l string) bool { return l == "READY=1" })
				return
			}
			want := path + ":" + tc.want
			if vCode != 1 || !strings.Contains(vOut, want) {
				t.Errorf("gnomonctl validate: exit %d, want 1 with %q:\n%s", vCode, want, vOut)
			}
			if cCode != 3 || !strings.Contains(cOut, want) {
				t.Errorf("gnomond check-config: exit %d, want 3 with %q:\n%s", cCode, want, cOut)
			}
			// The daemon refuses it the same way, before binding anything.
			dCode, dOut := hnRun(t, 0, peers.Safe(t, plainGnomond(t), "--config", path, "--no-dbus", "--state-dir", "", "--user", "")...)
			if dCode != 3 || !strings.Contains(dOut, want) {
				t.Errorf("gnomond: exit %d, want 3 with %q:\n%s", dCode, want, dOut)
			}
		})
	}
}
