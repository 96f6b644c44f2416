package config

import (
	"bytes"
	"errors"
	"io/fs"
	"net/netip"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

// writeFile puts a file in a fresh temp dir and returns its path.
func writeFile(t *testing.T, name, content string, mode fs.FileMode) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, []byte(content), mode); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(p, mode); err != nil { // umask must not decide the test
		t.Fatal(err)
	}
	return p
}

func TestDefault(t *testing.T) {
	for _, tc := range []struct {
		opts Options
		want ClockMode
	}{
		{Options{CanSetClock: true}, ClockSystem},
		{Options{CanSetClock: false}, ClockObserve},
	} {
		c := Default(tc.opts)
		if c.Clock.Mode != tc.want {
			t.Errorf("Default(%+v).Clock.Mode = %q, want %q", tc.opts, c.Clock.Mode, tc.want)
		}
		if err := c.Validate(); err != nil {
			t.Errorf("Default(%+v) does not validate: %v", tc.opts, err)
		}
		if len(c.Sources)+len(c.Servers)+len(c.NTSKEServers) != 0 {
			t.Errorf("Default(%+v) has sources or servers: %+v", tc.opts, c)
		}
	}
}

func TestEmbedded(t *testing.T) {
	want := []string{"time.cloudflare.com:4460", "nts.netnod.se:4460", "ptbtime1.ptb.de:4460", "nts.time.nl:4460"}
	for _, opts := range []Options{{CanSetClock: true}, {CanSetClock: false}} {
		c, err := Embedded(opts)
		if err != nil {
			t.Fatalf("Embedded(%+v): %v", opts, err)
		}
		var got []string
		for _, s := range c.Sources {
			if s.Mode != SourceNTS {
				t.Errorf("embedded source %s has mode %q, want nts", s.Address, s.Mode)
			}
			got = append(got, s.Address)
		}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("embedded sources = %q, want %q", got, want)
		}
		if c.Path != "" {
			t.Errorf("embedded Path = %q, want \"\"", c.Path)
		}
		if len(c.Servers) != 0 || len(c.NTSKEServers) != 0 {
			t.Errorf("embedded default serves time: %+v %+v", c.Servers, c.NTSKEServers)
		}
		// [clock] mode is left out so that it follows privilege.
		if _, ok := c.lines["clock.mode"]; ok {
			t.Error("embedded default sets [clock] mode")
		}
		// Every other value the file states must be the true default.
		d := Default(opts)
		got2 := *c
		got2.Sources, got2.lines = nil, nil
		if !reflect.DeepEqual(&got2, d) {
			t.Errorf("embedded settings differ from Default:\n got %+v\nwant %+v", got2, *d)
		}
		if ws := c.Check(); len(ws) != 0 {
			t.Errorf("embedded default has warnings: %v", ws)
		}
	}
}

// configs/gnomon.toml is what gets packaged; service/config/gnomon.toml is
// what gets embedded. They must be the same bytes.
func TestEmbeddedCopyIsIdentical(t *testing.T) {
	packaged, err := os.ReadFile("../../configs/gnomon.toml")
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(packaged, embedded) {
		t.Fatal("configs/gnomon.toml differs from service/config/gnomon.toml: copy one over the other")
	}
	if !bytes.Equal(EmbeddedTOML(), embedded) {
		t.Fatal("EmbeddedTOML() differs from the embedded file")
	}
}

// Every key in the default file has a comment: on its line, or in the block
// of comment lines right above it.
func TestEmbeddedEveryKeyCommented(t *testing.T) {
	text := strings.Split(string(embedded), "\n")
	checked := 0
	for key, line := range keyLines(embedded) {
		l := text[line-1]
		if !strings.Contains(l, "=") || strings.HasPrefix(strings.TrimSpace(l), "[") {
			continue // a table header
		}
		checked++
		if strings.Contains(l, "#") {
			continue
		}
		if line < 2 || !strings.HasPrefix(strings.TrimSpace(text[line-2]), "#") {
			t.Errorf("line %d: %s has no comment", line, key)
		}
	}
	if checked < 15 {
		t.Errorf("checked only %d keys; is keyLines working?", checked)
	}
}

