package dbus

// linkServers is timesync1's LinkNTPServers: the servers the network
// handed out, from a backend that knows them (the daemon's [dhcp]
// servers-dir; service/daemon/dhcp.go). Other backends have none.
func linkServers(b any) []string {
	if l, ok := b.(interface{ LinkServers() []string }); ok {
		return nonNil(l.LinkServers())
	}
	return []string{}
}
