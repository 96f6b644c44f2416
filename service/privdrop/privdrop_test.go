//go:build linux

package privdrop

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"
)

func TestCapNames(t *testing.T) {
	tests := []struct {
		in   string
		want Cap
		bad  bool
	}{
		{"CAP_SYS_TIME", CapSysTime, false},
		{"sys_time", CapSysTime, false},
		{"Cap_Net_Bind_Service", CapNetBindService, false},
		{"CAP_CHECKPOINT_RESTORE", CapCheckpointRestore, false},
		{"CAP_CHOWN", CapChown, false},
		{"CAP_NOPE", 0, true},
		{"", 0, true},
	}
	for _, tc := range tests {
		got, err := ParseCap(tc.in)
		if (err != nil) != tc.bad || got != tc.want {
			t.Errorf("ParseCap(%q) = %v, %v", tc.in, got, err)
		}
		if !tc.bad {
			if back, err := ParseCap(got.String()); err != nil || back != got {
				t.Errorf("%v does not round-trip", got)
			}
		}
	}
	if CapSysTime != unix.CAP_SYS_TIME || CapNetBindService != unix.CAP_NET_BIND_SERVICE ||
		CapCheckpointRestore != unix.CAP_CHECKPOINT_RESTORE || CapBpf != unix.CAP_BPF {
		t.Error("capability numbers differ from the kernel's")
	}
	if Cap(60).String() != "CAP_60" {
		t.Error(Cap(60).String())
	}
	m := maskOf([]Cap{CapSysTime, CapNetBindService, CapSysTime})
	if m != 1<<25|1<<10 || fmt.Sprint(m.caps()) != "[CAP_NET_BIND_SERVICE CAP_SYS_TIME]" {
		t.Errorf("mask %#x %v", m, m.caps())
	}
}

func TestCurrentMatchesProc(t *testing.T) {
	eff, perm := Current()
	st := readStatus(t, "/proc/thread-self/status")
	if got := maskOf(eff); uint64(got) != st.CapEff {
		t.Errorf("Current effective %v, /proc says %#x", eff, st.CapEff)
	}
	if got := maskOf(perm); uint64(got) != st.CapPrm {
		t.Errorf("Current permitted %v, /proc says %#x", perm, st.CapPrm)
	}
}

// procStatus holds what the tests read from /proc/<pid>/status.
type procStatus struct {
	Uid, Gid                               [4]int // real, effective, saved, filesystem
	Groups                                 []int
	CapInh, CapPrm, CapEff, CapBnd, CapAmb uint64
}

func readStatus(t testing.TB, path string) procStatus {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var st procStatus
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		k, v, _ := strings.Cut(sc.Text(), ":")
		fields := strings.Fields(v)
		switch k {
		case "Uid", "Gid":
			dst := &st.Uid
			if k == "Gid" {
				dst = &st.Gid
			}
			for i := 0; i < 4 && i < len(fields); i++ {
				dst[i], _ = strconv.Atoi(fields[i])
			}
		case "Groups":
			for _, g := range fields {
				n, _ := strconv.Atoi(g)
				st.Groups = append(st.Groups, n)
			}
		case "CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb":
			n, err := strconv.ParseUint(strings.TrimSpace(v), 16, 64)
			if err != nil {
				t.Fatalf("%s: %v", k, err)
			}
			switch k {
			case "CapInh":
				st.CapInh = n
			case "CapPrm":
				st.CapPrm = n
			case "CapEff":
				st.CapEff = n
			case "CapBnd":
				st.CapBnd = n
			case "CapAmb":
				st.CapAmb = n
			}
		}
	}
	return st
}

const childEnv = "GNOMON_PRIVDROP_CHILD"

// childReport is what a child prints: its own status and every thread's.
type childReport struct {
	Err          string
	Status       procStatus
	Threads      map[string]procStatus
	LowBindAfter string // the error binding a port below 1024 after DropCap, if it ran
	LowBindFirst string // the same before
}

