package migrate

import (
	"fmt"
	"io/fs"
	"math"
	"os"
	"strconv"
	"strings"
	"unicode/utf8"
)

// DefaultPTP4lConf is where Debian's linuxptp keeps ptp4l's configuration.
const DefaultPTP4lConf = "/etc/linuxptp/ptp4l.conf"

// PTP4lOptions are what ptp4l and phc2sys take on their command lines
// rather than in ptp4l.conf.
type PTP4lOptions struct {
	Options
	// Interfaces are ptp4l's -i arguments: ports besides the file's
	// interface sections.
	Interfaces []string
	// Phc2sys are phc2sys command lines ("phc2sys -s eth0 -w"), each
	// migrated on its own.
	Phc2sys []string
}

// ptp4lDefaults are linuxptp 3.1's defaults (its default.cfg) of the
// options gnomond has no setting for: a line repeating the default says
// nothing gnomond does not already do, so it is carried over silently;
// any other value is a warning. gmCapable and min_neighbor_prop_delay,
// missing from default.cfg, are 802.1AS options with these defaults.
var ptp4lDefaults = map[string]string{
	"socket_priority": "0", "offsetScaledLogVariance": "0xFFFF", "freq_est_interval": "1",
	"dscp_event": "0", "dscp_general": "0", "dataset_comparison": "ieee1588", "G.8275.defaultDS.localPriority": "128",
	"maxStepsRemoved": "255", "operLogSyncInterval": "0", "operLogPdelayReqInterval": "0", "syncReceiptTimeout": "0",
	"fault_reset_interval": "4", "neighborPropDelayThresh": "20000000", "G.8275.portDS.localPriority": "128",
	"asCapable": "auto", "BMCA": "ptp", "inhibit_announce": "0", "inhibit_delay_req": "0", "ignore_source_id": "0",
	"assume_two_step": "0", "logging_level": "6", "path_trace_enabled": "0", "follow_up_info": "0", "hybrid_e2e": "0",
	"inhibit_multicast_service": "0", "net_sync_monitor": "0", "tc_spanning_tree": "0", "tx_timestamp_timeout": "1",
	"unicast_listen": "0", "unicast_master_table": "0", "unicast_req_duration": "3600", "use_syslog": "1", "verbose": "0",
	"summary_interval": "0", "kernel_leap": "1", "check_fup_sync": "0", "pi_proportional_const": "0.0",
	"pi_integral_const": "0.0", "pi_proportional_scale": "0.0", "pi_proportional_exponent": "-0.3",
	"pi_proportional_norm_max": "0.7", "pi_integral_scale": "0.0", "pi_integral_exponent": "0.4",
	"pi_integral_norm_max": "0.3", "step_threshold": "0.0", "first_step_threshold": "0.00002",
	"max_frequency": "900000000", "clock_servo": "pi", "sanity_freq_limit": "200000000", "ntpshm_segment": "0",
	"msg_interval_request": "0", "servo_num_offset_values": "10", "servo_offset_threshold": "0", "write_phase_mode": "0",
	"transportSpecific": "0x0", "ptp_dst_mac": "01:1B:19:00:00:00", "p2p_dst_mac": "01:80:C2:00:00:0E", "udp_ttl": "1",
	"udp6_scope": "0x0E", "clock_type": "OC", "tsproc_mode": "filter", "delay_filter": "moving_median",
	"delay_filter_length": "10", "egressLatency": "0", "ingressLatency": "0", "boundary_clock_jbod": "0",
	"productDescription": ";;", "revisionData": ";;", "manufacturerIdentity": "00:00:00", "userDescription": ";",
	"timeSource": "0xA0", "gmCapable": "1", "min_neighbor_prop_delay": "-20000000",
}

