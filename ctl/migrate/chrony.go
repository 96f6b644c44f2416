package migrate

import (
	"cmp"
	"fmt"
	"io/fs"
	"math"
	"net/netip"
	"path"
	"slices"
	"strconv"
	"strings"

	"gnomon.dev/gnomon/service/config"
)

// DefaultChronyConf is where Debian and Ubuntu keep chrony's configuration.
const DefaultChronyConf = "/etc/chrony/chrony.conf"

// chrony's defaults where they differ from gnomon's.
const (
	chronyMinPoll    = 6
	chronyMaxPoll    = 10
	chronyMaxSources = 4
	chronyLocalStrat = 10
	chronyPort       = 123
	chronyNTSPort    = 4460
	chronyRLInterval = 3 // log2 s
	chronyRLBurst    = 8
	clientLogBytes   = 128 // bytes of chrony's clientloglimit per client, roughly
)

// Result is a migrated configuration.
type Result struct {
	// TOML is the gnomon.toml, commented with where each setting came from.
	TOML []byte
	// Warnings lists, in file order, what could not be carried over exactly.
	Warnings []Warning
	// Files is every file read, in the order read.
	Files []string
}

// Chrony migrates the chrony.conf at path, with every file it includes.
// It fails (with an *Error) only when a file cannot be read, is not a text
// file, is too large, or the includes loop; everything else becomes a
// Warning.
func Chrony(path string, opts Options) (*Result, error) {
	r, err := read(path, opts)
	if err != nil {
		return nil, err
	}
	m := &migration{reader: r, certSets: map[uint64][]origin{}}
	for i := range r.lines {
		m.directive(&r.lines[i])
	}
	out := m.emit()
	// In file order: files in the order read, then by line.
	order := map[string]int{}
	for i, f := range r.files {
		if _, ok := order[f]; !ok {
			order[f] = i
		}
	}
	ws := r.warnings
	slices.SortStableFunc(ws, func(a, b Warning) int {
		if c := cmp.Compare(order[a.File], order[b.File]); c != 0 {
			return c
		}
		return cmp.Compare(a.Line, b.Line)
	})
	return &Result{TOML: out, Warnings: ws, Files: r.files}, nil
}

// origin is where a setting came from.
type origin struct {
	seq  int // position among all directives read
	file string
	num  int
	dir  string // the directive's name
	text string
	arg  string // the value, for settings that keep a list (certificates)
}

func (o origin) comment() string { return fmt.Sprintf("%s:%d: %s", o.file, o.num, o.text) }

// setting is a value together with the directive it came from.
type setting[T any] struct {
	set bool
	v   T
	at  origin
}

func (s *setting[T]) put(v T, at origin) { s.set, s.v, s.at = true, v, at }

type source struct {
	at       origin
	mode     config.SourceMode
	host     string // as written, without brackets
	minPoll  *int
	maxPoll  *int
	iburst   bool
	prefer   bool
	noselect bool
	trust    bool
	count    int    // pool only
	key      uint32 // key option: symmetric key ID, 0 for none
	xleave   bool
	certSet  uint64 // nts only
	port     int    // the address's port; 0 for the mode's default
}

type acl struct {
	at     origin
	all    bool         // "allow all ..."
	prefix netip.Prefix // invalid: every address of both families
}

type rateLimit struct {
	intervalLog2 int
	burst        int
	kod          bool
}

type migration struct {
	*reader

	stepThreshold setting[float64]
	stepLimit     setting[int]
	panic         setting[float64]
	driftFile     setting[string]
	maxFrequency  setting[float64]
	rtcsync       setting[bool]

	minSources   setting[int]
	maxDistance  setting[float64]
	localStratum setting[int]

	sources   []source
	refclocks []origin // not migrated (refclock.go)
	refsrcs   []refclockSrc
	// refclockCount numbers refclock lines for chrony's default refid.
	refclockCount int
	certSets      map[uint64][]origin

	allows, denies []acl
	bind4, bind6   setting[netip.Addr]
	port           setting[int]
	rate           setting[rateLimit]
	clientLog      setting[int]
	ntsPort        setting[int]
	ntsCerts       []origin
	ntsKeys        []origin

	keyFile  setting[string] // keyfile: [authentication] key-file (auth.go)
	leapFile setting[string] // leapseclist, leapsectz: leap-seconds-file (auth.go)
}

