package dbus

import "slices"

// linkServers is the part of timesync1's LinkNTPServers that DHCP handed
// out, from a backend that knows them (the daemon's [dhcp] servers-dir;
// service/daemon/dhcp.go); systemd-networkd's are the links watcher's.
// Other backends have none.
func linkServers(b any) []string {
	if l, ok := b.(interface{ DHCPServers() []string }); ok {
		return nonNil(l.DHCPServers())
	}
	return []string{}
}

// appendNew is a followed by the names of b it does not have yet.
func appendNew(a, b []string) []string {
	out := append([]string{}, a...)
	for _, n := range b {
		if !slices.Contains(out, n) {
			out = append(out, n)
		}
	}
	return out
}
