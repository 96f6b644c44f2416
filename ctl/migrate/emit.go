package migrate

import (
	"bytes"
	"fmt"
	"math"
	"net"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"

	"gnomon.dev/gnomon/service/config"
)

// tomlWriter writes gnomon.toml text: tables, keys, and comments naming
// the chrony.conf line each setting came from.
type tomlWriter struct {
	b     bytes.Buffer
	table string
}

func (w *tomlWriter) header(h string) {
	if w.b.Len() > 0 {
		w.b.WriteByte('\n')
	}
	w.b.WriteString(h)
	w.b.WriteByte('\n')
	w.table = h
}

func (w *tomlWriter) comment(format string, args ...any) {
	for _, l := range strings.Split(fmt.Sprintf(format, args...), "\n") {
		w.b.WriteString(strings.TrimRight("# "+sanitizeComment(l), " "))
		w.b.WriteByte('\n')
	}
}

func (w *tomlWriter) from(o origin) { w.comment("chrony: %s", o.comment()) }

func (w *tomlWriter) kv(key, value string) {
	w.b.WriteString(key)
	w.b.WriteString(" = ")
	w.b.WriteString(value)
	w.b.WriteByte('\n')
}

// sanitizeComment keeps a comment on one line and valid in TOML (which
// forbids control characters other than tab in comments).
func sanitizeComment(s string) string {
	return strings.Map(func(r rune) rune {
		if r < 0x20 && r != '\t' || r == 0x7f || r == utf8.RuneError {
			return '?'
		}
		return r
	}, s)
}

// quote writes s as a TOML basic string.
func quote(s string) string {
	var b strings.Builder
	b.WriteByte('"')
	for _, r := range s {
		switch {
		case r == '"':
			b.WriteString(`\"`)
		case r == '\\':
			b.WriteString(`\\`)
		case r == '\n':
			b.WriteString(`\n`)
		case r == '\t':
			b.WriteString(`\t`)
		case r < 0x20 || r == 0x7f:
			fmt.Fprintf(&b, `\u%04X`, r)
		case r == utf8.RuneError:
			b.WriteString(`\uFFFD`)
		default:
			b.WriteRune(r)
		}
	}
	b.WriteByte('"')
	return b.String()
}

// fmtNum writes a number the way a person would in a config file: 1.0, 0.1, 1e-06.
func fmtNum(v float64) string {
	s := strconv.FormatFloat(v, 'g', -1, 64)
	if !strings.ContainsAny(s, ".eE") && !math.IsInf(v, 0) && !math.IsNaN(v) {
		s += ".0"
	}
	return s
}

func (m *migration) emit() []byte {
	w := &tomlWriter{}
	w.comment("gnomon.toml, migrated from %s by gnomonctl migrate chrony.", m.files[0])
	w.comment("Each setting names the chrony.conf line it came from. What could not be carried\nover exactly was reported when this file was written; see gnomon.toml(5).")
	m.emitClock(w)
	m.emitSync(w)
	m.emitSources(w)
	m.emitServers(w)
	m.emitAuth(w)
	return w.b.Bytes()
}

func (m *migration) emitClock(w *tomlWriter) {
	w.header("[clock]")
	if m.stepThreshold.set {
		w.from(m.stepThreshold.at)
		w.kv("step-threshold", fmtNum(m.stepThreshold.v))
		w.kv("step-limit", strconv.Itoa(m.stepLimit.v))
	} else {
		w.comment("chrony.conf has no makestep: chronyd never steps the clock, only slews it.")
		w.kv("step-limit", "0")
	}
	step := 0.1
	if m.stepThreshold.set {
		step = m.stepThreshold.v
	}
	if m.panic.set {
		v := m.panic.v
		w.from(m.panic.at)
		if v > 0 && v < step {
			w.comment("raised to step-threshold: gnomon refuses a panic-threshold below it")
			m.warn(m.panic.at.file, m.panic.at.num, "maxchange", "%s is below makestep's threshold; gnomon needs panic-threshold >= step-threshold: panic-threshold = %s", fmtNum(v), fmtNum(step))
			v = step
		}
		w.kv("panic-threshold", fmtNum(v))
	} else {
		w.comment("chrony.conf has no maxchange: chronyd corrects offsets of any size. gnomon's\ndefault (1000) would refuse larger ones and wait for a person; set it here to\nhave that safety.")
		w.kv("panic-threshold", "0")
	}
	if m.driftFile.set {
		w.from(m.driftFile.at)
		w.kv("drift-file", quote(m.driftFile.v))
	}
	if m.maxFrequency.set {
		w.from(m.maxFrequency.at)
		w.kv("max-frequency", fmtNum(m.maxFrequency.v))
	}
	if m.rtcsync.set {
		w.from(m.rtcsync.at)
		w.comment("gnomond always does this: while it keeps the clock synchronized, the kernel\ncopies the time to the RTC every 11 minutes. Nothing to set.")
	}
}