func (m *migration) warnAt(l *line, format string, args ...any) {
	m.warn(l.file, l.num, l.name(), format, args...)
}

func (m *migration) warnOpt(l *line, opt, format string, args ...any) {
	m.warn(l.file, l.num, l.name()+" "+opt, format, args...)
}

func at(l *line) origin {
	return origin{seq: l.seq, file: l.file, num: l.num, dir: l.name(), text: l.text}
}

// Why gnomon has no equivalent, by directive: shown after "no equivalent in gnomon".
var unsupported = map[string]string{
	"acquisitionport":   "gnomond sends from a random port",
	"authselectmode":    "there are no symmetric keys to select by; NTS sources are always authenticated",
	"bindacqaddress":    "the source address of requests is chosen by the kernel",
	"bindacqdevice":     "requests are not bound to a device",
	"bindcmddevice":     "gnomonctl talks D-Bus; polkit decides who may change what",
	"binddevice":        "servers bind to an address, not a device (use listen with the interface's address)",
	"broadcast":         "broadcast mode is not supported",
	"clockprecision":    "gnomond measures the clock's precision itself",
	"combinelimit":      "the selection's combining rule is fixed",
	"corrtimeratio":     "gnomond's slew is its own control loop",
	"dscp":              "packets are sent with the default DSCP",
	"dumpdir":           "measurement history is not kept across restarts (the frequency is, in drift-file)",
	"fallbackdrift":     "there is no fallback drift",
	"hwclockfile":       "gnomond does not track the RTC",
	"hwtstimeout":       "hardware timestamping is not configurable yet",
	"initstepslew":      "deprecated in chrony; use step-threshold and step-limit, which the sources' first answers drive",
	"leapsecmode":       "the kernel steps the system clock for leap seconds; to hide them from clients, smear them with [[server]] leap-smear",
	"lock_all":          "memory locking is up to the systemd unit",
	"logbanner":         "gnomond logs to the journal; there are no statistics files",
	"logchange":         "gnomond logs every step and panic to the journal",
	"mailonchange":      "gnomond does not send mail; watch the journal",
	"manual":            "manual time input is timedate1's SetTime (timedatectl set-time)",
	"maxclockerror":     "the clock's error model is fixed",
	"maxjitter":         "sources are weighed by jitter, not cut off",
	"maxntsconnections": "NTS-KE connections are limited by key-exchange-timeout",
	"maxsamples":        "the clock filter's size is fixed",
	"minsamples":        "the clock filter's size is fixed",
	"maxslewrate":       "gnomond slews at most max-frequency plus the kernel's limit",
	"maxtxbuffers":      "hardware timestamping is not configurable yet",
	"maxupdateskew":     "updates are weighed by their error bounds, not cut off by skew",
	"nocerttimecheck":   "certificates are always checked against the clock",
	"noclientlog":       "clients are tracked only for rate-limit",
	"ntpsigndsocket":    "Samba's signing socket (MS-SNTP) is not supported",
	"ntsdumpdir":        "gnomond keeps its NTS state in /var/lib/gnomon",
	"ntsntpserver":      "the NTS-KE server always points clients at this host",
	"ntsprocesses":      "key exchanges run in gnomond's own goroutines",
	"ntsratelimit":      "the NTS-KE server has no rate limit yet",
	"ntsrefresh":        "gnomond renews NTS keys with the server's cookies",
	"ntsrotate":         "gnomond rotates its NTS server keys itself",
	"pidfile":           "systemd tracks gnomond; there is no PID file",
	"ptpdomain":         "NTP over PTP is not supported",
	"ptpport":           "NTP over PTP is not supported",
	"refresh":           "pool members are re-resolved when they become unreachable or falsetickers",
	"reselectdist":      "the selection's hysteresis is fixed",
	"rtcautotrim":       "gnomond does not track the RTC (the kernel's 11-minute mode keeps it)",
	"rtcdevice":         "gnomond does not track the RTC",
	"rtcfile":           "gnomond does not track the RTC (the kernel's 11-minute mode keeps it while synchronized)",
	"rtconutc":          "the RTC's time zone is timedate1's SetLocalRTC (timedatectl set-local-rtc)",
	"sched_priority":    "scheduling is up to the systemd unit",
	"smoothtime":        "gnomon smooths only leap seconds, linearly, with [[server]] leap-smear = 86400 (a different curve from smoothtime's)",
	"stratumweight":     "the selection's stratum weight is fixed",
	"tempcomp":          "temperature compensation is not supported",
	"user":              "the user gnomond runs as is its --user flag (the unit's)",
}

