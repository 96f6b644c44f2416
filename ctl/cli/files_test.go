package cli

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"gnomon.dev/gnomon/service/config"
)

func writeFile(t *testing.T, dir, name, text string, mode os.FileMode) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(text), mode); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(p, mode); err != nil { // past the umask
		t.Fatal(err)
	}
	return p
}

func TestValidate(t *testing.T) {
	dir := t.TempDir()
	good := writeFile(t, dir, "good.toml", `
[[source]]
mode = "pool"
address = "pool.ntp.org"
`, 0o644)
	risky := writeFile(t, dir, "risky.toml", `[synchronization]
minimum-agreeing-sources = 3

[[source]]
mode = "server"
address = "ntp.example.net"
`, 0o666)
	bad := writeFile(t, dir, "bad.toml", `[clock]
step-treshold = 0.1

[[source]]
mode = "sever"
address = "ntp.example.net"
`, 0o644)
	broken := writeFile(t, dir, "broken.toml", "[clock\n", 0o644)

	tests := []struct {
		name   string
		args   []string
		code   int
		stdout []string
		stderr []string
	}{
		{"valid", []string{"-c", good}, 0, []string{good + ": valid (1 source, 0 servers, 0 warnings)"}, nil},
		{"warnings", []string{"--config", risky}, 0, []string{"valid (1 source, 0 servers, 3 warnings)"}, []string{
			"warning: " + risky + ": the file is world-writable",
			"warning: " + risky + ":2: synchronization.minimum-agreeing-sources: is 3, but only 1 sources can be selected",
			"warning: " + risky + ":4: source[0]: only one source",
		}},
		{"strict", []string{"--config", risky, "--strict"}, 1, nil, []string{"warning: "}},
		{"errors", []string{"-c", bad}, 1, []string{bad + ": invalid (2 errors)"}, []string{
			"error: " + bad + ":2: clock.step-treshold: unknown key (did you mean step-threshold?)",
			"error: " + bad + ":5: source[0].mode:",
		}},
		{"syntax", []string{"-c", broken}, 1, []string{"invalid (1 error)"}, []string{"error: " + broken + ":2:7: invalid TOML"}},
		{"missing", []string{"-c", filepath.Join(dir, "none.toml")}, 1, nil, []string{"no such file or directory"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, out, errOut := run(t, nil, append([]string{"validate"}, tt.args...)...)
			if code != tt.code {
				t.Errorf("exit %d, want %d\n%s%s", code, tt.code, out, errOut)
			}
			for _, s := range tt.stdout {
				if !strings.Contains(out, s) {
					t.Errorf("stdout lacks %q:\n%s", s, out)
				}
			}
			for _, s := range tt.stderr {
				if !strings.Contains(errOut, s) {
					t.Errorf("stderr lacks %q:\n%s", s, errOut)
				}
			}
		})
	}

	code, out, _ := run(t, nil, "validate", "--json", "-c", bad)
	var rep ValidateReport
	if err := json.Unmarshal([]byte(out), &rep); err != nil || code != 1 {
		t.Fatalf("validate --json: exit %d, %v\n%s", code, err, out)
	}
	if rep.Valid || len(rep.Errors) != 2 || rep.Errors[0].Line != 2 || rep.Errors[0].Key != "clock.step-treshold" || rep.Errors[0].File != bad {
		t.Errorf("validate --json = %+v", rep)
	}
	code, out, _ = run(t, nil, "validate", "--json", "-c", risky)
	rep = ValidateReport{}
	if err := json.Unmarshal([]byte(out), &rep); err != nil || code != 0 || !rep.Valid || len(rep.Warnings) != 3 || rep.Warnings[1].Line != 2 || rep.Errors == nil {
		t.Errorf("validate --json (warnings): exit %d, %v, %+v", code, err, rep)
	}
}