// full.toml sets every key; the result must be exactly this.
func TestParseFull(t *testing.T) {
	// One PEM file is CA file, certificate and key: each loader takes the
	// blocks it wants.
	certPEM, keyPEM := testPair(t, time.Now().Add(-time.Hour))
	ca := writeFile(t, "ca.pem", string(certPEM)+string(keyPEM), 0o600)
	data, err := os.ReadFile("testdata/full.toml")
	if err != nil {
		t.Fatal(err)
	}
	data = bytes.ReplaceAll(data, []byte("CA_PATH"), []byte(ca))
	got, err := Parse("full.toml", data, Options{CanSetClock: true})
	if err != nil {
		t.Fatal(err)
	}
	want := &Config{
		Clock: ClockConfig{Mode: ClockObserve, ModeSet: true, StepThreshold: 500 * time.Millisecond, StepLimit: -1,
			PanicThreshold: 0, DriftFile: "", MaxFrequencyPPM: 100.5},
		Synchronization: SyncConfig{MinimumAgreeingSources: 2, MaxDistance: time.Second,
			Accuracy: time.Microsecond, LocalStratum: 10},
		SourceDefaults: SourceDefaults{PollIntervalLimits{6, 12}},
		Sources: []SourceConfig{
			{Mode: SourceServer, Address: "ntp.example.org:123", PollIntervalLimits: PollIntervalLimits{6, 12},
				IBurst: false, Prefer: true, XLeave: true},
			{Mode: SourcePool, Address: "pool.example.org:10123", PollIntervalLimits: PollIntervalLimits{-6, 17},
				IBurst: true, NoSelect: true, Count: 8, XLeave: true},
			{Mode: SourceNTS, Address: "[2001:db8::1]:4460", PollIntervalLimits: PollIntervalLimits{6, 8},
				IBurst: true, CertificateAuthority: ca, XLeave: true},
			{Mode: SourceServer, Address: "[2001:db8::2]:123", PollIntervalLimits: PollIntervalLimits{6, 12}, IBurst: true, XLeave: true},
			{Mode: SourceNTS, Address: "192.0.2.7:4461", PollIntervalLimits: PollIntervalLimits{6, 12}, IBurst: true, XLeave: true},
		},
		Servers: []ServerConfig{
			{
				Listen: netip.MustParseAddrPort("[::]:123"),
				Allowlist: &AddressFilter{Action: FilterDeny, Filter: []netip.Prefix{
					netip.MustParsePrefix("127.0.0.0/8"), netip.MustParsePrefix("::1/128"),
					netip.MustParsePrefix("192.0.2.9/32"), netip.MustParsePrefix("10.0.0.0/8")}},
				Denylist:  &AddressFilter{Action: FilterIgnore, Filter: []netip.Prefix{netip.MustParsePrefix("192.0.2.0/24")}},
				RateLimit: RateLimit{Interval: 500 * time.Millisecond, Burst: 16, KoD: false, TableSize: 65536},
				Workers:   2,
			},
			{
				Listen:    netip.MustParseAddrPort("127.0.0.1:11124"),
				RateLimit: RateLimit{Interval: 2 * time.Second, Burst: 16, KoD: true, TableSize: 65536},
			},
		},
		NTSKEServers: []NTSKEServerConfig{{Listen: netip.MustParseAddrPort("[::1]:4460"),
			CertificateChainPath: ca, PrivateKeyPath: ca, KeyExchangeTimeout: 2500 * time.Millisecond, ConnectionRatePerAddress: 0.5}},
		Log:      LogConfig{Level: LogDebug, Format: LogJSON},
		Security: SecurityConfig{Seccomp: false, User: "ntp"},
		Path:     "full.toml",
	}
	got.lines = nil
	if !reflect.DeepEqual(got, want) {
		t.Errorf("Parse(full.toml) =\n%+v\nwant\n%+v", got, want)
		for i := range min(len(got.Sources), len(want.Sources)) {
			if !reflect.DeepEqual(got.Sources[i], want.Sources[i]) {
				t.Errorf("source[%d] = %+v, want %+v", i, got.Sources[i], want.Sources[i])
			}
		}
	}
	if err := got.Validate(); err != nil {
		t.Errorf("Validate after Parse: %v", err)
	}
}

