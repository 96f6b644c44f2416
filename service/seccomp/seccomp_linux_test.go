//go:build linux && (amd64 || arm64)

package seccomp_test

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"unsafe"

	"golang.org/x/sys/unix"

	"gnomon.dev/gnomon/service/seccomp"
)

// childEnv selects what the re-executed test binary does instead of
// running tests.
const childEnv = "GNOMON_SECCOMP_CHILD"

func TestMain(m *testing.M) {
	switch os.Getenv(childEnv) {
	case "":
		os.Exit(m.Run())
	case "probe":
		os.Exit(probeChild(seccomp.Refuse))
	case "kill":
		os.Exit(probeChild(seccomp.Kill))
	case "workload":
		os.Exit(workloadChild())
	default:
		fmt.Fprintln(os.Stderr, "unknown child", os.Getenv(childEnv))
		os.Exit(2)
	}
}

// --- the program, run in a small classic-BPF interpreter ---------------

// seccompData is struct seccomp_data.
type seccompData struct {
	nr   uint32
	arch uint32
	ip   uint64
	args [6]uint64
}

func (d seccompData) bytes() []byte {
	b := make([]byte, 64)
	binary.LittleEndian.PutUint32(b[0:], d.nr)
	binary.LittleEndian.PutUint32(b[4:], d.arch)
	binary.LittleEndian.PutUint64(b[8:], d.ip)
	for i, a := range d.args {
		binary.LittleEndian.PutUint64(b[16+8*i:], a)
	}
	return b
}

// runBPF interprets the instructions the kernel's seccomp checker accepts
// and this package emits (ld abs word, jeq/jge/jgt/jset with constant,
// ja, ret constant); anything else is a test failure.
func runBPF(t *testing.T, prog []unix.SockFilter, data []byte) uint32 {
	t.Helper()
	var acc uint32
	for pc, steps := 0, 0; pc < len(prog); steps++ {
		if steps > len(prog) {
			t.Fatal("BPF program loops")
		}
		in := prog[pc]
		switch in.Code {
		case unix.BPF_LD | unix.BPF_W | unix.BPF_ABS:
			if in.K%4 != 0 || int(in.K)+4 > len(data) {
				t.Fatalf("pc %d: load at %d out of seccomp_data", pc, in.K)
			}
			acc = binary.LittleEndian.Uint32(data[in.K:])
			pc++
		case unix.BPF_JMP | unix.BPF_JEQ | unix.BPF_K, unix.BPF_JMP | unix.BPF_JGE | unix.BPF_K,
			unix.BPF_JMP | unix.BPF_JGT | unix.BPF_K, unix.BPF_JMP | unix.BPF_JSET | unix.BPF_K:
			var cond bool
			switch in.Code & 0xf0 {
			case unix.BPF_JEQ:
				cond = acc == in.K
			case unix.BPF_JGE:
				cond = acc >= in.K
			case unix.BPF_JGT:
				cond = acc > in.K
			case unix.BPF_JSET:
				cond = acc&in.K != 0
			}
			if cond {
				pc += 1 + int(in.Jt)
			} else {
				pc += 1 + int(in.Jf)
			}
		case unix.BPF_JMP | unix.BPF_JA:
			pc += 1 + int(in.K)
		case unix.BPF_RET | unix.BPF_K:
			return in.K
		default:
			t.Fatalf("pc %d: unexpected instruction %#x", pc, in.Code)
		}
	}
	t.Fatal("BPF program runs off its end")
	return 0
}

func nr(t *testing.T, name string) uint32 {
	t.Helper()
	n, ok := seccomp.Lookup(name)
	if !ok {
		t.Fatalf("no number for %s", name)
	}
	return n
}

func nativeArch() uint32 {
	if runtime.GOARCH == "amd64" {
		return unix.AUDIT_ARCH_X86_64
	}
	return unix.AUDIT_ARCH_AARCH64
}

