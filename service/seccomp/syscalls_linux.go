//go:build linux && (amd64 || arm64)

package seccomp

import "golang.org/x/sys/unix"

// common are the system calls this package can name on every supported
// architecture (the generic table's, which amd64 also has).
var common = map[string]uint32{
	// memory, threads, signals, time: the Go runtime
	"mmap": unix.SYS_MMAP, "munmap": unix.SYS_MUNMAP, "mprotect": unix.SYS_MPROTECT,
	"madvise": unix.SYS_MADVISE, "mremap": unix.SYS_MREMAP, "mincore": unix.SYS_MINCORE,
	"clone": unix.SYS_CLONE, "clone3": unix.SYS_CLONE3, "futex": unix.SYS_FUTEX,
	"set_robust_list": unix.SYS_SET_ROBUST_LIST, "rseq": unix.SYS_RSEQ, "sched_yield": unix.SYS_SCHED_YIELD,
	"sched_getaffinity": unix.SYS_SCHED_GETAFFINITY, "gettid": unix.SYS_GETTID, "getpid": unix.SYS_GETPID,
	"getppid": unix.SYS_GETPPID, "tgkill": unix.SYS_TGKILL, "kill": unix.SYS_KILL,
	"rt_sigaction": unix.SYS_RT_SIGACTION, "rt_sigprocmask": unix.SYS_RT_SIGPROCMASK,
	"rt_sigreturn": unix.SYS_RT_SIGRETURN, "sigaltstack": unix.SYS_SIGALTSTACK,
	"exit": unix.SYS_EXIT, "exit_group": unix.SYS_EXIT_GROUP, "restart_syscall": unix.SYS_RESTART_SYSCALL,
	"nanosleep": unix.SYS_NANOSLEEP, "clock_nanosleep": unix.SYS_CLOCK_NANOSLEEP,
	"clock_gettime": unix.SYS_CLOCK_GETTIME, "clock_getres": unix.SYS_CLOCK_GETRES,
	"gettimeofday": unix.SYS_GETTIMEOFDAY, "getrandom": unix.SYS_GETRANDOM, "uname": unix.SYS_UNAME,
	"prlimit64": unix.SYS_PRLIMIT64, "getrlimit": unix.SYS_GETRLIMIT, "setrlimit": unix.SYS_SETRLIMIT,
	"timer_create": unix.SYS_TIMER_CREATE, "timer_settime": unix.SYS_TIMER_SETTIME,
	"timer_delete": unix.SYS_TIMER_DELETE, "setitimer": unix.SYS_SETITIMER,
	"timerfd_create": unix.SYS_TIMERFD_CREATE, "timerfd_settime": unix.SYS_TIMERFD_SETTIME,

	// files
	"openat": unix.SYS_OPENAT, "openat2": unix.SYS_OPENAT2, "close": unix.SYS_CLOSE, "read": unix.SYS_READ,
	"write": unix.SYS_WRITE, "readv": unix.SYS_READV, "writev": unix.SYS_WRITEV,
	"pread64": unix.SYS_PREAD64, "pwrite64": unix.SYS_PWRITE64, "lseek": unix.SYS_LSEEK,
	"fstat": unix.SYS_FSTAT, "newfstatat": unix.SYS_NEWFSTATAT, "statx": unix.SYS_STATX,
	"fstatfs": unix.SYS_FSTATFS, "getdents64": unix.SYS_GETDENTS64, "fsync": unix.SYS_FSYNC,
	"fdatasync": unix.SYS_FDATASYNC, "ftruncate": unix.SYS_FTRUNCATE, "renameat": unix.SYS_RENAMEAT,
	"renameat2": unix.SYS_RENAMEAT2, "unlinkat": unix.SYS_UNLINKAT, "symlinkat": unix.SYS_SYMLINKAT,
	"readlinkat": unix.SYS_READLINKAT, "mkdirat": unix.SYS_MKDIRAT, "fchmod": unix.SYS_FCHMOD,
	"fchmodat": unix.SYS_FCHMODAT, "fchown": unix.SYS_FCHOWN, "fchownat": unix.SYS_FCHOWNAT,
	"faccessat": unix.SYS_FACCESSAT, "faccessat2": unix.SYS_FACCESSAT2, "fcntl": unix.SYS_FCNTL,
	"flock": unix.SYS_FLOCK, "dup": unix.SYS_DUP, "dup3": unix.SYS_DUP3, "pipe2": unix.SYS_PIPE2,
	"ioctl": unix.SYS_IOCTL, "memfd_create": unix.SYS_MEMFD_CREATE, "eventfd2": unix.SYS_EVENTFD2,
	"epoll_create1": unix.SYS_EPOLL_CREATE1, "epoll_ctl": unix.SYS_EPOLL_CTL,
	"epoll_pwait": unix.SYS_EPOLL_PWAIT, "epoll_pwait2": unix.SYS_EPOLL_PWAIT2, "ppoll": unix.SYS_PPOLL,
	"pselect6": unix.SYS_PSELECT6, "inotify_init1": unix.SYS_INOTIFY_INIT1, "getcwd": unix.SYS_GETCWD,
	"chdir": unix.SYS_CHDIR, "umask": unix.SYS_UMASK,

	// sockets
	"socket": unix.SYS_SOCKET, "socketpair": unix.SYS_SOCKETPAIR, "bind": unix.SYS_BIND,
	"listen": unix.SYS_LISTEN, "accept4": unix.SYS_ACCEPT4, "connect": unix.SYS_CONNECT,
	"getsockname": unix.SYS_GETSOCKNAME, "getpeername": unix.SYS_GETPEERNAME,
	"setsockopt": unix.SYS_SETSOCKOPT, "getsockopt": unix.SYS_GETSOCKOPT, "sendto": unix.SYS_SENDTO,
	"recvfrom": unix.SYS_RECVFROM, "sendmsg": unix.SYS_SENDMSG, "recvmsg": unix.SYS_RECVMSG,
	"sendmmsg": unix.SYS_SENDMMSG, "recvmmsg": unix.SYS_RECVMMSG, "shutdown": unix.SYS_SHUTDOWN,

	// credentials
	"getuid": unix.SYS_GETUID, "geteuid": unix.SYS_GETEUID, "getgid": unix.SYS_GETGID,
	"getegid": unix.SYS_GETEGID, "getgroups": unix.SYS_GETGROUPS, "getresuid": unix.SYS_GETRESUID,
	"getresgid": unix.SYS_GETRESGID, "capget": unix.SYS_CAPGET, "capset": unix.SYS_CAPSET,
	"setuid": unix.SYS_SETUID, "setgid": unix.SYS_SETGID, "setresuid": unix.SYS_SETRESUID,
	"setresgid": unix.SYS_SETRESGID, "setgroups": unix.SYS_SETGROUPS, "prctl": unix.SYS_PRCTL,

	// the clock
	"adjtimex": unix.SYS_ADJTIMEX, "clock_adjtime": unix.SYS_CLOCK_ADJTIME,
	"clock_settime": unix.SYS_CLOCK_SETTIME, "settimeofday": unix.SYS_SETTIMEOFDAY,

	// never in the policy; named for tests and for With
	"execve": unix.SYS_EXECVE, "execveat": unix.SYS_EXECVEAT, "ptrace": unix.SYS_PTRACE,
	"mount": unix.SYS_MOUNT, "umount2": unix.SYS_UMOUNT2, "unshare": unix.SYS_UNSHARE,
	"setns": unix.SYS_SETNS, "chroot": unix.SYS_CHROOT, "pivot_root": unix.SYS_PIVOT_ROOT,
	"personality": unix.SYS_PERSONALITY, "sysinfo": unix.SYS_SYSINFO, "reboot": unix.SYS_REBOOT,
	"init_module": unix.SYS_INIT_MODULE, "finit_module": unix.SYS_FINIT_MODULE,
	"kexec_load": unix.SYS_KEXEC_LOAD, "bpf": unix.SYS_BPF, "perf_event_open": unix.SYS_PERF_EVENT_OPEN,
	"process_vm_readv": unix.SYS_PROCESS_VM_READV, "process_vm_writev": unix.SYS_PROCESS_VM_WRITEV,
	"seccomp": unix.SYS_SECCOMP, "keyctl": unix.SYS_KEYCTL, "add_key": unix.SYS_ADD_KEY,
	"setpriority": unix.SYS_SETPRIORITY, "getpriority": unix.SYS_GETPRIORITY,
	"sched_setaffinity": unix.SYS_SCHED_SETAFFINITY, "acct": unix.SYS_ACCT, "swapon": unix.SYS_SWAPON,
	"sethostname": unix.SYS_SETHOSTNAME, "syslog": unix.SYS_SYSLOG, "userfaultfd": unix.SYS_USERFAULTFD,
	"io_uring_setup": unix.SYS_IO_URING_SETUP, "io_uring_enter": unix.SYS_IO_URING_ENTER,
	"name_to_handle_at": unix.SYS_NAME_TO_HANDLE_AT, "open_by_handle_at": unix.SYS_OPEN_BY_HANDLE_AT,
	"fanotify_init": unix.SYS_FANOTIFY_INIT, "pidfd_open": unix.SYS_PIDFD_OPEN, "wait4": unix.SYS_WAIT4,
	"waitid": unix.SYS_WAITID, "setsid": unix.SYS_SETSID, "vhangup": unix.SYS_VHANGUP,
	"quotactl": unix.SYS_QUOTACTL, "mknodat": unix.SYS_MKNODAT, "linkat": unix.SYS_LINKAT,
}