func (m *migration) emitSync(w *tomlWriter) {
	w.header("[synchronization]")
	if m.minSources.set {
		w.from(m.minSources.at)
		w.kv("minimum-agreeing-sources", strconv.Itoa(m.minSources.v))
	} else {
		w.comment("chrony's default minsources")
		w.kv("minimum-agreeing-sources", "1")
	}
	if m.maxDistance.set {
		w.from(m.maxDistance.at)
		w.kv("max-distance", fmtNum(m.maxDistance.v))
	}
	if m.localStratum.set {
		w.from(m.localStratum.at)
		w.kv("local-stratum", strconv.Itoa(m.localStratum.v))
	}
	if m.leapFile.set {
		w.from(m.leapFile.at)
		w.kv("leap-seconds-file", quote(m.leapFile.v))
	}
}

func (m *migration) emitSources(w *tomlWriter) {
	w.header("[source-defaults]")
	own := config.Default(config.Options{}).SourceDefaults.PollIntervalLimits
	if own.Min == chronyMinPoll && own.Max == chronyMaxPoll {
		w.comment("chrony's defaults: minpoll %d, maxpoll %d (gnomon's are the same)", chronyMinPoll, chronyMaxPoll)
	} else {
		w.comment("chrony's defaults: minpoll %d, maxpoll %d (gnomon's own are %d and %d)", chronyMinPoll, chronyMaxPoll, own.Min, own.Max)
	}
	w.kv("poll-interval-limits", fmt.Sprintf("{ min = %d, max = %d }", chronyMinPoll, chronyMaxPoll))

	seen := map[string]origin{}
	usedSets := map[uint64]bool{}
	n := 0
	for i := range m.sources {
		s := &m.sources[i]
		addr := s.host
		if strings.Contains(addr, ":") && s.port != 0 {
			addr = "[" + addr + "]"
		}
		if s.port != 0 {
			addr += ":" + strconv.Itoa(s.port)
		}
		norm, err := config.ParseSourceAddress(addr, s.mode)
		if err != nil {
			m.warn(s.at.file, s.at.num, s.at.dir, "%v; not migrated", err)
			continue
		}
		id := strings.ToLower(norm)
		if prev, dup := seen[id]; dup {
			m.warn(s.at.file, s.at.num, s.at.dir, "%s is already a source (%s:%d); gnomon allows each address once; not migrated", norm, prev.file, prev.num)
			continue
		}
		seen[id] = s.at
		// The address as written, in a form config.Parse reads back to norm.
		if h, p, err := net.SplitHostPort(norm); err == nil && p == strconv.Itoa(int(s.mode.DefaultPort())) {
			addr = h
		}
		w.header("[[source]]")
		w.from(s.at)
		w.kv("mode", quote(string(s.mode)))
		w.kv("address", quote(addr))
		if s.minPoll != nil {
			w.kv("poll-interval-limits", fmt.Sprintf("{ min = %d, max = %d }", *s.minPoll, *s.maxPoll))
		}
		w.kv("iburst", strconv.FormatBool(s.iburst))
		if s.prefer {
			w.kv("prefer", "true")
		}
		if s.noselect {
			w.kv("noselect", "true")
		}
		if s.trust {
			w.kv("trust", "true")
		}
		if s.mode == config.SourcePool {
			w.kv("count", strconv.Itoa(s.count))
		}
		if s.xleave {
			w.kv("xleave", "true")
		}
		if s.key != 0 && m.keyFile.set {
			w.kv("key", strconv.FormatUint(uint64(s.key), 10))
		}
		if s.mode == config.SourceNTS {
			usedSets[s.certSet] = true
			m.emitCA(w, s)
		}
		n++
	}
	n += m.emitRefclocks(w)
	if n == 0 {
		w.b.WriteString("\n")
		w.comment("chrony.conf names no source that could be migrated: add a [[source]].")
	}
	for set, certs := range m.certSets {
		if !usedSets[set] {
			for _, c := range certs {
				m.warn(c.file, c.num, "ntstrustedcerts", "no NTS source uses certificate set %d; nothing to migrate", set)
			}
		}
	}
	if len(m.refclocks) > 0 {
		w.b.WriteString("\n")
		w.comment("Reference clocks in chrony.conf that gnomon cannot use:")
		for _, o := range m.refclocks {
			w.comment("  %s", o.comment())
		}
	}
}

