package config

import (
	"encoding"
	"fmt"
	"math"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"time"
)

// The TOML library turns the file into a tree of map[string]any; decoder
// walks that tree against the schema. Walking it by hand, rather than letting
// the library fill structs by reflection, is what lets every problem be
// reported (the library stops at the first) and every unknown key be caught,
// inline tables included.

type decoder struct {
	file    string
	lines   map[string]int
	errs    Errors
	dropped int      // errors past maxDecodeErrors, counted only
	failed  []string // keys whose values did not decode
}

// errorf reports a value that could not be decoded.
func (d *decoder) errorf(key, format string, args ...any) {
	if len(d.failed) < maxDecodeErrors {
		d.failed = append(d.failed, key)
	}
	d.add(key, format, args...)
}

func (d *decoder) add(key, format string, args ...any) {
	if len(d.errs) >= maxDecodeErrors {
		// Past this many, the rest are only counted: a document of 400 000
		// wrong array elements must not cost 400 000 messages.
		d.dropped++
		return
	}
	d.errs = append(d.errs, &Error{File: d.file, Line: lineOf(d.lines, key), Key: key, Msg: fmt.Sprintf(format, args...)})
}

// maxDecodeErrors is how many errors the decoder keeps (Parse lists the
// first MaxErrors of them in file order, and counts the rest).
const maxDecodeErrors = 10 * MaxErrors

// reported reports whether the value at key, at a table or array above it,
// or at a key inside it did not decode: checking what is left there would
// only repeat that error in other words (a bad mode is not also a missing
// mode). Unknown keys do not count; the values beside them are still checked.
func (d *decoder) reported(key string) bool {
	for _, f := range d.failed {
		if f == key || isUnder(key, f) || isUnder(f, key) {
			return true
		}
	}
	return false
}

// isUnder reports whether path is inside the table or array at parent.
func isUnder(path, parent string) bool {
	return strings.HasPrefix(path, parent+".") || strings.HasPrefix(path, parent+"[")
}

// table is one TOML table being decoded. Every getter records its key as
// known, present or not, so finish can report the rest as unknown (with a
// suggestion among the known ones).
type table struct {
	d     *decoder
	path  string
	m     map[string]any
	known []string
}

func (d *decoder) table(path string, v any) *table {
	m, ok := v.(map[string]any)
	if !ok {
		d.errorf(path, "want a table, got %s", describe(v))
		return nil
	}
	return &table{d: d, path: path, m: m}
}

func (t *table) key(k string) string { return joinKey(t.path, k) }

func (t *table) get(k string) (any, bool) {
	if !slices.Contains(t.known, k) {
		t.known = append(t.known, k)
	}
	v, ok := t.m[k]
	return v, ok
}

func (t *table) finish() {
	var unknown []string
	for k := range t.m {
		if !slices.Contains(t.known, k) {
			unknown = append(unknown, k)
		}
	}
	slices.Sort(unknown)
	for _, k := range unknown {
		if hint, ok := otherNames[k]; ok && slices.Contains(t.known, hint.near) {
			t.d.add(t.key(k), "unknown key (%s)", hint.say)
		} else if s := suggest(k, t.known); s != "" {
			t.d.add(t.key(k), "unknown key (did you mean %s?)", s)
		} else {
			t.d.add(t.key(k), "unknown key (want one of %s)", strings.Join(t.known, ", "))
		}
	}
}

// sub returns the table under k, or nil when k is absent or not a table.
func (t *table) sub(k string) *table {
	v, ok := t.get(k)
	if !ok {
		return nil
	}
	return t.d.table(t.key(k), v)
}

// tables returns the tables of an array of tables ([[k]], or k = [{...}]).
// An element that is not a table is reported and left nil, so that indices
// still match the file.
func (t *table) tables(k string) []*table {
	v, ok := t.get(k)
	if !ok {
		return nil
	}
	var out []*table
	switch a := v.(type) {
	case []map[string]any:
		for i, m := range a {
			out = append(out, &table{d: t.d, path: indexKey(t.key(k), i), m: m})
		}
	case []any:
		for i, e := range a {
			out = append(out, t.d.table(indexKey(t.key(k), i), e))
		}
	default:
		t.d.errorf(t.key(k), "want an array of tables ([[%s]]), got %s", k, describe(v))
	}
	return out
}

// seconds reads a duration written as a number of seconds. Sign and range
// are Validate's business; here it only has to fit a time.Duration.
func (t *table) seconds(k string, dst *time.Duration) {
	var s float64
	if !t.number(k, &s) {
		return
	}
	const limit = 1e9 // about 31 years, well inside time.Duration
	if math.Abs(s) > limit {
		t.d.errorf(t.key(k), "%s s is too large (at most %g)", formatFloat(s), limit)
		return
	}
	*dst = time.Duration(math.Round(s * float64(time.Second)))
}