// ptp4lWhy says why an option with no gnomond setting cannot be carried
// over, by the group it belongs to.
func ptp4lWhy(key string) string {
	switch key {
	case "neighborPropDelayThresh":
		return "asCapable's neighbor propagation delay limit exists only with profile = \"gptp\" or \"automotive\" (neighbor-prop-delay-thresh)"
	case "min_neighbor_prop_delay":
		return "gnomond's lower limit on the neighbor propagation delay is fixed at gPTP.cfg's -20 ms"
	case "syncReceiptTimeout":
		return "gnomond's sync receipt timeout is 802.1AS's 3 Sync intervals (gPTP only), not configurable"
	case "transportSpecific", "follow_up_info", "gmCapable", "assume_two_step", "path_trace_enabled", "ptp_dst_mac", "p2p_dst_mac":
		return "a gPTP setting outside profile = \"gptp\" (which needs transportSpecific 1, L2 and P2P): no equivalent"
	case "operLogSyncInterval", "operLogPdelayReqInterval", "msg_interval_request":
		return "only a gnomond automotive slave asks for operational intervals, always automotive-slave.cfg's (Sync 1 s, Pdelay_Req 4 s)"
	case "servo_offset_threshold", "servo_num_offset_values":
		return "gnomond's slave asks for the operational intervals once its servo locks; the lock rule is not configurable"
	case "inhibit_delay_req":
		return "only a gnomond automotive grandmaster leaves out Pdelay_Req"
	case "BMCA", "inhibit_announce", "asCapable", "ignore_source_id":
		return "static roles need profile = \"automotive\" (transportSpecific 1, L2, P2P, BMCA noop and masterOnly or slaveOnly)"
	case "unicast_listen", "unicast_master_table", "unicast_req_duration", "hybrid_e2e", "inhibit_multicast_service":
		return "unicast negotiation is not supported (gnomond's client-server PTP, mode = \"csptp\", is a different protocol)"
	case "pi_proportional_const", "pi_integral_const", "pi_proportional_scale", "pi_proportional_exponent",
		"pi_proportional_norm_max", "pi_integral_scale", "pi_integral_exponent", "pi_integral_norm_max",
		"step_threshold", "first_step_threshold", "max_frequency", "clock_servo", "sanity_freq_limit", "freq_est_interval":
		return "gnomond's PTP servo uses linuxptp's default PI constants and step rules; they are not configurable"
	case "logging_level", "use_syslog", "verbose", "summary_interval":
		return "logging is set in gnomond's [log] table"
	case "dataset_comparison", "G.8275.defaultDS.localPriority", "G.8275.portDS.localPriority", "maxStepsRemoved":
		return "the telecom profiles (G.8275.x) are not implemented"
	case "clock_type", "boundary_clock_jbod", "tc_spanning_tree":
		return "gnomond is an ordinary clock: boundary and transparent clocks are not implemented"
	case "productDescription", "revisionData", "manufacturerIdentity", "userDescription":
		return "gnomond describes itself in management answers"
	}
	return "no equivalent in gnomond"
}

// With profile = "gptp" these values are what the profile does; with
// "automotive" also these.
var (
	gptpImplied = map[string]string{"transportSpecific": "1", "follow_up_info": "1", "path_trace_enabled": "1",
		"assume_two_step": "1", "ptp_dst_mac": "01:80:C2:00:00:0E", "p2p_dst_mac": "01:80:C2:00:00:0E", "gmCapable": "1",
		"syncReceiptTimeout": "3", "min_neighbor_prop_delay": "-20000000"}
	automotiveImplied = map[string]string{"BMCA": "noop", "inhibit_announce": "1", "asCapable": "true", "ignore_source_id": "1",
		"inhibit_delay_req": "1", "operLogSyncInterval": "0", "operLogPdelayReqInterval": "2", "msg_interval_request": "1"}
)

type p4val struct {
	v  string
	at origin
}

type p4port struct {
	name string
	at   origin
	opts map[string]p4val
	cli  bool // from --interface
}

type p4migration struct {
	file     string
	global   map[string]p4val
	ports    []*p4port
	warnings []Warning
	seq      int
}

