package migrate

import (
	"bytes"
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"testing/fstest"
	"time"

	"github.com/BurntSushi/toml"
)

// three sources, so that a test of one directive migrates to a valid file.
const threeSources = "server a.example.net iburst\nserver b.example.net iburst\nserver c.example.net iburst\n"

func migrateText(t *testing.T, text string) *Result {
	t.Helper()
	res, err := Chrony(DefaultChronyConf, Options{FS: fstest.MapFS{"etc/chrony/chrony.conf": {Data: []byte(text)}}})
	if err != nil {
		t.Fatalf("Chrony: %v", err)
	}
	if err := parseMigrated("migrated", res.TOML); err != nil {
		t.Fatalf("migrated output does not parse: %v\n%s", err, res.TOML)
	}
	return res
}

// TestEveryDirectiveIsHandled: each directive chrony.conf(5) documents is
// either carried over exactly (no warning) or warned about on its own line.
func TestEveryDirectiveIsHandled(t *testing.T) {
	exact := []string{
		"makestep 1 3", "makestep 0.1 -1", "minsources 2", "maxdistance 1.5", "maxdrift 100", "rtcsync",
		"local stratum 10", "local", "driftfile /var/lib/gnomon/drift", "port 0",
		"allow 192.0.2.0/24", "allow", "server d.example.net iburst", "pool pool.ntp.org iburst maxsources 3",
		"server e.example.net nts ntsport 4461", "include /etc/chrony/empty.conf",
		"refclock SHM 0", "refclock SOCK /run/chrony.sock", "refclock PPS /dev/pps0",
		"keyfile /etc/chrony/chrony.keys", "leapseclist /usr/share/zoneinfo/leap-seconds.list",
	}
	warned := []string{
		// migrated in part
		"maxchange 100 1 2", "driftfile /var/lib/chrony/drift", "maxdrift 1000",
		"peer p.example.net", "refclock SHM 1:perm=0644", "refclock PPS /dev/pps0 lock NMEA",
		"refclock PHC /dev/ptp0", "refclock RTC /dev/rtc0", "hwtimestamp eth0",
		"log tracking", "logdir /var/log/chrony", "local stratum 10 orphan", "ntstrustedcerts /nonexistent.pem",
		"nosystemcert", "confdir /etc/chrony/conf.d", "sourcedir /run/chrony-dhcp",
		// replaced by D-Bus and polkit
		"cmdallow 192.0.2.0/24", "cmddeny all", "bindcmdaddress 127.0.0.1", "cmdport 323", "cmdratelimit interval 2",
		// no equivalent
		"acquisitionport 1123", "authselectmode require", "bindacqaddress 0.0.0.0", "bindacqdevice eth0",
		"bindcmddevice eth0", "binddevice eth0", "broadcast 64 192.0.2.255", "clockprecision 1e-9",
		"combinelimit 3", "corrtimeratio 3", "dscp 46", "dumpdir /var/lib/chrony", "fallbackdrift 16 19",
		"hwclockfile /etc/adjtime", "hwtstimeout 0.001", "initstepslew 10 a.example.net", "leapsecmode slew",
		"leapsectz right/UTC", "lock_all", "logbanner 32",
		"logchange 1", "mailonchange root 0.5", "manual", "maxclockerror 1", "maxjitter 1", "maxntsconnections 100",
		"maxsamples 10", "maxslewrate 1000", "maxupdateskew 100", "minsamples 3", "noclientlog",
		"nocerttimecheck 1", "ntpsigndsocket /var/lib/samba/ntp_signd", "ntsdumpdir /var/lib/chrony",
		"ntsntpserver a.example.net", "ntsprocesses 1", "ntsratelimit interval 6", "ntsrefresh 100",
		"ntsrotate 604800", "pidfile /run/chronyd.pid", "ptpport 319", "refresh 1209600", "reselectdist 0.0001",
		"rtcautotrim 30", "rtcdevice /dev/rtc", "rtcfile /var/lib/chrony/rtc", "rtconutc", "sched_priority 1",
		"smoothtime 400 0.001", "stratumweight 0.001", "tempcomp /sys/temp 30 0 0 0 0", "user _chrony",
		// chronyd would refuse these
		"frobnicate", "makestep 1", "minsources many", "server", "include /etc/chrony/nothing/*.conf",
	}
	// So that "include /etc/chrony/empty.conf" finds a file.
	fsys := func(text string) fstest.MapFS {
		return fstest.MapFS{
			"etc/chrony/chrony.conf": {Data: []byte(text)},
			"etc/chrony/empty.conf":  {Data: []byte("# nothing\n")},
		}
	}
	run := func(t *testing.T, d string) []Warning {
		res, err := Chrony(DefaultChronyConf, Options{FS: fsys(threeSources + d + "\n")})
		if err != nil {
			t.Fatal(err)
		}
		if err := parseMigrated("migrated", res.TOML); err != nil {
			t.Fatalf("output does not parse: %v\n%s", err, res.TOML)
		}
		return res.Warnings
	}
	for _, d := range exact {
		t.Run("exact/"+d, func(t *testing.T) {
			if ws := run(t, d); len(ws) > 0 {
				t.Errorf("%q: unexpected warnings:\n%s", d, warningsText(ws))
			}
		})
	}
	for _, d := range warned {
		t.Run("warned/"+d, func(t *testing.T) {
			ws := run(t, d)
			name := strings.Fields(d)[0]
			for _, w := range ws {
				if w.Line == 4 && w.File == DefaultChronyConf && strings.HasPrefix(w.Directive, name) && w.Msg != "" {
					return
				}
			}
			t.Errorf("%q: no warning for line 4 naming %q; got:\n%s", d, name, warningsText(ws))
		})
	}
}