// number reads an integer or float; it reports whether dst was set.
func (t *table) number(k string, dst *float64) bool {
	v, ok := t.get(k)
	if !ok {
		return false
	}
	var f float64
	switch n := v.(type) {
	case int64:
		f = float64(n)
	case float64:
		f = n
	default:
		t.d.errorf(t.key(k), "want a number, got %s", describe(v))
		return false
	}
	if math.IsNaN(f) || math.IsInf(f, 0) {
		t.d.errorf(t.key(k), "want a finite number, got %s", describe(v))
		return false
	}
	*dst = f
	return true
}

func (t *table) integer(k string, dst *int) bool {
	v, ok := t.get(k)
	if !ok {
		return false
	}
	n, isInt := v.(int64)
	if !isInt {
		t.d.errorf(t.key(k), "want an integer, got %s", describe(v))
		return false
	}
	if int64(int(n)) != n {
		t.d.errorf(t.key(k), "%d is too large", n)
		return false
	}
	*dst = int(n)
	return true
}

func (t *table) boolean(k string, dst *bool) {
	v, ok := t.get(k)
	if !ok {
		return
	}
	b, isBool := v.(bool)
	if !isBool {
		t.d.errorf(t.key(k), "want true or false, got %s", describe(v))
		return
	}
	*dst = b
}

func (t *table) str(k string, dst *string) bool {
	v, ok := t.get(k)
	if !ok {
		return false
	}
	s, isString := v.(string)
	if !isString {
		t.d.errorf(t.key(k), "want a string, got %s", describe(v))
		return false
	}
	*dst = s
	return true
}

// text reads a string through dst's UnmarshalText (the enums' one parser).
// It reports whether dst was set.
func (t *table) text(k string, dst encoding.TextUnmarshaler) bool {
	var s string
	if !t.str(k, &s) {
		return false
	}
	if err := dst.UnmarshalText([]byte(s)); err != nil {
		t.d.errorf(t.key(k), "%s", err.Error())
		return false
	}
	return true
}

func (d *decoder) decode(root map[string]any, c *Config) {
	t := &table{d: d, m: root}
	if ct := t.sub("clock"); ct != nil {
		d.clock(ct, &c.Clock)
	}
	if st := t.sub("synchronization"); st != nil {
		d.synchronization(st, &c.Synchronization)
	}
	// [source-defaults] may come after the sources in the file; it is read
	// first so the sources can inherit from it.
	if dt := t.sub("source-defaults"); dt != nil {
		if pt := dt.sub("poll-interval-limits"); pt != nil {
			d.pollLimits(pt, &c.SourceDefaults.PollIntervalLimits)
		}
		dt.finish()
	}
	// An element that is not a table stays as a zero value: it is already an
	// error, and it keeps the indices of the others those of the file.
	for _, st := range t.tables("source") {
		var s SourceConfig
		if st != nil {
			s = d.source(st, c.SourceDefaults)
		}
		c.Sources = append(c.Sources, s)
	}
	for _, st := range t.tables("server") {
		var s ServerConfig
		if st != nil {
			s = d.server(st)
		}
		c.Servers = append(c.Servers, s)
	}
	for _, st := range t.tables("nts-ke-server") {
		var s NTSKEServerConfig
		if st != nil {
			s = d.ntsKEServer(st)
		}
		c.NTSKEServers = append(c.NTSKEServers, s)
	}
	d.decodePTPPorts(t, c)
	d.decodeCSPTPServers(t, c)
	if lt := t.sub("log"); lt != nil {
		lt.text("level", &c.Log.Level)
		lt.text("format", &c.Log.Format)
		lt.finish()
	}
	if st := t.sub("security"); st != nil {
		st.boolean("seccomp", &c.Security.Seccomp)
		st.str("user", &c.Security.User)
		st.finish()
	}
	if at := t.sub("authentication"); at != nil {
		d.authentication(at, &c.Authentication)
	}
	if dt := t.sub("dhcp"); dt != nil {
		d.dhcp(dt, &c.DHCP)
	}
	t.finish()
}

func (d *decoder) clock(t *table, c *ClockConfig) {
	c.ModeSet = t.text("mode", &c.Mode)
	t.seconds("step-threshold", &c.StepThreshold)
	t.integer("step-limit", &c.StepLimit)
	t.seconds("panic-threshold", &c.PanicThreshold)
	t.str("drift-file", &c.DriftFile)
	t.number("max-frequency", &c.MaxFrequencyPPM)
	t.finish()
}

