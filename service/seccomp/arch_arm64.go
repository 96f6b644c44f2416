//go:build linux

package seccomp

import "golang.org/x/sys/unix"

const (
	auditArch = unix.AUDIT_ARCH_AARCH64
	bigEndian = false
)

// archOnly: arm64 has the generic table only.
var archOnly = map[string]uint32{}

var archAllowed []string
