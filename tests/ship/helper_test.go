package ship

import (
	"slices"
	"strings"
	"testing"
)

// TestHelperUnits pins what docs/security.md promises of
// gnomon-timedate-helper: started by its socket, which only gnomon may
// use; root with CAP_SYS_TIME alone (for the RTC); writes to /etc only; no
// network, no sockets of its own, the RTC in an empty /dev; and it exits
// when idle.
func TestHelperUnits(t *testing.T) {
	sock := parseUnit(t, abs(t, "units/gnomon-timedate-helper.socket"))
	for _, w := range []struct{ key, val string }{
		{"ListenStream", "/run/gnomon/timedate-helper.sock"},
		{"SocketUser", "gnomon"},
		{"SocketMode", "0600"},
		{"Accept", "no"},
		{"Service", "gnomon-timedate-helper.service"},
	} {
		if got := sock["Socket"][w.key]; !slices.Equal(got, []string{w.val}) {
			t.Errorf("socket: %s=%v, want %s", w.key, got, w.val)
		}
	}
	if got := sock.words("Install", "WantedBy"); !slices.Equal(got, []string{"sockets.target"}) {
		t.Errorf("socket: WantedBy=%v", got)
	}
	svc := parseUnit(t, abs(t, "units/gnomon-timedate-helper.service"))
	exec := strings.Fields(svc.last("Service", "ExecStart"))
	if len(exec) == 0 || exec[0] != "/usr/lib/gnomon/gnomon-timedate-helper" {
		t.Errorf("ExecStart=%v", exec)
	}
	idle := false
	for _, a := range exec[1:] {
		if v, ok := strings.CutPrefix(a, "--idle-timeout="); ok && v != "0" && v != "0s" {
			idle = true
		}
	}
	if !idle {
		t.Errorf("ExecStart=%v: the helper must exit when idle (--idle-timeout=…)", exec)
	}
	for _, w := range []struct{ key, val string }{
		{"User", "root"},
		{"NoNewPrivileges", "yes"},
		{"ProtectSystem", "strict"},
		{"ReadWritePaths", "/etc"},
		{"PrivateNetwork", "yes"},
		{"PrivateDevices", "yes"},
		{"DevicePolicy", "closed"},
		{"RestrictAddressFamilies", "none"},
		{"ProtectHome", "yes"},
		{"PrivateTmp", "yes"},
		{"MemoryDenyWriteExecute", "yes"},
		{"SystemCallArchitectures", "native"},
		{"IPAddressDeny", "any"},
	} {
		if got := svc.last("Service", w.key); got != w.val {
			t.Errorf("[Service] %s=%q, want %q", w.key, got, w.val)
		}
	}
	if got := svc.words("Service", "CapabilityBoundingSet"); !slices.Equal(got, []string{"CAP_SYS_TIME"}) {
		t.Errorf("CapabilityBoundingSet=%v, want only CAP_SYS_TIME (RTC_SET_TIME)", got)
	}
	if got := svc.words("Service", "AmbientCapabilities"); len(got) != 0 {
		t.Errorf("AmbientCapabilities=%v, want none", got)
	}
	if got := svc.words("Service", "DeviceAllow"); !slices.Equal(got, []string{"char-rtc", "r"}) {
		t.Errorf("DeviceAllow=%v, want char-rtc r only", got)
	}
	filter := svc.words("Service", "SystemCallFilter")
	for _, deny := range []string{"~@resources", "@privileged", "@clock", "@mount", "@debug"} {
		if !slices.Contains(filter, deny) {
			t.Errorf("SystemCallFilter=%v: lacks %s", filter, deny)
		}
	}
}
