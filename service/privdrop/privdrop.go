//go:build linux

// Package privdrop gives up root: it switches gnomond to its own user
// while keeping only the capabilities it needs (CAP_SYS_TIME to
// discipline the clock, CAP_NET_BIND_SERVICE until port 123 is bound), and
// drops those later.
//
// Capabilities and credentials are per thread in Linux, and a Go program
// runs on many threads. The uid and gid changes go through the syscall
// package, which applies them to every thread; the capability changes go
// through syscall.AllThreadsSyscall, which does the same but is refused in
// a program linked with cgo. gnomond must therefore be built with
// CGO_ENABLED=0 for Drop to work (ErrCgo otherwise); os/user then reads
// /etc/passwd and /etc/group itself.
package privdrop

import (
	"errors"
	"fmt"
	"os"
	"os/user"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// ErrCgo is returned when the program is linked with cgo, where
// capability changes cannot be applied to every thread.
var ErrCgo = errors.New("privdrop: capabilities cannot be changed on every thread of a cgo program; build with CGO_ENABLED=0")

var mu sync.Mutex

// Drop gives up privileges: when running as root (not already started as
// another user by systemd's User=), it switches to userName's uid, gid and
// groups; in any case it keeps only the capabilities in keep (as far as
// it has them) in the permitted and effective sets, clears the inheritable
// and ambient sets, and removes everything else from the bounding set
// while it may (with CAP_SETPCAP). Call it early, before starting work
// that relies on privileges.
func Drop(userName string, keep []Cap) error {
	mu.Lock()
	defer mu.Unlock()
	if err := probe(); err != nil {
		return err
	}
	root := os.Geteuid() == 0
	var uid, gid int
	var groups []int
	if root {
		var err error
		uid, gid, groups, err = lookup(userName)
		if err != nil {
			return err
		}
	}
	cur, err := capGet()
	if err != nil {
		return err
	}
	want := maskOf(keep) & cur.permitted

	if err := dropBounding(want); err != nil {
		return err
	}
	if err := clearAmbient(); err != nil {
		return err
	}
	if root {
		// Keep the permitted set across the uid change; it clears the
		// effective set.
		if err := prctlAll(unix.PR_SET_KEEPCAPS, 1); err != nil {
			return fmt.Errorf("privdrop: keepcaps: %w", err)
		}
		if err := syscall.Setgroups(groups); err != nil {
			return fmt.Errorf("privdrop: setgroups: %w", err)
		}
		if err := syscall.Setresgid(gid, gid, gid); err != nil {
			return fmt.Errorf("privdrop: setresgid %d: %w", gid, err)
		}
		if err := syscall.Setresuid(uid, uid, uid); err != nil {
			return fmt.Errorf("privdrop: setresuid %d: %w", uid, err)
		}
		// Fail closed: believe the kernel, not the return values.
		if syscall.Getuid() != uid || syscall.Geteuid() != uid || syscall.Getgid() != gid || syscall.Getegid() != gid {
			return fmt.Errorf("privdrop: still uid %d/%d gid %d/%d after switching to %d/%d",
				syscall.Getuid(), syscall.Geteuid(), syscall.Getgid(), syscall.Getegid(), uid, gid)
		}
	}
	if err := capSetAll(capSets{effective: want, permitted: want}); err != nil {
		return err
	}
	if root {
		if err := prctlAll(unix.PR_SET_KEEPCAPS, 0); err != nil {
			return fmt.Errorf("privdrop: keepcaps: %w", err)
		}
	}
	got, err := capGet()
	if err != nil {
		return err
	}
	if got.effective != want || got.permitted != want {
		return fmt.Errorf("privdrop: capabilities are %v/%v after dropping, want %v", got.effective.caps(), got.permitted.caps(), want.caps())
	}
	return nil
}

// DropCap removes c from the permitted and effective sets (and from the
// bounding set, if still allowed).
func DropCap(c Cap) error {
	mu.Lock()
	defer mu.Unlock()
	if err := probe(); err != nil {
		return err
	}
	cur, err := capGet()
	if err != nil {
		return err
	}
	bit := capMask(1) << c
	if err := capSetAll(capSets{effective: cur.effective &^ bit, permitted: cur.permitted &^ bit, inheritable: cur.inheritable &^ bit}); err != nil {
		return err
	}
	if err := prctlAll(unix.PR_CAPBSET_DROP, uintptr(c)); err != nil && !errors.Is(err, unix.EPERM) && !errors.Is(err, unix.EINVAL) {
		return fmt.Errorf("privdrop: bounding set: %w", err)
	}
	return nil
}

// Current returns the effective and permitted capabilities of the calling
// thread (which Drop and DropCap keep equal to every other thread's), or
// nil if they cannot be read.
func Current() (effective, permitted []Cap) {
	c, err := capGet()
	if err != nil {
		return nil, nil
	}
	return c.effective.caps(), c.permitted.caps()
}

func lookup(name string) (uid, gid int, groups []int, err error) {
	if name == "" {
		return 0, 0, nil, errors.New("privdrop: no user given")
	}
	u, err := user.Lookup(name)
	if err != nil {
		// A numeric id names a user too (systemd's User= allows both).
		if _, nerr := strconv.Atoi(name); nerr == nil {
			u, err = user.LookupId(name)
		}
	}
	if err != nil {
		return 0, 0, nil, fmt.Errorf("privdrop: %w", err)
	}
	uid, err1 := strconv.Atoi(u.Uid)
	gid, err2 := strconv.Atoi(u.Gid)
	if err1 != nil || err2 != nil {
		return 0, 0, nil, fmt.Errorf("privdrop: user %s has uid %q gid %q", name, u.Uid, u.Gid)
	}
	groups = []int{gid}
	if ids, err := u.GroupIds(); err == nil {
		groups = groups[:0]
		for _, s := range ids {
			if g, err := strconv.Atoi(s); err == nil {
				groups = append(groups, g)
			}
		}
	}
	return uid, gid, groups, nil
}

// probe fails with ErrCgo when AllThreadsSyscall is unavailable, before
// anything has changed.
func probe() error {
	if _, _, e := syscall.AllThreadsSyscall(syscall.SYS_GETPID, 0, 0, 0); e != 0 {
		if e == syscall.ENOTSUP {
			return ErrCgo
		}
		return fmt.Errorf("privdrop: %w", e)
	}
	return nil
}

func prctlAll(option int, arg uintptr) error {
	if _, _, e := syscall.AllThreadsSyscall6(syscall.SYS_PRCTL, uintptr(option), arg, 0, 0, 0, 0); e != 0 {
		return e
	}
	return nil
}

// lastCap is the highest capability the kernel knows.
func lastCap() Cap {
	if b, err := os.ReadFile("/proc/sys/kernel/cap_last_cap"); err == nil {
		if n, err := strconv.Atoi(strings.TrimSpace(string(b))); err == nil && n >= 0 && n < 64 {
			return Cap(n)
		}
	}
	return CapCheckpointRestore
}

// dropBounding removes every capability outside keep from the bounding
// set, if the process may (CAP_SETPCAP); without it, it does nothing.
func dropBounding(keep capMask) error {
	for c := Cap(0); c <= lastCap(); c++ {
		if keep&(1<<c) != 0 {
			continue
		}
		if in, err := unix.PrctlRetInt(unix.PR_CAPBSET_READ, uintptr(c), 0, 0, 0); err != nil || in == 0 {
			continue
		}
		switch err := prctlAll(unix.PR_CAPBSET_DROP, uintptr(c)); {
		case err == nil, errors.Is(err, unix.EINVAL):
		case errors.Is(err, unix.EPERM):
			return nil // no CAP_SETPCAP: the bounding set stays
		default:
			return fmt.Errorf("privdrop: bounding set: drop %v: %w", c, err)
		}
	}
	return nil
}

func clearAmbient() error {
	_, _, e := syscall.AllThreadsSyscall6(syscall.SYS_PRCTL, unix.PR_CAP_AMBIENT, unix.PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0, 0)
	if e != 0 && e != syscall.EINVAL { // EINVAL: a kernel before ambient capabilities
		return fmt.Errorf("privdrop: clear ambient capabilities: %w", e)
	}
	return nil
}

type capSets struct {
	effective, permitted, inheritable capMask
}

func capGet() (capSets, error) {
	hdr := unix.CapUserHeader{Version: unix.LINUX_CAPABILITY_VERSION_3}
	var data [2]unix.CapUserData
	if err := unix.Capget(&hdr, &data[0]); err != nil {
		return capSets{}, fmt.Errorf("privdrop: capget: %w", err)
	}
	join := func(lo, hi uint32) capMask { return capMask(lo) | capMask(hi)<<32 }
	return capSets{
		effective:   join(data[0].Effective, data[1].Effective),
		permitted:   join(data[0].Permitted, data[1].Permitted),
		inheritable: join(data[0].Inheritable, data[1].Inheritable),
	}, nil
}

// capSetAll sets the capability sets of every thread.
func capSetAll(s capSets) error {
	hdr := &unix.CapUserHeader{Version: unix.LINUX_CAPABILITY_VERSION_3}
	data := &[2]unix.CapUserData{
		{Effective: uint32(s.effective), Permitted: uint32(s.permitted), Inheritable: uint32(s.inheritable)},
		{Effective: uint32(s.effective >> 32), Permitted: uint32(s.permitted >> 32), Inheritable: uint32(s.inheritable >> 32)},
	}
	if _, _, e := syscall.AllThreadsSyscall(syscall.SYS_CAPSET, uintptr(unsafe.Pointer(hdr)), uintptr(unsafe.Pointer(&data[0])), 0); e != 0 {
		if e == syscall.ENOTSUP {
			return ErrCgo
		}
		return fmt.Errorf("privdrop: capset: %w", e)
	}
	return nil
}
