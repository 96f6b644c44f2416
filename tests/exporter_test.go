package tests

// gnomon-exporter against a real gnomond on a private system bus: the
// server and client counters on D-Bus (gnomonctl server / status --json)
// match traffic the test sent, and the exporter's metrics, parsed with
// Prometheus' own text-format parser, match gnomonctl status --json.

import (
	"encoding/json"
	"fmt"
	"math"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"gnomon.dev/gnomon/ctl/cli"
	"gnomon.dev/gnomon/tests/peers"
)

// exporterBin is gnomon-exporter, built once by TestMain.
var exporterBin string

func ctlJSON[T any](t *testing.T, b *busGnomond, args ...string) T {
	t.Helper()
	out, err := b.ctlRun(args...)
	if err != nil {
		t.Fatalf("gnomonctl %v: %v\n%s", args, err, out)
	}
	var v T
	if err := json.Unmarshal([]byte(out), &v); err != nil {
		t.Fatalf("gnomonctl %v: %v\n%s", args, err, out)
	}
	return v
}

// scrape fetches and parses the exporter's metrics.
func scrape(t *testing.T, url string) map[string]*dto.MetricFamily {
	t.Helper()
	cl := &http.Client{Timeout: 10 * time.Second}
	resp, err := cl.Get(url)
	if err != nil {
		t.Fatalf("scraping %s: %v", url, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("scraping %s: %s", url, resp.Status)
	}
	p := expfmt.NewTextParser(model.LegacyValidation)
	fams, err := p.TextToMetricFamilies(resp.Body)
	if err != nil {
		t.Fatalf("parsing %s: %v", url, err)
	}
	return fams
}

// metric finds the sample of family name whose labels include want; ok is
// false when there is none.
func metric(fams map[string]*dto.MetricFamily, name string, want map[string]string) (float64, bool) {
	f := fams[name]
	if f == nil {
		return 0, false
	}
next:
	for _, m := range f.Metric {
		have := map[string]string{}
		for _, lp := range m.Label {
			have[lp.GetName()] = lp.GetValue()
		}
		for k, v := range want {
			if have[k] != v {
				continue next
			}
		}
		switch {
		case m.Gauge != nil:
			return m.Gauge.GetValue(), true
		case m.Counter != nil:
			return m.Counter.GetValue(), true
		case m.Untyped != nil:
			return m.Untyped.GetValue(), true
		}
	}
	return 0, false
}

func TestExporterAndCounters(t *testing.T) {
	peers.NeedRoot(t, rootFor)
	t.Parallel()
	dir := peers.TempDir(t, 0o777)
	up := peers.StartChronyd(t, dir, peers.FreePort(t), "")
	srv := peers.Loop4(peers.FreePort(t))
	b := startBusGnomond(t, dir, observeConfig(sourceTable(up.Port),
		serverTable(srv.String(), "rate-limit = { interval = 1.0, burst = 2, kod = true }")), "", "--observe")

	// Traffic the counters must account for exactly: a burst of requests
	// from one client (answers, RATE kisses and silent drops) and short
	// datagrams that are not NTP.
	const burst, junk = 40, 7
	c := peers.NewNTPClient(t, "127.0.0.1")
	for range burst {
		req, _ := peers.NTPRequest()
		if err := c.Send(srv, req); err != nil {
			t.Fatal(err)
		}
	}
	for range junk {
		if err := c.Send(srv, []byte("not ntp")); err != nil {
			t.Fatal(err)
		}
	}
	var servers cli.ServersJSON
	peers.Eventually(t, 10*time.Second, "gnomond counts every datagram", func() error {
		servers = ctlJSON[cli.ServersJSON](t, b, "server", "--json")
		if len(servers.Servers) != 1 {
			return fmt.Errorf("servers %+v, want one", servers.Servers)
		}
		if got := servers.Servers[0].Counters["requests"]; got != burst+junk {
			return fmt.Errorf("requests = %d, want %d", got, burst+junk)
		}
		return nil
	})
	s := servers.Servers[0]
	k := s.Counters
	if s.Protocol != "ntp" || s.Listen != srv.String() {
		t.Errorf("server %q %q, want ntp %s", s.Protocol, s.Listen, srv)
	}
	if k["malformed"] != junk {
		t.Errorf("malformed = %d, want %d", k["malformed"], junk)
	}
	if k["answers"] < 2 || k["kod_rate"] == 0 || k["rate_limited"] == 0 {
		t.Errorf("a burst of %d past a burst limit of 2: answers %d, kod_rate %d, rate_limited %d; want >= 2, > 0, > 0",
			burst, k["answers"], k["kod_rate"], k["rate_limited"])
	}
	if sum := k["answers"] + k["kod_rate"] + k["rate_limited"]; sum != burst {
		t.Errorf("answers %d + kod_rate %d + rate_limited %d = %d, want the %d requests sent",
			k["answers"], k["kod_rate"], k["rate_limited"], sum, burst)
	}
	// The client side: gnomond counts what it sent to chronyd and got back.
	var st cli.StatusJSON
	peers.Eventually(t, 20*time.Second, "gnomond synchronized, the source fully reachable", func() error {
		st = ctlJSON[cli.StatusJSON](t, b, "status", "--json")
		if !st.Synchronized || len(st.Sources) != 1 || st.Sources[0].Reach != 255 {
			return fmt.Errorf("synchronized %v, sources %d", st.Synchronized, len(st.Sources))
		}
		return nil
	})
	sc := st.Sources[0].Counters
	if sc == nil || sc.Sent < 8 || sc.Received < 8 || sc.Received > sc.Sent || sc.Received-sc.Rejected < 8 {
		t.Errorf("source counters %+v: want >= 8 sent, received and used (reach 377), received <= sent", sc)
	}

	// The exporter, on the same bus.
	port := peers.FreePort(t)
	url := fmt.Sprintf("http://127.0.0.1:%d/metrics", port)
	exp := peers.Start(t, dir, "gnomon-exporter", nil, exporterBin, "--bus", b.bus.Addr, "--listen", fmt.Sprintf("127.0.0.1:%d", port))
	peers.Eventually(t, 10*time.Second, "gnomon-exporter listening", func() error {
		if !exp.Alive() {
			t.Fatalf("gnomon-exporter exited: %v\n%s", exp.Err(), exp.Tail(2048))
		}
		conn, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", port))
		if err == nil {
			conn.Close()
		}
		return err
	})
	before := ctlJSON[cli.StatusJSON](t, b, "status", "--json")
	fams := scrape(t, url)
	after := ctlJSON[cli.StatusJSON](t, b, "status", "--json")

	check := func(name string, labels map[string]string, want float64, tol float64) {
		t.Helper()
		got, ok := metric(fams, name, labels)
		if !ok {
			t.Errorf("%s%v missing", name, labels)
			return
		}
		if math.Abs(got-want) > tol {
			t.Errorf("%s%v = %g, want %g (± %g)", name, labels, got, want, tol)
		}
	}
	between := func(name string, labels map[string]string, lo, hi float64) {
		t.Helper()
		got, ok := metric(fams, name, labels)
		if !ok {
			t.Errorf("%s%v missing", name, labels)
			return
		}
		if got < lo || got > hi {
			t.Errorf("%s%v = %g, want within [%g, %g] (gnomonctl before and after the scrape)", name, labels, got, lo, hi)
		}
	}
	check("gnomon_up", nil, 1, 0)
	check("gnomon_synchronized", nil, 1, 0)
	check("gnomon_stratum", nil, float64(after.Stratum), 0)
	check("gnomon_leap_status", map[string]string{"leap": after.Leap}, 1, 0)
	check("gnomon_info", map[string]string{"version": after.Version, "clock_mode": "observe"}, 1, 0)
	// Measurements move with every sample (each second here): the scrape
	// must agree with gnomonctl to within what a loopback sample moves.
	check("gnomon_offset_seconds", nil, float64(after.OffsetNS)*1e-9, 1e-3)
	check("gnomon_root_delay_seconds", nil, float64(after.RootDelayNS)*1e-9, 1e-3)
	check("gnomon_root_dispersion_seconds", nil, float64(after.RootDispersionNS)*1e-9, 1e-3)
	check("gnomon_frequency_ratio", nil, after.FrequencyPPM*1e-6, 1e-6)

	src := after.Sources[0]
	sl := map[string]string{"source": src.Name, "address": src.Address, "kind": src.Kind}
	check("gnomon_source_reachability", sl, float64(src.Reach), 0)
	check("gnomon_source_reachable", sl, 1, 0)
	check("gnomon_source_selected", sl, 1, 0)
	check("gnomon_source_state", map[string]string{"source": src.Name, "state": src.State}, 1, 0)
	check("gnomon_source_stratum", sl, float64(src.Stratum), 0)
	check("gnomon_source_offset_seconds", sl, float64(src.OffsetNS)*1e-9, 1e-3)
	between("gnomon_source_requests_sent_total", sl, float64(before.Sources[0].Counters.Sent), float64(after.Sources[0].Counters.Sent))
	between("gnomon_source_replies_received_total", sl, float64(before.Sources[0].Counters.Received), float64(after.Sources[0].Counters.Received))

	ll := map[string]string{"listen": srv.String()}
	for name, v := range map[string]uint64{
		"gnomon_ntp_server_requests_total":     k["requests"],
		"gnomon_ntp_server_answers_total":      k["answers"],
		"gnomon_ntp_server_rate_limited_total": k["rate_limited"],
		"gnomon_ntp_server_malformed_total":    k["malformed"],
	} {
		check(name, ll, float64(v), 0)
	}
	check("gnomon_ntp_server_kod_total", map[string]string{"listen": srv.String(), "code": "RATE"}, float64(k["kod_rate"]), 0)
	for name, f := range fams {
		if !strings.HasPrefix(name, "gnomon_") {
			t.Errorf("metric %s lacks the gnomon_ prefix", name)
		}
		if f.GetType() == dto.MetricType_COUNTER && !strings.HasSuffix(name, "_total") {
			t.Errorf("counter %s lacks _total", name)
		}
	}

	// gnomond gone: the exporter still answers, with gnomon_up 0.
	b.Stop()
	fams = scrape(t, url)
	check("gnomon_up", nil, 0, 0)
	if _, ok := fams["gnomon_offset_seconds"]; ok {
		t.Errorf("gnomon_offset_seconds exported while gnomond is down")
	}
}
