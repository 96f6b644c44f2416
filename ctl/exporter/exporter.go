// Package exporter is gnomon-exporter's Prometheus collector: at each
// scrape it reads gnomond over D-Bus (ctl/client: the same reads as
// gnomonctl status --json) and turns them into metrics (docs/metrics.md).
package exporter

import (
	"context"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"gnomon.dev/gnomon/ctl/client"
)

// Reader reads gnomond's state; *client.Client is one.
type Reader interface {
	Status(ctx context.Context) (*client.Status, error)
	Close() error
}

// Dialer opens a Reader (a D-Bus connection).
type Dialer func(ctx context.Context) (Reader, error)

// Collector is a prometheus.Collector reading gnomond at every scrape. It
// keeps one connection and dials again after an error.
type Collector struct {
	dial    Dialer
	timeout time.Duration
	log     *slog.Logger

	mu sync.Mutex
	r  Reader
}

// New makes a collector; timeout bounds one scrape's D-Bus reads.
func New(dial Dialer, timeout time.Duration, log *slog.Logger) *Collector {
	if log == nil {
		log = slog.Default()
	}
	return &Collector{dial: dial, timeout: timeout, log: log}
}

const ns = "gnomon"

func desc(name, help string, labels ...string) *prometheus.Desc {
	return prometheus.NewDesc(ns+"_"+name, help, labels, nil)
}

var (
	srcLabels = []string{"source", "address", "kind"}

	dUp             = desc("up", "1 when gnomond answered over D-Bus at this scrape, else 0.")
	dInfo           = desc("info", "gnomond's version and clock mode (value 1).", "version", "clock_mode")
	dSynchronized   = desc("synchronized", "1 when gnomond's clock is synchronized (holdover included).")
	dState          = desc("state", "gnomond's state: 1 for the current one.", "state")
	dNTP            = desc("ntp_enabled", "1 when synchronization is on (timedate1 SetNTP).")
	dOffset         = desc("offset_seconds", "Last measured offset of the clock: reference minus local.")
	dFreq           = desc("frequency_ratio", "Frequency correction in force, as a ratio (ppm × 1e-6).")
	dRootDelay      = desc("root_delay_seconds", "Root delay to the reference.")
	dRootDisp       = desc("root_dispersion_seconds", "Root dispersion.")
	dRootDist       = desc("root_distance_seconds", "Root distance: root delay / 2 + root dispersion.")
	dStratum        = desc("stratum", "gnomond's stratum (16 when unsynchronized).")
	dLeap           = desc("leap_status", "Leap status: 1 for the current one.", "leap")
	dSrcReach       = desc("source_reachability", "The source's 8-bit reach register (255: the last 8 polls answered).", srcLabels...)
	dSrcReachable   = desc("source_reachable", "1 when the source answered at least one of the last 8 polls.", srcLabels...)
	dSrcSelected    = desc("source_selected", "1 for the system peer.", srcLabels...)
	dSrcState       = desc("source_state", "The source's selection state: 1 for the current one.", append(srcLabels, "state")...)
	dSrcOffset      = desc("source_offset_seconds", "The source's offset (clock filter's pick).", srcLabels...)
	dSrcDelay       = desc("source_delay_seconds", "The source's round-trip delay.", srcLabels...)
	dSrcJitter      = desc("source_jitter_seconds", "The source's jitter.", srcLabels...)
	dSrcStratum     = desc("source_stratum", "The source's stratum.", srcLabels...)
	dSrcPoll        = desc("source_poll_interval_seconds", "The source's poll interval.", srcLabels...)
	dSrcSent        = desc("source_requests_sent_total", "Requests sent to the source.", srcLabels...)
	dSrcReceived    = desc("source_replies_received_total", "Datagrams received from the source.", srcLabels...)
	dSrcRejected    = desc("source_replies_rejected_total", "Datagrams from the source not used, by reason.", append(srcLabels, "reason")...)
	dSrcSockErrors  = desc("source_socket_errors_total", "Failed sends and ICMP errors on the source's socket.", srcLabels...)
	dNTPKoD         = desc("ntp_server_kod_total", "Kiss-o'-Death replies sent, by code (NTSN: NTS NAK, a cookie failure).", "listen", "code")
	leapStates      = []string{"none", "insert", "delete", "unsynchronized"}
	engineStates    = []string{"synchronized", "unsynchronized", "holdover", "panic"}
	kodCodes        = map[string]string{"kod_rate": "RATE", "kod_deny": "DENY", "kod_ntsn": "NTSN"}
	serverDescs     sync.Map // metric name → *prometheus.Desc
	serverCounterOK = func(name string) bool {
		for _, c := range name {
			if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '_') {
				return false
			}
		}
		return name != ""
	}
)

// serverDesc is the descriptor of a server counter: gnomon_ntp_server_<name>_total
// or gnomon_ntske_server_<name>_total.
func serverDesc(protocol, name string) *prometheus.Desc {
	sub := "ntp_server"
	if protocol == "nts-ke" {
		sub = "ntske_server"
	}
	full := ns + "_" + sub + "_" + name + "_total"
	if d, ok := serverDescs.Load(full); ok {
		return d.(*prometheus.Desc)
	}
	d, _ := serverDescs.LoadOrStore(full, prometheus.NewDesc(full, serverHelp(protocol, name), []string{"listen"}, nil))
	return d.(*prometheus.Desc)
}

