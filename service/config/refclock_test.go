package config

import (
	"strings"
	"testing"
	"time"
)

func TestRefclockParse(t *testing.T) {
	c, err := Parse("r.toml", []byte(`
[[source]]
mode = "gpsd"

[[source]]
mode = "gpsd"
address = "/run/gpsd.sock"
device = "/dev/ttyUSB0"
refid = "NMEA"
offset = 0.12
delay = 0.2
poll = 2
filter = 8
noselect = true

[[source]]
mode = "pps"
device = "/dev/pps0"
lock = "NMEA"
edge = "clear"
prefer = true
trust = true

[[source]]
mode = "shm"
unit = 1

[[source]]
mode = "sock"
path = "/run/chrony.ttyS0.sock"
`), Options{})
	if err != nil {
		t.Fatal(err)
	}
	g := c.Sources[0]
	if g.Mode != SourceGPSD || g.Address != DefaultGPSDAddress || g.Refclock.RefID != "GPS" || g.Refclock.Poll != 4 || g.Refclock.Precision != time.Millisecond {
		t.Errorf("gpsd defaults %+v %+v", g, g.Refclock)
	}
	n := c.Sources[1]
	if n.Address != "/run/gpsd.sock" || n.Refclock.Device != "/dev/ttyUSB0" || n.Refclock.Offset != 120*time.Millisecond ||
		n.Refclock.Delay != 200*time.Millisecond || n.Refclock.Poll != 2 || n.Refclock.Filter != 8 || !n.NoSelect {
		t.Errorf("gpsd %+v %+v", n, n.Refclock)
	}
	p := c.Sources[2]
	if p.Refclock.Device != "/dev/pps0" || p.Refclock.Lock != "NMEA" || p.Refclock.Edge != EdgeClear || !p.Prefer || !p.Trust || p.Refclock.RefID != "PPS" {
		t.Errorf("pps %+v", p.Refclock)
	}
	if s := c.Sources[3]; s.Refclock.Unit != 1 || s.Refclock.RefID != "SHM1" || s.Refclock.Endpoint(s.Mode, s.Address) != "NTP1" {
		t.Errorf("shm %+v", s.Refclock)
	}
	if s := c.Sources[4]; s.Refclock.Path != "/run/chrony.ttyS0.sock" || s.Refclock.RefID != "SOCK" {
		t.Errorf("sock %+v", s.Refclock)
	}
}

func TestRefclockErrors(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"[[source]]\nmode = \"pps\"\n", "r.toml:1: source[0].device: missing"},
		{"[[source]]\nmode = \"shm\"\nunit = 300\n", "r.toml:3: source[0].unit: must be between 0 and 255"},
		{"[[source]]\nmode = \"sock\"\npath = \"rel.sock\"\n", "r.toml:3: source[0].path:"},
		{"[[source]]\nmode = \"shm\"\npath = \"/x\"\n", `r.toml:3: source[0].path: only allowed with mode = "sock"`},
		{"[[source]]\nmode = \"gpsd\"\nunit = 1\n", `r.toml:3: source[0].unit: only allowed with mode = "shm"`},
		{"[[source]]\nmode = \"gpsd\"\npoll = 11\n", "r.toml:3: source[0].poll: must be between 0 and 10"},
		{"[[source]]\nmode = \"gpsd\"\nrefid = \"TOOLONG\"\n", "r.toml:3: source[0].refid:"},
		{"[[source]]\nmode = \"pps\"\ndevice = \"/dev/pps0\"\nlock = \"GPS\"\n", `r.toml:4: source[0].lock: "GPS" is not the refid of another reference clock`},
		{"[[source]]\nmode = \"pps\"\ndevice = \"/dev/pps0\"\nedge = \"rising\"\n", "r.toml:4: source[0].edge:"},
		{"[[source]]\nmode = \"shm\"\n[[source]]\nmode = \"shm\"\n", `r.toml:3: source[1].refid: "SHM0" is also the refid of source[0]`},
		{"[[source]]\nmode = \"gpsd\"\naddress = \"host:99999\"\n", "r.toml:3: source[0].address:"},
		{"[[source]]\nmode = \"gpsd\"\niburst = true\n", "r.toml:3: source[0].iburst: unknown key"},
		{"[[source]]\nmode = \"gpsd\"\ndelay = -1\n", "r.toml:3: source[0].delay: must not be negative"},
		{"[[source]]\nmode = \"server\"\naddress = \"a\"\nunit = 1\n", "r.toml:4: source[0].unit: unknown key"},
	} {
		_, err := Parse("r.toml", []byte(tc.in), Options{})
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q: %v\nwant %q", tc.in, err, tc.want)
		}
	}
}