// emitCA adds the certificate-authority of an NTS source from its chrony
// certificate set.
func (m *migration) emitCA(w *tomlWriter, s *source) {
	certs := m.certSets[s.certSet]
	if s.certSet != 0 {
		m.warn(s.at.file, s.at.num, s.at.dir+" certset", "gnomon trusts the system's certificate authorities besides certificate-authority; chrony's set %d held only its own", s.certSet)
		if len(certs) == 0 {
			m.warn(s.at.file, s.at.num, s.at.dir+" certset", "no ntstrustedcerts for set %d; the system's certificate authorities are used", s.certSet)
		}
	}
	for i, c := range certs {
		if i > 0 {
			m.warn(c.file, c.num, "ntstrustedcerts", "gnomon takes one certificate-authority per source: %s is not used for %s", c.arg, s.host)
			continue
		}
		if ok, why := m.existingFile(c.arg); !ok {
			m.warn(c.file, c.num, "ntstrustedcerts", "%s: %s; not used for %s", c.arg, why, s.host)
			continue
		}
		w.comment("chrony: %s", c.comment())
		w.kv("certificate-authority", quote(c.arg))
	}
}

func (m *migration) emitServers(w *tomlWriter) {
	var allow4, allow6, allowEvery bool
	var allowList, denyList []netip.Prefix
	for _, a := range m.allows {
		switch {
		case !a.prefix.IsValid():
			allow4, allow6, allowEvery = true, true, true
		case a.prefix.Addr().Is4():
			allow4 = true
			allowList = appendPrefix(allowList, a.prefix)
		default:
			allow6 = true
			allowList = appendPrefix(allowList, a.prefix)
		}
	}
	for _, d := range m.denies {
		if !d.prefix.IsValid() {
			denyList = appendPrefix(denyList, netip.MustParsePrefix("0.0.0.0/0"))
			denyList = appendPrefix(denyList, netip.MustParsePrefix("::/0"))
		} else {
			denyList = appendPrefix(denyList, d.prefix)
		}
	}
	port := chronyPort
	if m.port.set {
		port = m.port.v
	}
	moot := func(what string, o origin) {
		m.warn(o.file, o.num, o.dir, "%s; nothing to migrate", what)
	}
	serving := (allow4 || allow6) && port != 0
	if !serving {
		why := "no allow directive: chronyd serves no clients"
		if port == 0 && (allow4 || allow6) {
			why = "port 0: chronyd serves no clients"
		}
		for _, d := range m.denies {
			moot(why, d.at)
		}
		for _, o := range []setting[netip.Addr]{m.bind4, m.bind6} {
			if o.set {
				moot(why, o.at)
			}
		}
		if m.rate.set {
			moot(why, m.rate.at)
		}
		if m.clientLog.set {
			moot(why, m.clientLog.at)
		}
		if port == 0 {
			for _, a := range m.allows {
				moot(why, a.at)
			}
		}
		if m.ntsPort.set {
			moot(why, m.ntsPort.at)
		}
		if len(m.ntsCerts)+len(m.ntsKeys) > 0 {
			moot("no clients may connect (no allow directive, or port 0): chronyd's NTS-KE server is closed to all", append(m.ntsCerts, m.ntsKeys...)[0])
		}
		return
	}
	// chronyd: the most specific rule wins. gnomond: the denylist is checked
	// after the allowlist. They differ where an allow lies inside a deny.
	for _, a := range m.allows {
		for _, d := range m.denies {
			dp := d.prefix
			if !dp.IsValid() {
				dp = netip.PrefixFrom(netip.IPv6Unspecified(), 0)
				if !a.prefix.IsValid() || a.prefix.Addr().Is4() {
					dp = netip.PrefixFrom(netip.IPv4Unspecified(), 0)
				}
			}
			ap := a.prefix
			if !ap.IsValid() {
				continue // allow everything: a deny inside it is exact
			}
			if dp.Addr().Is4() != ap.Addr().Is4() || !dp.Contains(ap.Addr()) {
				continue
			}
			if dp.Bits() < ap.Bits() || dp.Bits() == ap.Bits() && a.at.seq > d.at.seq {
				m.warn(a.at.file, a.at.num, "allow", "%s lies inside deny %s (%s:%d): chronyd lets it in, gnomond refuses it (the denylist is checked after the allowlist)",
					prefixString(ap), prefixString(dp), d.at.file, d.at.num)
			}
		}
	}
	var listens []netip.AddrPort
	if allow4 {
		a := netip.IPv4Unspecified()
		if m.bind4.set {
			a = m.bind4.v
		}
		listens = append(listens, netip.AddrPortFrom(a, uint16(port)))
	}
	if allow6 {
		a := netip.IPv6Unspecified()
		if m.bind6.set {
			a = m.bind6.v
		}
		listens = append(listens, netip.AddrPortFrom(a, uint16(port)))
	}
	for _, ap := range listens {
		w.header("[[server]]")
		for _, a := range m.allows {
			w.from(a.at)
		}
		if m.port.set {
			w.from(m.port.at)
		}
		if ap.Addr().Is4() && m.bind4.set {
			w.from(m.bind4.at)
		}
		if ap.Addr().Is6() && m.bind6.set {
			w.from(m.bind6.at)
		}
		w.kv("listen", quote(ap.String()))
		if !allowEvery {
			w.kv("allowlist", fmt.Sprintf("{ filter = %s, action = \"ignore\" }", prefixList(allowList)))
		}
		if len(denyList) > 0 {
			for _, d := range m.denies {
				w.from(d.at)
			}
			w.kv("denylist", fmt.Sprintf("{ filter = %s, action = \"ignore\" }", prefixList(denyList)))
		}
		if m.rate.set {
			rl := m.rate.v
			w.from(m.rate.at)
			fields := fmt.Sprintf("interval = %s, burst = %d, kod = %t", fmtNum(math.Ldexp(1, rl.intervalLog2)), rl.burst, rl.kod)
			if m.clientLog.set {
				w.from(m.clientLog.at)
				fields += fmt.Sprintf(", table-size = %d", min(max(m.clientLog.v/clientLogBytes, 1), 1<<24))
			}
			w.kv("rate-limit", "{ "+fields+" }")
		}
		w.comment("chronyd answers interleaved requests (xleave clients) by default")
		w.kv("xleave", "true")
	}
	if m.clientLog.set {
		if m.rate.set {
			m.warn(m.clientLog.at.file, m.clientLog.at.num, "clientloglimit", "a memory size in chrony, a number of clients in gnomon: table-size = %d (about %d bytes each)",
				min(max(m.clientLog.v/clientLogBytes, 1), 1<<24), clientLogBytes)
		} else {
			moot("no ratelimit: gnomond tracks clients only for rate-limit", m.clientLog.at)
		}
	}
	m.emitNTSKE(w, listens, len(allowList) > 0 && !allowEvery || len(denyList) > 0)
}