// [source-defaults] applies wherever a source does not set a limit, even when
// it comes after the sources in the file.
func TestSourceDefaultsInheritance(t *testing.T) {
	c, err := Parse("x.toml", []byte(`
[[source]]
mode = "server"
address = "a.example"
[[source]]
mode = "server"
address = "b.example"
poll-interval-limits = { max = 13 }
[source-defaults]
poll-interval-limits = { min = 2, max = 12 }
`), Options{})
	if err != nil {
		t.Fatal(err)
	}
	for i, want := range []PollIntervalLimits{{2, 12}, {2, 13}} {
		if got := c.Sources[i].PollIntervalLimits; got != want {
			t.Errorf("source[%d] limits = %+v, want %+v", i, got, want)
		}
	}
}

func TestSourceAddress(t *testing.T) {
	for _, tc := range []struct {
		in      string
		mode    SourceMode
		want    string // "" = error
		wantErr string
	}{
		{in: "ntp.example.org", mode: SourceServer, want: "ntp.example.org:123"},
		{in: "ntp.example.org", mode: SourcePool, want: "ntp.example.org:123"},
		{in: "ntp.example.org", mode: SourceNTS, want: "ntp.example.org:4460"},
		{in: "ntp.example.org.", mode: SourceServer, want: "ntp.example.org.:123"},
		{in: "ntp.example.org:1123", mode: SourceNTS, want: "ntp.example.org:1123"},
		{in: "_ntp.example.org:1", mode: SourceServer, want: "_ntp.example.org:1"},
		{in: "localhost:65535", mode: SourceServer, want: "localhost:65535"},
		{in: "192.0.2.1", mode: SourceServer, want: "192.0.2.1:123"},
		{in: "192.0.2.1:124", mode: SourceServer, want: "192.0.2.1:124"},
		{in: "[::1]:123", mode: SourceServer, want: "[::1]:123"},
		{in: "[::1]", mode: SourceNTS, want: "[::1]:4460"},
		{in: "::1", mode: SourceServer, want: "[::1]:123"},
		{in: "2001:DB8:0:0::7", mode: SourceServer, want: "[2001:db8::7]:123"},
		{in: "[fe80::1%eth0]:10123", mode: SourceServer, want: "[fe80::1%eth0]:10123"},
		{in: "[::ffff:192.0.2.1]:123", mode: SourceServer, want: "[::ffff:192.0.2.1]:123"},
		{in: "", mode: SourceServer, wantErr: "must not be empty (want host[:port])"},
		{in: ":123", mode: SourceServer, wantErr: `":123" has no host`},
		{in: "ntp.example.org:", mode: SourceServer, wantErr: `"ntp.example.org:": empty port`},
		{in: "ntp.example.org:0", mode: SourceServer, wantErr: `"ntp.example.org:0": port 0 is out of range (want 1 to 65535)`},
		{in: "ntp.example.org:65536", mode: SourceServer, wantErr: `"ntp.example.org:65536": port 65536 is out of range (want 1 to 65535)`},
		{in: "ntp.example.org:99999999999999999999", mode: SourceServer, wantErr: `"ntp.example.org:99999999999999999999": port 99999999999999999999 is out of range (want 1 to 65535)`},
		{in: "ntp.example.org:ntp", mode: SourceServer, wantErr: `"ntp.example.org:ntp": port "ntp" is not a number`},
		{in: "ntp.example.org:+12", mode: SourceServer, wantErr: `"ntp.example.org:+12": port "+12" is not a number`},
		{in: "ntp..example.org", mode: SourceServer, wantErr: `"ntp..example.org": "ntp..example.org" is not a valid host name`},
		{in: "-ntp.example.org", mode: SourceServer, wantErr: `"-ntp.example.org": "-ntp.example.org" is not a valid host name`},
		{in: "ntp.exa$mple.org", mode: SourceServer, wantErr: `"ntp.exa$mple.org": "ntp.exa$mple.org" is not a valid host name or IP address`},
		{in: "ntp example.org", mode: SourceServer, wantErr: `"ntp example.org" contains spaces or control characters`},
		{in: "192.0.2.300", mode: SourceServer, wantErr: `"192.0.2.300": "192.0.2.300" is not a valid IP address`},
		{in: "[::1", mode: SourceServer, wantErr: `"[::1": missing ']'`},
		{in: "::%]0", mode: SourceServer, wantErr: `"::%]0" is not an IPv6 address (with a port, write [address]:port)`},
		{in: "[fe80::1%a:b]:123", mode: SourceServer, wantErr: `"[fe80::1%a:b]:123": "fe80::1%a:b" in brackets is not an IPv6 address`},
		{in: "[::1]123", mode: SourceServer, wantErr: `"[::1]123": want [address]:port`},
		{in: "[192.0.2.1]:123", mode: SourceServer, wantErr: `"[192.0.2.1]:123": "192.0.2.1" in brackets is not an IPv6 address`},
		{in: "[ntp.example.org]:123", mode: SourceServer, wantErr: `"[ntp.example.org]:123": "ntp.example.org" in brackets is not an IPv6 address`},
		{in: "2001:db8::1:123:x", mode: SourceServer, wantErr: `"2001:db8::1:123:x" is not an IPv6 address (with a port, write [address]:port)`},
		{in: strings.Repeat("a", 64) + ".org", mode: SourceServer, wantErr: `"` + strings.Repeat("a", 64) + `.org": "` + strings.Repeat("a", 64) + `.org" is not a valid host name`},
	} {
		got, err := ParseSourceAddress(tc.in, tc.mode)
		if tc.wantErr != "" {
			if err == nil || err.Error() != tc.wantErr {
				t.Errorf("ParseSourceAddress(%q, %s) = %q, %v; want error %q", tc.in, tc.mode, got, err, tc.wantErr)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("ParseSourceAddress(%q, %s) = %q, %v; want %q", tc.in, tc.mode, got, err, tc.want)
			continue
		}
		// What comes out is accepted again unchanged, and has the port.
		again, err := ParseSourceAddress(got, SourceNTS)
		if err != nil || again != got {
			t.Errorf("ParseSourceAddress(%q) again = %q, %v", got, again, err)
		}
		s := SourceConfig{Address: got}
		if s.Port() == 0 || s.Host() == "" {
			t.Errorf("SourceConfig{Address: %q}: Host %q Port %d", got, s.Host(), s.Port())
		}
	}
}

func TestParseListen(t *testing.T) {
	for _, tc := range []struct {
		in, want, wantErr string
	}{
		{in: "[::]:123", want: "[::]:123"},
		{in: "0.0.0.0:123", want: "0.0.0.0:123"},
		{in: "127.0.0.1:11124", want: "127.0.0.1:11124"},
		{in: "[fe80::1%eth0]:123", want: "[fe80::1%eth0]:123"},
		{in: "0.0.0.0", wantErr: `"0.0.0.0": want address:port, like "0.0.0.0:123" or "[::]:123"`},
		{in: "::1:123", wantErr: `"::1:123": want address:port, like "0.0.0.0:123" or "[::]:123"`},
		{in: "[192.0.2.1]:123", wantErr: `"[192.0.2.1]:123": want address:port, like "0.0.0.0:123" or "[::]:123"`},
		{in: "localhost:123", wantErr: `"localhost:123": "localhost" is not an IP address`},
		{in: "0.0.0.0:0", wantErr: `"0.0.0.0:0": port 0 is out of range (want 1 to 65535)`},
		{in: "[::]:65536", wantErr: `"[::]:65536": port 65536 is out of range (want 1 to 65535)`},
	} {
		got, err := parseListen(tc.in)
		if tc.wantErr != "" {
			if err == nil || err.Error() != tc.wantErr {
				t.Errorf("parseListen(%q) = %v, %v; want error %q", tc.in, got, err, tc.wantErr)
			}
			continue
		}
		if err != nil || got.String() != tc.want {
			t.Errorf("parseListen(%q) = %v, %v; want %s", tc.in, got, err, tc.want)
		}
	}
}

func TestParsePrefix(t *testing.T) {
	for _, tc := range []struct {
		in, want string // want "" = error
	}{
		{"127.0.0.0/8", "127.0.0.0/8"},
		{"10.1.2.3/8", "10.0.0.0/8"},
		{"192.0.2.9", "192.0.2.9/32"},
		{"::1", "::1/128"},
		{"2001:db8::/32", "2001:db8::/32"},
		{"::ffff:192.0.2.0/120", "192.0.2.0/24"},
		{"::ffff:192.0.2.1", "192.0.2.1/32"},
		{"10.0.0.0/33", ""},
		{"10.0.0/8", ""},
		{"fe80::1%eth0", ""},
		{"example.org", ""},
		{"", ""},
	} {
		got, err := parsePrefix(tc.in)
		switch {
		case tc.want == "" && err == nil:
			t.Errorf("parsePrefix(%q) = %v, want an error", tc.in, got)
		case tc.want != "" && (err != nil || got.String() != tc.want):
			t.Errorf("parsePrefix(%q) = %v, %v; want %s", tc.in, got, err, tc.want)
		}
	}
}

func TestAddressFilterContains(t *testing.T) {
	f := &AddressFilter{Filter: []netip.Prefix{netip.MustParsePrefix("192.0.2.0/24"), netip.MustParsePrefix("2001:db8::/32")}}
	for _, tc := range []struct {
		addr string
		want bool
	}{
		{"192.0.2.77", true},
		{"::ffff:192.0.2.77", true},
		{"192.0.3.1", false},
		{"2001:db8::1", true},
		{"fe80::1%eth0", false},
	} {
		if got := f.Contains(netip.MustParseAddr(tc.addr)); got != tc.want {
			t.Errorf("Contains(%s) = %v, want %v", tc.addr, got, tc.want)
		}
	}
	var none *AddressFilter
	if none.Contains(netip.MustParseAddr("192.0.2.1")) {
		t.Error("nil filter contains an address")
	}
}

// Each enum: every valid value survives UnmarshalText → MarshalText, and
// anything else is refused with a message listing the valid values.
func TestTextRoundTrip(t *testing.T) {
	type enum interface {
		UnmarshalText([]byte) error
		MarshalText() ([]byte, error)
	}
	for _, tc := range []struct {
		name    string
		new     func() enum
		valid   []string
		bad     string
		wantErr string
	}{
		{"ClockMode", func() enum { return new(ClockMode) }, []string{"system", "observe"},
			"System", `unknown mode "System" (want system or observe)`},
		{"SourceMode", func() enum { return new(SourceMode) }, []string{"server", "pool", "nts", "gpsd", "pps", "shm", "sock", "ptp", "csptp"},
			"sever", `unknown mode "sever" (want server, pool, nts, gpsd, pps, shm, sock, ptp or csptp)`},
		{"FilterAction", func() enum { return new(FilterAction) }, []string{"ignore", "deny"},
			"drop", `unknown action "drop" (want ignore or deny)`},
		{"LogLevel", func() enum { return new(LogLevel) }, []string{"debug", "info", "warn", "error"},
			"warning", `unknown level "warning" (want debug, info, warn or error)`},
		{"LogFormat", func() enum { return new(LogFormat) }, []string{"auto", "text", "json"},
			"", `unknown format "" (want auto, text or json)`},
	} {
		for _, v := range tc.valid {
			e := tc.new()
			if err := e.UnmarshalText([]byte(v)); err != nil {
				t.Errorf("%s.UnmarshalText(%q): %v", tc.name, v, err)
				continue
			}
			out, err := e.MarshalText()
			if err != nil || string(out) != v {
				t.Errorf("%s round trip of %q = %q, %v", tc.name, v, out, err)
			}
		}
		e := tc.new()
		err := e.UnmarshalText([]byte(tc.bad))
		if err == nil || err.Error() != tc.wantErr {
			t.Errorf("%s.UnmarshalText(%q) = %v, want %q", tc.name, tc.bad, err, tc.wantErr)
		}
		if _, err := tc.new().MarshalText(); err == nil {
			t.Errorf("%s zero value marshals without error", tc.name)
		}
	}
	for _, m := range []string{} {
		var sm SourceMode
		if err := sm.UnmarshalText([]byte(m)); err == nil || !strings.Contains(err.Error(), "not supported yet") {
			t.Errorf("SourceMode %q: %v, want not supported yet", m, err)
		}
	}
	if got := LogDebug.Level().String(); got != "DEBUG" {
		t.Errorf("LogDebug.Level() = %s", got)
	}
	if got := LogError.Level().String(); got != "ERROR" {
		t.Errorf("LogError.Level() = %s", got)
	}
}

func TestLoad(t *testing.T) {
	const good = "[[source]]\nmode = \"pool\"\naddress = \"pool.example.org\"\n"
	p := writeFile(t, "gnomon.toml", good, 0o644)
	c, err := Load(p, Options{CanSetClock: true})
	if err != nil {
		t.Fatal(err)
	}
	if c.Path != p || c.FileMode != 0o644 || c.Clock.Mode != ClockSystem || c.Sources[0].Count != 4 {
		t.Errorf("Load: Path %q FileMode %v Mode %q Count %d", c.Path, c.FileMode, c.Clock.Mode, c.Sources[0].Count)
	}
	if ws := c.Check(); len(ws) != 0 {
		t.Errorf("Check = %v, want none", ws)
	}

	p = writeFile(t, "gnomon.toml", good, 0o666)
	c, err = Load(p, Options{})
	if err != nil {
		t.Fatal(err)
	}
	ws := c.Check()
	want := p + ": the file is world-writable (mode 0666): anyone on this machine can choose where the time comes from (chmod o-w)"
	if len(ws) != 1 || ws[0].String() != want {
		t.Errorf("Check = %v, want [%s]", ws, want)
	}

	missing := filepath.Join(t.TempDir(), "nope.toml")
	c, err = Load(missing, Options{})
	if c != nil || !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("Load(missing) = %v, %v; want nil and fs.ErrNotExist", c, err)
	}
	if want := missing + ": cannot open: no such file or directory"; err == nil || err.Error() != want {
		t.Errorf("Load(missing) error %q, want %q", err, want)
	}

	dir := t.TempDir()
	if c, err = Load(dir, Options{}); c != nil || err == nil || !strings.Contains(err.Error(), "not a regular file") {
		t.Errorf("Load(dir) = %v, %v", c, err)
	}

	p = writeFile(t, "bad.toml", "[clock]\nstep-limit = -2\n", 0o644)
	c, err = Load(p, Options{})
	var e *Error
	if c != nil || !errors.As(err, &e) || e.Line != 2 || e.File != p {
		t.Errorf("Load(bad) = %v, %v; want nil and an *Error on line 2", c, err)
	}

	p = writeFile(t, "big.toml", "# "+strings.Repeat("x", maxFileSize)+"\n", 0o644)
	if c, err = Load(p, Options{}); c != nil || err == nil || !strings.Contains(err.Error(), "larger than") {
		t.Errorf("Load(big) = %v, %v", c, err)
	}
}

