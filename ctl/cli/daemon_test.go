package cli

import (
	"encoding/json"
	"regexp"
	"slices"
	"strings"
	"testing"
)

func TestStatusAgainstFake(t *testing.T) {
	addr := startBus(t)
	startFake(t, addr)

	code, out, errOut := run(t, nil, "--bus", addr, "status")
	if code != ExitOK {
		t.Fatalf("status: exit %d\n%s%s", code, out, errOut)
	}
	for _, want := range []string{
		"Synchronized:     yes (synchronized)",
		"Clock mode:       observe",
		"Selected source:  chrony-lo (127.0.0.1:11123)",
		"Reference ID:     7F000001 (127.0.0.1)",
		"Stratum:          3",
		"Offset:           -12.345us (reference minus local)",
		"Frequency:        -3.250 ppm",
		"Root distance:    1.500ms",
		"Leap:             none",
		"Accuracy:         accuracy target 10µs out of reach; about 1.2ms reachable",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("status lacks %q:\n%s", want, out)
		}
	}
	// The table: one row per source, chronyc-like markers.
	for _, re := range []string{
		`(?m)^\^- ntp1\.example\.net +2 +6 +377 +\+1\.500us +2\.000ms +200\.000us$`,
		`(?m)^\^\* chrony-lo +2 +6 +377 +-800ns +150\.000us +15\.000us$`,
		`(?m)^\^x 198\.51\.100\.7:123 +2 +6 +17 +\+250\.000ms`,
	} {
		if !regexp.MustCompile(re).MatchString(out) {
			t.Errorf("status table does not match %s:\n%s", re, out)
		}
	}
}

func TestSourcesVerbose(t *testing.T) {
	addr := startBus(t)
	startFake(t, addr)
	code, out, _ := run(t, nil, "--bus", addr, "sources", "-v", "-n")
	if code != ExitOK || !strings.HasPrefix(out, sourcesLegend) {
		t.Fatalf("sources -v: exit %d, no legend first:\n%s", code, out)
	}
	// -n: addresses; -v: the last error under its source.
	if !regexp.MustCompile(`(?m)^\^x 198\.51\.100\.7:123 .*\n   last error: reply from the wrong address$`).MatchString(out) ||
		!strings.Contains(out, "^* 127.0.0.1:11123") {
		t.Errorf("sources -v -n:\n%s", out)
	}
	if _, plain, _ := run(t, nil, "--bus", addr, "sources"); strings.Contains(plain, "last error") || strings.Contains(plain, "Source mode") {
		t.Errorf("sources without -v shows the legend or errors:\n%s", plain)
	}
}

func TestJSONAgainstFake(t *testing.T) {
	addr := startBus(t)
	startFake(t, addr)

	code, out, errOut := run(t, nil, "--bus", addr, "status", "--json")
	if code != ExitOK {
		t.Fatalf("status --json: exit %d\n%s", code, errOut)
	}
	var st struct {
		SchemaVersion  int     `json:"schema_version"`
		Synchronized   bool    `json:"synchronized"`
		OffsetNS       int64   `json:"offset_ns"`
		FrequencyPPM   float64 `json:"frequency_ppm"`
		RootDistanceNS uint64  `json:"root_distance_ns"`
		Selected       string  `json:"selected_source"`
		SelectedName   string  `json:"selected_name"`
		Sources        []struct {
			Name     string `json:"name"`
			State    string `json:"state"`
			Reach    int    `json:"reach"`
			Selected bool   `json:"selected"`
			PollUS   uint64 `json:"poll_interval_us"`
		} `json:"sources"`
	}
	if err := json.Unmarshal([]byte(out), &st); err != nil {
		t.Fatalf("status --json is not JSON: %v\n%s", err, out)
	}
	if st.SchemaVersion != 1 || !st.Synchronized || st.OffsetNS != -12345 || st.FrequencyPPM != -3.25 ||
		st.RootDistanceNS != 1_500_000 || st.SelectedName != "chrony-lo" || st.Selected != "/org/gnomon/Gnomon1/source/2" {
		t.Errorf("status --json = %+v", st)
	}
	if len(st.Sources) != 3 || !st.Sources[1].Selected || st.Sources[0].Selected || st.Sources[2].State != "falseticker" ||
		st.Sources[2].Reach != 0o17 || st.Sources[0].PollUS != 64_000_000 {
		t.Errorf("sources = %+v", st.Sources)
	}

	code, out, _ = run(t, nil, "--bus", addr, "sources", "--json")
	var ss SourcesJSON
	if err := json.Unmarshal([]byte(out), &ss); code != ExitOK || err != nil || len(ss.Sources) != 3 || ss.SchemaVersion != 1 {
		t.Errorf("sources --json: exit %d, %v, %+v", code, err, ss)
	}
}

