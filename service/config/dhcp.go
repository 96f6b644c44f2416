package config

// DHCPConfig is [dhcp]: NTP servers the network hands out, written by the
// dhclient exit hook and the NetworkManager dispatcher script that come
// with gnomon (one file per interface).
type DHCPConfig struct {
	// ServersDir holds one INTERFACE.servers file per link, one server a
	// line (host[:port]); "" for none. gnomond reads it at start and
	// whenever it changes: a link's servers are dropped with its file.
	ServersDir string
}

func (d *decoder) dhcp(t *table, c *DHCPConfig) {
	t.str("servers-dir", &c.ServersDir)
	t.finish()
}

func (v *validator) dhcp() {
	if p := v.c.DHCP.ServersDir; p != "" {
		v.absPath("dhcp.servers-dir", p)
	}
}