func TestMigrateChronyCommand(t *testing.T) {
	dir := t.TempDir()
	keys := writeFile(t, dir, "chrony.keys", "1 AES128 HEX:7EA62AE64D190114D46D5A082F948EC1\n", 0o600)
	conf := writeFile(t, dir, "chrony.conf", `pool 2.debian.pool.ntp.org iburst key 1
logdir /var/log/chrony
keyfile `+keys+`
makestep 1 3
allow 192.168/16
`, 0o644)
	code, out, errOut := run(t, nil, "migrate", "chrony", conf)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	if _, err := config.Parse("out", []byte(out), config.Options{CanSetClock: true}); err != nil {
		t.Errorf("stdout does not parse: %v\n%s", err, out)
	}
	if !strings.Contains(out, `address = "2.debian.pool.ntp.org"`) || !strings.Contains(out, "key = 1\n") || !strings.Contains(out, `key-file = "`+keys+`"`) || !strings.Contains(out, `allowlist = { filter = ["192.168.0.0/16"]`) {
		t.Errorf("stdout:\n%s", out)
	}
	if want := conf + ":2: logdir: gnomond logs to the journal"; !strings.HasPrefix(errOut, want) || strings.Count(errOut, "\n") != 1 {
		t.Errorf("stderr = %q, want one line starting %q", errOut, want)
	}

	// --output: written, then refused without --force, replaced with it.
	dst := filepath.Join(dir, "gnomon.toml")
	if code, _, errOut := run(t, nil, "migrate", "chrony", conf, "-o", dst); code != 0 || !strings.Contains(errOut, "wrote "+dst) {
		t.Fatalf("-o: exit %d %s", code, errOut)
	}
	if code, _, _ := run(t, nil, "validate", "-c", dst); code != 0 {
		t.Errorf("validate of the written file: exit %d", code)
	}
	if code, _, errOut := run(t, nil, "migrate", "chrony", conf, "-o", dst); code != 1 || !strings.Contains(errOut, "exists (use --force") {
		t.Errorf("-o over an existing file: exit %d %s", code, errOut)
	}
	if code, _, _ := run(t, nil, "migrate", "chrony", conf, "-o", dst, "--force"); code != 0 {
		t.Errorf("--force: exit %d", code)
	}
	if fi, err := os.Stat(dst); err != nil || fi.Mode().Perm() != 0o644 {
		t.Errorf("written file: %v %v", fi.Mode(), err)
	}

	// Bad input: a clear error, exit 1, nothing on stdout.
	bin := filepath.Join(dir, "binary.conf")
	if err := os.WriteFile(bin, []byte("\x7fELF\x02\x01\x01\x00\x00\x00"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct{ path, want string }{
		{bin, "a binary file, not a chrony.conf"},
		{filepath.Join(dir, "nonexistent.conf"), "no such file or directory"},
	} {
		code, out, errOut := run(t, nil, "migrate", "chrony", tt.path)
		if code != 1 || out != "" || !strings.Contains(errOut, tt.want) {
			t.Errorf("%s: exit %d, stdout %q, stderr %q", tt.path, code, out, errOut)
		}
	}
}

// A key file this machine has wrong (readable by everyone) does not stop
// the migration: it is reported to be fixed before gnomond starts.
func TestMigrateChronyKeyFileProblem(t *testing.T) {
	dir := t.TempDir()
	keys := writeFile(t, dir, "chrony.keys", "1 AES128 HEX:7EA62AE64D190114D46D5A082F948EC1\n", 0o644)
	if err := os.Chmod(keys, 0o644); err != nil {
		t.Fatal(err)
	}
	conf := writeFile(t, dir, "chrony.conf", "server a.example.net key 1\nkeyfile "+keys+"\n", 0o644)
	code, out, errOut := run(t, nil, "migrate", "chrony", conf)
	if code != 0 || !strings.Contains(out, "key = 1\n") {
		t.Fatalf("exit %d: %s\n%s", code, errOut, out)
	}
	if want := "warning: fix before starting gnomond: (migrated gnomon.toml):"; !strings.Contains(errOut, want) || !strings.Contains(errOut, "readable by everyone") {
		t.Errorf("stderr = %q, want %q about a key file readable by everyone", errOut, want)
	}
}