func TestWatchAgainstFake(t *testing.T) {
	addr := startBus(t)
	startFake(t, addr)

	code, out, errOut := run(t, nil, "--bus", addr, "sources", "--watch", "--count", "3", "--interval", "20ms")
	if code != ExitOK {
		t.Fatalf("sources --watch: exit %d\n%s", code, errOut)
	}
	if n := strings.Count(out, "MS Name/IP address"); n != 3 {
		t.Errorf("%d frames, want 3:\n%s", n, out)
	}
	code, out, errOut = run(t, nil, "--bus", addr, "sources", "--watch", "--json", "--count", "2", "--interval", "20ms")
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if code != ExitOK || len(lines) != 2 {
		t.Fatalf("sources --watch --json: exit %d, %d lines\n%s%s", code, len(lines), out, errOut)
	}
	for _, l := range lines {
		var ss SourcesJSON
		if err := json.Unmarshal([]byte(l), &ss); err != nil || len(ss.Sources) != 3 || ss.Time == "" {
			t.Errorf("line %q: %v", l, err)
		}
	}
}

func TestChangesAgainstFake(t *testing.T) {
	addr := startBus(t)
	f := startFake(t, addr)

	tests := []struct {
		args      []string
		code      int
		call      string // the call the fake must have seen last ("" = none)
		stdout    string
		stderr    string
		noCallYet bool
	}{
		{args: []string{"add-source", "ntp9.example.net"}, code: 0, call: "AddSource(server, ntp9.example.net, true)", stdout: "added server ntp9.example.net as /org/gnomon/Gnomon1/source/4"},
		{args: []string{"add-source", "nts", "time.example.net:4461", "--no-ask-password"}, code: 0, call: "AddSource(nts, time.example.net:4461, false)"},
		{args: []string{"add-source", "pool", "2.debian.pool.ntp.org"}, code: 0, call: "AddSource(pool, 2.debian.pool.ntp.org, true)"},
		{args: []string{"add-source", "sever", "x.example.net"}, code: ExitUsage, stderr: `unknown mode "sever"`},
		{args: []string{"add-source", "server", "bad..name"}, code: ExitUsage, stderr: "not a valid host name"},
		{args: []string{"add-source"}, code: ExitUsage, stderr: "accepts between 1 and 2 arg(s)"},
		{args: []string{"remove-source", "ntp9.example.net"}, code: 0, call: "RemoveSource(/org/gnomon/Gnomon1/source/4, true)", stdout: "removed /org/gnomon/Gnomon1/source/4"},
		{args: []string{"remove-source", "1"}, code: 0, call: "RemoveSource(/org/gnomon/Gnomon1/source/1, true)"},
		{args: []string{"remove-source", "127.0.0.1:11123"}, code: 0, call: "RemoveSource(/org/gnomon/Gnomon1/source/2, true)"},
		{args: []string{"remove-source", "nothing.example.net"}, code: ExitFailure, stderr: "hint: \"gnomonctl sources\" lists the sources"},
		{args: []string{"remove-source", "/org/gnomon/Gnomon1/source/99"}, code: ExitFailure, call: "RemoveSource(/org/gnomon/Gnomon1/source/99, true)", stderr: "no source /org/gnomon/Gnomon1/source/99\nhint: "},
		{args: []string{"burst"}, code: 0, call: "Burst(/, true)", stdout: "burst: every source"},
		{args: []string{"burst", "3", "--no-ask-password"}, code: 0, call: "Burst(/org/gnomon/Gnomon1/source/3, false)"},
		{args: []string{"reload"}, code: 0, call: "Reload(true)", stdout: "reloaded:\n  server 127.0.0.1:11123: opened\n  source server ntp.example: added"},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			before := len(f.Calls())
			code, out, errOut := run(t, nil, append([]string{"--bus", addr}, tt.args...)...)
			if code != tt.code {
				t.Fatalf("exit %d, want %d\nstdout: %s\nstderr: %s", code, tt.code, out, errOut)
			}
			calls := f.Calls()
			if tt.call == "" && len(calls) != before {
				t.Errorf("calls %v, want none", calls[before:])
			}
			if tt.call != "" && (len(calls) == before || calls[len(calls)-1] != tt.call) {
				t.Errorf("calls %v, want last %q", calls[before:], tt.call)
			}
			if !strings.Contains(out, tt.stdout) {
				t.Errorf("stdout %q lacks %q", out, tt.stdout)
			}
			if !strings.Contains(errOut, tt.stderr) {
				t.Errorf("stderr %q lacks %q", errOut, tt.stderr)
			}
		})
	}
}