// TestMapping checks the values that land in gnomon.toml by decoding it.
func TestMapping(t *testing.T) {
	type src struct {
		Mode, Address        string
		IBurst               *bool `toml:"iburst"`
		Prefer, NoSelect     bool
		Count                int
		PollIntervalLimits   *struct{ Min, Max int } `toml:"poll-interval-limits"`
		CertificateAuthority string                  `toml:"certificate-authority"`
	}
	type server struct {
		Listen    string
		Allowlist *struct{ Filter []string }
		Denylist  *struct{ Filter []string }
		RateLimit *struct {
			Interval  float64
			Burst     int
			KoD       bool `toml:"kod"`
			TableSize int  `toml:"table-size"`
		} `toml:"rate-limit"`
	}
	type file struct {
		Clock struct {
			StepThreshold  *float64 `toml:"step-threshold"`
			StepLimit      *int     `toml:"step-limit"`
			PanicThreshold *float64 `toml:"panic-threshold"`
			DriftFile      *string  `toml:"drift-file"`
			MaxFrequency   *float64 `toml:"max-frequency"`
		}
		Synchronization struct {
			MinimumAgreeingSources int      `toml:"minimum-agreeing-sources"`
			MaxDistance            *float64 `toml:"max-distance"`
			LocalStratum           *int     `toml:"local-stratum"`
		}
		Source []src
		Server []server
	}
	decode := func(t *testing.T, text string) file {
		t.Helper()
		res := migrateText(t, text)
		var f file
		if _, err := toml.Decode(string(res.TOML), &f); err != nil {
			t.Fatalf("decode: %v\n%s", err, res.TOML)
		}
		return f
	}
	tests := []struct {
		name  string
		text  string
		check func(t *testing.T, f file)
	}{
		{"makestep", "makestep 0.25 -5\n", func(t *testing.T, f file) {
			if *f.Clock.StepThreshold != 0.25 || *f.Clock.StepLimit != -1 {
				t.Errorf("step = %v %v, want 0.25 -1", *f.Clock.StepThreshold, *f.Clock.StepLimit)
			}
		}},
		{"no makestep never steps", "", func(t *testing.T, f file) {
			if f.Clock.StepLimit == nil || *f.Clock.StepLimit != 0 || f.Clock.StepThreshold != nil {
				t.Errorf("step-limit = %v, want 0", f.Clock.StepLimit)
			}
		}},
		{"no maxchange no panic limit", "", func(t *testing.T, f file) {
			if f.Clock.PanicThreshold == nil || *f.Clock.PanicThreshold != 0 {
				t.Errorf("panic-threshold = %v, want 0", f.Clock.PanicThreshold)
			}
		}},
		{"maxchange", "makestep 1 3\nmaxchange 600 1 2\n", func(t *testing.T, f file) {
			if *f.Clock.PanicThreshold != 600 {
				t.Errorf("panic-threshold = %v, want 600", *f.Clock.PanicThreshold)
			}
		}},
		{"last one wins", "minsources 2\nminsources 3\nmaxdistance 2\nmaxdistance 0.5\n", func(t *testing.T, f file) {
			if f.Synchronization.MinimumAgreeingSources != 3 || *f.Synchronization.MaxDistance != 0.5 {
				t.Errorf("got %+v", f.Synchronization)
			}
		}},
		{"driftfile kept", "driftfile /var/lib/other/drift\n", func(t *testing.T, f file) {
			if *f.Clock.DriftFile != "/var/lib/other/drift" {
				t.Errorf("drift-file = %q", *f.Clock.DriftFile)
			}
		}},
		{"driftfile in chrony's directory", "driftfile /var/lib/chrony/drift\n", func(t *testing.T, f file) {
			if *f.Clock.DriftFile != "/var/lib/gnomon/drift" {
				t.Errorf("drift-file = %q", *f.Clock.DriftFile)
			}
		}},
		{"local default stratum", "local\n", func(t *testing.T, f file) {
			if *f.Synchronization.LocalStratum != 10 {
				t.Errorf("local-stratum = %d, want 10", *f.Synchronization.LocalStratum)
			}
		}},
		{"sources", "server x.example.net\nserver y.example.net iburst prefer minpoll 3\npool p.example.net maxsources 7 noselect\nserver n.example.net nts ntsport 4461\nserver 2001:db8::1 port 1123\n", func(t *testing.T, f file) {
			if len(f.Source) != 8 {
				t.Fatalf("%d sources, want 8", len(f.Source))
			}
			a, b, p, n, v6 := f.Source[3], f.Source[4], f.Source[5], f.Source[6], f.Source[7]
			if a.Mode != "server" || a.Address != "x.example.net" || a.IBurst == nil || *a.IBurst {
				t.Errorf("a = %+v, want server without iburst", a)
			}
			if !*b.IBurst || !b.Prefer || b.PollIntervalLimits == nil || *b.PollIntervalLimits != (struct{ Min, Max int }{3, 10}) {
				t.Errorf("b = %+v", b)
			}
			if p.Mode != "pool" || p.Count != 7 || !p.NoSelect {
				t.Errorf("p = %+v", p)
			}
			if n.Mode != "nts" || n.Address != "n.example.net:4461" {
				t.Errorf("n = %+v", n)
			}
			if v6.Address != "[2001:db8::1]:1123" {
				t.Errorf("v6 = %+v", v6)
			}
		}},
		{"server", "allow 192.168/16\nallow 10.1\ndeny 192.168.7.0/24\nport 11123\nratelimit interval -2 burst 4 kod 2\nclientloglimit 12800\n", func(t *testing.T, f file) {
			if len(f.Server) != 1 {
				t.Fatalf("%d servers, want 1 (IPv4 only)", len(f.Server))
			}
			s := f.Server[0]
			if s.Listen != "0.0.0.0:11123" || s.Allowlist == nil || strings.Join(s.Allowlist.Filter, " ") != "192.168.0.0/16 10.1.0.0/16" {
				t.Errorf("server = %+v", s)
			}
			if s.Denylist == nil || strings.Join(s.Denylist.Filter, " ") != "192.168.7.0/24" {
				t.Errorf("denylist = %+v", s.Denylist)
			}
			if r := s.RateLimit; r == nil || r.Interval != 0.25 || r.Burst != 4 || !r.KoD || r.TableSize != 100 {
				t.Errorf("rate-limit = %+v", s.RateLimit)
			}
		}},
		{"allow everything", "allow\nbindaddress 2001:db8::5\n", func(t *testing.T, f file) {
			if len(f.Server) != 2 || f.Server[0].Listen != "0.0.0.0:123" || f.Server[1].Listen != "[2001:db8::5]:123" {
				t.Fatalf("servers = %+v", f.Server)
			}
			if f.Server[0].Allowlist != nil || f.Server[0].RateLimit != nil {
				t.Errorf("server = %+v, want no allowlist, no rate-limit", f.Server[0])
			}
		}},
		{"no allow no server", "deny 10/8\nratelimit\n", func(t *testing.T, f file) {
			if len(f.Server) != 0 {
				t.Errorf("servers = %+v, want none", f.Server)
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) { tt.check(t, decode(t, threeSources+tt.text)) })
	}
}

func TestParseSubnet(t *testing.T) {
	tests := []struct {
		in   string
		want string // "" = invalid
	}{
		{"1.2.3.4", "1.2.3.4/32"},
		{"3.4.5.0/24", "3.4.5.0/24"},
		{"3.4.5", "3.4.5.0/24"},
		{"192.168", "192.168.0.0/16"},
		{"10", "10.0.0.0/8"},
		{"0/0", "0.0.0.0/0"},
		{"10/8", "10.0.0.0/8"},
		{"1.2.3.4/16", "1.2.0.0/16"},
		{"2001:db8::/32", "2001:db8::/32"},
		{"::/0", "::/0"},
		{"::ffff:192.0.2.1", "192.0.2.1/32"},
		{"1.2.3.4/33", ""},
		{"1.2.3/x", ""},
		{"256.1", ""},
		{"ntp.example.net", ""},
		{"fe80::1%eth0", ""},
		{"1..2", ""},
		{"", ""},
	}
	for _, tt := range tests {
		p, ok := parseSubnet(tt.in)
		got := ""
		if ok {
			got = p.String()
		}
		if got != tt.want {
			t.Errorf("parseSubnet(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestQuote(t *testing.T) {
	for _, s := range []string{"plain", `a"b\c`, "tab\tnew\nline", "\x01\x7f", "ünï", "\xff"} {
		var v struct{ K string }
		if _, err := toml.Decode("k = "+quote(s), &v); err != nil {
			t.Errorf("quote(%q) = %s: %v", s, quote(s), err)
			continue
		}
		want := strings.ToValidUTF8(s, "\uFFFD")
		if v.K != want {
			t.Errorf("quote(%q) round trip = %q, want %q", s, v.K, want)
		}
	}
}

// TestBadInput: files that are not a chrony.conf, or include themselves,
// end with a clear error, quickly.
func TestBadInput(t *testing.T) {
	dir := copyCorpus(t)
	write := func(name string, data []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, data, 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	big := bytes.Repeat([]byte("server a.example.net iburst\n"), 10<<20/28+1)
	binary := make([]byte, 4096)
	for i := range binary {
		binary[i] = byte(i * 7)
	}
	manyIncludes := bytes.Repeat([]byte("include "+filepath.Join(dir, "quarter.conf")+"\n"), 4*MaxTotalSize/MaxFileSize+1)
	write("quarter.conf", bytes.Repeat([]byte("# padding to a quarter of a megabyte...\n"), (MaxFileSize/4)/40))
	write("link-loop.conf", []byte("include "+filepath.Join(dir, "link.conf")+"\n"))
	if err := os.Symlink(filepath.Join(dir, "link-loop.conf"), filepath.Join(dir, "link.conf")); err != nil {
		t.Fatal(err)
	}
	deep := filepath.Join(dir, "deep")
	if err := os.Mkdir(deep, 0o755); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < MaxIncludeDepth+2; i++ {
		next := filepath.Join(deep, strings.Repeat("d", i+2)+".conf")
		if err := os.WriteFile(filepath.Join(deep, strings.Repeat("d", i+1)+".conf"), []byte("include "+next+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	loopDir := filepath.Join(dir, "loop")
	if err := os.Mkdir(loopDir, 0o755); err != nil {
		t.Fatal(err)
	}
	confdirLoop := filepath.Join(loopDir, "main.conf")
	if err := os.WriteFile(confdirLoop, []byte("confdir "+loopDir+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}

	tests := []struct {
		name string
		path string
		want string
	}{
		{"10 MB", write("big.conf", big), "too large for a chrony.conf"},
		{"binary", write("binary.conf", binary), "a binary file, not a chrony.conf"},
		{"cycle", filepath.Join(dir, "cycle", "a.conf"), "include cycle: " + filepath.Join(dir, "cycle", "a.conf") + " → " + filepath.Join(dir, "cycle", "b.conf") + " → " + filepath.Join(dir, "cycle", "a.conf")},
		{"self", filepath.Join(dir, "cycle", "self.conf"), "include cycle"},
		{"symlink cycle", filepath.Join(dir, "link-loop.conf"), "include cycle"},
		{"confdir including itself", confdirLoop, "include cycle"},
		{"too deep", filepath.Join(deep, "d.conf"), "includes nest more than 10 deep"},
		{"too much in all", write("many.conf", manyIncludes), "exceed"},
		{"missing", filepath.Join(dir, "nonexistent.conf"), "no such file or directory"},
		{"directory", dir, "not a regular file"},
		{"device", "/dev/zero", "not a regular file"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			done := make(chan error, 1)
			go func() {
				_, err := Chrony(tt.path, Options{})
				done <- err
			}()
			var err error
			select {
			case err = <-done:
			case <-ctx.Done():
				t.Fatal("Chrony did not return")
			}
			var me *Error
			if !errors.As(err, &me) {
				t.Fatalf("err = %v (%T), want *Error", err, err)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("err = %q, want it to contain %q", err, tt.want)
			}
		})
	}
	if _, err := Chrony(filepath.Join(dir, "nonexistent.conf"), Options{}); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("missing file: errors.Is(err, fs.ErrNotExist) is false: %v", err)
	}
}

func TestDuplicateAndInvalidSources(t *testing.T) {
	res := migrateText(t, "server a.example.net\nserver A.example.net port 123\nserver a.example.net port 124\nserver -bad-\npool 300.1.2.3\n")
	var addrs []string
	for _, l := range strings.Split(string(res.TOML), "\n") {
		if strings.HasPrefix(l, "address = ") {
			addrs = append(addrs, strings.TrimPrefix(l, "address = "))
		}
	}
	if got := strings.Join(addrs, " "); got != `"a.example.net" "a.example.net:124"` {
		t.Errorf("addresses = %s", got)
	}
	lines := map[int]bool{}
	for _, w := range res.Warnings {
		lines[w.Line] = true
	}
	for _, l := range []int{2, 4, 5} {
		if !lines[l] {
			t.Errorf("no warning for line %d:\n%s", l, warningsText(res.Warnings))
		}
	}
}

func TestAllowInsideDeny(t *testing.T) {
	for _, tt := range []struct {
		text string
		warn bool
	}{
		{"allow 10/8\ndeny 10.1/16\n", false},
		{"deny 10.1/16\nallow 10.1.2.3\n", true},
		{"deny 10.1/16\nallow 10.1/16\n", true},
		{"allow 10.1/16\ndeny 10.1/16\n", false},
		{"deny\nallow 10/8\n", true},
		{"allow\ndeny 10/8\n", false},
		{"deny 2001:db8::/32\nallow 2001:db8:1::/48\n", true},
		{"deny 10/8\nallow 2001:db8::/32\n", false},
	} {
		res := migrateText(t, tt.text)
		got := false
		for _, w := range res.Warnings {
			got = got || strings.Contains(w.Msg, "lies inside deny")
		}
		if got != tt.warn {
			t.Errorf("%q: warned %v, want %v:\n%s", tt.text, got, tt.warn, warningsText(res.Warnings))
		}
	}
}

func TestAllowedPrefixesParse(t *testing.T) {
	// Every prefix the migrator writes must be one gnomon.toml accepts
	// (migrateText parses the output).
	for _, p := range []string{"0/0", "::/0", "10", "1.2.3.4", "2001:db8::1", "::ffff:10.0.0.0/104", "1.2.3.4/16"} {
		migrateText(t, threeSources+"allow "+p+"\ndeny "+p+"\n")
	}
}