func (m *p4migration) warn(at origin, key, format string, args ...any) {
	m.warnings = append(m.warnings, Warning{File: at.file, Line: at.num, Directive: key, Msg: fmt.Sprintf(format, args...)})
}

// PTP4l migrates a ptp4l.conf (global, interface and unicast_master_table
// sections) and phc2sys command lines to gnomon.toml. Like Chrony it fails
// only when the file cannot be read or is not text.
func PTP4l(path string, opts PTP4lOptions) (*Result, error) {
	data, name, err := readOne(path, opts.Options)
	if err != nil {
		return nil, err
	}
	m := &p4migration{file: name, global: map[string]p4val{}}
	m.parse(data)
	for _, ifc := range opts.Interfaces {
		if !validIfName(ifc) {
			m.warn(origin{file: "ptp4l command line"}, "-i", "%q is not a network interface name: left out", ifc)
			continue
		}
		if !m.hasPort(ifc) {
			m.ports = append(m.ports, &p4port{name: ifc, opts: map[string]p4val{}, cli: true,
				at: origin{file: "ptp4l command line", text: "-i " + ifc}})
		}
	}
	var w tomlWriter
	w.comment("Migrated from %s by gnomonctl migrate ptp4l.", name)
	w.comment("Each setting names the ptp4l.conf line it came from.")
	m.emit(&w)
	for _, cmd := range opts.Phc2sys {
		m.phc2sys(&w, cmd)
	}
	return &Result{TOML: w.b.Bytes(), Warnings: m.warnings, Files: []string{name}}, nil
}

func readOne(path string, opts Options) ([]byte, string, error) {
	var data []byte
	var err error
	name := path
	if opts.FS != nil {
		data, err = fs.ReadFile(opts.FS, strings.TrimPrefix(path, "/"))
	} else {
		data, err = os.ReadFile(path)
	}
	if err != nil {
		return nil, name, &Error{File: name, Msg: describe(err), Err: err}
	}
	if len(data) > MaxFileSize {
		return nil, name, &Error{File: name, Msg: fmt.Sprintf("larger than %d bytes: not a ptp4l.conf", MaxFileSize)}
	}
	if !utf8.Valid(data) || strings.ContainsRune(string(data), 0) {
		return nil, name, &Error{File: name, Msg: "not a text file"}
	}
	return data, name, nil
}

func (m *p4migration) hasPort(name string) bool {
	for _, p := range m.ports {
		if p.name == name {
			return true
		}
	}
	return false
}

// parse reads the file as linuxptp's config.c does: '#' starts a comment
// line, "[name]" a section, other lines are "option value".
func (m *p4migration) parse(data []byte) {
	section := "global"
	var port *p4port
	for i, raw := range strings.Split(string(data), "\n") {
		num := i + 1
		l := strings.TrimSpace(strings.TrimSuffix(raw, "\r"))
		if l == "" || strings.HasPrefix(l, "#") {
			continue
		}
		m.seq++
		at := origin{seq: m.seq, file: m.file, num: num, text: strings.Join(strings.Fields(l), " ")}
		if strings.HasPrefix(l, "[") {
			end := strings.IndexByte(l, ']')
			if end < 0 {
				m.warn(at, "", "section header without ']': ignored")
				continue
			}
			section = strings.TrimSpace(l[1:end])
			port = nil
			switch section {
			case "global":
			case "unicast_master_table":
				m.warn(at, "unicast_master_table", "%s", ptp4lWhy("unicast_master_table"))
			default:
				at.dir = section
				port = &p4port{name: section, at: at, opts: map[string]p4val{}}
				if !validIfName(section) {
					m.warn(at, "", "%q is not a network interface name: the section is left out", section)
					port = &p4port{opts: map[string]p4val{}}
				} else if m.hasPort(section) {
					m.warn(at, section, "a second section for the same interface: its options are ignored")
					port = &p4port{opts: map[string]p4val{}}
				} else {
					m.ports = append(m.ports, port)
				}
			}
			continue
		}
		f := strings.Fields(l)
		key, val := f[0], strings.Join(f[1:], " ")
		at.dir = key
		switch {
		case section == "unicast_master_table":
			continue // warned once, at the section
		case port != nil:
			port.opts[key] = p4val{val, at}
		default:
			m.global[key] = p4val{val, at}
		}
	}
}

