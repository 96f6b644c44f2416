//go:build linux && !amd64 && !arm64

package seccomp

// Other architectures have no table here yet: Install returns
// ErrUnsupported and the daemon runs without its own filter (systemd's
// SystemCallFilter= still applies).
const (
	auditArch = 0
	bigEndian = false
)

var table = map[string]uint32{}

func defaultSyscalls() []Syscall { return nil }
