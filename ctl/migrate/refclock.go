package migrate

import (
	"fmt"
	"strconv"
	"strings"

	"gnomon.dev/gnomon/service/config"
)

// chrony's refclock lines: `refclock DRIVER PARAMETER[:OPTION]... [OPTION]...`.
// SHM, SOCK and PPS become [[source]] tables of mode shm, sock and pps
// (docs/refclock.md); PHC and RTC have no equivalent yet and are listed in
// a comment, as are lines chronyd would refuse.

type refclockSrc struct {
	at     origin
	mode   config.SourceMode
	param  string // unit, path or device
	refid  string
	lock   string
	clear  bool
	keys   [][2]string // further keys, in order
	prefer bool
	noSel  bool
}

// refclockOpts are chrony's refclock options: how many values each takes,
// and why it is dropped ("" when it maps to a key).
var refclockOpts = map[string]optSpec{
	"poll": {1, ""}, "refid": {1, ""}, "lock": {1, ""}, "filter": {1, ""}, "offset": {1, ""},
	"delay": {1, ""}, "precision": {1, ""}, "prefer": {0, ""}, "noselect": {0, ""}, "trust": {0, ""},
	"dpoll":         {1, "gnomon takes every sample as it comes"},
	"rate":          {1, "pulses are taken at one per second"},
	"minsamples":    {1, "the median of the poll's samples is used"},
	"maxsamples":    {1, "the median of the poll's samples is used"},
	"maxlockage":    {1, "a lock source's estimate is used while it is recent (four polls, at least 64 s)"},
	"maxdispersion": {1, "samples are not cut off by dispersion"},
	"stratum":       {1, "a reference clock is stratum 0"},
	"tai":           {0, "reference clocks are taken to give UTC"},
	"pps":           {0, "SHM samples are taken as they are; a SOCK client marks pulses itself"},
	"width":         {1, "the pulse width is not needed"},
	"require":       {0, "minimum-agreeing-sources is global, not per source"},
	"local":         {0, "reference clocks are compared to the system clock"},
}

// refclock migrates one refclock line.
func (m *migration) refclock(l *line) {
	args := l.args()
	if len(args) < 2 {
		m.warnAt(l, "want a driver and its parameter; dropped")
		return
	}
	driver := strings.ToUpper(args[0])
	r := refclockSrc{at: at(l)}
	// chrony's default refid: the driver's first three letters and the
	// refclock's number; kept, so that lock and the served refid stay.
	r.refid = driver[:min(3, len(driver))] + strconv.Itoa(m.refclockCount)
	m.refclockCount++
	switch driver {
	case "SHM":
		r.mode = config.SourceSHM
	case "SOCK":
		r.mode = config.SourceSOCK
	case "PPS":
		r.mode = config.SourcePPS
	case "PHC":
		m.unmigrated(l, "gnomon's PTP sources (mode \"ptp\") are not built yet")
		return
	case "RTC":
		m.unmigrated(l, "an RTC as a time source is not supported")
		return
	default:
		m.unmigrated(l, fmt.Sprintf("unknown driver %q", args[0]))
		return
	}
	// PARAMETER[:OPTION]...
	parts := strings.Split(args[1], ":")
	r.param = parts[0]
	for _, o := range parts[1:] {
		switch {
		case r.mode == config.SourcePPS && o == "clear":
			r.clear = true
		case r.mode == config.SourceSHM && strings.HasPrefix(o, "perm="):
			m.warnOpt(l, o, "gnomond creates a missing segment with mode 0600 (gpsd, the usual writer, runs as root); dropped")
		default:
			m.warnOpt(l, o, "unknown driver option; ignored")
		}
	}
	switch r.mode {
	case config.SourceSHM:
		u, err := strconv.Atoi(r.param)
		if err != nil || u < 0 || u > config.MaxSHMUnit {
			m.unmigrated(l, fmt.Sprintf("%q is not a segment number (0..%d)", r.param, config.MaxSHMUnit))
			return
		}
		r.param = strconv.Itoa(u)
	default:
		if !strings.HasPrefix(r.param, "/") || len(r.param) > 107 || strings.ContainsFunc(r.param, func(c rune) bool { return c < ' ' || c == 0x7f }) {
			m.unmigrated(l, fmt.Sprintf("%q is not an absolute path gnomon can use", r.param))
			return
		}
	}
	defaultRefID := r.refid
	m.options(l, args, 2, refclockOpts, func(opt, val string) {
		switch opt {
		case "refid":
			r.refid = val
		case "lock":
			r.lock = val
		case "prefer":
			r.prefer = true
		case "noselect":
			r.noSel = true
		case "trust":
			r.set("trust", "true")
		case "poll", "filter":
			n, err := strconv.Atoi(val)
			lo, hi := config.MinRefclockPoll, config.MaxRefclockPoll
			if opt == "filter" {
				lo, hi = 1, config.MaxRefclockFilter
			}
			if err != nil || n < lo || n > hi {
				m.warnOpt(l, opt, "%q is outside gnomon's range %d..%d; dropped", val, lo, hi)
				return
			}
			r.set(opt, strconv.Itoa(n))
		default: // offset, delay, precision: seconds
			f, ok := parseFloat(val)
			if !ok || (opt != "offset" && f < 0) || f > 3600 || f < -3600 {
				m.warnOpt(l, opt, "%q is not a usable number of seconds; dropped", val)
				return
			}
			r.set(opt, strconv.FormatFloat(f, 'g', -1, 64))
		}
	})
	if len(r.refid) > 4 {
		m.warnOpt(l, "refid", "%q is longer than four characters; chronyd uses %q, and so does the migration", r.refid, r.refid[:4])
		r.refid = r.refid[:4]
	}
	if !printableRefID(r.refid) {
		m.warnOpt(l, "refid", "%q is not 1 to 4 printable ASCII characters; %q is used", r.refid, defaultRefID)
		r.refid = defaultRefID
	}
	if r.lock != "" && !printableRefID(r.lock) {
		m.warnOpt(l, "lock", "%q is not a reference id; dropped", r.lock)
		r.lock = ""
	}
	if r.lock != "" && r.mode == config.SourceSHM {
		m.warnOpt(l, "lock", "gnomon locks only pulses (pps, sock); dropped")
		r.lock = ""
	}
	m.refsrcs = append(m.refsrcs, r)
}