func (d *decoder) synchronization(t *table, s *SyncConfig) {
	t.integer("minimum-agreeing-sources", &s.MinimumAgreeingSources)
	t.seconds("max-distance", &s.MaxDistance)
	t.seconds("accuracy", &s.Accuracy)
	t.integer("local-stratum", &s.LocalStratum)
	t.str("leap-seconds-file", &s.LeapSecondsFile)
	t.finish()
}

func (d *decoder) pollLimits(t *table, p *PollIntervalLimits) {
	t.integer("min", &p.Min)
	t.integer("max", &p.Max)
	t.finish()
}

func (d *decoder) source(t *table, defaults SourceDefaults) SourceConfig {
	s := SourceConfig{PollIntervalLimits: defaults.PollIntervalLimits, IBurst: true}
	modeOK := t.text("mode", &s.Mode)
	if modeOK && s.Mode.IsRefclock() {
		return d.refclock(t, s)
	}
	if modeOK && s.Mode == SourcePTP {
		s.PTP = d.ptpSource(t)
		return s
	}
	if modeOK && s.Mode == SourceCSPTP {
		d.csptpSource(t, &s)
		return s
	}

	var addr string
	if t.str("address", &addr) {
		port := SourceServer.DefaultPort()
		if modeOK {
			port = s.Mode.DefaultPort()
		}
		if norm, err := normalizeSourceAddress(addr, port); err != nil {
			d.errorf(t.key("address"), "%s", err.Error())
		} else {
			s.Address = norm
		}
	}
	if pt := t.sub("poll-interval-limits"); pt != nil {
		d.pollLimits(pt, &s.PollIntervalLimits)
	}
	t.boolean("iburst", &s.IBurst)
	t.boolean("prefer", &s.Prefer)
	t.boolean("noselect", &s.NoSelect)
	t.boolean("trust", &s.Trust)
	d.sourceKey(t, &s)
	s.XLeave = true // on unless turned off: a server without the mode answers in basic mode
	t.boolean("xleave", &s.XLeave)

	// count and certificate-authority belong to one mode each; with a bad
	// mode it is unknown whether they are allowed, so they are only read.
	if _, ok := t.m["count"]; ok && modeOK && s.Mode != SourcePool {
		t.get("count")
		d.errorf(t.key("count"), "only allowed with mode = %q", SourcePool)
	} else if !t.integer("count", &s.Count) && s.Mode == SourcePool {
		s.Count = defaultPoolCount
	}
	if _, ok := t.m["certificate-authority"]; ok && modeOK && s.Mode != SourceNTS {
		t.get("certificate-authority")
		d.errorf(t.key("certificate-authority"), "only allowed with mode = %q", SourceNTS)
	} else {
		t.str("certificate-authority", &s.CertificateAuthority)
	}
	t.finish()
	return s
}

func (d *decoder) server(t *table) ServerConfig {
	var s ServerConfig
	var listen string
	if t.str("listen", &listen) {
		if ap, err := parseListen(listen); err != nil {
			d.errorf(t.key("listen"), "%s", err.Error())
		} else {
			s.Listen = ap
		}
	}
	if ft := t.sub("allowlist"); ft != nil {
		s.Allowlist = d.filter(ft)
	}
	if ft := t.sub("denylist"); ft != nil {
		s.Denylist = d.filter(ft)
	}
	if rt := t.sub("rate-limit"); rt != nil {
		s.RateLimit = defaultRateLimit
		rt.seconds("interval", &s.RateLimit.Interval)
		rt.integer("burst", &s.RateLimit.Burst)
		rt.boolean("kod", &s.RateLimit.KoD)
		rt.integer("table-size", &s.RateLimit.TableSize)
		rt.finish()
	}
	t.integer("workers", &s.Workers)
	d.serverKeys(t, &s)
	t.boolean("xleave", &s.XLeave)
	t.seconds("leap-smear", &s.LeapSmear)
	t.finish()
	return s
}

func (d *decoder) filter(t *table) *AddressFilter {
	f := &AddressFilter{Action: FilterIgnore, Filter: []netip.Prefix{}}
	if v, ok := t.get("filter"); ok {
		key := t.key("filter")
		if a, isArray := v.([]any); !isArray {
			d.errorf(key, "want an array of addresses or CIDR prefixes, got %s", describe(v))
		} else {
			for i, e := range a {
				s, isString := e.(string)
				if !isString {
					d.errorf(indexKey(key, i), "want a string, got %s", describe(e))
					continue
				}
				p, err := parsePrefix(s)
				if err != nil {
					d.errorf(indexKey(key, i), "%s", err.Error())
					continue
				}
				f.Filter = append(f.Filter, p)
			}
		}
	}
	t.text("action", &f.Action)
	t.finish()
	return f
}