func (m *migration) emitNTSKE(w *tomlWriter, listens []netip.AddrPort, filtered bool) {
	if len(m.ntsCerts) == 0 && len(m.ntsKeys) == 0 {
		if m.ntsPort.set {
			m.warn(m.ntsPort.at.file, m.ntsPort.at.num, "ntsport", "no ntsservercert and ntsserverkey: chronyd runs no NTS-KE server; nothing to migrate")
		}
		return
	}
	if len(m.ntsCerts) == 0 || len(m.ntsKeys) == 0 || len(m.ntsCerts) != len(m.ntsKeys) {
		o := append(m.ntsCerts, m.ntsKeys...)[0]
		m.warn(o.file, o.num, "", "%d ntsservercert and %d ntsserverkey: they must come in pairs (chronyd would refuse to start); no NTS-KE server migrated", len(m.ntsCerts), len(m.ntsKeys))
		return
	}
	for i := 1; i < len(m.ntsCerts); i++ {
		m.warn(m.ntsCerts[i].file, m.ntsCerts[i].num, "ntsservercert", "gnomon's NTS-KE server takes one certificate and key: %s and %s are not used", m.ntsCerts[i].arg, m.ntsKeys[i].arg)
	}
	cert, key := m.ntsCerts[0], m.ntsKeys[0]
	for _, o := range []origin{cert, key} {
		if ok, why := m.existingFile(o.arg); !ok {
			m.warn(o.file, o.num, o.dir, "%s: %s; no NTS-KE server migrated", o.arg, why)
			return
		}
	}
	port := chronyNTSPort
	if m.ntsPort.set {
		port = m.ntsPort.v
	}
	if filtered {
		m.warn(cert.file, cert.num, "ntsservercert", "chronyd's allow and deny also apply to NTS-KE; gnomon's NTS-KE server has no allowlist, so any client that can reach port %d may do a key exchange (the NTP server still filters)", port)
	}
	for _, ap := range listens {
		w.header("[[nts-ke-server]]")
		w.from(cert)
		w.from(key)
		if m.ntsPort.set {
			w.from(m.ntsPort.at)
		}
		w.kv("listen", quote(netip.AddrPortFrom(ap.Addr(), uint16(port)).String()))
		w.kv("certificate-chain-path", quote(cert.arg))
		w.kv("private-key-path", quote(key.arg))
	}
}

func appendPrefix(ps []netip.Prefix, p netip.Prefix) []netip.Prefix {
	if slices.Contains(ps, p) {
		return ps
	}
	return append(ps, p)
}

func prefixList(ps []netip.Prefix) string {
	q := make([]string, len(ps))
	for i, p := range ps {
		q[i] = quote(prefixString(p))
	}
	return "[" + strings.Join(q, ", ") + "]"
}

// prefixString writes a single address without its /32 or /128.
func prefixString(p netip.Prefix) string {
	if p.Bits() == p.Addr().BitLen() {
		return p.Addr().String()
	}
	return p.String()
}
