package peers

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestRaceReport finds a race detector's report in a process's log, or in
// the file GORACE's log_path names for its pid, and nothing in a clean run.
func TestRaceReport(t *testing.T) {
	dir := t.TempDir()
	run := func(name, script string, env ...string) *Proc {
		t.Helper()
		log := filepath.Join(dir, name+".log")
		f, err := os.Create(log)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		cmd := exec.Command("sh", "-c", script)
		cmd.Stdout, cmd.Stderr = f, f
		cmd.Env = append(os.Environ(), env...)
		if err := cmd.Run(); err != nil {
			t.Fatal(err)
		}
		return &Proc{Name: name, Cmd: cmd, Log: log}
	}

	if r := run("clean", "echo started; echo stopping >&2").raceReport(); r != "" {
		t.Errorf("clean run: report %q", r)
	}
	inLog := run("stderr", "echo started; echo '"+raceMark+"' >&2; echo 'Write at 0x00c000012345 by goroutine 7:' >&2")
	if r := inLog.raceReport(); !strings.HasPrefix(r, raceMark) || !strings.Contains(r, "goroutine 7") {
		t.Errorf("report in the log: got %q", r)
	}
	logPath := filepath.Join(dir, "race")
	viaFile := run("logpath", "echo started", "GORACE=halt_on_error=1 log_path="+logPath)
	if r := viaFile.raceReport(); r != "" {
		t.Errorf("no report file yet: got %q", r)
	}
	report := raceMark + "\nRead at 0x00c000054321 by goroutine 9:\n"
	if err := os.WriteFile(fmt.Sprintf("%s.%d", logPath, viaFile.Cmd.Process.Pid), []byte(report), 0o644); err != nil {
		t.Fatal(err)
	}
	if r := viaFile.raceReport(); r != report {
		t.Errorf("report file: got %q, want %q", r, report)
	}
}