func serverHelp(protocol, name string) string {
	h := map[string]string{
		"requests":      "NTP datagrams read.",
		"answers":       "NTP replies with our time (NTS ones included).",
		"nts_answers":   "NTS-authenticated NTP replies.",
		"rate_limited":  "NTP requests dropped by the rate limiter.",
		"filtered":      "NTP requests dropped by an allow or deny list.",
		"malformed":     "NTP requests too long, truncated, not NTP, or with malformed NTS fields.",
		"ignored":       "Well-formed NTP datagrams that are not client requests.",
		"send_errors":   "NTP replies the kernel refused to send.",
		"accepted":      "NTS-KE TCP connections accepted.",
		"served":        "NTS-KE key exchanges completed with cookies.",
		"failed":        "NTS-KE connections that failed (handshake, ALPN, timeout, bad request).",
		"timeouts":      "NTS-KE connections cut off by a timeout.",
		"limited_conns": "NTS-KE connections closed at once: their address held too many.",
		"limited_rate":  "NTS-KE connections closed at once: their address opened too many too fast.",
		"evicted":       "NTS-KE connections evicted for a newcomer while the server was full.",
		"refused":       "NTS-KE connections closed at once: the server was full.",
	}[name]
	if h == "" {
		h = protocol + " server counter " + name + " (docs/dbus.md)."
	}
	return h
}

// Describe sends nothing: the collector is unchecked, since the server
// counters are whatever gnomond reports.
func (c *Collector) Describe(chan<- *prometheus.Desc) {}

// Collect reads gnomond once and sends the metrics.
func (c *Collector) Collect(ch chan<- prometheus.Metric) {
	c.mu.Lock()
	defer c.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), c.timeout)
	defer cancel()
	st, err := c.read(ctx)
	if err != nil {
		c.log.Warn("cannot read gnomond", "err", err)
		ch <- gauge(dUp, 0)
		return
	}
	ch <- gauge(dUp, 1)
	emit(ch, st)
}

func (c *Collector) read(ctx context.Context) (*client.Status, error) {
	if c.r == nil {
		r, err := c.dial(ctx)
		if err != nil {
			return nil, err
		}
		c.r = r
	}
	st, err := c.r.Status(ctx)
	if err != nil {
		c.r.Close()
		c.r = nil
		return nil, err
	}
	return st, nil
}

// Close closes the connection, if any.
func (c *Collector) Close() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.r == nil {
		return nil
	}
	err := c.r.Close()
	c.r = nil
	return err
}

func gauge(d *prometheus.Desc, v float64, labels ...string) prometheus.Metric {
	return prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
}

func counter(d *prometheus.Desc, v uint64, labels ...string) prometheus.Metric {
	return prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v), labels...)
}

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

func emit(ch chan<- prometheus.Metric, st *client.Status) {
	ch <- gauge(dInfo, 1, st.Version, st.ClockMode)
	ch <- gauge(dSynchronized, b2f(st.Synchronized))
	for _, s := range engineStates {
		ch <- gauge(dState, b2f(st.State == s), s)
	}
	ch <- gauge(dNTP, b2f(st.NTP))
	ch <- gauge(dOffset, float64(st.OffsetNS)/1e9)
	ch <- gauge(dFreq, st.FrequencyPPM/1e6)
	ch <- gauge(dRootDelay, float64(st.RootDelayNS)/1e9)
	ch <- gauge(dRootDisp, float64(st.RootDispersionNS)/1e9)
	ch <- gauge(dRootDist, float64(st.RootDistanceNS)/1e9)
	ch <- gauge(dStratum, float64(st.Stratum))
	for _, l := range leapStates {
		ch <- gauge(dLeap, b2f(st.Leap == l), l)
	}
	seen := map[[3]string]bool{}
	for _, s := range st.Sources {
		lv := []string{s.Name, s.Address, s.Kind}
		key := [3]string{s.Name, s.Address, s.Kind}
		if seen[key] {
			continue // two sources with one name, address and kind: the first
		}
		seen[key] = true
		ch <- gauge(dSrcReach, float64(s.Reach), lv...)
		ch <- gauge(dSrcReachable, b2f(s.Reach != 0), lv...)
		ch <- gauge(dSrcSelected, b2f(s.Selected), lv...)
		ch <- gauge(dSrcState, 1, append(lv, s.State)...)
		ch <- gauge(dSrcOffset, float64(s.OffsetNS)/1e9, lv...)
		ch <- gauge(dSrcDelay, float64(s.DelayNS)/1e9, lv...)
		ch <- gauge(dSrcJitter, float64(s.JitterNS)/1e9, lv...)
		ch <- gauge(dSrcStratum, float64(s.Stratum), lv...)
		ch <- gauge(dSrcPoll, float64(s.PollUS)/1e6, lv...)
		if k := s.Counters; k != nil {
			ch <- counter(dSrcSent, k.Sent, lv...)
			ch <- counter(dSrcReceived, k.Received, lv...)
			ch <- counter(dSrcSockErrors, k.SocketErrors, lv...)
			for reason, n := range k.RejectedBy {
				ch <- counter(dSrcRejected, n, append(lv, reason)...)
			}
		}
	}
	seenSrv := map[[2]string]bool{}
	for _, sv := range st.Servers {
		key := [2]string{sv.Protocol, sv.Listen}
		if seenSrv[key] {
			continue
		}
		seenSrv[key] = true
		for name, v := range sv.Counters {
			if code, ok := kodCodes[name]; ok && sv.Protocol == "ntp" {
				ch <- counter(dNTPKoD, v, sv.Listen, code)
				continue
			}
			if !serverCounterOK(name) || strings.HasPrefix(name, "kod_") {
				continue
			}
			ch <- counter(serverDesc(sv.Protocol, name), v, sv.Listen)
		}
	}
}