// portSettings are what one [[source]]/[[ptp-port]] gets.
type portSettings struct {
	kv      [][2]string // key, TOML value, in order
	from    []origin
	slave   bool
	observe bool
	profile string // "", "gptp", "automotive"
}

// profileOf says which 802.1AS profile a port's options ask for:
// transportSpecific 1 over L2 with P2P is gPTP; with BMCA noop and
// masterOnly or slaveOnly, the automotive profile.
func (m *p4migration) profileOf(get func(string) (p4val, bool)) string {
	ts, ok := get("transportSpecific")
	if !ok || !sameValue(ts.v, "1") {
		return ""
	}
	nt, _ := get("network_transport")
	dm, _ := get("delay_mechanism")
	if !strings.EqualFold(nt.v, "L2") || !strings.EqualFold(dm.v, "P2P") {
		return ""
	}
	if b, ok := get("BMCA"); ok && b.v == "noop" {
		mo, _ := get("masterOnly")
		so, _ := get("slaveOnly")
		if sameValue(mo.v, "1") || sameValue(so.v, "1") {
			return "automotive"
		}
	}
	return "gptp"
}

// p4keys are the options gnomond carries over (the rest are warned about
// unless they repeat linuxptp's default).
var p4keys = map[string]bool{
	"domainNumber": true, "network_transport": true, "delay_mechanism": true, "time_stamping": true,
	"delayAsymmetry": true, "priority1": true, "priority2": true, "clockClass": true, "clockAccuracy": true,
	"logAnnounceInterval": true, "logSyncInterval": true, "logMinDelayReqInterval": true, "logMinPdelayReqInterval": true,
	"announceReceiptTimeout": true, "masterOnly": true, "slaveOnly": true, "twoStepFlag": true, "free_running": true,
	"uds_address": true, "neighborPropDelayThresh": true,
}