// table is common plus this architecture's own calls.
var table = func() map[string]uint32 {
	t := make(map[string]uint32, len(common)+len(archOnly))
	for n, nr := range common {
		t[n] = nr
	}
	for n, nr := range archOnly {
		t[n] = nr
	}
	return t
}()

// allowed is Default's list, by name, in the order the program tests them
// (the busiest first: the filter is a linear scan).
var allowed = []string{
	// the hot path, in strace's order of frequency
	"futex", "nanosleep", "epoll_pwait", "write", "read", "recvmsg", "recvmmsg", "sendmmsg", "sendto",
	"timerfd_settime", "epoll_ctl", "close", "getpid", "tgkill", "rt_sigreturn", "clock_gettime", "gettimeofday",
	"sched_yield", "sched_getaffinity", "getsockname", "getpeername", "connect", "pread64",
	"rt_sigprocmask", "rt_sigaction", "sigaltstack", "gettid", "clone", "mmap", "munmap", "madvise",
	"getrandom", "setsockopt", "getsockopt", "bind", "fcntl", "openat", "fstat", "newfstatat",
	"socket",
	// the Go runtime's rarer paths, and glibc's thread start in a cgo build
	"mprotect", "mincore", "exit", "exit_group", "restart_syscall", "clock_nanosleep", "clock_getres",
	"clone3", "rseq", "set_robust_list", "kill", "getppid", "uname", "prlimit64", "getrlimit", "epoll_pwait2", "epoll_create1", "eventfd2",
	"pipe2", "ppoll",
	"timerfd_create",
	// files: configuration, drift and state files written by rename,
	// /etc/localtime and /etc/adjtime through timedate1, zoneinfo
	"readv", "writev", "pwrite64", "lseek", "statx", "fstatfs", "getdents64", "fsync", "fdatasync",
	"ftruncate", "renameat", "renameat2", "unlinkat", "symlinkat", "readlinkat", "mkdirat", "fchmod",
	"faccessat", "faccessat2", "dup", "dup3", "memfd_create",
	// RTC, PHC and PPS devices
	"ioctl",
	// more sockets: D-Bus and journald over AF_UNIX, NTS-KE over TCP
	"listen", "accept4", "recvfrom", "sendmsg", "shutdown",
	// credentials, read only (D-Bus EXTERNAL authentication)
	"getuid", "geteuid", "getgid", "getegid", "getgroups", "getresuid", "getresgid", "capget",
	// the clock
	"adjtimex", "clock_adjtime", "clock_settime", "settimeofday",
}

