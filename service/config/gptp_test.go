package config

import (
	"strings"
	"testing"
)

func TestGPTPProfile(t *testing.T) {
	c, err := Parse("/etc/gnomon/gnomon.toml", []byte(`
[[source]]
mode = "ptp"
interface = "eth0"
profile = "gptp"

[[ptp-port]]
interface = "eth1"
profile = "gptp"
announce-interval = 1
`), Options{})
	if err != nil {
		t.Fatal(err)
	}
	s, p := c.Sources[0].PTP, c.PTPPorts[0]
	if s.Profile != "gptp" || s.Transport != "ethernet" || s.DelayMechanism != "p2p" {
		t.Errorf("source %+v", s)
	}
	if p.Profile != "gptp" || p.Transport != "ethernet" || p.SyncInterval != -3 || p.AnnounceInterval != 1 {
		t.Errorf("port %+v", p)
	}
	_, err = Parse("/etc/gnomon/gnomon.toml", []byte(`
[[source]]
mode = "ptp"
interface = "eth0"
profile = "gptp"
transport = "udp4"
delay-mechanism = "e2e"

[[ptp-port]]
interface = "eth1"
profile = "802.1as"
`), Options{})
	for _, want := range []string{
		`gnomon.toml:6: source[0].transport: profile "gptp" (802.1AS) runs over Ethernet only (got "udp4")`,
		`gnomon.toml:7: source[0].delay-mechanism: profile "gptp" (802.1AS) uses the peer delay mechanism`,
		`gnomon.toml:11: ptp-port[0].profile: unknown profile "802.1as" (want default or gptp)`,
	} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("missing %q in\n%v", want, err)
		}
	}
}
