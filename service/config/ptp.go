package config

import (
	"fmt"
	"time"
)

// SourcePTP is a [[source]] that follows a PTP master on an interface
// (slave only). Its settings are in SourceConfig.PTP.
const SourcePTP SourceMode = "ptp"

// PTPCommon are the settings a PTP [[source]] and a [[ptp-port]] share.
type PTPCommon struct {
	// Interface is the network interface, e.g. "eth0" (required).
	Interface string
	// Domain is the PTP domain number, 0..127 (default 0).
	Domain int
	// Transport is "udp4" (default), "udp6" or "ethernet" (needs
	// CAP_NET_RAW).
	Transport string
	// DelayMechanism is "e2e" (default) or "p2p".
	DelayMechanism string
	// Timestamping is "auto" (default: hardware when the interface has a
	// PHC), "hardware" or "software".
	Timestamping string
	// Asymmetry is 1588's delayAsymmetry: how much longer the path from
	// the master is than the mean path delay, in seconds (default 0).
	Asymmetry time.Duration
	// ManagementSocket is a local datagram socket where linuxptp's pmc
	// may ask for the datasets (pmc -u -s PATH); "" for none.
	ManagementSocket string
	// Profile is "default" (1588's default profile of the delay
	// mechanism) or "gptp" (802.1AS: Ethernet, P2P; gptp.go).
	Profile string
	// NeighborPropDelayThresh is 802.1AS's limit on the link delay
	// (gptp.go; 0: the profile's 800 ns).
	NeighborPropDelayThresh time.Duration
}

// PTPPortConfig is one [[ptp-port]]: a port that takes part in the BMCA
// and may become master (or slave, when a better master is heard).
type PTPPortConfig struct {
	PTPCommon
	// Priority1 and Priority2, 0..255 (default 128; lower wins).
	Priority1, Priority2 int
	// ClockClass (default 248), ClockAccuracy (default 0xfe, unknown).
	ClockClass, ClockAccuracy int
	// Message intervals, log2 seconds (-7..7): Announce (default 1),
	// Sync (0), minimum Delay_Req and Pdelay_Req (0).
	AnnounceInterval, SyncInterval, DelayRequestInterval int
	// AnnounceReceiptTimeout in announce intervals, 2..255 (default 3).
	AnnounceReceiptTimeout int
	// MasterOnly never becomes slave or passive.
	MasterOnly bool
	// OneStep sends one-step Sync (needs hardware that inserts the
	// timestamp); two-step is the default.
	OneStep bool
	// Role is the automotive profile's static role: "grandmaster" or
	// "slave" (gptp.go).
	Role string
	// PHCFollow: with hardware timestamping, the port's PHC follows the
	// system clock while the port is not a slave (default true;
	// phc2sys -s CLOCK_REALTIME in one process).
	PHCFollow bool
	// PHCStepThreshold: a difference between the PHC and the system
	// clock above it is stepped out (default 1 ms; 0: only the first).
	PHCStepThreshold time.Duration
}

var (
	ptpTransports    = []string{"udp4", "udp6", "ethernet"}
	ptpDelays        = []string{"e2e", "p2p"}
	ptpTimestampings = []string{"auto", "hardware", "software"}
)

func defaultPTPCommon() PTPCommon {
	return PTPCommon{Transport: "udp4", DelayMechanism: "e2e", Timestamping: "auto", Profile: "default"}
}

// ptpCommon reads the shared keys.
func (d *decoder) ptpCommon(t *table, c *PTPCommon) {
	t.str("interface", &c.Interface)
	t.integer("domain", &c.Domain)
	for _, e := range []struct {
		key  string
		dst  *string
		want []string
	}{{"transport", &c.Transport, ptpTransports}, {"delay-mechanism", &c.DelayMechanism, ptpDelays},
		{"timestamping", &c.Timestamping, ptpTimestampings}} {
		var s string
		if t.str(e.key, &s) {
			v, err := parseEnum(e.key, s, e.want)
			if err != nil {
				d.errorf(t.key(e.key), "%s", err.Error())
				continue
			}
			*e.dst = v
		}
	}
	t.seconds("asymmetry", &c.Asymmetry)
	t.str("management-socket", &c.ManagementSocket)
	d.ptpProfile(t, c) // gptp.go
}

// ptpSource decodes the rest of a [[source]] whose mode is "ptp".
func (d *decoder) ptpSource(t *table) *PTPCommon {
	c := defaultPTPCommon()
	if _, ok := t.m["address"]; ok {
		t.get("address")
		d.errorf(t.key("address"), "not used with mode = %q: a PTP source is an interface (set interface)", SourcePTP)
	}
	d.ptpCommon(t, &c)
	t.finish()
	return &c
}