func TestProgram(t *testing.T) {
	const exfull = unix.SECCOMP_RET_ERRNO | uint32(unix.EXFULL)
	refuse := seccomp.Default
	refuse.Errno = unix.EXFULL
	kill := seccomp.Default
	kill.Action = seccomp.Kill
	logp := seccomp.Default
	logp.Action = seccomp.Log
	native := nativeArch()
	other := uint32(unix.AUDIT_ARCH_I386)
	if runtime.GOARCH == "arm64" {
		other = unix.AUDIT_ARCH_ARM
	}
	threadFlags := uint64(unix.CLONE_VM | unix.CLONE_FS | unix.CLONE_FILES | unix.CLONE_SIGHAND | unix.CLONE_SYSVSEM | unix.CLONE_THREAD)
	cases := []struct {
		name   string
		policy seccomp.Policy
		data   seccompData
		want   uint32
	}{
		{"allowed", refuse, seccompData{nr: nr(t, "futex"), arch: native}, unix.SECCOMP_RET_ALLOW},
		{"allowed last", refuse, seccompData{nr: nr(t, "settimeofday"), arch: native}, unix.SECCOMP_RET_ALLOW},
		{"clock_adjtime", refuse, seccompData{nr: nr(t, "clock_adjtime"), arch: native}, unix.SECCOMP_RET_ALLOW},
		{"adjtimex", refuse, seccompData{nr: nr(t, "adjtimex"), arch: native}, unix.SECCOMP_RET_ALLOW},
		{"refused", refuse, seccompData{nr: nr(t, "personality"), arch: native}, exfull},
		{"execve refused", refuse, seccompData{nr: nr(t, "execve"), arch: native}, exfull},
		{"ptrace refused", refuse, seccompData{nr: nr(t, "ptrace"), arch: native}, exfull},
		{"default errno", seccomp.Default, seccompData{nr: nr(t, "mount"), arch: native}, unix.SECCOMP_RET_ERRNO | uint32(unix.EPERM)},
		{"kill", kill, seccompData{nr: nr(t, "personality"), arch: native}, unix.SECCOMP_RET_KILL_PROCESS},
		{"log", logp, seccompData{nr: nr(t, "personality"), arch: native}, unix.SECCOMP_RET_LOG},
		{"kill allows", kill, seccompData{nr: nr(t, "read"), arch: native}, unix.SECCOMP_RET_ALLOW},
		{"foreign arch", refuse, seccompData{nr: nr(t, "read"), arch: other}, unix.SECCOMP_RET_KILL_PROCESS},
		{"huge number", refuse, seccompData{nr: 0xffffffff, arch: native}, exfull},
		{"socket inet", refuse, seccompData{nr: nr(t, "socket"), arch: native, args: [6]uint64{unix.AF_INET, unix.SOCK_DGRAM}}, unix.SECCOMP_RET_ALLOW},
		{"socket inet6", refuse, seccompData{nr: nr(t, "socket"), arch: native, args: [6]uint64{unix.AF_INET6, unix.SOCK_STREAM}}, unix.SECCOMP_RET_ALLOW},
		{"socket unix", refuse, seccompData{nr: nr(t, "socket"), arch: native, args: [6]uint64{unix.AF_UNIX, unix.SOCK_DGRAM}}, unix.SECCOMP_RET_ALLOW},
		{"socket netlink", refuse, seccompData{nr: nr(t, "socket"), arch: native, args: [6]uint64{unix.AF_NETLINK, unix.SOCK_RAW}}, exfull},
		{"socket packet", refuse, seccompData{nr: nr(t, "socket"), arch: native, args: [6]uint64{unix.AF_PACKET, unix.SOCK_RAW}}, exfull},
		{"clone thread", refuse, seccompData{nr: nr(t, "clone"), arch: native, args: [6]uint64{threadFlags}}, unix.SECCOMP_RET_ALLOW},
		{"clone fork", refuse, seccompData{nr: nr(t, "clone"), arch: native, args: [6]uint64{uint64(unix.SIGCHLD)}}, exfull},
		{"clone vfork", refuse, seccompData{nr: nr(t, "clone"), arch: native, args: [6]uint64{unix.CLONE_VM | unix.CLONE_VFORK | uint64(unix.SIGCHLD)}}, exfull},
		{"clone glibc thread", refuse, seccompData{nr: nr(t, "clone"), arch: native, args: [6]uint64{threadFlags | unix.CLONE_SETTLS | unix.CLONE_PARENT_SETTID | unix.CLONE_CHILD_CLEARTID}}, unix.SECCOMP_RET_ALLOW},
		{"clone3 ENOSYS", refuse, seccompData{nr: nr(t, "clone3"), arch: native}, unix.SECCOMP_RET_ERRNO | uint32(unix.ENOSYS)},
	}
	if runtime.GOARCH == "amd64" {
		cases = append(cases,
			struct {
				name   string
				policy seccomp.Policy
				data   seccompData
				want   uint32
			}{"x32 read", refuse, seccompData{nr: 0x40000000 | nr(t, "read"), arch: native}, exfull},
			struct {
				name   string
				policy seccomp.Policy
				data   seccompData
				want   uint32
			}{"legacy open", refuse, seccompData{nr: nr(t, "open"), arch: native}, unix.SECCOMP_RET_ALLOW})
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			prog, err := c.policy.Program()
			if err != nil {
				t.Fatal(err)
			}
			if got := runBPF(t, prog, c.data.bytes()); got != c.want {
				t.Errorf("filter returns %#x, want %#x", got, c.want)
			}
		})
	}
}