// Directives replaced by D-Bus and polkit.
var commandAccess = map[string]bool{
	"bindcmdaddress": true, "cmdallow": true, "cmddeny": true, "cmdport": true, "cmdratelimit": true, "opencommands": true,
}

func (m *migration) directive(l *line) {
	name := l.name()
	if why, ok := unsupported[name]; ok {
		m.warnAt(l, "no equivalent in gnomon: %s; dropped", why)
		return
	}
	if commandAccess[name] {
		m.warnAt(l, "not needed: gnomonctl talks to gnomond over D-Bus, and polkit decides who may change sources (action org.gnomon.manage-sources); dropped")
		return
	}
	switch name {
	case "server", "pool", "peer":
		m.source(l)
	case "refclock":
		m.refclock(l)
	case "makestep":
		m.makestep(l)
	case "maxchange":
		m.maxchange(l)
	case "driftfile":
		m.driftfile(l)
	case "maxdrift":
		if v, ok := m.float(l, 1); ok {
			if v < 1 || v > 500 {
				c := math.Min(math.Max(v, 1), 500)
				m.warnAt(l, "%s ppm is outside gnomon's range (1 to 500 ppm); max-frequency = %s", fmtNum(v), fmtNum(c))
				v = c
			}
			m.maxFrequency.put(v, at(l))
		}
	case "rtcsync":
		m.rtcsync.put(true, at(l))
	case "minsources":
		if v, ok := m.int(l); ok {
			if v < 1 {
				m.warnAt(l, "%d is below 1; minimum-agreeing-sources = 1", v)
				v = 1
			}
			m.minSources.put(v, at(l))
		}
	case "maxdistance":
		if v, ok := m.float(l, 1); ok {
			if v <= 0 {
				m.warnAt(l, "must be more than 0; dropped")
				return
			}
			m.maxDistance.put(v, at(l))
		}
	case "local":
		m.local(l)
	case "allow", "deny":
		m.acl(l)
	case "bindaddress":
		if len(l.args()) != 1 {
			m.warnAt(l, "want one address; dropped")
			return
		}
		a, err := netip.ParseAddr(l.args()[0])
		if err != nil {
			m.warnAt(l, "%q is not an IP address; dropped", l.args()[0])
			return
		}
		a = a.Unmap()
		if a.Is4() {
			m.bind4.put(a, at(l))
		} else {
			m.bind6.put(a, at(l))
		}
	case "port":
		if v, ok := m.int(l); ok {
			if v < 0 || v > 65535 {
				m.warnAt(l, "%d is not a port; dropped", v)
				return
			}
			m.port.put(v, at(l))
		}
	case "ratelimit":
		m.ratelimit(l)
	case "clientloglimit":
		if v, ok := m.int(l); ok && v > 0 {
			m.clientLog.put(v, at(l))
		}
	case "ntsport":
		if v, ok := m.int(l); ok {
			if v < 1 || v > 65535 {
				m.warnAt(l, "%d is not a port; dropped", v)
				return
			}
			m.ntsPort.put(v, at(l))
		}
	case "ntsservercert", "ntsserverkey":
		if len(l.args()) != 1 {
			m.warnAt(l, "want one file; dropped")
			return
		}
		o := at(l)
		o.arg = l.args()[0]
		if name == "ntsservercert" {
			m.ntsCerts = append(m.ntsCerts, o)
		} else {
			m.ntsKeys = append(m.ntsKeys, o)
		}
	case "ntstrustedcerts":
		m.trustedCerts(l)
	case "nosystemcert":
		m.warnAt(l, "gnomon always trusts the system's certificate authorities for NTS (certificate-authority adds one); dropped")
	case "hwtimestamp":
		m.warnAt(l, "hardware timestamping is not configurable yet: gnomond uses the kernel's software timestamps; dropped")
	case "keyfile":
		m.keyFileDirective(l)
	case "leapseclist", "leapsectz":
		m.leapDirective(l)
	case "log":
		m.warnAt(l, "gnomond logs to the journal ([log] level); there are no measurement or statistics files; dropped")
	case "logdir":
		m.warnAt(l, "gnomond logs to the journal ([log] level), not to files; dropped")
	default:
		m.warnAt(l, "unknown directive (chronyd would refuse to start); dropped")
	}
}