// socketFamilies are the address families socket(2) may ask for, the same
// as RestrictAddressFamilies= in gnomond.service.
var socketFamilies = []uint32{unix.AF_UNIX, unix.AF_INET, unix.AF_INET6}

// Thread creation is the only clone allowed: the flags the Go runtime's
// clone passes for a new thread (runtime/os_linux.go, unchanged since
// CLONE_SYSVSEM came in Go 1.9; the amd64 assembly adds CLONE_SETTLS), and
// those of glibc's pthread_create, which a cgo build uses (after clone3
// gets ENOSYS). clone with any other flags
// makes a new process: the daemon never forks, so that is refused, and
// with it every exec.
const (
	goThreadFlags = unix.CLONE_VM | unix.CLONE_FS | unix.CLONE_FILES | unix.CLONE_SIGHAND |
		unix.CLONE_SYSVSEM | unix.CLONE_THREAD
	glibcThreadFlags = goThreadFlags | unix.CLONE_SETTLS | unix.CLONE_PARENT_SETTID | unix.CLONE_CHILD_CLEARTID
)

func defaultSyscalls() []Syscall {
	names := append(append([]string{}, allowed...), archAllowed...)
	out := make([]Syscall, 0, len(names))
	for _, n := range names {
		nr, ok := table[n]
		if !ok {
			panic("seccomp: no number for " + n)
		}
		s := Syscall{Name: n, Nr: nr}
		switch n {
		case "socket":
			s.Arg, s.Values = 0, socketFamilies
		case "clone":
			s.Arg, s.Values = 0, []uint32{goThreadFlags, goThreadFlags | unix.CLONE_SETTLS, glibcThreadFlags}
		case "clone3":
			s.Errno = unix.ENOSYS
		}
		out = append(out, s)
	}
	return out
}