// TestEveryAllowedCall runs every call of Default through the program.
func TestEveryAllowedCall(t *testing.T) {
	prog, err := seccomp.Default.Program()
	if err != nil {
		t.Fatal(err)
	}
	if len(seccomp.Default.Syscalls) < 50 {
		t.Fatalf("Default has only %d calls", len(seccomp.Default.Syscalls))
	}
	for _, s := range seccomp.Default.Syscalls {
		d := seccompData{nr: s.Nr, arch: nativeArch()}
		want := uint32(unix.SECCOMP_RET_ALLOW)
		if s.Errno != 0 {
			want = unix.SECCOMP_RET_ERRNO | uint32(s.Errno)
		}
		for _, v := range append([]uint32{0}, s.Values...)[min(1, len(s.Values)):] {
			d.args[s.Arg] = uint64(v)
			if got := runBPF(t, prog, d.bytes()); got != want {
				t.Errorf("%s (argument %d = %#x): filter returns %#x, want %#x", s.Name, s.Arg, v, got, want)
			}
		}
	}
}

func TestPolicyErrors(t *testing.T) {
	dup := seccomp.Default
	dup.Syscalls = append(slices.Clone(dup.Syscalls), seccomp.Syscall{Name: "again", Nr: nr(t, "read")})
	badArg := seccomp.Policy{Syscalls: []seccomp.Syscall{{Name: "socket", Nr: nr(t, "socket"), Arg: 6, Values: []uint32{1}}}}
	badErrno := seccomp.Default
	badErrno.Errno = 1 << 20
	for name, p := range map[string]seccomp.Policy{
		"duplicate": dup, "argument": badArg, "errno": badErrno, "empty": {},
		"action": {Syscalls: seccomp.Default.Syscalls, Action: seccomp.Action(9)},
	} {
		if _, err := p.Program(); err == nil {
			t.Errorf("%s: Program accepted a bad policy", name)
		}
	}
	if _, err := seccomp.Default.With("no_such_call"); err == nil {
		t.Error("With accepted an unknown call")
	}
	p, err := seccomp.Default.With("personality")
	if err != nil || !p.Allows("personality") || seccomp.Default.Allows("personality") {
		t.Errorf("With(personality): %v; the copy allows it %v, Default %v", err, p.Allows("personality"), seccomp.Default.Allows("personality"))
	}
	q := seccomp.Default.Without("settimeofday", "clock_settime")
	if q.Allows("settimeofday") || q.Allows("clock_settime") || !seccomp.Default.Allows("settimeofday") {
		t.Error("Without did not remove the calls, or changed Default")
	}
}