// int reads the first argument as chronyd does (a decimal integer).
func (m *migration) int(l *line) (int, bool) {
	if len(l.args()) < 1 {
		m.warnAt(l, "missing value; dropped")
		return 0, false
	}
	v, err := strconv.Atoi(l.args()[0])
	if err != nil {
		m.warnAt(l, "%q is not an integer; dropped", l.args()[0])
		return 0, false
	}
	return v, true
}

func (m *migration) float(l *line, n int) (float64, bool) {
	if len(l.args()) < n {
		m.warnAt(l, "missing value; dropped")
		return 0, false
	}
	v, ok := parseFloat(l.args()[n-1])
	if !ok {
		m.warnAt(l, "%q is not a number; dropped", l.args()[n-1])
	}
	return v, ok
}

func parseFloat(s string) (float64, bool) {
	v, err := strconv.ParseFloat(s, 64)
	if err != nil || math.IsNaN(v) || math.IsInf(v, 0) || strings.ContainsAny(s, "xXpP_") {
		return 0, false
	}
	return v, true
}

// optSpec is one of chronyd's options on a line: how many values it takes,
// and for one gnomon has no equivalent of, why ("" for one migrated).
type optSpec struct {
	args int
	why  string
}

// options walks a line's options, args[from:]: each one known and migrated
// goes to f (lower-cased) with its value; an unknown one, one without its
// value and one gnomon has no equivalent of are warned about and skipped.
func (m *migration) options(l *line, args []string, from int, specs map[string]optSpec, f func(opt, val string)) {
	for i := from; i < len(args); i++ {
		opt := strings.ToLower(args[i])
		spec, known := specs[opt]
		if !known {
			m.warnOpt(l, args[i], "unknown option (chronyd would refuse this line); ignored")
			continue
		}
		val := ""
		if spec.args > 0 {
			if i+1 >= len(args) {
				m.warnOpt(l, opt, "missing value; ignored")
				continue
			}
			i++
			val = args[i]
		}
		if spec.why != "" {
			m.warnOpt(l, opt, "no equivalent in gnomon: %s; dropped", spec.why)
			continue
		}
		f(opt, val)
	}
}

