package tests

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"gnomon.dev/gnomon/tests/peers"
)

// TestPrivdropFailsClosed (issue 11, item 8): started as root with a user
// that cannot be switched to, from the configuration or --user, gnomond
// exits with status 1 and says why, instead of serving as root; --user ""
// and user = "" run as root on purpose; a real user is switched to.
func TestPrivdropFailsClosed(t *testing.T) {
	peers.NeedRoot(t, "starting gnomond as root")
	t.Parallel()
	dir := peers.TempDir(t, 0o755)
	missing := "gn-nouser-" + peers.RandomHex(t, 3)
	if _, err := user.Lookup(missing); err == nil {
		t.Fatalf("user %s exists", missing)
	}
	srv := func() string { return serverTable(peers.Loop4(peers.FreePort(t)).String()) }
	for _, tc := range []struct {
		name  string
		cfg   string
		flags []string
		want  string // in stderr; "" for a daemon that keeps running
	}{
		{"configured user missing", observeConfig(srv(), "[security]\nuser = \""+missing+"\"\n"), nil,
			fmt.Sprintf("cannot run as user %q", missing)},
		{"--user missing", observeConfig(srv()), []string{"--user", missing},
			fmt.Sprintf("cannot run as user %q", missing)},
		{"--user overrides the file", observeConfig(srv(), "[security]\nuser = \"\"\n"), []string{"--user", missing},
			fmt.Sprintf("cannot run as user %q", missing)},
		{"user = \"\" stays root", observeConfig(srv(), "[security]\nuser = \"\"\n"), nil, ""},
		{"--user \"\" stays root", observeConfig(srv(), "[security]\nuser = \""+missing+"\"\n"), []string{"--user", ""}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(dir, "c-"+peers.RandomHex(t, 3)+".toml")
			if err := os.WriteFile(path, []byte(tc.cfg), 0o644); err != nil {
				t.Fatal(err)
			}
			argv := append([]string{plainGnomond(t), "--config", path, "--no-dbus", "--state-dir", ""}, tc.flags...)
			argv = peers.Safe(t, argv...)
			if tc.want == "" {
				p := peers.Start(t, dir, "g-"+peers.RandomHex(t, 3), nil, argv...)
				hnWaitLog(t, p, "gnomond started", 15*time.Second)
				if uid := hnProcUID(t, p.Cmd.Process.Pid); uid != "0" {
					t.Errorf("uid %s, want 0 (root on purpose)", uid)
				}
				return
			}
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
			out, err := cmd.CombinedOutput()
			var ee *exec.ExitError
			if !errors.As(err, &ee) || ee.ExitCode() != 1 {
				t.Errorf("gnomond with a user it cannot become: %v, want exit status 1\n%s", err, out)
			}
			if !strings.Contains(string(out), tc.want) {
				t.Errorf("output lacks %q:\n%s", tc.want, out)
			}
			if strings.Contains(string(out), `msg="gnomond started"`) {
				t.Errorf("gnomond started anyway:\n%s", out)
			}
		})
	}

	// A user that exists is switched to.
	nobody, err := user.Lookup("nobody")
	if err != nil {
		t.Skipf("no user nobody: %v", err)
	}
	path := filepath.Join(dir, "nobody.toml")
	if err := os.WriteFile(path, []byte(observeConfig(srv(), "[security]\nuser = \"nobody\"\n")), 0o644); err != nil {
		t.Fatal(err)
	}
	p := peers.Start(t, dir, "g-nobody", nil, peers.Safe(t, plainGnomond(t), "--config", path, "--no-dbus", "--state-dir", "")...)
	hnWaitLog(t, p, "gnomond started", 15*time.Second)
	if uid := hnProcUID(t, p.Cmd.Process.Pid); uid != nobody.Uid {
		t.Errorf("uid %s, want %s (nobody)", uid, nobody.Uid)
	}
}

// hnWaitLog waits until p's log has want.
func hnWaitLog(t *testing.T, p *peers.Proc, want string, timeout time.Duration) {
	t.Helper()
	peers.Eventually(t, timeout, fmt.Sprintf("%q in %s's log", want, p.Name), func() error {
		if !p.Alive() {
			t.Fatalf("%s exited: %v\n%s", p.Name, p.Err(), p.Tail(4000))
		}
		if !strings.Contains(p.Tail(1<<20), want) {
			return errors.New("not yet")
		}
		return nil
	})
}

// hnProcUID is the real uid of a running process.
func hnProcUID(t *testing.T, pid int) string {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range strings.Split(string(b), "\n") {
		if f := strings.Fields(l); len(f) > 1 && f[0] == "Uid:" {
			return f[1]
		}
	}
	t.Fatalf("no Uid in /proc/%d/status", pid)
	return ""
}
