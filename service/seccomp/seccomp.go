//go:build linux

// Package seccomp confines gnomond to the system calls it needs: an
// allow-list filter, assembled here as a classic BPF program, installed on
// every thread of the process (SECCOMP_FILTER_FLAG_TSYNC) once start-up is
// over (sockets bound, privileges dropped).
//
// The program first checks the audit architecture: a system call made
// through another ABI (i386 via int 0x80 on amd64, or the x32 ABI, whose
// numbers carry bit 30) never matches the allow list of this one, and is
// killed or refused. Then it compares the system call number with each
// allowed one; a few calls are allowed only for some values of one
// argument (socket only for AF_UNIX, AF_INET and AF_INET6).
//
// Like SystemCallFilter= in gnomond.service, the filter is a second fence:
// it also holds when the daemon runs outside systemd, and it is narrower
// (no exec, no fork, no file ownership changes, no ptrace).
package seccomp

import (
	"errors"
	"fmt"
	"runtime"
	"slices"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Action is what happens to a system call outside the allow list.
type Action int

const (
	// Refuse makes the call fail with Policy.Errno (EPERM when 0), the way
	// SystemCallErrorNumber=EPERM does; the Go code sees an ordinary error.
	Refuse Action = iota
	// Kill kills the whole process with SIGSYS (SECCOMP_RET_KILL_PROCESS).
	Kill
	// Log allows the call and has the kernel log it (SECCOMP_RET_LOG), to
	// find what a new code path needs.
	Log
)

func (a Action) String() string {
	switch a {
	case Refuse:
		return "refuse"
	case Kill:
		return "kill"
	case Log:
		return "log"
	}
	return fmt.Sprintf("Action(%d)", int(a))
}

// Syscall is one allowed system call.
type Syscall struct {
	Name string
	Nr   uint32
	// Values, when not empty, allows the call only when the low 32 bits
	// of argument Arg (0–5) are one of them.
	Arg    int
	Values []uint32
	// Errno, when not 0, refuses the call with this error instead of
	// allowing it: clone3 gets ENOSYS, so that libc falls back to clone,
	// whose flags the filter can see (clone3's are behind a pointer).
	Errno syscall.Errno
}

// Policy is an allow list and what happens to everything else.
type Policy struct {
	Syscalls []Syscall
	Action   Action
	// Errno is the error a refused call returns (Action Refuse); 0 means
	// EPERM.
	Errno syscall.Errno
}

// ErrUnsupported is returned by Install on an architecture this package
// has no system call table for.
var ErrUnsupported = errors.New("seccomp: no system call table for " + runtime.GOARCH)

// Default is gnomond's policy: every call the daemon makes in any mode,
// the clock calls included, measured with strace -f -c on a running
// gnomond (docs/security.md) plus the Go runtime's rare paths; other
// calls are refused with EPERM.
var Default = Policy{Syscalls: defaultSyscalls(), Action: Refuse}

// Lookup returns the number of the named system call on this
// architecture, if this package knows it.
func Lookup(name string) (uint32, bool) {
	nr, ok := table[name]
	return nr, ok
}

// Names lists the policy's system calls in order.
func (p Policy) Names() []string {
	out := make([]string, len(p.Syscalls))
	for i, s := range p.Syscalls {
		out[i] = s.Name
	}
	return out
}

// Allows reports whether the policy has a rule for the named call.
func (p Policy) Allows(name string) bool {
	return slices.ContainsFunc(p.Syscalls, func(s Syscall) bool { return s.Name == name })
}

// Without returns a copy of p without the named calls.
func (p Policy) Without(names ...string) Policy {
	q := p
	q.Syscalls = slices.DeleteFunc(slices.Clone(p.Syscalls), func(s Syscall) bool { return slices.Contains(names, s.Name) })
	return q
}

// With returns a copy of p that also allows the named calls (by this
// architecture's table), or an error naming one it does not know.
func (p Policy) With(names ...string) (Policy, error) {
	q := p
	q.Syscalls = slices.Clone(p.Syscalls)
	for _, n := range names {
		if q.Allows(n) {
			continue
		}
		nr, ok := Lookup(n)
		if !ok {
			return p, fmt.Errorf("seccomp: unknown system call %q on %s", n, runtime.GOARCH)
		}
		q.Syscalls = append(q.Syscalls, Syscall{Name: n, Nr: nr})
	}
	return q, nil
}

// Offsets into struct seccomp_data.
const (
	offNr   = 0
	offArch = 4
	offArgs = 16
)

// x32Bit marks x32 ABI system call numbers on amd64.
const x32Bit = 0x40000000

func stmt(code uint16, k uint32) unix.SockFilter {
	return unix.SockFilter{Code: code, K: k}
}

func jump(code uint16, k uint32, jt, jf uint8) unix.SockFilter {
	return unix.SockFilter{Code: code, Jt: jt, Jf: jf, K: k}
}

// denyValue is the filter's return value for calls outside the list.
func (p Policy) denyValue() (uint32, error) {
	switch p.Action {
	case Refuse:
		e := p.Errno
		if e == 0 {
			e = unix.EPERM
		}
		if e > unix.SECCOMP_RET_DATA {
			return 0, fmt.Errorf("seccomp: errno %d out of range", int(e))
		}
		return unix.SECCOMP_RET_ERRNO | uint32(e), nil
	case Kill:
		return unix.SECCOMP_RET_KILL_PROCESS, nil
	case Log:
		return unix.SECCOMP_RET_LOG, nil
	}
	return 0, fmt.Errorf("seccomp: unknown action %v", p.Action)
}

// Program assembles the policy into a BPF program for this architecture.
func (p Policy) Program() ([]unix.SockFilter, error) {
	return p.program(auditArch, runtime.GOARCH == "amd64", bigEndian)
}

func (p Policy) program(arch uint32, x32 bool, bigEndian bool) ([]unix.SockFilter, error) {
	if arch == 0 {
		return nil, ErrUnsupported
	}
	deny, err := p.denyValue()
	if err != nil {
		return nil, err
	}
	if len(p.Syscalls) == 0 {
		return nil, errors.New("seccomp: empty allow list")
	}
	const (
		ldW  = unix.BPF_LD | unix.BPF_W | unix.BPF_ABS
		jeq  = unix.BPF_JMP | unix.BPF_JEQ | unix.BPF_K
		jge  = unix.BPF_JMP | unix.BPF_JGE | unix.BPF_K
		retK = unix.BPF_RET | unix.BPF_K
	)
	prog := []unix.SockFilter{
		stmt(ldW, offArch),
		jump(jeq, arch, 1, 0),
		stmt(retK, unix.SECCOMP_RET_KILL_PROCESS),
		stmt(ldW, offNr),
	}
	if x32 {
		prog = append(prog, jump(jge, x32Bit, 0, 1), stmt(retK, deny))
	}
	seen := map[uint32]string{}
	for _, s := range p.Syscalls {
		if other, dup := seen[s.Nr]; dup {
			return nil, fmt.Errorf("seccomp: %s and %s are both system call %d", other, s.Name, s.Nr)
		}
		seen[s.Nr] = s.Name
		if s.Errno != 0 {
			if s.Errno > unix.SECCOMP_RET_DATA {
				return nil, fmt.Errorf("seccomp: %s: errno %d out of range", s.Name, int(s.Errno))
			}
			prog = append(prog, jump(jeq, s.Nr, 0, 1), stmt(retK, unix.SECCOMP_RET_ERRNO|uint32(s.Errno)))
			continue
		}
		if len(s.Values) == 0 {
			prog = append(prog, jump(jeq, s.Nr, 0, 1), stmt(retK, unix.SECCOMP_RET_ALLOW))
			continue
		}
		if s.Arg < 0 || s.Arg > 5 {
			return nil, fmt.Errorf("seccomp: %s: argument %d out of range", s.Name, s.Arg)
		}
		if len(s.Values) > 100 {
			return nil, fmt.Errorf("seccomp: %s: too many values", s.Name)
		}
		off := uint32(offArgs + 8*s.Arg)
		if bigEndian {
			off += 4
		}
		// jeq nr; ld arg; (jeq v; ret allow)*; ret deny. A failed
		// number match skips the block with the number still loaded.
		prog = append(prog, jump(jeq, s.Nr, 0, uint8(2+2*len(s.Values))), stmt(ldW, off))
		for _, v := range s.Values {
			prog = append(prog, jump(jeq, v, 0, 1), stmt(retK, unix.SECCOMP_RET_ALLOW))
		}
		prog = append(prog, stmt(retK, deny))
	}
	prog = append(prog, stmt(retK, deny))
	if len(prog) > unix.BPF_MAXINSNS {
		return nil, fmt.Errorf("seccomp: program of %d instructions is too long", len(prog))
	}
	return prog, nil
}

// Install sets no_new_privs and loads p's program on every thread of the
// process. It cannot be undone; later filters can only narrow it. Call it
// after everything that needs calls outside the list (binding, dropping
// privileges).
func Install(p Policy) error {
	prog, err := p.Program()
	if err != nil {
		return err
	}
	// no_new_privs is per thread: set it on the thread that loads the
	// filter; TSYNC then sets it on every other thread too.
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	if err := unix.Prctl(unix.PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0); err != nil {
		return fmt.Errorf("seccomp: no_new_privs: %w", err)
	}
	fprog := unix.SockFprog{Len: uint16(len(prog)), Filter: &prog[0]}
	r, _, e := unix.Syscall(unix.SYS_SECCOMP, unix.SECCOMP_SET_MODE_FILTER, unix.SECCOMP_FILTER_FLAG_TSYNC, uintptr(unsafe.Pointer(&fprog)))
	runtime.KeepAlive(prog)
	if e != 0 {
		return fmt.Errorf("seccomp: load filter: %w", e)
	}
	if r != 0 {
		return fmt.Errorf("seccomp: thread %d cannot take the filter", r)
	}
	return nil
}