func (m *p4migration) settings(p *p4port, first bool, warn bool) portSettings {
	var ps portSettings
	get := func(k string) (p4val, bool) {
		if v, ok := p.opts[k]; ok {
			return v, true
		}
		v, ok := m.global[k]
		return v, ok
	}
	put := func(at origin, k, v string) {
		ps.kv = append(ps.kv, [2]string{k, v})
		ps.from = append(ps.from, at)
	}
	bad := func(v p4val, format string, args ...any) {
		if warn {
			m.warn(v.at, v.at.dir, format, args...)
		}
	}
	integer := func(k string, lo, hi int) (int, p4val, bool) {
		v, ok := get(k)
		if !ok {
			return 0, v, false
		}
		n, err := strconv.ParseInt(v.v, 0, 64)
		if err != nil || n < int64(lo) || n > int64(hi) {
			bad(v, "%q is not an integer between %d and %d: left out", v.v, lo, hi)
			return 0, v, false
		}
		return int(n), v, true
	}
	flag := func(k string) (bool, p4val, bool) {
		n, v, ok := integer(k, 0, 1)
		return n == 1, v, ok
	}
	if on, v, ok := flag("slaveOnly"); ok && on {
		ps.slave = true
		_ = v
	}
	ps.profile = m.profileOf(get)
	if ps.profile != "" {
		ts, _ := get("transportSpecific")
		put(ts.at, "profile", quote(ps.profile))
	}
	if n, _, ok := integer("clockClass", 0, 255); ok && n == 255 {
		ps.slave = true
	}
	if on, _, ok := flag("free_running"); ok && on {
		ps.observe = true
	}
	if n, v, ok := integer("domainNumber", 0, 255); ok {
		if n > 127 {
			bad(v, "domain %d is outside 0..127 (1588-2019 reserves the rest): left out", n)
		} else if n != 0 {
			put(v.at, "domain", strconv.Itoa(n))
		}
	}
	if v, ok := get("network_transport"); ok {
		switch strings.ToLower(v.v) {
		case "udpv4":
			put(v.at, "transport", `"udp4"`)
		case "udpv6":
			put(v.at, "transport", `"udp6"`)
		case "l2":
			put(v.at, "transport", `"ethernet"`)
		default:
			bad(v, "unknown transport %q: the default, udp4, is used", v.v)
		}
	}
	if v, ok := get("delay_mechanism"); ok {
		switch strings.ToUpper(v.v) {
		case "E2E":
			put(v.at, "delay-mechanism", `"e2e"`)
		case "P2P":
			put(v.at, "delay-mechanism", `"p2p"`)
		case "AUTO":
			bad(v, "Auto (start E2E, switch to P2P when a peer delay request is heard) is not implemented: e2e is used")
		default:
			bad(v, "%q is not implemented: e2e is used", v.v)
		}
	}
	if v, ok := get("time_stamping"); ok {
		switch v.v {
		case "hardware", "software":
			put(v.at, "timestamping", quote(v.v))
		default:
			bad(v, "%q timestamping (one-step hardware modes) is not implemented: \"auto\" is used", v.v)
		}
	}
	if v, ok := get("delayAsymmetry"); ok {
		ns, err := strconv.ParseFloat(v.v, 64)
		switch {
		case err != nil || math.Abs(ns) > 1e9:
			bad(v, "%q is not a number of nanoseconds within ±1 s: left out", v.v)
		case ns != 0:
			put(v.at, "asymmetry", fmtNum(ns/1e9))
		}
	}
	if v, ok := get("neighborPropDelayThresh"); ok {
		ns, err := strconv.ParseFloat(v.v, 64)
		switch {
		case ps.profile == "" && sameValue(v.v, ptp4lDefaults["neighborPropDelayThresh"]):
		case ps.profile == "":
			bad(v, "%s", ptp4lWhy("neighborPropDelayThresh"))
		case err != nil || ns <= 0 || ns > 1e9:
			bad(v, "%q is not a number of nanoseconds above 0 and at most 1 s: left out", v.v)
		case ns != 800: // 802.1AS's, the profile's
			put(v.at, "neighbor-prop-delay-thresh", fmtNum(ns/1e9))
		}
	}
	if v, ok := get("uds_address"); ok && first {
		if strings.HasPrefix(v.v, "/") {
			put(v.at, "management-socket", quote(v.v))
		} else {
			bad(v, "%q is not an absolute path: left out", v.v)
		}
	}
	if ps.slave {
		for _, k := range []string{"priority1", "priority2", "clockClass", "clockAccuracy", "logAnnounceInterval", "logSyncInterval",
			"logMinDelayReqInterval", "logMinPdelayReqInterval", "announceReceiptTimeout", "masterOnly", "twoStepFlag"} {
			if v, ok := get(k); ok && v.v != p4portDefault(k) && k != "clockClass" {
				bad(v, "a slave-only port (a [[source]] with mode = \"ptp\") has no such setting: left out")
			}
		}
		return ps
	}
	for _, e := range []struct {
		key, to string
		lo, hi  int
	}{{"priority1", "priority1", 0, 255}, {"priority2", "priority2", 0, 255}, {"clockClass", "clock-class", 0, 254},
		{"clockAccuracy", "clock-accuracy", 0, 255}, {"logAnnounceInterval", "announce-interval", -7, 7},
		{"logSyncInterval", "sync-interval", -7, 7}, {"logMinDelayReqInterval", "delay-request-interval", -7, 7},
		{"announceReceiptTimeout", "announce-receipt-timeout", 2, 255}} {
		if n, v, ok := integer(e.key, e.lo, e.hi); ok && v.v != p4portDefault(e.key) {
			put(v.at, e.to, strconv.Itoa(n))
		}
	}
	if n, v, ok := integer("logMinPdelayReqInterval", -7, 7); ok && n != 0 {
		if dv, has := get("logMinDelayReqInterval"); has && dv.v != v.v {
			bad(v, "gnomond has one delay-request-interval for Delay_Req and Pdelay_Req: logMinDelayReqInterval's is used")
		} else if !has {
			put(v.at, "delay-request-interval", strconv.Itoa(n))
		}
	}
	if on, v, ok := flag("masterOnly"); ok && on {
		if ps.profile == "automotive" {
			put(v.at, "role", `"grandmaster"`)
		} else {
			put(v.at, "master-only", "true")
		}
	}
	if on, v, ok := flag("twoStepFlag"); ok && !on {
		put(v.at, "one-step", "true")
	}
	return ps
}

