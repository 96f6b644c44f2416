//go:build linux

package seccomp

import "golang.org/x/sys/unix"

const (
	auditArch = unix.AUDIT_ARCH_X86_64
	bigEndian = false
)

// archOnly are amd64's older calls, absent from the generic table.
var archOnly = map[string]uint32{
	"open": unix.SYS_OPEN, "stat": unix.SYS_STAT, "lstat": unix.SYS_LSTAT, "poll": unix.SYS_POLL,
	"select": unix.SYS_SELECT, "pipe": unix.SYS_PIPE, "dup2": unix.SYS_DUP2, "access": unix.SYS_ACCESS,
	"readlink": unix.SYS_READLINK, "rename": unix.SYS_RENAME, "unlink": unix.SYS_UNLINK,
	"symlink": unix.SYS_SYMLINK, "mkdir": unix.SYS_MKDIR, "epoll_wait": unix.SYS_EPOLL_WAIT,
	"epoll_create": unix.SYS_EPOLL_CREATE, "time": unix.SYS_TIME, "arch_prctl": unix.SYS_ARCH_PRCTL,
	"fork": unix.SYS_FORK, "vfork": unix.SYS_VFORK, "chmod": unix.SYS_CHMOD, "chown": unix.SYS_CHOWN,
	"creat": unix.SYS_CREAT, "link": unix.SYS_LINK, "iopl": unix.SYS_IOPL, "ioperm": unix.SYS_IOPERM,
	"modify_ldt": unix.SYS_MODIFY_LDT, "uselib": unix.SYS_USELIB,
}

// archAllowed are the amd64-only calls of Default: the older forms of
// calls in the list, which Go and the libraries it might load still use.
var archAllowed = []string{
	"open", "stat", "lstat", "poll", "pipe", "dup2", "access", "readlink", "rename", "unlink",
	"symlink", "mkdir", "epoll_wait", "epoll_create", "time",
}