// TestPrivdropChild runs Drop in a child process (it changes the process
// for good) and prints a report.
func TestPrivdropChild(t *testing.T) {
	mode := os.Getenv(childEnv)
	if mode == "" {
		t.Skip("runs only as a child of the Drop tests")
	}
	// Several threads, so that a change made on one thread only would show.
	var wg, started sync.WaitGroup
	stop := make(chan struct{})
	for range 4 {
		wg.Add(1)
		started.Add(1)
		go func() {
			defer wg.Done()
			runtime.LockOSThread()
			started.Done()
			<-stop
		}()
	}
	started.Wait()
	var rep childReport
	var err error
	switch mode {
	case "drop":
		err = Drop("nobody", []Cap{CapSysTime})
	case "nouser":
		err = Drop("gnomon-no-such-user", []Cap{CapSysTime})
	case "keep-bind":
		err = Drop("nobody", []Cap{CapSysTime, CapNetBindService})
		if err == nil {
			rep.LowBindFirst = bindLow()
			err = DropCap(CapNetBindService)
			rep.LowBindAfter = bindLow()
		}
	case "unprivileged":
		err = Drop("gnomon-no-such-user", []Cap{CapNetBindService, CapSysTime})
	default:
		err = fmt.Errorf("unknown mode %q", mode)
	}
	if err != nil {
		rep.Err = err.Error()
	}
	rep.Status = readStatus(t, "/proc/self/status")
	rep.Threads = map[string]procStatus{}
	tasks, _ := filepath.Glob("/proc/self/task/*/status")
	for _, p := range tasks {
		rep.Threads[p] = readStatus(t, p)
	}
	close(stop)
	wg.Wait()
	json.NewEncoder(os.Stdout).Encode(rep)
}

// bindLow binds a random port below 1024 on loopback and returns the
// error, "" on success.
func bindLow() string {
	for port := 600 + os.Getpid()%300; ; port++ {
		c, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: port})
		if err == nil {
			c.Close()
			return ""
		}
		if !errors.Is(err, syscall.EADDRINUSE) || port > 1000 {
			return err.Error()
		}
	}
}

var cgoFree struct {
	once sync.Once
	dir  string
	bin  string
	err  error
}

func TestMain(m *testing.M) {
	code := m.Run()
	if cgoFree.dir != "" {
		os.RemoveAll(cgoFree.dir)
	}
	os.Exit(code)
}

// childBinary returns a test binary without cgo (where Drop works): the
// current one if it has none, else one built once for the purpose.
func childBinary(t *testing.T) string {
	t.Helper()
	if _, _, e := syscall.AllThreadsSyscall(syscall.SYS_GETPID, 0, 0, 0); e == 0 {
		return os.Args[0]
	}
	cgoFree.once.Do(func() {
		cgoFree.dir, cgoFree.err = os.MkdirTemp("", "privdrop-test-")
		if cgoFree.err != nil {
			return
		}
		bin := filepath.Join(cgoFree.dir, "privdrop.test")
		goTool, err := exec.LookPath("go")
		if err != nil {
			goTool = "/usr/local/go/bin/go"
		}
		cmd := exec.Command(goTool, "test", "-c", "-o", bin, ".")
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := cmd.CombinedOutput(); err != nil {
			cgoFree.err = fmt.Errorf("building a cgo-free test binary: %v\n%s", err, out)
			return
		}
		cgoFree.bin = bin
	})
	if cgoFree.err != nil {
		t.Fatal(cgoFree.err)
	}
	return cgoFree.bin
}

// TestDropRefusedUnderCgo checks that a cgo binary gets ErrCgo from Drop
// before anything changed.
func TestDropRefusedUnderCgo(t *testing.T) {
	if _, _, e := syscall.AllThreadsSyscall(syscall.SYS_GETPID, 0, 0, 0); e == 0 {
		t.Skip("this test binary has no cgo")
	}
	before := readStatus(t, "/proc/self/status")
	if err := Drop("nobody", nil); !errors.Is(err, ErrCgo) {
		t.Fatalf("Drop under cgo: %v, want ErrCgo", err)
	}
	if err := DropCap(CapSysTime); !errors.Is(err, ErrCgo) {
		t.Fatalf("DropCap under cgo: %v, want ErrCgo", err)
	}
	after := readStatus(t, "/proc/self/status")
	if fmt.Sprint(before) != fmt.Sprint(after) {
		t.Errorf("status changed:\n%+v\n%+v", before, after)
	}
}

func runChild(t *testing.T, mode string, wrapper ...string) childReport {
	t.Helper()
	args := append(wrapper, childBinary(t), "-test.run=^TestPrivdropChild$", "-test.count=1")
	cmd := exec.Command(args[0], args[1:]...)
	cmd.Env = append(os.Environ(), childEnv+"="+mode)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("child %s: %v\n%s", mode, err, out)
	}
	for _, line := range strings.Split(string(out), "\n") {
		if strings.HasPrefix(line, "{") {
			var rep childReport
			if err := json.Unmarshal([]byte(line), &rep); err != nil {
				t.Fatal(err)
			}
			if len(rep.Threads) < 2 {
				t.Errorf("child %s had %d threads; the test wants several", mode, len(rep.Threads))
			}
			return rep
		}
	}
	t.Fatalf("child %s printed no report:\n%s", mode, out)
	return childReport{}
}