func (d *decoder) ntsKEServer(t *table) NTSKEServerConfig {
	s := NTSKEServerConfig{KeyExchangeTimeout: defaultKeyExchangeTimeout,
		MaxConnectionsPerAddress: defaultKEConnsPerAddress, ConnectionRatePerAddress: defaultKERatePerAddress}
	var listen string
	if t.str("listen", &listen) {
		if ap, err := parseListen(listen); err != nil {
			d.errorf(t.key("listen"), "%s", err.Error())
		} else {
			s.Listen = ap
		}
	}
	t.str("certificate-chain-path", &s.CertificateChainPath)
	t.str("private-key-path", &s.PrivateKeyPath)
	t.seconds("key-exchange-timeout", &s.KeyExchangeTimeout)
	t.integer("max-connections-per-address", &s.MaxConnectionsPerAddress)
	t.number("connection-rate-per-address", &s.ConnectionRatePerAddress)
	t.finish()
	return s
}

// NTS-KE per-address defaults (service/ntsio's DefaultMaxConnsPerAddr and
// DefaultNewConnsPerAddr).
const (
	defaultKEConnsPerAddress = 8
	defaultKERatePerAddress  = 4
)

// describe names a TOML value for a message: `the string "0.1"`.
func describe(v any) string {
	switch x := v.(type) {
	case string:
		if len(x) > 40 {
			x = x[:40] + "..."
		}
		return "the string " + strconv.Quote(x)
	case int64:
		return "the integer " + strconv.FormatInt(x, 10)
	case float64:
		return "the float " + tomlFloat(x)
	case bool:
		return "the boolean " + strconv.FormatBool(x)
	case time.Time:
		return "a date-time"
	case []any, []map[string]any:
		return "an array"
	case map[string]any:
		return "a table"
	default:
		return fmt.Sprintf("a %T", v)
	}
}

func formatFloat(f float64) string { return strconv.FormatFloat(f, 'g', -1, 64) }

// tomlFloat writes f as it could be written in TOML; a whole number keeps
// its ".0" so that it still reads as a float ("got the float 3.0").
func tomlFloat(f float64) string {
	s := formatFloat(f)
	if !strings.ContainsAny(s, ".eIN") {
		s += ".0"
	}
	return s
}

// otherNames are chrony's and ntpd-rs's names for things this file names
// differently; near is a key of the table where the hint applies.
var otherNames = map[string]struct{ near, say string }{
	"minpoll":                  {"poll-interval-limits", "chrony's minpoll is poll-interval-limits = { min = ... }"},
	"maxpoll":                  {"poll-interval-limits", "chrony's maxpoll is poll-interval-limits = { max = ... }"},
	"maxsources":               {"count", "chrony's maxsources is count"},
	"ntstrustedcerts":          {"certificate-authority", "chrony's ntstrustedcerts is certificate-authority"},
	"minsources":               {"minimum-agreeing-sources", "chrony's minsources is minimum-agreeing-sources"},
	"maxdistance":              {"max-distance", "did you mean max-distance?"},
	"makestep":                 {"step-threshold", "chrony's makestep is step-threshold and step-limit"},
	"maxdrift":                 {"max-frequency", "chrony's maxdrift is max-frequency"},
	"maxchange":                {"panic-threshold", "chrony's maxchange is panic-threshold"},
	"key-exchange-timeout-ms":  {"key-exchange-timeout", "key-exchange-timeout is in seconds"},
	"rate-limiting-cache-size": {"rate-limit", "use rate-limit = { table-size = ... }"},
	"rate-limiting-cutoff-ms":  {"rate-limit", "use rate-limit = { interval = ... } (seconds)"},
	"observability":            {"log", "ntpd-rs's [observability] log-level is [log] level"},
	"log-level":                {"level", "did you mean level?"},
	"keyfile":                  {"key-file", "chrony's keyfile is [authentication] key-file"},
	"leapseclist":              {"leap-seconds-file", "chrony's leapseclist is leap-seconds-file"},
}

// suggest returns the known key closest to k when it is close enough to be
// a typo of it, else "".
func suggest(k string, known []string) string {
	if len(k) > 64 {
		return ""
	}
	best, bestDist := "", math.MaxInt
	for _, c := range known {
		if d := editDistance(k, c); d < bestDist {
			best, bestDist = c, d
		}
	}
	if best != "" && bestDist <= max(1, min(3, len(best)/3)) {
		return best
	}
	return ""
}

// editDistance is the Levenshtein distance between a and b.
func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}
