package peers

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// LogTail is how much of a process's log Start shows when a test failed.
const LogTail = 8 << 10

// Proc is a process a test started with Start.
type Proc struct {
	Name string
	Cmd  *exec.Cmd
	Log  string // the file its stdout and stderr go to

	done chan struct{}
	err  error // cmd.Wait's result, valid once done is closed
}

// Start starts argv in dir with env added to the test's environment and
// stdout and stderr appended to dir/name.log (appended, so that a process
// restarted under the same name keeps the earlier log). When the test ends
// the process is stopped (see Stop), and if the test failed the last
// LogTail bytes of its log are shown.
func Start(t testing.TB, dir, name string, env []string, argv ...string) *Proc {
	t.Helper()
	logPath := filepath.Join(dir, name+".log")
	f, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Stdout, cmd.Stderr = f, f
	cmd.Env = append(os.Environ(), env...)
	cmd.Dir = dir
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", name, err)
	}
	p := &Proc{Name: name, Cmd: cmd, Log: logPath, done: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		close(p.done)
	}()
	t.Cleanup(func() {
		p.Stop()
		if r := p.raceReport(); r != "" {
			t.Errorf("%s: the race detector reported:\n%s", name, r)
		}
		if t.Failed() {
			t.Logf("--- %s (%s) log:\n%s", name, strings.Join(argv, " "), p.Tail(LogTail))
		}
	})
	return p
}

// Done is closed when the process has exited.
func (p *Proc) Done() <-chan struct{} { return p.done }

// Err is how the process ended (exec.Cmd.Wait's error); nil while it runs.
func (p *Proc) Err() error {
	if p.Alive() {
		return nil
	}
	return p.err
}

// Alive reports whether the process has not exited.
func (p *Proc) Alive() bool {
	select {
	case <-p.done:
		return false
	default:
		return true
	}
}

// Stop sends SIGTERM, waits up to 5 s, then sends SIGKILL, and returns
// once the process has exited.
func (p *Proc) Stop() {
	if !p.Alive() {
		return
	}
	_ = p.Cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
		return
	case <-time.After(5 * time.Second):
	}
	_ = p.Cmd.Process.Kill()
	<-p.done
}

// Tail is the last n bytes of the process's log (or the error reading it).
func (p *Proc) Tail(n int) string {
	b, err := os.ReadFile(p.Log)
	if err != nil {
		return err.Error()
	}
	if len(b) > n {
		b = b[len(b)-n:]
	}
	return string(b)
}

// raceMark begins every report of a race-enabled program.
const raceMark = "WARNING: DATA RACE"

// raceReport is what the race detector said about a race-enabled process
// (a gnomond built with -race, GNOMON_TEST_GNOMOND): the file GORACE's
// log_path names for its pid, or else the reports in its log. Empty when
// it reported nothing.
func (p *Proc) raceReport() string {
	for _, kv := range p.Cmd.Env {
		opts, ok := strings.CutPrefix(kv, "GORACE=")
		if !ok {
			continue
		}
		for _, o := range strings.Fields(opts) {
			if path, ok := strings.CutPrefix(o, "log_path="); ok {
				if b, err := os.ReadFile(fmt.Sprintf("%s.%d", path, p.Cmd.Process.Pid)); err == nil {
					return string(b)
				}
			}
		}
	}
	b, err := os.ReadFile(p.Log)
	if err != nil {
		return ""
	}
	if i := strings.Index(string(b), raceMark); i >= 0 {
		return string(b[i:])
	}
	return ""
}