// Source options (server, pool, peer).
var sourceOpts = map[string]optSpec{
	"iburst":           {0, ""},
	"prefer":           {0, ""},
	"noselect":         {0, ""},
	"nts":              {0, ""},
	"minpoll":          {1, ""},
	"maxpoll":          {1, ""},
	"port":             {1, ""},
	"ntsport":          {1, ""},
	"maxsources":       {1, ""},
	"certset":          {1, ""},
	"key":              {1, ""},
	"burst":            {0, "gnomon sends no extra bursts when measurements are poor (iburst at start only)"},
	"offline":          {0, "sources are always online; gnomond backs off unreachable ones itself"},
	"auto_offline":     {0, "sources are always online; gnomond backs off unreachable ones itself"},
	"trust":            {0, ""},
	"require":          {0, "minimum-agreeing-sources is global, not per source"},
	"xleave":           {0, ""},
	"copy":             {0, "the reference ID is never copied"},
	"ipv4":             {0, "a name is resolved to both IPv4 and IPv6 addresses"},
	"ipv6":             {0, "a name is resolved to both IPv4 and IPv6 addresses"},
	"polltarget":       {1, "the poll interval follows [synchronization] accuracy instead"},
	"maxdelay":         {1, "the clock filter weighs samples by delay instead of cutting them off"},
	"maxdelayratio":    {1, "the clock filter weighs samples by delay instead of cutting them off"},
	"maxdelaydevratio": {1, "the clock filter weighs samples by delay instead of cutting them off"},
	"maxdelayquant":    {1, "the clock filter weighs samples by delay instead of cutting them off"},
	"mindelay":         {1, "the delay is always measured"},
	"asymmetry":        {1, "paths are assumed symmetric"},
	"offset":           {1, "per-source offset corrections are not supported"},
	"minsamples":       {1, "the clock filter's size is fixed"},
	"maxsamples":       {1, "the clock filter's size is fixed"},
	"maxunreach":       {1, "unreachable sources are never used"},
	"filter":           {1, "the clock filter's size is fixed"},
	"presend":          {1, "the interleaved mode is not supported"},
	"minstratum":       {1, "the source's own stratum is always used"},
	"version":          {1, "gnomond always speaks NTPv4"},
	"extfield":         {1, "experimental extension fields are not supported"},
}

