package dbus

import (
	"errors"
	"fmt"
	"syscall"

	godbus "github.com/godbus/dbus/v5"
)

// D-Bus error names gnomond replies with.
const (
	ErrInvalidArgs              = "org.freedesktop.DBus.Error.InvalidArgs"
	ErrAccessDenied             = "org.freedesktop.DBus.Error.AccessDenied"
	ErrNotSupported             = "org.freedesktop.DBus.Error.NotSupported"
	ErrFailed                   = "org.freedesktop.DBus.Error.Failed"
	ErrFileNotFound             = "org.freedesktop.DBus.Error.FileNotFound"
	ErrAutomaticTimeSyncEnabled = "org.freedesktop.timedate1.AutomaticTimeSyncEnabled"
	ErrNoNTPSupport             = "org.freedesktop.timedate1.NoNTPSupport"
	ErrNoSuchSource             = "org.gnomon.Gnomon1.Error.NoSuchSource"
	ErrGnomonFailed             = "org.gnomon.Gnomon1.Error.Failed"
)

func newError(name, format string, args ...any) *godbus.Error {
	return &godbus.Error{Name: name, Body: []any{fmt.Sprintf(format, args...)}}
}

func failed(err error) *godbus.Error { return newError(ErrFailed, "%v", err) }

// errnoNames maps errnos to sd-bus's D-Bus error names; any other errno
// becomes System.Error.<NAME>.
var errnoNames = map[syscall.Errno]string{
	syscall.EPERM:         ErrAccessDenied,
	syscall.EACCES:        ErrAccessDenied,
	syscall.EINVAL:        ErrInvalidArgs,
	syscall.ENOENT:        ErrFileNotFound,
	syscall.EEXIST:        "org.freedesktop.DBus.Error.FileExists",
	syscall.ENOMEM:        "org.freedesktop.DBus.Error.NoMemory",
	syscall.EIO:           "org.freedesktop.DBus.Error.IOError",
	syscall.ETIMEDOUT:     "org.freedesktop.DBus.Error.Timeout",
	syscall.EOPNOTSUPP:    ErrNotSupported,
	syscall.ENOBUFS:       "org.freedesktop.DBus.Error.LimitsExceeded",
	syscall.EBADMSG:       "org.freedesktop.DBus.Error.InconsistentMessage",
	syscall.ESRCH:         "org.freedesktop.DBus.Error.UnixProcessIdUnknown",
	syscall.EADDRINUSE:    "org.freedesktop.DBus.Error.AddressInUse",
	syscall.EADDRNOTAVAIL: "org.freedesktop.DBus.Error.BadAddress",
	syscall.ECONNRESET:    "org.freedesktop.DBus.Error.Disconnected",
	syscall.ECONNABORTED:  "org.freedesktop.DBus.Error.Disconnected",
	syscall.ENETRESET:     "org.freedesktop.DBus.Error.Disconnected",
}

// errnoSymbols names the errnos that fall through to System.Error.*.
var errnoSymbols = map[syscall.Errno]string{
	syscall.EROFS: "EROFS", syscall.EAGAIN: "EAGAIN", syscall.EBUSY: "EBUSY", syscall.ENOSPC: "ENOSPC",
	syscall.ENOTDIR: "ENOTDIR", syscall.EISDIR: "EISDIR", syscall.ELOOP: "ELOOP", syscall.EXDEV: "EXDEV",
	syscall.ENODEV: "ENODEV", syscall.ENXIO: "ENXIO", syscall.ENOTTY: "ENOTTY", syscall.EDQUOT: "EDQUOT",
	syscall.ENAMETOOLONG: "ENAMETOOLONG", syscall.EMFILE: "EMFILE", syscall.ENFILE: "ENFILE",
}

// ErrnoErrorName is sd-bus's D-Bus error name for errno.
func ErrnoErrorName(errno syscall.Errno) string {
	if n, ok := errnoNames[errno]; ok {
		return n
	}
	if s, ok := errnoSymbols[errno]; ok {
		return "System.Error." + s
	}
	return ErrFailed
}

// strerror is glibc's text for errno (Go's, which is the kernel's
// lower-cased, with a capital first letter).
func strerror(errno syscall.Errno) string {
	s := errno.Error()
	if s != "" && s[0] >= 'a' && s[0] <= 'z' {
		s = string(s[0]-'a'+'A') + s[1:]
	}
	return s
}

// errnoError formats "<prefix>: <strerror>" under the errno's name, or
// Failed when err carries no errno.
func errnoError(prefix string, err error) *godbus.Error {
	var errno syscall.Errno
	if errors.As(err, &errno) {
		return newError(ErrnoErrorName(errno), "%s: %s", prefix, strerror(errno))
	}
	return newError(ErrFailed, "%s: %v", prefix, err)
}

func toDBusError(err error) *godbus.Error {
	var de *godbus.Error
	if errors.As(err, &de) {
		return de
	}
	return errnoError("Failed", err)
}
