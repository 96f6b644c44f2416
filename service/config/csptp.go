package config

import (
	"net/netip"
	"time"
)

// SourceCSPTP is a [[source]] that asks one client-server PTP server
// (IEEE P1588.1 draft, or Meta's SPTP) for the time. Its settings are in
// SourceConfig.CSPTP.
const SourceCSPTP SourceMode = "csptp"

// CSPTPPort is the PTP event port, where CSPTP servers listen.
const CSPTPPort = 319

// CSPTPSourceConfig is what a mode = "csptp" [[source]] adds.
type CSPTPSourceConfig struct {
	// Variant is the message layout: "1588.1" (default) or "sptp".
	Variant string
	// Domain is the PTP domain, 0..255 (default 0).
	Domain int
	// Interval between requests, 1/128 s .. 64 s (default 1 s).
	Interval time.Duration
}

// CSPTPServerConfig is one [[csptp-server]]: a client-server PTP server
// answering both layouts on one address.
type CSPTPServerConfig struct {
	Listen    netip.AddrPort // default port 319
	Domain    int
	Priority1 int // default 128
	Priority2 int // default 128
	// ClockClass (default 248) and ClockAccuracy (default 0xfe): what the
	// server claims; SPTP clients accept class 6/7 servers only by default.
	ClockClass, ClockAccuracy int
	// UTCOffset is TAI−UTC in seconds (default 37); PTPTimescale (default
	// true, as ptp4u) sends TAI.
	UTCOffset    int
	PTPTimescale bool
	RateLimit    RateLimit
	Workers      int // SO_REUSEPORT sockets (0: one per CPU)
}

var csptpVariants = []string{"1588.1", "sptp"}

// NotNTP says the source is run by its own port code (PTP, CSPTP), not by
// the NTP source machinery.
func (m SourceMode) NotNTP() bool { return m == SourcePTP || m == SourceCSPTP }

func (d *decoder) csptpSource(t *table, s *SourceConfig) {
	c := &CSPTPSourceConfig{Variant: "1588.1", Interval: time.Second}
	var addr string
	if t.str("address", &addr) {
		if norm, err := normalizeSourceAddress(addr, CSPTPPort); err != nil {
			d.errorf(t.key("address"), "%s", err.Error())
		} else {
			s.Address = norm
		}
	}
	var v string
	if t.str("variant", &v) {
		if e, err := parseEnum("variant", v, csptpVariants); err != nil {
			d.errorf(t.key("variant"), "%s", err.Error())
		} else {
			c.Variant = e
		}
	}
	t.integer("domain", &c.Domain)
	t.seconds("interval", &c.Interval)
	t.boolean("prefer", &s.Prefer)
	t.boolean("noselect", &s.NoSelect)
	t.finish()
	s.CSPTP = c
}

func (d *decoder) decodeCSPTPServers(t *table, c *Config) {
	for _, st := range t.tables("csptp-server") {
		s := CSPTPServerConfig{Priority1: 128, Priority2: 128, ClockClass: 248, ClockAccuracy: 0xfe, UTCOffset: 37,
			PTPTimescale: true, RateLimit: defaultRateLimit}
		s.RateLimit.KoD = false
		if st != nil {
			var listen string
			if st.str("listen", &listen) {
				if ap, err := parseCSPTPListen(listen); err != nil {
					d.errorf(st.key("listen"), "%s", err.Error())
				} else {
					s.Listen = ap
				}
			}
			st.integer("domain", &s.Domain)
			st.integer("priority1", &s.Priority1)
			st.integer("priority2", &s.Priority2)
			st.integer("clock-class", &s.ClockClass)
			st.integer("clock-accuracy", &s.ClockAccuracy)
			st.integer("utc-offset", &s.UTCOffset)
			st.boolean("ptp-timescale", &s.PTPTimescale)
			if rt := st.sub("rate-limit"); rt != nil {
				rt.seconds("interval", &s.RateLimit.Interval)
				rt.integer("burst", &s.RateLimit.Burst)
				rt.integer("table-size", &s.RateLimit.TableSize)
				rt.finish()
			}
			st.integer("workers", &s.Workers)
			st.finish()
		}
		c.CSPTPServers = append(c.CSPTPServers, s)
	}
}

// parseCSPTPListen takes "address:port" or a bare address (port 319).
func parseCSPTPListen(s string) (netip.AddrPort, error) {
	if a, err := netip.ParseAddr(s); err == nil && a.Zone() == "" {
		return netip.AddrPortFrom(a, CSPTPPort), nil
	}
	return parseListen(s)
}

func (v *validator) csptpSource(key string, s *SourceConfig) {
	c := s.CSPTP
	if c == nil {
		return
	}
	if s.Address == "" {
		v.errorf(key+".address", "missing (want the CSPTP server, host[:port], port 319 by default)")
	}
	if c.Domain < 0 || c.Domain > 255 {
		v.errorf(key+".domain", "must be between 0 and 255 (got %d)", c.Domain)
	}
	if c.Interval < time.Second/128 || c.Interval > 64*time.Second {
		v.errorf(key+".interval", "must be between 1/128 s and 64 s (got %s)", secs(c.Interval))
	}
}

func (v *validator) csptpServers(c *Config) {
	listens := map[netip.AddrPort]string{}
	for i := range c.CSPTPServers {
		s := &c.CSPTPServers[i]
		key := indexKey("csptp-server", i)
		v.listen(key+".listen", s.Listen, listens)
		for _, f := range []struct {
			name string
			val  int
		}{{"domain", s.Domain}, {"priority1", s.Priority1}, {"priority2", s.Priority2}, {"clock-class", s.ClockClass}, {"clock-accuracy", s.ClockAccuracy}} {
			if f.val < 0 || f.val > 255 {
				v.errorf(key+"."+f.name, "must be between 0 and 255 (got %d)", f.val)
			}
		}
		if s.UTCOffset < 0 || s.UTCOffset > 1000 {
			v.errorf(key+".utc-offset", "must be between 0 and 1000 s (got %d)", s.UTCOffset)
		}
		r := s.RateLimit
		rk := key + ".rate-limit"
		if r.Interval < 0 || r.Interval > 4096*time.Second {
			v.errorf(rk+".interval", "must be between 0 (off) and 4096 s (got %s)", secs(r.Interval))
		}
		if r.Burst < 0 || r.Burst > 65535 || r.Interval > 0 && r.Burst < 1 {
			v.errorf(rk+".burst", "must be between 1 and 65535 (got %d)", r.Burst)
		}
		if r.TableSize < 0 || r.TableSize > 1<<24 || r.Interval > 0 && r.TableSize < 1 {
			v.errorf(rk+".table-size", "must be between 1 and %d (got %d)", 1<<24, r.TableSize)
		}
		if s.Workers < 0 || s.Workers > 1024 {
			v.errorf(key+".workers", "must be between 0 (one per CPU) and 1024 (got %d)", s.Workers)
		}
	}
}
