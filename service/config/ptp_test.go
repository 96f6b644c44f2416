package config

import (
	"strings"
	"testing"
	"time"
)

func TestPTPConfig(t *testing.T) {
	c, err := Parse("/etc/gnomon/gnomon.toml", []byte(`
[[source]]
mode = "server"
address = "127.0.0.1"

[[source]]
mode = "ptp"
interface = "eth0"
domain = 24
transport = "ethernet"
delay-mechanism = "p2p"
timestamping = "software"
asymmetry = 0.000001

[[ptp-port]]
interface = "eth1"
priority1 = 100
clock-class = 6
sync-interval = -3
master-only = true
`), Options{})
	if err != nil {
		t.Fatal(err)
	}
	p := c.Sources[1].PTP
	if c.Sources[1].Mode != SourcePTP || p == nil || p.Interface != "eth0" || p.Domain != 24 || p.Transport != "ethernet" ||
		p.DelayMechanism != "p2p" || p.Timestamping != "software" || p.Asymmetry != time.Microsecond {
		t.Errorf("source %+v %+v", c.Sources[1], p)
	}
	if len(c.PTPPorts) != 1 {
		t.Fatal(c.PTPPorts)
	}
	q := c.PTPPorts[0]
	if q.Interface != "eth1" || q.Priority1 != 100 || q.Priority2 != 128 || q.ClockClass != 6 || q.SyncInterval != -3 ||
		q.AnnounceInterval != 1 || q.AnnounceReceiptTimeout != 3 || !q.MasterOnly || q.Transport != "udp4" || q.Timestamping != "auto" {
		t.Errorf("port %+v", q)
	}
	if !c.NeedsRawSockets() {
		t.Error("ethernet transport needs raw sockets")
	}
}

func TestPTPConfigErrors(t *testing.T) {
	_, err := Parse("/etc/gnomon/gnomon.toml", []byte(`[[source]]
mode = "ptp"
address = "10.0.0.1"
domain = 300
transport = "udp5"

[[source]]
mode = "ptp"
interface = "eth0"
delay-mechanism = "e2e"

[[ptp-port]]
interface = "eth0"
priority1 = 256
sync-interval = 9
announce-receipt-timeout = 1
clock-class = 255
colour = "blue"
`), Options{})
	if err == nil {
		t.Fatal("accepted")
	}
	want := []string{
		`/etc/gnomon/gnomon.toml:3: source[0].address: not used with mode = "ptp"`,
		`/etc/gnomon/gnomon.toml:5: source[0].transport: unknown transport "udp5" (want udp4, udp6 or ethernet)`,
		`/etc/gnomon/gnomon.toml:1: source[0].interface: missing`,
		`/etc/gnomon/gnomon.toml:4: source[0].domain: must be between 0 and 127 (got 300)`,
		`/etc/gnomon/gnomon.toml:13: ptp-port[0].interface: eth0 domain 0 is already used by source[1]`,
		`/etc/gnomon/gnomon.toml:14: ptp-port[0].priority1: must be between 0 and 255 (got 256)`,
		`/etc/gnomon/gnomon.toml:15: ptp-port[0].sync-interval: must be between -7 and 7`,
		`/etc/gnomon/gnomon.toml:16: ptp-port[0].announce-receipt-timeout: must be between 2 and 255`,
		`/etc/gnomon/gnomon.toml:17: ptp-port[0].clock-class: 255 is slave-only`,
		`/etc/gnomon/gnomon.toml:18: ptp-port[0].colour: unknown key`,
	}
	for _, w := range want {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("missing %q in\n%v", w, err)
		}
	}
}