func p4portDefault(k string) string {
	return map[string]string{"priority1": "128", "priority2": "128", "clockClass": "248", "clockAccuracy": "0xFE",
		"logAnnounceInterval": "1", "logSyncInterval": "0", "logMinDelayReqInterval": "0", "logMinPdelayReqInterval": "0",
		"announceReceiptTimeout": "3", "masterOnly": "0", "twoStepFlag": "1"}[k]
}

func (m *p4migration) emit(w *tomlWriter) {
	// Options with no equivalent: warned once, at their line.
	prof := m.profileOf(func(k string) (p4val, bool) { v, ok := m.global[k]; return v, ok })
	if len(m.ports) > 0 {
		p0 := m.ports[0]
		prof = m.profileOf(func(k string) (p4val, bool) {
			if v, ok := p0.opts[k]; ok {
				return v, true
			}
			v, ok := m.global[k]
			return v, ok
		})
	}
	check := func(opts map[string]p4val) {
		for k, v := range opts {
			if p4keys[k] || k == "slaveOnly" {
				continue
			}
			if want, ok := gptpImplied[k]; ok && prof != "" && sameValue(v.v, want) {
				continue
			}
			if want, ok := automotiveImplied[k]; ok && prof == "automotive" && strings.EqualFold(v.v, want) {
				continue
			}
			def, known := ptp4lDefaults[k]
			switch {
			case !known:
				m.warn(v.at, k, "unknown ptp4l option: left out")
			case !sameValue(v.v, def):
				m.warn(v.at, k, "%s", ptp4lWhy(k))
			}
		}
	}
	check(m.global)
	for _, p := range m.ports {
		check(p.opts)
	}
	if len(m.ports) == 0 {
		at := origin{file: m.file}
		m.warn(at, "", "no interface: ptp4l takes them with -i (gnomonctl migrate ptp4l --interface NAME); eth0 is written, change it")
		m.ports = append(m.ports, &p4port{name: "eth0", opts: map[string]p4val{}, at: origin{file: "placeholder", text: "-i eth0"}})
	}
	if len(m.ports) > 1 {
		at := m.ports[1].at
		m.warn(at, "", "ptp4l runs several ports as one boundary clock; gnomond runs an ordinary clock on each port, each with its own BMCA")
	}
	observe := false
	var all []portSettings
	for i, p := range m.ports {
		ps := m.settings(p, i == 0, i == 0)
		if i > 0 {
			// per-port warnings (bad values in the port's own section)
			m.settingsPortOnly(p)
		}
		observe = observe || ps.observe
		all = append(all, ps)
	}
	if observe {
		w.header("[clock]")
		if v, ok := m.global["free_running"]; ok {
			w.from4(v.at)
		}
		w.comment("free_running 1: measure and report, never adjust a clock")
		w.kv("mode", `"observe"`)
	}
	for i, p := range m.ports {
		ps := all[i]
		if ps.slave {
			w.header("[[source]]")
			w.kv("mode", `"ptp"`)
		} else {
			w.header("[[ptp-port]]")
		}
		if p.at.num > 0 || p.cli {
			w.from4(p.at)
		}
		w.kv("interface", quote(p.name))
		for j, kv := range ps.kv {
			w.from4(ps.from[j])
			w.kv(kv[0], kv[1])
		}
	}
	sortWarnings(m.warnings)
}