// Code that builds or changes a Config (flags, D-Bus) gets the same checks
// from Validate; without a file the errors carry no file or line.
func TestValidateProgrammatic(t *testing.T) {
	c := Default(Options{})
	c.Sources = []SourceConfig{
		{Mode: SourceServer, Address: "ntp.example.org", PollIntervalLimits: PollIntervalLimits{4, 10}},
		{Mode: "frobnicate", Address: "x.example:1", PollIntervalLimits: PollIntervalLimits{4, 10}},
		{Mode: SourceServer, Address: "x.example:1", PollIntervalLimits: PollIntervalLimits{4, 10}, Count: 2},
	}
	c.Servers = []ServerConfig{{}}
	c.Log.Level = "loud"
	err := c.Validate()
	want := strings.Join([]string{
		`source[0].address: "ntp.example.org" is not host:port (see ParseSourceAddress)`,
		`source[1].mode: invalid source mode "frobnicate" (want server, pool, nts, gpsd, pps, shm, sock, ptp or csptp)`,
		`source[2].address: x.example:1 is the same address as source[1]`,
		`source[2].count: only allowed with mode = "pool"`,
		`server[0].listen: missing (want address:port, like "[::]:123")`,
		`log.level: invalid log level "loud" (want debug, info, warn or error)`,
	}, "\n")
	if err == nil || err.Error() != want {
		t.Errorf("Validate =\n%v\nwant\n%s", err, want)
	}
}

