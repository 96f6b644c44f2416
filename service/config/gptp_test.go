package config

import (
	"strings"
	"testing"
	"time"
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
		`gnomon.toml:11: ptp-port[0].profile: unknown profile "802.1as" (want default, gptp or automotive)`,
	} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("missing %q in\n%v", want, err)
		}
	}
}

func TestAutomotiveProfile(t *testing.T) {
	c, err := Parse("/etc/gnomon/gnomon.toml", []byte(`
[[ptp-port]]
interface = "eth1"
profile = "automotive"
role = "grandmaster"

[[ptp-port]]
interface = "eth2"
profile = "automotive"
role = "slave"
`), Options{})
	if err != nil {
		t.Fatal(err)
	}
	if p := c.PTPPorts[0]; p.Role != "grandmaster" || p.Transport != "ethernet" || p.DelayMechanism != "p2p" || p.SyncInterval != -3 {
		t.Errorf("%+v", p)
	}
	_, err = Parse("/etc/gnomon/gnomon.toml", []byte(`
[[ptp-port]]
interface = "eth1"
profile = "automotive"

[[ptp-port]]
interface = "eth2"
role = "slave"

[[ptp-port]]
interface = "eth3"
profile = "automotive"
role = "boss"
`), Options{})
	for _, want := range []string{
		`ptp-port[0].role: missing: profile "automotive" has no BMCA`,
		`ptp-port[1].role: only with profile = "automotive"`,
		`gnomon.toml:13: ptp-port[2].role: unknown role "boss" (want grandmaster or slave)`,
	} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("missing %q in\n%v", want, err)
		}
	}
}

func TestNeighborPropDelayThresh(t *testing.T) {
	c, err := Parse("/etc/gnomon/gnomon.toml", []byte(`
[[source]]
mode = "ptp"
interface = "eth0"
profile = "gptp"
neighbor-prop-delay-thresh = 100e-6
`), Options{})
	if err != nil {
		t.Fatal(err)
	}
	if d := c.Sources[0].PTP.NeighborPropDelayThresh; d != 100*time.Microsecond {
		t.Errorf("neighbor-prop-delay-thresh %v", d)
	}
	_, err = Parse("/etc/gnomon/gnomon.toml", []byte(`
[[source]]
mode = "ptp"
interface = "eth0"
neighbor-prop-delay-thresh = 100e-6

[[ptp-port]]
interface = "eth1"
profile = "gptp"
neighbor-prop-delay-thresh = -1
`), Options{})
	for _, want := range []string{
		`source[0].neighbor-prop-delay-thresh: only with profile = "gptp" or "automotive"`,
		`ptp-port[0].neighbor-prop-delay-thresh: must be above 0 and at most 1 s`,
	} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("missing %q in\n%v", want, err)
		}
	}
}