func (m *migration) source(l *line) {
	args := l.args()
	if len(args) == 0 {
		m.warnAt(l, "missing host name; dropped")
		return
	}
	s := source{at: at(l), mode: config.SourceServer, iburst: false}
	switch l.name() {
	case "pool":
		s.mode, s.count = config.SourcePool, chronyMaxSources
	case "peer":
		m.warnAt(l, "symmetric peers are not supported: migrated as a server (gnomond polls it as a client; it must serve time to this host, and no longer takes time from it)")
	}
	s.host = strings.TrimSuffix(strings.TrimPrefix(args[0], "["), "]")
	nts, port, ntsPort := false, 0, 0
	maxSources := 0
	var key string
	certSet := setting[uint64]{}
	m.options(l, args, 1, sourceOpts, func(opt, val string) {
		intVal := func() (int, bool) {
			v, err := strconv.Atoi(val)
			if err != nil {
				m.warnOpt(l, opt, "%q is not an integer; ignored", val)
				return 0, false
			}
			return v, true
		}
		switch opt {
		case "iburst":
			s.iburst = true
		case "prefer":
			s.prefer = true
		case "noselect":
			s.noselect = true
		case "trust":
			s.trust = true
		case "nts":
			nts = true
		case "minpoll", "maxpoll":
			if v, ok := intVal(); ok {
				if opt == "minpoll" {
					s.minPoll = &v
				} else {
					s.maxPoll = &v
				}
			}
		case "port", "ntsport":
			if v, ok := intVal(); ok {
				if v < 1 || v > 65535 {
					m.warnOpt(l, opt, "%d is not a port; ignored", v)
				} else if opt == "port" {
					port = v
				} else {
					ntsPort = v
				}
			}
		case "maxsources":
			if v, ok := intVal(); ok {
				maxSources = v
			}
		case "certset":
			v, err := strconv.ParseUint(val, 10, 32)
			if err != nil {
				m.warnOpt(l, opt, "%q is not a set ID; ignored", val)
			} else {
				certSet.put(v, at(l))
			}
		case "key":
			key = val
		case "xleave":
			s.xleave = true
		}
	})
	if l.name() == "peer" && s.iburst {
		m.warnOpt(l, "iburst", "chronyd ignores it on a peer; migrated as given")
	}
	if key != "" {
		s.key = m.sourceKey(l, key, nts)
	}
	if maxSources != 0 {
		switch {
		case s.mode != config.SourcePool:
			m.warnOpt(l, "maxsources", "only used with pool; dropped")
		case maxSources < 1 || maxSources > 16:
			c := min(max(maxSources, 1), 16)
			m.warnOpt(l, "maxsources", "%d is outside 1 to 16; count = %d", maxSources, c)
			s.count = c
		default:
			s.count = maxSources
		}
	}
	if nts {
		if l.name() == "peer" {
			m.warnOpt(l, "nts", "chronyd refuses NTS on a peer; ignored")
			nts = false
		} else if s.mode == config.SourcePool {
			m.warnOpt(l, "nts", "gnomon has no NTS pool: migrated as one NTS source at the pool's name (gnomond uses one of its servers, not %d)", s.count)
			s.mode, s.count = config.SourceNTS, 0
		} else {
			s.mode = config.SourceNTS
		}
	}
	if s.mode == config.SourceNTS {
		if port != 0 && port != chronyPort {
			m.warnOpt(l, "port", "with NTS the NTP port comes from the key exchange; port %d dropped", port)
		}
		s.port = ntsPort
		if s.port == chronyNTSPort {
			s.port = 0
		}
		if certSet.set {
			s.certSet = certSet.v
		}
	} else {
		if ntsPort != 0 {
			m.warnOpt(l, "ntsport", "only used with nts; dropped")
		}
		if certSet.set {
			m.warnOpt(l, "certset", "only used with nts; dropped")
		}
		s.port = port
		if s.port == chronyPort {
			s.port = 0
		}
	}
	m.pollLimits(l, &s)
	m.sources = append(m.sources, s)
}

// pollLimits brings minpoll and maxpoll into gnomon's range.
func (m *migration) pollLimits(l *line, s *source) {
	clamp := func(name string, p *int) {
		if p == nil {
			return
		}
		if *p < config.MinPollLimit || *p > config.MaxPollLimit {
			c := min(max(*p, config.MinPollLimit), config.MaxPollLimit)
			m.warnOpt(l, name, "%d is outside gnomon's range (%d to %d); %d used", *p, config.MinPollLimit, config.MaxPollLimit, c)
			*p = c
		}
	}
	clamp("minpoll", s.minPoll)
	clamp("maxpoll", s.maxPoll)
	if s.minPoll == nil && s.maxPoll == nil {
		return
	}
	lo, hi := chronyMinPoll, chronyMaxPoll
	if s.minPoll != nil {
		lo = *s.minPoll
	}
	if s.maxPoll != nil {
		hi = *s.maxPoll
	}
	if hi < lo {
		m.warnOpt(l, "maxpoll", "maxpoll %d is below minpoll %d; chronyd raises it to %d, and so does the migration", hi, lo, lo)
		hi = lo
	}
	s.minPoll, s.maxPoll = &lo, &hi
}

func (m *migration) makestep(l *line) {
	if len(l.args()) != 2 {
		m.warnAt(l, "want a threshold and a limit; dropped")
		return
	}
	t, ok1 := parseFloat(l.args()[0])
	n, err := strconv.Atoi(l.args()[1])
	if !ok1 || err != nil {
		m.warnAt(l, "%q %q is not a threshold and a limit; dropped", l.args()[0], l.args()[1])
		return
	}
	if t < 0 {
		m.warnAt(l, "a negative threshold; dropped")
		return
	}
	if n < -1 {
		n = -1 // chronyd: any negative limit means always
	}
	m.stepThreshold.put(t, at(l))
	m.stepLimit.put(n, at(l))
}