func TestCheck(t *testing.T) {
	const name = "/etc/gnomon/gnomon.toml"
	src := func(mode, addr, extra string) string {
		return "[[source]]\nmode = \"" + mode + "\"\naddress = \"" + addr + "\"\n" + extra
	}
	three := src("server", "a.example", "") + src("server", "b.example", "") + src("server", "c.example", "")
	for _, tc := range []struct {
		name, in string
		want     []string
	}{
		{"three servers", three, nil},
		{"a pool of four", src("pool", "pool.example", ""), nil},
		{"no sources", "[log]\nlevel = \"info\"\n", []string{
			name + ": no [[source]] is configured: the clock will not be synchronized"}},
		{"single source", "[clock]\nstep-limit = 1\n\n" + src("nts", "nts.example", ""), []string{
			name + ":4: source[0]: only one source: there is no majority to tell when it is wrong; configure 3 or more, or a pool"}},
		{"pool of one", src("pool", "pool.example", "count = 1\n"), []string{
			name + ":1: source[0]: only one source: there is no majority to tell when it is wrong; configure 3 or more, or a pool"}},
		{"two sources", src("server", "a.example", "noselect = true\n") + src("server", "b.example", "") + src("server", "c.example", ""), []string{
			name + ":5: source[1]: only two sources: when they disagree there is no majority to say which is wrong; configure 3 or more, or a pool"}},
		{"minimum above sources", "[synchronization]\nminimum-agreeing-sources = 4\n" + three, []string{
			name + ":2: synchronization.minimum-agreeing-sources: is 4, but only 3 sources can be selected: the clock will never be adjusted"}},
		{"all noselect", src("server", "a.example", "noselect = true\n") + src("pool", "b.example", "noselect = true\n"), []string{
			name + ":4: source[0].noselect: every source has noselect = true: none will be used to adjust the clock"}},
		{"wildcard server, nothing else", three + "[[server]]\nlisten = \"[::]:123\"\n" +
			"[[server]]\nlisten = \"0.0.0.0:123\"\nallowlist = { filter = [\"192.0.2.0/24\"] }\n" +
			"[[server]]\nlisten = \"0.0.0.0:1123\"\nrate-limit = { interval = 1 }\n" +
			"[[server]]\nlisten = \"127.0.0.1:123\"\n", []string{
			name + ":11: server[0].listen: listens on every address with neither an allowlist nor a rate-limit: anyone who can reach it may use it as much as they like"}},
		{"step anything anytime", "[clock]\nmode = \"system\"\nstep-limit = -1\npanic-threshold = 0\n" + three, []string{
			name + ":3: clock.step-limit: with step-limit = -1 and panic-threshold = 0 the clock may be stepped by any amount at any time"}},
		{"step anything anytime, observe only", "[clock]\nmode = \"observe\"\nstep-limit = -1\npanic-threshold = 0\n" + three, nil},
	} {
		c, err := Parse(name, []byte(tc.in), Options{})
		if err != nil {
			t.Errorf("%s: %v", tc.name, err)
			continue
		}
		var got []string
		for _, w := range c.Check() {
			got = append(got, w.String())
		}
		if !reflect.DeepEqual(got, tc.want) {
			t.Errorf("%s: Check =\n%s\nwant\n%s", tc.name, strings.Join(got, "\n"), strings.Join(tc.want, "\n"))
		}
	}
}

func TestErrorStrings(t *testing.T) {
	for _, tc := range []struct {
		e    Error
		want string
	}{
		{Error{File: "/f", Line: 3, Key: "clock.mode", Msg: "m"}, "/f:3: clock.mode: m"},
		{Error{File: "/f", Line: 3, Column: 7, Msg: "m"}, "/f:3:7: m"},
		{Error{File: "/f", Msg: "m"}, "/f: m"},
		{Error{Line: 2, Key: "k", Msg: "m"}, "line 2: k: m"},
		{Error{Key: "k", Msg: "m"}, "k: m"},
	} {
		if got := tc.e.Error(); got != tc.want {
			t.Errorf("%+v.Error() = %q, want %q", tc.e, got, tc.want)
		}
	}
	w := Warning{File: "/f", Line: 9, Key: "source[0]", Msg: "m"}
	if got := w.String(); got != "/f:9: source[0]: m" {
		t.Errorf("Warning.String() = %q", got)
	}
}