func needRoot(t *testing.T) {
	if os.Geteuid() != 0 {
		if os.Getenv("CI") == "true" {
			t.Fatal("needs root, and CI runs as root")
		}
		t.Skip("needs root")
	}
}

func setprivPath(t *testing.T) string {
	p, err := exec.LookPath("setpriv")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("setpriv not found")
		}
		t.Skip("setpriv not found")
	}
	return p
}

// checkAll checks a report's process and every one of its threads.
func checkAll(t *testing.T, rep childReport, uid int, eff, prm uint64) {
	t.Helper()
	if rep.Err != "" {
		t.Fatalf("Drop: %s", rep.Err)
	}
	all := map[string]procStatus{"process": rep.Status}
	for k, v := range rep.Threads {
		all[k] = v
	}
	for name, st := range all {
		if st.Uid != [4]int{uid, uid, uid, uid} {
			t.Errorf("%s: uids %v, want all %d", name, st.Uid, uid)
		}
		if st.CapEff != eff || st.CapPrm != prm || st.CapInh != 0 || st.CapAmb != 0 {
			t.Errorf("%s: CapEff %#x CapPrm %#x CapInh %#x CapAmb %#x, want %#x %#x 0 0", name, st.CapEff, st.CapPrm, st.CapInh, st.CapAmb, eff, prm)
		}
	}
}

func TestDropToNobodyKeepsSysTime(t *testing.T) {
	needRoot(t)
	rep := runChild(t, "drop")
	const sysTime = 1 << 25
	checkAll(t, rep, 65534, sysTime, sysTime)
	if rep.Status.Gid != [4]int{65534, 65534, 65534, 65534} {
		t.Errorf("gids %v", rep.Status.Gid)
	}
	for _, g := range rep.Status.Groups {
		if g == 0 {
			t.Errorf("still in group 0: %v", rep.Status.Groups)
		}
	}
	if rep.Status.CapBnd != sysTime {
		t.Errorf("CapBnd %#x, want only CAP_SYS_TIME", rep.Status.CapBnd)
	}
}

// TestDropWithoutSysTime starts the child the way every test here runs
// daemons: without CAP_SYS_TIME. Drop keeps what it can, and the clock
// stays out of reach (checked in /proc, never by trying).
func TestDropWithoutSysTime(t *testing.T) {
	needRoot(t)
	sp := setprivPath(t)
	rep := runChild(t, "drop", sp, "--bounding-set=-sys_time", "--inh-caps=-sys_time")
	checkAll(t, rep, 65534, 0, 0)
	if rep.Status.CapBnd&(1<<25) != 0 {
		t.Errorf("CapBnd %#x has CAP_SYS_TIME", rep.Status.CapBnd)
	}
}

func TestDropCapNetBindService(t *testing.T) {
	needRoot(t)
	sp := setprivPath(t)
	// Without CAP_SYS_TIME, so that nothing could write the clock.
	rep := runChild(t, "keep-bind", sp, "--bounding-set=-sys_time", "--inh-caps=-sys_time")
	checkAll(t, rep, 65534, 0, 0)
	if rep.LowBindFirst != "" {
		t.Errorf("binding below 1024 with CAP_NET_BIND_SERVICE: %s", rep.LowBindFirst)
	}
	if !strings.Contains(rep.LowBindAfter, "permission denied") {
		t.Errorf("binding below 1024 after DropCap: %q, want permission denied", rep.LowBindAfter)
	}
}

func TestDropUnknownUserChangesNothing(t *testing.T) {
	needRoot(t)
	sp := setprivPath(t)
	rep := runChild(t, "nouser", sp, "--bounding-set=-sys_time", "--inh-caps=-sys_time")
	if !strings.Contains(rep.Err, "gnomon-no-such-user") {
		t.Errorf("Drop error %q", rep.Err)
	}
	if rep.Status.Uid != [4]int{0, 0, 0, 0} || rep.Status.CapEff == 0 {
		t.Errorf("changed: %+v", rep.Status)
	}
}

// TestDropUnprivileged is systemd's User= with AmbientCapabilities=: the
// process is not root, so Drop only narrows its capabilities.
func TestDropUnprivileged(t *testing.T) {
	needRoot(t) // to start the child as another user
	sp := setprivPath(t)
	rep := runChild(t, "unprivileged", sp, "--reuid=65534", "--regid=65534", "--clear-groups",
		"--bounding-set=-sys_time", "--inh-caps=-sys_time,+net_bind_service,+net_raw",
		"--ambient-caps=+net_bind_service,+net_raw")
	const bind = 1 << 10
	checkAll(t, rep, 65534, bind, bind)
}