func (m *migration) maxchange(l *line) {
	if len(l.args()) != 3 {
		m.warnAt(l, "want an offset, a start and an ignore count; dropped")
		return
	}
	v, ok := parseFloat(l.args()[0])
	if !ok || v < 0 {
		m.warnAt(l, "%q is not an offset; dropped", l.args()[0])
		return
	}
	m.panic.put(v, at(l))
	m.warnAt(l, "migrated as panic-threshold = %s: gnomond refuses larger offsets from the first update on (chronyd checks only after %s updates) and keeps running (chronyd exits after %s ignored ones)",
		fmtNum(v), l.args()[1], l.args()[2])
}

func (m *migration) driftfile(l *line) {
	args := l.args()
	if len(args) == 0 {
		m.warnAt(l, "missing file; dropped")
		return
	}
	f := args[0]
	if !path.IsAbs(f) {
		m.warnAt(l, "%q is not an absolute path; gnomon's default (/var/lib/gnomon/drift) is used", f)
		return
	}
	if len(args) > 1 {
		m.warnOpt(l, strings.Join(args[1:], " "), "gnomond writes the drift file at its own interval; dropped")
	}
	f = path.Clean(f)
	if strings.HasPrefix(f, "/var/lib/chrony/") {
		// gnomond runs as user gnomon, which cannot write chrony's directory.
		m.warnAt(l, "gnomond (user gnomon) cannot write chrony's directory: drift-file is gnomon's own, /var/lib/gnomon/drift; copy %s there (the format is the same) to start from chrony's frequency", f)
		m.driftFile.put("/var/lib/gnomon/drift", at(l))
		return
	}
	m.driftFile.put(f, at(l))
}

func (m *migration) local(l *line) {
	stratum := chronyLocalStrat
	args := l.args()
	for i := 0; i < len(args); i++ {
		opt := strings.ToLower(args[i])
		switch opt {
		case "stratum", "distance", "activate", "waitsynced", "waitunsynced":
			if i+1 >= len(args) {
				m.warnOpt(l, opt, "missing value; ignored")
				continue
			}
			i++
			if opt != "stratum" {
				m.warnOpt(l, opt, "gnomon serves local-stratum whenever no source is selected; dropped")
				continue
			}
			v, err := strconv.Atoi(args[i])
			if err != nil || v < 1 || v > 15 {
				m.warnOpt(l, opt, "%q is not a stratum from 1 to 15; %d used", args[i], chronyLocalStrat)
				continue
			}
			stratum = v
		case "orphan":
			m.warnOpt(l, opt, "the orphan mode is not supported; dropped")
		default:
			m.warnOpt(l, args[i], "unknown option; ignored")
		}
	}
	m.localStratum.put(stratum, at(l))
}

// parseSubnet reads chrony's address forms: "1.2.3.4", "1.2.3.0/24",
// "1.2.3" (a /24), "1.2/16", "2001:db8::/32".
func parseSubnet(s string) (netip.Prefix, bool) {
	addr, bits, hasBits := s, -1, false
	if i := strings.IndexByte(s, '/'); i >= 0 {
		addr, hasBits = s[:i], true
		b, err := strconv.Atoi(s[i+1:])
		if err != nil || b < 0 {
			return netip.Prefix{}, false
		}
		bits = b
	}
	a, err := netip.ParseAddr(addr)
	if err != nil {
		// Short IPv4: 1 to 3 dotted numbers.
		parts := strings.Split(addr, ".")
		if len(parts) > 3 || strings.Contains(addr, ":") {
			return netip.Prefix{}, false
		}
		var b [4]byte
		for i, p := range parts {
			n, err := strconv.Atoi(p)
			if err != nil || n < 0 || n > 255 || p == "" {
				return netip.Prefix{}, false
			}
			b[i] = byte(n)
		}
		a = netip.AddrFrom4(b)
		if !hasBits {
			bits = 8 * len(parts)
		}
	}
	if a.Zone() != "" {
		return netip.Prefix{}, false
	}
	a = a.Unmap()
	if bits < 0 {
		bits = a.BitLen()
	}
	p, err := a.Prefix(bits)
	if err != nil {
		return netip.Prefix{}, false
	}
	return p, true
}