func TestRefusedAndUnreachable(t *testing.T) {
	addr := startBus(t)
	f := startFake(t, addr)

	for _, name := range []string{"org.freedesktop.DBus.Error.AccessDenied", "org.freedesktop.DBus.Error.InteractiveAuthorizationRequired"} {
		f.SetRefuse(name)
		for _, args := range [][]string{{"add-source", "x.example.net"}, {"remove-source", "1"}, {"burst"}, {"reload"}} {
			code, _, errOut := run(t, nil, append([]string{"--bus", addr}, args...)...)
			if code != ExitFailure || !strings.Contains(errOut, "hint: polkit refused") {
				t.Errorf("%s %v: exit %d, stderr %q; want 1 and the polkit hint", name, args, code, errOut)
			}
		}
	}
	f.SetRefuse("")

	// A bus without gnomond: exit 3 and the not-running hint.
	empty := startBus(t)
	for _, args := range [][]string{{"status"}, {"sources"}, {"status", "--json"}, {"add-source", "x.example.net"}, {"reload"}} {
		code, out, errOut := run(t, nil, append([]string{"--bus", empty}, args...)...)
		if code != ExitUnreachable || !strings.Contains(errOut, "hint: gnomond is not running") || out != "" {
			t.Errorf("%v on an empty bus: exit %d, stdout %q, stderr %q", args, code, out, errOut)
		}
	}
	// No bus at all.
	code, _, errOut := run(t, nil, "--bus", "unix:path=/nonexistent/gnomon-test-bus", "status")
	if code != ExitUnreachable || !strings.Contains(errOut, "cannot connect to the bus") || !strings.Contains(errOut, "hint:") {
		t.Errorf("no bus: exit %d, stderr %q", code, errOut)
	}
	// --bus system and session follow the environment.
	code, out, _ := run(t, map[string]string{"DBUS_SYSTEM_BUS_ADDRESS": addr}, "status", "--json")
	if code != ExitOK || !strings.Contains(out, `"selected_name": "chrony-lo"`) {
		t.Errorf("--bus system with DBUS_SYSTEM_BUS_ADDRESS: exit %d", code)
	}
	code, _, _ = run(t, map[string]string{"DBUS_SESSION_BUS_ADDRESS": addr}, "--bus", "session", "sources")
	if code != ExitOK {
		t.Errorf("--bus session with DBUS_SESSION_BUS_ADDRESS: exit %d", code)
	}
	code, _, errOut = run(t, nil, "--bus", "session", "status")
	if code != ExitUnreachable || !strings.Contains(errOut, "no session bus") {
		t.Errorf("--bus session without a session: exit %d %q", code, errOut)
	}
	code, _, _ = run(t, nil, "--bus", "nonsense", "status")
	if code != ExitUsage {
		t.Errorf("--bus nonsense: exit %d, want %d", code, ExitUsage)
	}
}

func TestUsageErrors(t *testing.T) {
	for _, args := range [][]string{
		{"frobnicate"}, {"status", "--frob"}, {"status", "extra"}, {"sources", "--count", "-1", "--watch"},
		{"remove-source"}, {"burst", "a", "b"}, {"migrate"}, {"migrate", "chrony", "a", "b"}, {"validate", "x"},
	} {
		code, _, errOut := run(t, nil, args...)
		if code != ExitUsage || errOut == "" {
			t.Errorf("%v: exit %d (stderr %q), want %d", args, code, errOut, ExitUsage)
		}
	}
}

func TestStateMarks(t *testing.T) {
	// Every state docs/dbus.md lists has its own mark, except that
	// "unreachable" and "none" share '?'.
	states := []string{"selected", "combined", "candidate", "falseticker", "outlier", "too-far", "noselect", "unreachable", "none"}
	var marks []byte
	for _, s := range states {
		marks = append(marks, StateMark(s))
	}
	if got := string(marks); got != "*+-x~dn??" {
		t.Errorf("marks = %q", got)
	}
	if StateMark("something-new") != '?' {
		t.Error("an unknown state is not '?'")
	}
	if !slices.Contains([]byte(sourcesLegend), 'd') {
		t.Error("legend lacks a mark")
	}
}

func TestFormat(t *testing.T) {
	for _, tt := range []struct {
		ns   int64
		want string
	}{
		{0, "+0ns"}, {999, "+999ns"}, {-1000, "-1.000us"}, {123456, "+123.456us"}, {-2_500_000, "-2.500ms"},
		{3_000_000_000, "+3.000s"}, {-9223372036854775808, "-9223372036.855s"},
	} {
		if got := fmtSigned(tt.ns); got != tt.want {
			t.Errorf("fmtSigned(%d) = %q, want %q", tt.ns, got, tt.want)
		}
	}
	for _, tt := range []struct {
		us   uint64
		want string
	}{{0, "-"}, {1_000_000, "0"}, {64_000_000, "6"}, {15_625, "-6"}, {1024_000_000, "10"}} {
		if got := pollExp(tt.us); got != tt.want {
			t.Errorf("pollExp(%d) = %q, want %q", tt.us, got, tt.want)
		}
	}
}
