//go:build linux

package privdrop

import (
	"fmt"
	"strings"
)

// Cap is a Linux capability number (capabilities(7)).
type Cap uint8

// The capabilities, numbered as in linux/capability.h.
const (
	CapChown Cap = iota
	CapDacOverride
	CapDacReadSearch
	CapFowner
	CapFsetid
	CapKill
	CapSetgid
	CapSetuid
	CapSetpcap
	CapLinuxImmutable
	CapNetBindService
	CapNetBroadcast
	CapNetAdmin
	CapNetRaw
	CapIpcLock
	CapIpcOwner
	CapSysModule
	CapSysRawio
	CapSysChroot
	CapSysPtrace
	CapSysPacct
	CapSysAdmin
	CapSysBoot
	CapSysNice
	CapSysResource
	CapSysTime
	CapSysTtyConfig
	CapMknod
	CapLease
	CapAuditWrite
	CapAuditControl
	CapSetfcap
	CapMacOverride
	CapMacAdmin
	CapSyslog
	CapWakeAlarm
	CapBlockSuspend
	CapAuditRead
	CapPerfmon
	CapBpf
	CapCheckpointRestore
)

var capNames = [...]string{
	"CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_DAC_READ_SEARCH", "CAP_FOWNER", "CAP_FSETID",
	"CAP_KILL", "CAP_SETGID", "CAP_SETUID", "CAP_SETPCAP", "CAP_LINUX_IMMUTABLE",
	"CAP_NET_BIND_SERVICE", "CAP_NET_BROADCAST", "CAP_NET_ADMIN", "CAP_NET_RAW", "CAP_IPC_LOCK",
	"CAP_IPC_OWNER", "CAP_SYS_MODULE", "CAP_SYS_RAWIO", "CAP_SYS_CHROOT", "CAP_SYS_PTRACE",
	"CAP_SYS_PACCT", "CAP_SYS_ADMIN", "CAP_SYS_BOOT", "CAP_SYS_NICE", "CAP_SYS_RESOURCE",
	"CAP_SYS_TIME", "CAP_SYS_TTY_CONFIG", "CAP_MKNOD", "CAP_LEASE", "CAP_AUDIT_WRITE",
	"CAP_AUDIT_CONTROL", "CAP_SETFCAP", "CAP_MAC_OVERRIDE", "CAP_MAC_ADMIN", "CAP_SYSLOG",
	"CAP_WAKE_ALARM", "CAP_BLOCK_SUSPEND", "CAP_AUDIT_READ", "CAP_PERFMON", "CAP_BPF",
	"CAP_CHECKPOINT_RESTORE",
}

// String is the capability's name, e.g. CAP_SYS_TIME.
func (c Cap) String() string {
	if int(c) < len(capNames) {
		return capNames[c]
	}
	return fmt.Sprintf("CAP_%d", uint8(c))
}

// ParseCap parses a capability name, with or without the CAP_ prefix, in
// any case ("CAP_SYS_TIME", "sys_time").
func ParseCap(s string) (Cap, error) {
	u := strings.ToUpper(s)
	if !strings.HasPrefix(u, "CAP_") {
		u = "CAP_" + u
	}
	for i, n := range capNames {
		if n == u {
			return Cap(i), nil
		}
	}
	return 0, fmt.Errorf("privdrop: unknown capability %q", s)
}

// capMask is a set of capabilities as a bit mask.
type capMask uint64

func maskOf(caps []Cap) capMask {
	var m capMask
	for _, c := range caps {
		if c < 64 {
			m |= 1 << c
		}
	}
	return m
}

func (m capMask) caps() []Cap {
	var out []Cap
	for c := Cap(0); c < 64; c++ {
		if m&(1<<c) != 0 {
			out = append(out, c)
		}
	}
	return out
}