// ptpPort decodes one [[ptp-port]].
func (d *decoder) ptpPort(t *table) PTPPortConfig {
	p := PTPPortConfig{PTPCommon: defaultPTPCommon(), Priority1: 128, Priority2: 128, ClockClass: 248,
		ClockAccuracy: 0xfe, AnnounceInterval: 1, AnnounceReceiptTimeout: 3, PHCFollow: true, PHCStepThreshold: time.Millisecond}
	d.ptpCommon(t, &p.PTPCommon)
	t.integer("priority1", &p.Priority1)
	t.integer("priority2", &p.Priority2)
	t.integer("clock-class", &p.ClockClass)
	t.integer("clock-accuracy", &p.ClockAccuracy)
	t.integer("announce-interval", &p.AnnounceInterval)
	t.integer("sync-interval", &p.SyncInterval)
	t.integer("delay-request-interval", &p.DelayRequestInterval)
	t.integer("announce-receipt-timeout", &p.AnnounceReceiptTimeout)
	t.boolean("master-only", &p.MasterOnly)
	t.boolean("one-step", &p.OneStep)
	t.boolean("phc-follow", &p.PHCFollow)
	t.seconds("phc-step-threshold", &p.PHCStepThreshold)
	d.gptpPortDefaults(t, &p) // gptp.go
	t.finish()
	return p
}

// decodePTPPorts reads every [[ptp-port]].
func (d *decoder) decodePTPPorts(t *table, c *Config) {
	for _, pt := range t.tables("ptp-port") {
		var p PTPPortConfig
		if pt != nil {
			p = d.ptpPort(pt)
		}
		c.PTPPorts = append(c.PTPPorts, p)
	}
}

func (v *validator) ptpCommon(key string, c *PTPCommon, seen map[string]string) {
	switch {
	case c.Interface == "":
		v.errorf(key+".interface", "missing (want the network interface, e.g. \"eth0\")")
	case len(c.Interface) > 15:
		v.errorf(key+".interface", "%q is longer than an interface name can be (15)", c.Interface)
	default:
		id := fmt.Sprintf("%s/%d", c.Interface, c.Domain)
		if prev, dup := seen[id]; dup {
			v.errorf(key+".interface", "%s domain %d is already used by %s", c.Interface, c.Domain, prev)
		} else {
			seen[id] = key
		}
	}
	if c.Domain < 0 || c.Domain > 127 {
		v.errorf(key+".domain", "must be between 0 and 127 (got %d)", c.Domain)
	}
	if c.ManagementSocket != "" {
		v.absPath(key+".management-socket", c.ManagementSocket)
	}
	if c.Asymmetry < -time.Second || c.Asymmetry > time.Second {
		v.errorf(key+".asymmetry", "must be within ±1 s (got %s)", secs(c.Asymmetry))
	}
	v.gptpValidate(key, c) // gptp.go
}

// ptpSource validates a [[source]] with mode = "ptp".
func (v *validator) ptpSource(key string, s *SourceConfig, seen map[string]string) {
	if s.PTP == nil {
		v.errorf(key+".interface", "missing (want the network interface, e.g. \"eth0\")")
		return
	}
	v.ptpCommon(key, s.PTP, seen)
}

func (v *validator) ptpPorts(c *Config, seen map[string]string) {
	for i := range c.PTPPorts {
		p := &c.PTPPorts[i]
		key := indexKey("ptp-port", i)
		v.ptpCommon(key, &p.PTPCommon, seen)
		v.roleValidate(key, p) // gptp.go
		for _, f := range []struct {
			name string
			val  int
		}{{"priority1", p.Priority1}, {"priority2", p.Priority2}, {"clock-class", p.ClockClass}, {"clock-accuracy", p.ClockAccuracy}} {
			if f.val < 0 || f.val > 255 {
				v.errorf(key+"."+f.name, "must be between 0 and 255 (got %d)", f.val)
			}
		}
		if p.ClockClass == 255 {
			v.errorf(key+".clock-class", "255 is slave-only: use a [[source]] with mode = \"ptp\" instead")
		}
		for _, f := range []struct {
			name string
			val  int
		}{{"announce-interval", p.AnnounceInterval}, {"sync-interval", p.SyncInterval}, {"delay-request-interval", p.DelayRequestInterval}} {
			if f.val < -7 || f.val > 7 {
				v.errorf(key+"."+f.name, "must be between -7 and 7 (log2 seconds; got %d)", f.val)
			}
		}
		if p.PHCStepThreshold < 0 || p.PHCStepThreshold > 10*time.Second {
			v.errorf(key+".phc-step-threshold", "must be between 0 and 10 s (got %s)", secs(p.PHCStepThreshold))
		}
		if p.AnnounceReceiptTimeout < 2 || p.AnnounceReceiptTimeout > 255 {
			v.errorf(key+".announce-receipt-timeout", "must be between 2 and 255 announce intervals (got %d)", p.AnnounceReceiptTimeout)
		}
	}
}

// NeedsRawSockets says whether any PTP port uses the Ethernet transport
// (AF_PACKET, which needs CAP_NET_RAW).
func (c *Config) NeedsRawSockets() bool {
	for _, s := range c.Sources {
		if s.Mode == SourcePTP && s.PTP != nil && s.PTP.Transport == "ethernet" {
			return true
		}
	}
	for _, p := range c.PTPPorts {
		if p.Transport == "ethernet" {
			return true
		}
	}
	return false
}

// ptpOnly: every source is PTP (Check's NTP source-count warnings do not
// apply to them).
func (c *Config) ptpOnly() bool {
	n := 0
	for _, s := range c.Sources {
		if s.Mode.NotNTP() {
			n++
		}
	}
	return n == len(c.Sources)
}