// --- the filter in a real (child) process ------------------------------

// probe is one system call a child makes under the filter, and the errno
// it must get (0 for success).
type probe struct {
	name string
	want syscall.Errno
	call func() syscall.Errno
}

func errnoOf(err error) syscall.Errno {
	if err == nil {
		return 0
	}
	var e syscall.Errno
	if errors.As(err, &e) {
		return e
	}
	return syscall.Errno(0xffff) // not a plain errno: always a mismatch
}

func raw(trap uintptr, a ...uintptr) syscall.Errno {
	var args [6]uintptr
	copy(args[:], a)
	_, _, e := unix.Syscall6(trap, args[0], args[1], args[2], args[3], args[4], args[5])
	return e
}

// probes: the refused ones get EXFULL, an errno nothing else returns here,
// so a refusal by the filter is told apart from one by the kernel's
// permission checks; the allowed clock calls are made so that they cannot
// change any clock (read-only modes, an invalid clock, a bad pointer).
func probes(dir string) []probe {
	return []probe{
		{"getpid", 0, func() syscall.Errno { return raw(unix.SYS_GETPID) }},
		{"personality", unix.EXFULL, func() syscall.Errno { return raw(unix.SYS_PERSONALITY, 0xffffffff) }},
		{"sysinfo", unix.EXFULL, func() syscall.Errno { var si unix.Sysinfo_t; return errnoOf(unix.Sysinfo(&si)) }},
		{"socket AF_NETLINK", unix.EXFULL, func() syscall.Errno {
			fd, err := unix.Socket(unix.AF_NETLINK, unix.SOCK_RAW|unix.SOCK_CLOEXEC, unix.NETLINK_ROUTE)
			if err == nil {
				unix.Close(fd)
			}
			return errnoOf(err)
		}},
		{"socket AF_INET", 0, func() syscall.Errno {
			fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
			if err == nil {
				unix.Close(fd)
			}
			return errnoOf(err)
		}},
		{"exec", unix.EXFULL, func() syscall.Errno { return errnoOf(exec.Command("/bin/true").Run()) }},
		{"write file", 0, func() syscall.Errno {
			p := filepath.Join(dir, "probe")
			if err := os.WriteFile(p+".tmp", []byte("x\n"), 0o600); err != nil {
				return errnoOf(err)
			}
			if err := os.Rename(p+".tmp", p); err != nil {
				return errnoOf(err)
			}
			return errnoOf(os.Remove(p))
		}},
		{"adjtimex read", 0, func() syscall.Errno { var tx unix.Timex; _, err := unix.Adjtimex(&tx); return errnoOf(err) }},
		{"clock_adjtime read", 0, func() syscall.Errno {
			var tx unix.Timex
			return raw(unix.SYS_CLOCK_ADJTIME, unix.CLOCK_REALTIME, uintptr(unsafe.Pointer(&tx)))
		}},
		{"clock_settime monotonic", unix.EINVAL, func() syscall.Errno {
			var ts unix.Timespec
			return raw(unix.SYS_CLOCK_SETTIME, unix.CLOCK_MONOTONIC, uintptr(unsafe.Pointer(&ts)))
		}},
		{"settimeofday bad tz", unix.EFAULT, func() syscall.Errno { return raw(unix.SYS_SETTIMEOFDAY, 0, 8) }},
	}
}