// settingsPortOnly re-runs the value checks for options set in a port's
// own section (the global ones were checked with the first port).
func (m *p4migration) settingsPortOnly(p *p4port) {
	if len(p.opts) == 0 {
		return
	}
	saved := m.global
	m.global = map[string]p4val{}
	m.settings(p, false, true)
	m.global = saved
}

func sameValue(a, b string) bool {
	if strings.EqualFold(a, b) {
		return true
	}
	x, err1 := strconv.ParseFloat(a, 64)
	y, err2 := strconv.ParseFloat(b, 64)
	if err1 == nil && err2 == nil {
		return x == y
	}
	xi, err1 := strconv.ParseInt(a, 0, 64)
	yi, err2 := strconv.ParseInt(b, 0, 64)
	return err1 == nil && err2 == nil && xi == yi
}

func sortWarnings(ws []Warning) {
	for i := 1; i < len(ws); i++ {
		for j := i; j > 0 && (ws[j].File == ws[j-1].File && ws[j].Line < ws[j-1].Line); j-- {
			ws[j], ws[j-1] = ws[j-1], ws[j]
		}
	}
}

func (w *tomlWriter) from4(o origin) {
	if o.num > 0 {
		w.comment("ptp4l: %s:%d: %s", o.file, o.num, o.text)
	} else {
		w.comment("ptp4l: %s: %s", o.file, o.text)
	}
}

// phc2sys migrates one phc2sys command line. gnomond does phc2sys's work
// in the same process as ptp4l's, so nothing is written but a comment;
// what it cannot do yet is warned about.
func (m *p4migration) phc2sys(w *tomlWriter, cmd string) {
	words := strings.Fields(cmd)
	file := "phc2sys command line"
	at := origin{file: file, text: cmd}
	if len(words) > 0 && strings.HasSuffix(words[0], "phc2sys") {
		words = words[1:]
	}
	w.b.WriteByte('\n')
	w.comment("phc2sys: %s", sanitizeComment(cmd))
	src, dst := "", "CLOCK_REALTIME"
	auto := false
	for i := 0; i < len(words); i++ {
		o := words[i]
		arg := func() string {
			if i+1 < len(words) {
				i++
				return words[i]
			}
			m.warn(at, o, "missing its argument")
			return ""
		}
		switch o {
		case "-a":
			auto = true
		case "-r":
		case "-s", "-i":
			src = arg()
		case "-c":
			dst = arg()
		case "-d":
			m.warn(at, o+" "+arg(), "PPS devices are not supported yet")
		case "-O":
			m.warn(at, o+" "+arg(), "a fixed offset between the clocks is not supported: gnomond takes the UTC offset from the PTP grandmaster")
		case "-w", "-m", "-q", "-v", "-h":
		case "-l", "-u", "-t":
			arg()
		case "-n":
			m.warn(at, o+" "+arg(), "the domain is set on the PTP port (domain)")
		case "-z":
			arg()
		case "-E", "-P", "-I", "-S", "-F", "-R", "-N", "-L", "-M":
			m.warn(at, o+" "+arg(), "gnomond's servo and its rates are not configurable")
		default:
			m.warn(at, o, "unknown or unsupported phc2sys option: left out")
		}
	}
	switch {
	case dst != "CLOCK_REALTIME":
		m.warn(at, "-c "+dst, "disciplining a PHC from another clock (gnomond as master of an NTP-disciplined host) is not wired yet")
	case auto || src != "":
		m.warn(at, "", "the system clock is not yet disciplined from a PTP port's clock (docs/ptp.md, \"not done\"): "+
			"gnomond measures and reports it, and keeps the system clock on its NTP sources")
	}
}

// validIfName: what Linux accepts as an interface name (and gnomond's
// configuration as one).
func validIfName(s string) bool {
	return s != "" && len(s) <= 15 && s != "." && s != ".." && !strings.ContainsAny(s, "/: \t\"\\")
}
