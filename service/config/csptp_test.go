package config

import (
	"net/netip"
	"strings"
	"testing"
	"time"
)

func TestCSPTPConfig(t *testing.T) {
	c, err := Parse("/etc/gnomon/gnomon.toml", []byte(`
[[source]]
mode = "csptp"
address = "192.0.2.1"

[[source]]
mode = "csptp"
address = "[2001:db8::1]:1319"
variant = "sptp"
domain = 4
interval = 0.25

[[csptp-server]]
listen = "0.0.0.0"
clock-class = 6
rate-limit = { interval = 0.5, burst = 4 }
workers = 2
`), Options{})
	if err != nil {
		t.Fatal(err)
	}
	s0, s1 := c.Sources[0], c.Sources[1]
	if s0.Mode != SourceCSPTP || s0.Address != "192.0.2.1:319" || s0.CSPTP.Variant != "1588.1" || s0.CSPTP.Interval != time.Second {
		t.Errorf("source 0: %+v %+v", s0, s0.CSPTP)
	}
	if s1.Address != "[2001:db8::1]:1319" || s1.CSPTP.Variant != "sptp" || s1.CSPTP.Domain != 4 || s1.CSPTP.Interval != 250*time.Millisecond {
		t.Errorf("source 1: %+v %+v", s1, s1.CSPTP)
	}
	srv := c.CSPTPServers[0]
	if srv.Listen != netip.MustParseAddrPort("0.0.0.0:319") || srv.ClockClass != 6 || srv.Priority1 != 128 || !srv.PTPTimescale ||
		srv.UTCOffset != 37 || srv.RateLimit.Interval != 500*time.Millisecond || srv.RateLimit.Burst != 4 || srv.Workers != 2 {
		t.Errorf("server %+v", srv)
	}
}

func TestCSPTPConfigErrors(t *testing.T) {
	_, err := Parse("/etc/gnomon/gnomon.toml", []byte(`
[[source]]
mode = "csptp"
variant = "ptp4u"
interval = 100
interface = "eth0"

[[csptp-server]]
listen = "nowhere"
clock-class = 300
rate-limit = { interval = -1 }
`), Options{})
	if err == nil {
		t.Fatal("accepted")
	}
	want := []string{
		`gnomon.toml:4: source[0].variant: unknown variant "ptp4u" (want 1588.1 or sptp)`,
		`gnomon.toml:6: source[0].interface: unknown key`,
		`gnomon.toml:9: csptp-server[0].listen: "nowhere": want address:port`,
	}
	for _, w := range want {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("missing %q in\n%v", w, err)
		}
	}
	_, err = Parse("/etc/gnomon/gnomon.toml", []byte(`
[[source]]
mode = "csptp"
interval = 100

[[csptp-server]]
listen = "127.0.0.1:1319"
clock-class = 300
rate-limit = { interval = -1 }
`), Options{})
	for _, w := range []string{`source[0].address: missing`, `source[0].interval: must be between 1/128 s and 64 s`,
		`csptp-server[0].clock-class: must be between 0 and 255 (got 300)`, `csptp-server[0].rate-limit.interval: must be between 0 (off)`} {
		if err == nil || !strings.Contains(err.Error(), w) {
			t.Errorf("missing %q in\n%v", w, err)
		}
	}
}