// probeChild installs Default (refused calls get EXFULL, or the process
// is killed) with several OS threads alive, checks that every thread took
// the filter, then runs the probes and prints one line each.
func probeChild(action seccomp.Action) int {
	// Park a few goroutines on threads of their own, so there are threads
	// the filter must reach through TSYNC.
	ready := make(chan struct{})
	for range 4 {
		go func() {
			runtime.LockOSThread()
			ready <- struct{}{}
			select {}
		}()
	}
	for range 4 {
		<-ready
	}
	p := seccomp.Default
	p.Action, p.Errno = action, unix.EXFULL
	if err := seccomp.Install(p); err != nil {
		fmt.Println("install:", err)
		return 1
	}
	fmt.Println("installed")
	tasks, _ := filepath.Glob("/proc/self/task/*/status")
	for _, st := range tasks {
		b, err := os.ReadFile(st)
		if err != nil {
			fmt.Println("read", st, err)
			return 1
		}
		fmt.Printf("task %s seccomp=%s nnp=%s\n", filepath.Base(filepath.Dir(st)), statusField(b, "Seccomp"), statusField(b, "NoNewPrivs"))
	}
	if action == seccomp.Kill {
		os.Stdout.Sync()
		raw(unix.SYS_PERSONALITY, 0xffffffff)
		fmt.Println("still alive")
		return 0
	}
	for _, pr := range probes(os.Getenv("GNOMON_SECCOMP_DIR")) {
		fmt.Printf("probe %s %d\n", pr.name, int(pr.call()))
	}
	return 0
}

func statusField(b []byte, key string) string {
	for _, line := range strings.Split(string(b), "\n") {
		if k, v, ok := strings.Cut(line, ":"); ok && k == key {
			return strings.TrimSpace(v)
		}
	}
	return "?"
}

func child(t *testing.T, mode string, env ...string) (string, error) {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), append(env, childEnv+"="+mode)...)
	var out bytes.Buffer
	cmd.Stdout = &out
	cmd.Stderr = &out
	err := cmd.Run()
	return out.String(), err
}

func TestRefusedInChild(t *testing.T) {
	dir := t.TempDir()
	out, err := child(t, "probe", "GNOMON_SECCOMP_DIR="+dir)
	if err != nil {
		t.Fatalf("child: %v\n%s", err, out)
	}
	if !strings.Contains(out, "installed\n") {
		t.Fatalf("child did not install the filter:\n%s", out)
	}
	got := map[string]syscall.Errno{}
	tasks := 0
	sc := bufio.NewScanner(strings.NewReader(out))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		switch {
		case len(f) == 4 && f[0] == "task":
			tasks++
			if f[2] != "seccomp=2" || f[3] != "nnp=1" {
				t.Errorf("thread %s: %s %s, want seccomp=2 (filter) nnp=1", f[1], f[2], f[3])
			}
		case len(f) >= 3 && f[0] == "probe":
			n, err := strconv.Atoi(f[len(f)-1])
			if err != nil {
				t.Fatalf("bad line %q", sc.Text())
			}
			got[strings.Join(f[1:len(f)-1], " ")] = syscall.Errno(n)
		}
	}
	if tasks < 5 {
		t.Errorf("saw %d threads, want at least 5 (the main one and 4 parked)", tasks)
	}
	for _, pr := range probes(dir) {
		e, ok := got[pr.name]
		if !ok {
			t.Errorf("%s: no result", pr.name)
			continue
		}
		if e != pr.want {
			t.Errorf("%s: errno %d (%v), want %d (%v)", pr.name, int(e), e, int(pr.want), pr.want)
		}
	}
}

func TestKillInChild(t *testing.T) {
	out, err := child(t, "kill")
	if !strings.Contains(out, "installed\n") {
		t.Fatalf("child did not install the filter: %v\n%s", err, out)
	}
	var ee *exec.ExitError
	if !errors.As(err, &ee) {
		t.Fatalf("child was not killed: %v\n%s", err, out)
	}
	ws, ok := ee.Sys().(syscall.WaitStatus)
	if !ok || !ws.Signaled() || ws.Signal() != syscall.SIGSYS {
		t.Fatalf("child ended with %v, want killed by SIGSYS\n%s", err, out)
	}
	if strings.Contains(out, "still alive") {
		t.Error("child outlived a refused call")
	}
}