func (m *migration) acl(l *line) {
	args := l.args()
	a := acl{at: at(l)}
	if len(args) > 0 && strings.EqualFold(args[0], "all") {
		a.all = true
		args = args[1:]
		m.warnOpt(l, "all", "gnomon cannot express the override of earlier, more specific rules; migrated as a plain %s", l.name())
	}
	switch len(args) {
	case 0: // every address
	case 1:
		p, ok := parseSubnet(args[0])
		if !ok {
			m.warnAt(l, "%q is not an address or subnet (host names are not supported: gnomon needs addresses); dropped", args[0])
			return
		}
		a.prefix = p
	default:
		m.warnAt(l, "want at most one subnet; dropped")
		return
	}
	if l.name() == "allow" {
		m.allows = append(m.allows, a)
	} else {
		m.denies = append(m.denies, a)
	}
}

func (m *migration) ratelimit(l *line) {
	rl := rateLimit{intervalLog2: chronyRLInterval, burst: chronyRLBurst}
	args := l.args()
	for i := 0; i < len(args); i++ {
		opt := strings.ToLower(args[i])
		if i+1 >= len(args) {
			m.warnOpt(l, opt, "missing value; ignored")
			break
		}
		i++
		v, err := strconv.Atoi(args[i])
		if err != nil {
			m.warnOpt(l, opt, "%q is not an integer; ignored", args[i])
			continue
		}
		switch opt {
		case "interval":
			if v < -19 || v > 12 {
				m.warnOpt(l, opt, "%d is outside chrony's -19 to 12; ignored", v)
				continue
			}
			rl.intervalLog2 = v
		case "burst":
			if v < 1 || v > 255 {
				m.warnOpt(l, opt, "%d is outside chrony's 1 to 255; ignored", v)
				continue
			}
			rl.burst = v
		case "leak":
			m.warnOpt(l, opt, "gnomon's rate limiter drops every request over the limit (no random leak); dropped")
		case "kod":
			rl.kod = v > 0
			if v > 0 {
				m.warnOpt(l, opt, "gnomond answers every dropped request with a KoD RATE when kod = true, not 1 in 2^%d; kod = true", v)
			}
		default:
			m.warnOpt(l, opt, "unknown option; ignored")
		}
	}
	m.rate.put(rl, at(l))
}

func (m *migration) trustedCerts(l *line) {
	args := l.args()
	set := uint64(0)
	if len(args) == 2 {
		v, err := strconv.ParseUint(args[0], 10, 32)
		if err != nil {
			m.warnAt(l, "%q is not a set ID; dropped", args[0])
			return
		}
		set, args = v, args[1:]
	}
	if len(args) != 1 {
		m.warnAt(l, "want [set-ID] file; dropped")
		return
	}
	o := at(l)
	o.arg = args[0]
	m.certSets[set] = append(m.certSets[set], o)
}

// existingFile reports whether p is an absolute path to a file that exists
// (not a directory): config.Parse requires that of certificate paths.
func (m *migration) existingFile(p string) (bool, string) {
	if !path.IsAbs(p) {
		return false, "not an absolute path"
	}
	fi, err := fs.Stat(m.fsys, fsPath(p))
	switch {
	case err != nil:
		return false, describe(err)
	case fi.IsDir():
		return false, "a directory (gnomon takes one PEM file)"
	}
	return true, ""
}
