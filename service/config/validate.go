package config

import (
	"errors"
	"fmt"
	"io/fs"
	"math"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// Validate checks the configuration as a whole: ranges, settings that
// contradict each other, duplicates, files that must exist. Parse runs it;
// code that changes a Config (flags, D-Bus) runs it again. It returns nil or
// Errors.
func (c *Config) Validate() error {
	if es := c.validate(); len(es) > 0 {
		sortErrors(es)
		return es
	}
	return nil
}

type validator struct {
	c    *Config
	errs Errors
	// refIdx indexes the reference clocks (refclock.go).
	refIdx *refclockIndex
}

func (v *validator) errorf(key, format string, args ...any) {
	v.errs = append(v.errs, &Error{File: v.c.Path, Line: lineOf(v.c.lines, key), Key: key, Msg: fmt.Sprintf(format, args...)})
}

// secs renders a duration as the seconds the file uses.
func secs(d time.Duration) string { return formatFloat(d.Seconds()) }

func (c *Config) validate() Errors {
	v := &validator{c: c}
	v.clock(&c.Clock)
	v.synchronization(&c.Synchronization)
	v.pollLimits("source-defaults.poll-interval-limits", c.SourceDefaults.PollIntervalLimits, nil)
	seen := map[string]string{}
	ptpSeen := map[string]string{}
	for i := range c.Sources {
		if c.Sources[i].Mode == SourcePTP {
			v.ptpSource(indexKey("source", i), &c.Sources[i], ptpSeen)
			continue
		}
		if c.Sources[i].Mode == SourceCSPTP {
			v.csptpSource(indexKey("source", i), &c.Sources[i])
			continue
		}
		v.source(indexKey("source", i), &c.Sources[i], seen)
	}
	v.ptpPorts(c, ptpSeen)
	v.csptpServers(c)
	listens := map[netip.AddrPort]string{}
	for i := range c.Servers {
		v.server(indexKey("server", i), &c.Servers[i], listens)
	}
	listens = map[netip.AddrPort]string{} // TCP: may share an address with a UDP server
	for i := range c.NTSKEServers {
		v.ntsKEServer(indexKey("nts-ke-server", i), &c.NTSKEServers[i], listens)
	}
	if u := c.Security.User; strings.ContainsAny(u, ":/\x00 \t\n") {
		v.errorf("security.user", "%q is not a user name", u)
	}
	v.auth()
	v.leapFile()
	v.dhcp()
	v.enum("log.level", c.Log.Level.MarshalText)
	v.enum("log.format", c.Log.Format.MarshalText)
	return v.errs
}

func (v *validator) enum(key string, marshal func() ([]byte, error)) {
	if _, err := marshal(); err != nil {
		v.errorf(key, "%s", err.Error())
	}
}

func (v *validator) clock(c *ClockConfig) {
	v.enum("clock.mode", c.Mode.MarshalText)
	if c.StepThreshold < 0 {
		v.errorf("clock.step-threshold", "must not be negative (got %s)", secs(c.StepThreshold))
	}
	if c.StepLimit < -1 {
		v.errorf("clock.step-limit", "must be -1 (always) or at least 0 (got %d)", c.StepLimit)
	}
	switch {
	case c.PanicThreshold < 0:
		v.errorf("clock.panic-threshold", "must not be negative (got %s; 0 means no limit)", secs(c.PanicThreshold))
	case c.PanicThreshold > 0 && c.StepThreshold >= 0 && c.PanicThreshold < c.StepThreshold:
		v.errorf("clock.panic-threshold", "%s s is below step-threshold (%s s); want 0 (no limit) or at least step-threshold",
			secs(c.PanicThreshold), secs(c.StepThreshold))
	}
	if c.DriftFile != "" {
		v.absPath("clock.drift-file", c.DriftFile)
	}
	if f := c.MaxFrequencyPPM; math.IsNaN(f) || f < 1 || f > 500 {
		v.errorf("clock.max-frequency", "must be between 1 and 500 ppm (got %s)", formatFloat(f))
	}
}

func (v *validator) synchronization(s *SyncConfig) {
	if s.MinimumAgreeingSources < 1 {
		v.errorf("synchronization.minimum-agreeing-sources", "must be at least 1 (got %d)", s.MinimumAgreeingSources)
	}
	if s.MaxDistance <= 0 {
		v.errorf("synchronization.max-distance", "must be more than 0 (got %s)", secs(s.MaxDistance))
	}
	if s.Accuracy < time.Microsecond || s.Accuracy > 10*time.Second {
		v.errorf("synchronization.accuracy", "must be between 0.000001 and 10 s (got %s)", secs(s.Accuracy))
	}
	if s.LocalStratum < 1 || s.LocalStratum > 16 {
		v.errorf("synchronization.local-stratum", "must be between 1 and 16 (got %d)", s.LocalStratum)
	}
}

// pollLimits checks limits at key. A value inherited from an invalid
// [source-defaults] is not reported again for every source.
func (v *validator) pollLimits(key string, p PollIntervalLimits, inherited *PollIntervalLimits) {
	inRange := func(n int) bool { return n >= MinPollLimit && n <= MaxPollLimit }
	for _, f := range []struct {
		name      string
		val, from int
	}{{"min", p.Min, 0}, {"max", p.Max, 0}} {
		if inherited != nil {
			f.from = map[string]int{"min": inherited.Min, "max": inherited.Max}[f.name]
			if f.val == f.from && !inRange(f.from) {
				continue
			}
		}
		if !inRange(f.val) {
			v.errorf(key+"."+f.name, "must be between %d and %d (log2 seconds; got %d)", MinPollLimit, MaxPollLimit, f.val)
		}
	}
	if inherited != nil && p == *inherited {
		return // as in [source-defaults], checked there
	}
	if inRange(p.Min) && inRange(p.Max) && p.Min > p.Max {
		v.errorf(key, "min (%d) is larger than max (%d)", p.Min, p.Max)
	}
}

func (v *validator) source(key string, s *SourceConfig, seen map[string]string) {
	if s.Mode.IsRefclock() || s.Refclock != nil {
		v.refclock(key, s)
		return
	}
	modeOK := true
	if s.Mode == "" {
		v.errorf(key+".mode", "missing (want %s)", alternatives(sourceModes))
		modeOK = false
	} else if _, err := s.Mode.MarshalText(); err != nil {
		v.errorf(key+".mode", "%s", err.Error())
		modeOK = false
	}
	if s.Address == "" {
		v.errorf(key+".address", "missing (want host[:port])")
	} else if norm, err := normalizeSourceAddress(s.Address, 0); err != nil || norm != s.Address {
		// Parse normalizes; a Config built by code must do the same.
		v.errorf(key+".address", "%q is not host:port (see ParseSourceAddress)", s.Address)
	} else {
		id := strings.ToLower(s.Address)
		if prev, dup := seen[id]; dup {
			v.errorf(key+".address", "%s is the same address as %s", s.Address, prev)
		} else {
			seen[id] = key
		}
	}
	v.pollLimits(key+".poll-interval-limits", s.PollIntervalLimits, &v.c.SourceDefaults.PollIntervalLimits)
	if !modeOK {
		return
	}
	if s.Mode == SourcePool {
		if s.Count < 1 || s.Count > 16 {
			v.errorf(key+".count", "must be between 1 and 16 (got %d)", s.Count)
		}
	} else if s.Count != 0 {
		v.errorf(key+".count", "only allowed with mode = %q", SourcePool)
	}
	if s.CertificateAuthority != "" {
		if s.Mode != SourceNTS {
			v.errorf(key+".certificate-authority", "only allowed with mode = %q", SourceNTS)
		} else {
			n := len(v.errs)
			v.existingFile(key+".certificate-authority", s.CertificateAuthority)
			if len(v.errs) == n {
				v.caFile(key+".certificate-authority", s.CertificateAuthority)
			}
		}
	}
}

func (v *validator) server(key string, s *ServerConfig, listens map[netip.AddrPort]string) {
	v.listen(key+".listen", s.Listen, listens)
	if s.Allowlist != nil {
		if len(s.Allowlist.Filter) == 0 {
			v.errorf(key+".allowlist.filter", "an empty allowlist refuses every client; list prefixes, or remove allowlist to serve everyone")
		}
		v.filter(key+".allowlist", s.Allowlist)
	}
	if s.Denylist != nil {
		v.filter(key+".denylist", s.Denylist)
	}
	r := s.RateLimit
	rk := key + ".rate-limit"
	if r.Interval < 0 || r.Interval > 4096*time.Second {
		v.errorf(rk+".interval", "must be between 0 (off) and 4096 s (got %s)", secs(r.Interval))
	}
	// Burst and table size may be left 0 while rate limiting is off.
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

func (v *validator) filter(key string, f *AddressFilter) {
	for i, p := range f.Filter {
		if !p.IsValid() {
			v.errorf(indexKey(key+".filter", i), "not a valid prefix")
		}
	}
	v.enum(key+".action", f.Action.MarshalText)
}

func (v *validator) listen(key string, ap netip.AddrPort, seen map[netip.AddrPort]string) {
	switch {
	case !ap.IsValid():
		v.errorf(key, "missing (want address:port, like \"[::]:123\")")
	case ap.Port() == 0:
		v.errorf(key, "port 0 is out of range (want 1 to 65535)")
	default:
		id := netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())
		if prev, dup := seen[id]; dup {
			v.errorf(key, "%s is already used by %s", ap, prev)
		} else {
			seen[id] = parentKey(key)
		}
	}
}

func (v *validator) ntsKEServer(key string, s *NTSKEServerConfig, listens map[netip.AddrPort]string) {
	v.listen(key+".listen", s.Listen, listens)
	ok := true
	for _, f := range []struct{ name, path string }{
		{"certificate-chain-path", s.CertificateChainPath},
		{"private-key-path", s.PrivateKeyPath},
	} {
		n := len(v.errs)
		if f.path == "" {
			v.errorf(key+"."+f.name, "missing")
		} else {
			v.existingFile(key+"."+f.name, f.path)
		}
		ok = ok && len(v.errs) == n
	}
	if ok {
		// Load them as gnomond will.
		v.keyPair(key, s)
	}
	if s.MaxConnectionsPerAddress < 0 || s.MaxConnectionsPerAddress > 1<<16 {
		v.errorf(key+".max-connections-per-address", "must be between 0 (no limit) and 65536 (got %d)", s.MaxConnectionsPerAddress)
	}
	if r := s.ConnectionRatePerAddress; r < 0 || r > 1e6 || math.IsNaN(r) {
		v.errorf(key+".connection-rate-per-address", "must be between 0 (no limit) and 1000000 per second (got %s)", formatFloat(r))
	}
	if s.KeyExchangeTimeout <= 0 || s.KeyExchangeTimeout > time.Hour {
		v.errorf(key+".key-exchange-timeout", "must be more than 0 and at most 3600 s (got %s)", secs(s.KeyExchangeTimeout))
	}
}

func (v *validator) absPath(key, p string) bool {
	switch {
	case strings.IndexByte(p, 0) >= 0:
		v.errorf(key, "contains a NUL byte")
	case !filepath.IsAbs(p):
		v.errorf(key, "%q is not an absolute path", p)
	default:
		return true
	}
	return false
}

// existingFile checks that p is an absolute path to something that exists
// and is not a directory. Whether gnomond may read it is found out when it
// is opened.
func (v *validator) existingFile(key, p string) {
	if !v.absPath(key, p) {
		return
	}
	fi, err := os.Stat(p)
	var pe *fs.PathError
	switch {
	case errors.As(err, &pe):
		v.errorf(key, "%s: %v", p, pe.Err)
	case err != nil:
		v.errorf(key, "%s: %v", p, err)
	case fi.IsDir():
		v.errorf(key, "%s is a directory", p)
	}
}