// set sets key to value; an option given twice keeps its last value, as
// chronyd does.
func (r *refclockSrc) set(key, value string) {
	for i := range r.keys {
		if r.keys[i][0] == key {
			r.keys[i][1] = value
			return
		}
	}
	r.keys = append(r.keys, [2]string{key, value})
}

func printableRefID(s string) bool {
	return s != "" && len(s) <= 4 && !strings.ContainsFunc(s, func(c rune) bool { return c <= ' ' || c > '~' })
}

// unmigrated lists a refclock line gnomon cannot take.
func (m *migration) unmigrated(l *line, why string) {
	m.refclocks = append(m.refclocks, at(l))
	m.warnAt(l, "%s; this reference clock is not migrated (the rest of the configuration must keep the clock in time without it)", why)
}

// emitRefclocks writes the migrated reference clocks; it returns how many.
func (m *migration) emitRefclocks(w *tomlWriter) int {
	refids := map[string]origin{}
	var keep []refclockSrc
	for _, r := range m.refsrcs {
		if prev, dup := refids[r.refid]; dup {
			m.warn(r.at.file, r.at.num, r.at.dir, "refid %s is already used by %s:%d; gnomon names each reference clock once; not migrated", r.refid, prev.file, prev.num)
			continue
		}
		refids[r.refid] = r.at
		keep = append(keep, r)
	}
	for _, r := range keep {
		if r.lock != "" {
			if _, ok := refids[r.lock]; !ok || r.lock == r.refid {
				m.warn(r.at.file, r.at.num, r.at.dir+" lock", "%s is not another migrated reference clock; without it a pulse takes its second from the system time once it is synchronized", r.lock)
				r.lock = ""
			}
		}
		w.header("[[source]]")
		w.from(r.at)
		w.kv("mode", quote(string(r.mode)))
		switch r.mode {
		case config.SourceSHM:
			w.kv("unit", r.param)
		case config.SourceSOCK:
			w.kv("path", quote(r.param))
		case config.SourcePPS:
			w.kv("device", quote(r.param))
			if r.clear {
				w.kv("edge", quote(string(config.EdgeClear)))
			}
		}
		w.kv("refid", quote(r.refid))
		if r.lock != "" {
			w.kv("lock", quote(r.lock))
		}
		for _, kv := range r.keys {
			w.kv(kv[0], kv[1])
		}
		if r.prefer {
			w.kv("prefer", "true")
		}
		if r.noSel {
			w.kv("noselect", "true")
		}
	}
	return len(keep)
}
