package exporter

import (
	"context"
	"errors"
	"os"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"gnomon.dev/gnomon/ctl/client"
)

type fakeReader struct {
	st     *client.Status
	err    error
	closed bool
}

func (f *fakeReader) Status(context.Context) (*client.Status, error) { return f.st, f.err }
func (f *fakeReader) Close() error                                   { f.closed = true; return nil }

func sampleStatus() *client.Status {
	return &client.Status{
		Manager: client.Manager{Version: "1.0", Synchronized: true, State: "synchronized", ClockMode: "observe",
			NTP: true, OffsetNS: -1500, FrequencyPPM: 2.5, RootDelayNS: 2000000, RootDispersionNS: 1000000,
			RootDistanceNS: 2000000, Stratum: 3, Leap: "none"},
		Sources: []client.Source{{Name: "a.example", Address: "192.0.2.1:123", Kind: "server", Reach: 255,
			OffsetNS: 1000, DelayNS: 300000, Stratum: 2, PollUS: 64000000, State: "selected", Selected: true,
			Counters: &client.SourceCounters{Sent: 10, Received: 9, Rejected: 1, RejectedBy: map[string]uint64{"not-pending": 1}}}},
		Servers: []client.Server{
			{Protocol: "ntp", Listen: "127.0.0.1:123", Counters: map[string]uint64{"requests": 7, "answers": 5, "kod_rate": 2}},
			{Protocol: "nts-ke", Listen: "127.0.0.1:4460", Counters: map[string]uint64{"served": 3}},
		},
	}
}

func TestCollect(t *testing.T) {
	f := &fakeReader{st: sampleStatus()}
	dials := 0
	c := New(func(context.Context) (Reader, error) { dials++; return f, nil }, time.Second, nil)
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(c)
	want := `
# HELP gnomon_offset_seconds Last measured offset of the clock: reference minus local.
# TYPE gnomon_offset_seconds gauge
gnomon_offset_seconds -1.5e-06
# HELP gnomon_ntp_server_kod_total Kiss-o'-Death replies sent, by code (NTSN: NTS NAK, a cookie failure).
# TYPE gnomon_ntp_server_kod_total counter
gnomon_ntp_server_kod_total{code="RATE",listen="127.0.0.1:123"} 2
# HELP gnomon_ntske_server_served_total NTS-KE key exchanges completed with cookies.
# TYPE gnomon_ntske_server_served_total counter
gnomon_ntske_server_served_total{listen="127.0.0.1:4460"} 3
# HELP gnomon_source_replies_rejected_total Datagrams from the source not used, by reason.
# TYPE gnomon_source_replies_rejected_total counter
gnomon_source_replies_rejected_total{address="192.0.2.1:123",kind="server",reason="not-pending",source="a.example"} 1
# HELP gnomon_frequency_ratio Frequency correction in force, as a ratio (ppm × 1e-6).
# TYPE gnomon_frequency_ratio gauge
gnomon_frequency_ratio 2.5e-06
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want), "gnomon_offset_seconds", "gnomon_ntp_server_kod_total",
		"gnomon_ntske_server_served_total", "gnomon_source_replies_rejected_total", "gnomon_frequency_ratio"); err != nil {
		t.Error(err)
	}
	if n, err := testutil.GatherAndCount(reg, "gnomon_leap_status"); err != nil || n != 4 {
		t.Errorf("gnomon_leap_status: %d series (%v), want 4", n, err)
	}
	// A failed read: gnomon_up 0 only, the connection closed and dialled again.
	f.err = errors.New("gone")
	if n, err := testutil.GatherAndCount(reg); err != nil || n != 1 {
		t.Errorf("after a failed read: %d series (%v), want only gnomon_up", n, err)
	}
	if !f.closed {
		t.Error("the failed connection was not closed")
	}
	f.err = nil
	if _, err := testutil.GatherAndCount(reg); err != nil {
		t.Fatal(err)
	}
	if dials != 2 {
		t.Errorf("dialled %d times, want 2", dials)
	}
}

// TestDocsAndDashboardNames: every gnomon_ metric docs/metrics.md and the
// Grafana dashboard name is one the collector exports.
func TestDocsAndDashboardNames(t *testing.T) {
	f := &fakeReader{st: sampleStatus()}
	f.st.Servers[0].Counters = map[string]uint64{"requests": 1, "answers": 1, "nts_answers": 1, "kod_rate": 1,
		"kod_deny": 1, "kod_ntsn": 1, "rate_limited": 1, "filtered": 1, "malformed": 1, "ignored": 1, "send_errors": 1}
	f.st.Servers[1].Counters = map[string]uint64{"accepted": 1, "served": 1, "failed": 1, "timeouts": 1,
		"limited_conns": 1, "limited_rate": 1, "evicted": 1, "refused": 1}
	c := New(func(context.Context) (Reader, error) { return f, nil }, time.Second, nil)
	reg := prometheus.NewRegistry()
	reg.MustRegister(c)
	fams, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	have := map[string]bool{}
	for _, f := range fams {
		have[f.GetName()] = true
	}
	// A name followed by "_{" or "_<" is a stem with alternatives
	// (checked below); "`, `_delay_seconds`" continues a source stem.
	name := regexp.MustCompile(`gnomon_[a-z_]*[a-z](_[{<])?`)
	for _, file := range []string{"../../docs/metrics.md", "../../docs/grafana-gnomon.json"} {
		b, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range name.FindAllString(string(b), -1) {
			if strings.HasSuffix(m, "{") || strings.HasSuffix(m, "<") || m == "gnomon_exporter" {
				continue
			}
			if !have[m] {
				t.Errorf("%s names %s, which the exporter does not export", file, m)
			}
		}
	}
	for _, n := range []string{"gnomon_source_delay_seconds", "gnomon_source_jitter_seconds",
		"gnomon_ntske_server_accepted_total", "gnomon_ntske_server_refused_total"} {
		if !have[n] {
			t.Errorf("%s not exported", n)
		}
	}
}
