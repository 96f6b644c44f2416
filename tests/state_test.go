package tests

// The state directory under hostile conditions: full, read-only, missing.
// Each is a real small tmpfs (or none at all) under the test's directory.

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"gnomon.dev/gnomon/tests/peers"
)

// mountTmpfs mounts a tmpfs of size (like "32k") on dir, unmounted when
// the test ends.
func mountTmpfs(t *testing.T, dir, size string) {
	t.Helper()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	mount := peers.NeedTool(t, "mount")
	if out, err := exec.Command(mount, "-t", "tmpfs", "-o", "size="+size+",mode=0750", "gnomon-test", dir).CombinedOutput(); err != nil {
		peers.SkipOrFatal(t, "mount tmpfs: %v %s", err, out)
	}
	t.Cleanup(func() { exec.Command(peers.NeedTool(t, "umount"), "-l", dir).Run() })
}

// fill writes dir/filler until the file system is full.
func fill(t *testing.T, dir string) {
	t.Helper()
	f, err := os.OpenFile(filepath.Join(dir, "filler"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	buf := make([]byte, 4096)
	for range 1 << 16 {
		if _, err := f.Write(buf); err != nil {
			if errors.Is(err, syscall.ENOSPC) {
				return
			}
			t.Fatal(err)
		}
	}
	t.Fatal("the tmpfs never filled up")
}

// remount remounts the tmpfs at dir with opts ("ro", "rw").
func remount(t *testing.T, dir, opts string) {
	t.Helper()
	if out, err := exec.Command(peers.NeedTool(t, "mount"), "-o", "remount,"+opts, dir).CombinedOutput(); err != nil {
		t.Fatalf("remount %s %s: %v %s", dir, opts, err, out)
	}
}

func dirNames(t *testing.T, dir string) []string {
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

// setNTP calls timedate1's SetNTP with the real busctl.
func (b *busGnomond) setNTP(t *testing.T, on bool) (string, error) {
	t.Helper()
	out, err := exec.Command(peers.NeedTool(t, "busctl"), "--address="+b.bus.Addr, "call",
		"org.freedesktop.timedate1", "/org/freedesktop/timedate1", "org.freedesktop.timedate1",
		"SetNTP", "bb", fmt.Sprint(on), "false").CombinedOutput()
	return string(out), err
}

// ntp reads the Manager's NTP property through gnomonctl status --json.
func (b *busGnomond) ntp(t *testing.T) bool {
	t.Helper()
	out, err := b.ctlRun("status", "--json")
	if err != nil {
		t.Fatalf("gnomonctl status: %v\n%s", err, out)
	}
	var v struct {
		NTP bool `json:"ntp"`
	}
	if err := json.Unmarshal([]byte(out), &v); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	return v.NTP
}

// restart stops gnomond (SIGTERM) and starts it again with the same flags.
func (b *busGnomond) restart(t *testing.T) {
	t.Helper()
	b.Stop()
	b.start(t)
}

// TestSetNTPPersistsOnlyOnSuccess: on a full state directory SetNTP(false)
// fails, leaves nothing behind and is not applied at the next start; once
// there is room it succeeds and survives a restart; on a read-only
// directory SetNTP(true) fails and the acknowledged "off" stays.
func TestSetNTPPersistsOnlyOnSuccess(t *testing.T) {
	peers.NeedRoot(t, rootFor+", mount tmpfs")
	t.Parallel()
	dir := peers.TempDir(t, 0o755)
	state := filepath.Join(dir, "state")
	mountTmpfs(t, state, "32k")
	b := startBusGnomond(t, dir, observeConfig(), state)

	fill(t, state)
	if out, err := b.setNTP(t, false); err == nil {
		t.Fatalf("SetNTP(false) on a full state directory succeeded:\n%s", out)
	} else if !strings.Contains(strings.ToLower(out), "no space left") {
		t.Errorf("SetNTP(false) on a full state directory: %q does not say why", out)
	}
	if names := dirNames(t, state); len(names) != 1 || names[0] != "filler" {
		t.Errorf("the failed SetNTP left %v in the state directory", names)
	}
	if !b.ntp(t) {
		t.Error("NTP is off after the SetNTP(false) that failed")
	}
	b.restart(t)
	if !b.ntp(t) {
		t.Fatal("the SetNTP(false) that failed was applied at the next start")
	}

	os.Remove(filepath.Join(state, "filler"))
	if out, err := b.setNTP(t, false); err != nil {
		t.Fatalf("SetNTP(false) with room: %v\n%s", err, out)
	}
	b.restart(t)
	if b.ntp(t) {
		t.Fatal("the acknowledged SetNTP(false) was lost at restart")
	}

	remount(t, state, "ro")
	if out, err := b.setNTP(t, true); err == nil {
		t.Errorf("SetNTP(true) on a read-only state directory succeeded:\n%s", out)
	}
	if b.ntp(t) {
		t.Error("NTP is on after the SetNTP(true) that failed")
	}
	b.restart(t)
	if b.ntp(t) {
		t.Error("after a restart NTP is on, but SetNTP(true) had failed")
	}
	remount(t, state, "rw")
}

// TestNTSServesWithoutStateDir: a full, then a read-only state directory
// does not stop gnomond with an NTS-KE server: it serves NTS (chronyd's
// NTS client gets keys and time) with master keys held in memory, says so
// loudly, and saves them once there is room. A missing state directory is
// created (0750).
func TestNTSServesWithoutStateDir(t *testing.T) {
	peers.NeedRoot(t, rootFor+", mount tmpfs")
	t.Parallel()
	dir := peers.TempDir(t, 0o777)
	up := peers.StartChronyd(t, dir, peers.FreePort(t), "")
	cert, key := ntsCert(t, dir)
	ntpPort, kePort := peers.FreePort(t), peers.FreePort(t)
	cfg := observeConfig(sourceTable(up.Port), serverTable(peers.Loop4(ntpPort).String(), "rate-limit = { interval = 0 }"),
		fmt.Sprintf("[[nts-ke-server]]\nlisten = \"127.0.0.1:%d\"\ncertificate-chain-path = %q\nprivate-key-path = %q\n", kePort, cert, key))

	for _, how := range []string{"full", "read-only"} {
		t.Run(how, func(t *testing.T) {
			sub := peers.TempDir(t, 0o755)
			state := filepath.Join(sub, "state")
			mountTmpfs(t, state, "32k")
			if how == "full" {
				fill(t, state)
			} else {
				remount(t, state, "ro")
			}
			b := startBusGnomond(t, sub, cfg, state, "--key-save-retry=200ms")
			waitLog(t, b.gnomond, 5*time.Second, 1, "NTS master keys cannot be saved in the state directory: serving NTS with keys held in memory only (clients must re-key after a restart); retrying the save", nil)
			waitSynced(t, b.gnomond, peers.Loop4(up.Port).String(), 15*time.Second)
			if _, err := chronydNTSQuery(t, ntpPort, kePort, cert); err != nil {
				t.Fatalf("NTS with a %s state directory: %v", how, err)
			}
			if how == "full" {
				os.Remove(filepath.Join(state, "filler"))
			} else {
				remount(t, state, "rw")
			}
			waitLog(t, b.gnomond, 10*time.Second, 1, "NTS master keys saved", nil)
			if _, err := os.Stat(filepath.Join(state, "nts-master-keys")); err != nil {
				t.Errorf("after the retry: %v", err)
			}
			b.Stop()
		})
	}

	t.Run("missing", func(t *testing.T) {
		sub := peers.TempDir(t, 0o755)
		state := filepath.Join(sub, "not", "there")
		b := startBusGnomond(t, sub, observeConfig(), state)
		fi, err := os.Stat(state)
		if err != nil {
			t.Fatalf("the missing state directory was not created: %v", err)
		}
		if fi.Mode().Perm() != 0o750 {
			t.Errorf("state directory mode %v, want 0750", fi.Mode().Perm())
		}
		if out, err := b.setNTP(t, false); err != nil {
			t.Errorf("SetNTP(false) into the created state directory: %v\n%s", err, out)
		}
	})
}
