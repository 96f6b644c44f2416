package dbus

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	godbus "github.com/godbus/dbus/v5"

	"gnomon.dev/gnomon/engine/sample"
	"gnomon.dev/gnomon/engine/system"
	"gnomon.dev/gnomon/polkit"
)

// fakeBackend is an in-memory Backend.
type fakeBackend struct {
	snap    system.Snapshot
	ntp     bool
	mode    string
	runtime []string
	config  []string
	ch      chan struct{}
	setTime []time.Time
}

func (f *fakeBackend) Snapshot() *system.Snapshot { return &f.snap }
func (f *fakeBackend) Changed() <-chan struct{} {
	if f.ch == nil {
		f.ch = make(chan struct{})
	}
	return f.ch
}
func (f *fakeBackend) ClockMode() string { return f.mode }
func (f *fakeBackend) NTP() bool         { return f.ntp }
func (f *fakeBackend) SetNTP(_ context.Context, on bool) error {
	f.ntp = on
	return nil
}
func (f *fakeBackend) SetTime(_ context.Context, t time.Time) error {
	f.setTime = append(f.setTime, t)
	return nil
}
func (f *fakeBackend) AddSource(context.Context, string, string) (system.ID, error) {
	return 0, errors.New("no")
}
func (f *fakeBackend) RemoveSource(context.Context, system.ID) error { return nil }
func (f *fakeBackend) Burst(context.Context, system.ID) error        { return nil }
func (f *fakeBackend) Reload(context.Context) ([]string, error) {
	return []string{"server 127.0.0.1:123: opened"}, nil
}
func (f *fakeBackend) SetRuntimeServers(_ context.Context, s []string) error {
	f.runtime = s
	return nil
}
func (f *fakeBackend) RuntimeServers() []string { return f.runtime }
func (f *fakeBackend) ConfigServers() []string  { return f.config }

var t0 = time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)

func syncedSnapshot() system.Snapshot {
	return system.Snapshot{
		Time: t0, State: system.StateSynchronized, Synchronized: true, SystemPeer: 2, PeerName: "ntp.example",
		Stratum: 2, RefID: 0x7f000001, Leap: sample.LeapNone, LastOffset: -1500 * time.Nanosecond,
		FreqPPM: -12.5, RootDelay: 300 * time.Microsecond, RootDispersion: 40 * time.Microsecond,
		Sources: []system.SourceSnapshot{
			{ID: 1, Name: "a.example", Address: "192.0.2.1:123", Kind: "server", Origin: "config", Reach: 0, Selection: "unreachable", Stratum: 0},
			{ID: 2, Name: "ntp.example", Address: "[2001:db8::7]:123", Kind: "server", Origin: "config", Reach: 0xff,
				Selection: "selected", Offset: 2 * time.Millisecond, Delay: 200 * time.Microsecond, Jitter: 30 * time.Microsecond,
				Stratum: 1, RefID: 0x47505300, LastSample: t0.Add(-time.Second), Poll: 6, Valid: 17},
		},
	}
}

// fakeAuth records the actions asked about and answers with deny.
type fakeAuth struct {
	actions     []string
	interactive []bool
	deny        *godbus.Error
}

func (a *fakeAuth) Authorize(_ context.Context, _ polkit.Caller, _ string, action string, interactive bool) *godbus.Error {
	a.actions = append(a.actions, action)
	a.interactive = append(a.interactive, interactive)
	return a.deny
}

func newTestService(t testing.TB, b *fakeBackend, root string) *Service {
	t.Helper()
	return newTestServiceAuth(t, b, root, &fakeAuth{})
}

func newTestServiceAuth(t testing.TB, b *fakeBackend, root string, auth Authorizer) *Service {
	t.Helper()
	s, err := New(b, Options{Paths: Paths{Root: root}, Version: "test", Authorizer: auth,
		Logger:       slog.New(slog.NewTextHandler(io.Discard, nil)),
		KernelSynced: func() (bool, error) { return true, nil }})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// GetAll("") answers every property with exactly the declared type.
func TestGetAllTypes(t *testing.T) {
	b := &fakeBackend{snap: syncedSnapshot(), ntp: true, mode: "observe", config: []string{"ntp.example"}}
	s := newTestService(t, b, t.TempDir())
	objs := map[string]*propsObject{"timedate1": s.td.props, "timesync1": s.ts.props, "gnomon": s.gm.props}
	specs := map[string]*InterfaceSpec{"timedate1": TimedateSpec, "timesync1": TimesyncSpec, "gnomon": GnomonManagerSpec}
	for name, o := range objs {
		all, derr := o.GetAll("")
		if derr != nil {
			t.Fatalf("%s GetAll(\"\"): %v", name, derr)
		}
		named, derr := o.GetAll(specs[name].Name)
		if derr != nil || len(named) != len(all) {
			t.Errorf("%s GetAll(iface): %d props, %v", name, len(named), derr)
		}
		if len(all) != len(specs[name].Props) {
			t.Errorf("%s: %d properties, spec has %d", name, len(all), len(specs[name].Props))
		}
		for _, p := range specs[name].Props {
			v, ok := all[p.Name]
			if !ok {
				t.Errorf("%s: %s missing", name, p.Name)
				continue
			}
			if v.Signature().String() != p.Type {
				t.Errorf("%s.%s: type %s, want %s", name, p.Name, v.Signature(), p.Type)
			}
		}
		if _, derr := o.GetAll("org.example.Nope"); derr == nil || derr.Name != "org.freedesktop.DBus.Error.UnknownInterface" {
			t.Errorf("%s GetAll(unknown): %v", name, derr)
		}
		if _, derr := o.Get(specs[name].Name, "Nope"); derr == nil || derr.Name != "org.freedesktop.DBus.Error.UnknownProperty" {
			t.Errorf("%s Get(unknown): %v", name, derr)
		}
		if derr := o.Set(specs[name].Name, specs[name].Props[0].Name, godbus.MakeVariant("x")); derr == nil || derr.Name != "org.freedesktop.DBus.Error.PropertyReadOnly" {
			t.Errorf("%s Set: %v", name, derr)
		}
	}
}

func get(t *testing.T, o *propsObject, name string) any {
	t.Helper()
	v, derr := o.Get("", name)
	if derr != nil {
		t.Fatalf("Get %s: %v", name, derr)
	}
	return v.Value()
}

func TestTimesyncMapping(t *testing.T) {
	b := &fakeBackend{snap: syncedSnapshot(), ntp: true, mode: "system", config: []string{"ntp.example"}, runtime: nil}
	s := newTestService(t, b, t.TempDir())
	o := s.ts.props
	if got := get(t, o, "ServerName"); got != "ntp.example" {
		t.Errorf("ServerName %v", got)
	}
	v, _ := o.Get("", "ServerAddress")
	var sa ServerAddress
	if err := godbus.Store([]any{v.Value()}, &sa); err != nil || sa.Family != 10 || len(sa.Address) != 16 || sa.Address[15] != 7 {
		t.Errorf("ServerAddress %+v %v", sa, err)
	}
	if got := get(t, o, "PollIntervalUSec"); got != uint64(64_000_000) {
		t.Errorf("PollIntervalUSec %v", got)
	}
	if got := get(t, o, "Frequency"); got != int64(-12.5*65536) {
		t.Errorf("Frequency %v", got)
	}
	if got := get(t, o, "RuntimeNTPServers"); !reflect.DeepEqual(got, []string{}) {
		t.Errorf("RuntimeNTPServers %#v", got)
	}
	v, _ = o.Get("", "NTPMessage")
	var m NTPMessage
	if err := godbus.Store([]any{v.Value()}, &m); err != nil {
		t.Fatal(err)
	}
	// What timedatectl derives from the four timestamps is the source's
	// delay and offset.
	t1, t2, t3, t4 := int64(m.Originate), int64(m.Receive), int64(m.Transmit), int64(m.Destination)
	if d := (t4 - t1) - (t3 - t2); d != 200 {
		t.Errorf("delay from timestamps %d µs, want 200", d)
	}
	if off := ((t2 - t1) + (t3 - t4)) / 2; off != 2000 {
		t.Errorf("offset from timestamps %d µs, want 2000", off)
	}
	if m.Stratum != 1 || m.Version != 4 || m.Mode != 4 || m.PacketCount != 17 || string(m.Reference) != "GPS\x00" || m.Ignored || m.Jitter != 30 {
		t.Errorf("NTPMessage %+v", m)
	}
	if m.RootDelay != 100 || m.RootDispersion != 40 {
		t.Errorf("root delay/dispersion %d/%d", m.RootDelay, m.RootDispersion)
	}

	// Unsynchronized: zeros, 4-byte reference, (0, []) address.
	b.snap = system.Snapshot{State: system.StateUnsynchronized, Stratum: 16}
	v, _ = o.Get("", "NTPMessage")
	m = NTPMessage{}
	if err := godbus.Store([]any{v.Value()}, &m); err != nil || m.PacketCount != 0 || len(m.Reference) != 4 {
		t.Errorf("empty NTPMessage %+v %v", m, err)
	}
	v, _ = o.Get("", "ServerAddress")
	sa = ServerAddress{}
	if err := godbus.Store([]any{v.Value()}, &sa); err != nil || sa.Family != 0 || len(sa.Address) != 0 {
		t.Errorf("empty ServerAddress %+v", sa)
	}
	if got := get(t, o, "ServerName"); got != "" {
		t.Errorf("ServerName %v", got)
	}
}

func TestServerAddress(t *testing.T) {
	for _, tc := range []struct {
		in     string
		family int32
		n      int
	}{
		{"192.0.2.1:123", 2, 4}, {"[::1]:123", 10, 16}, {"10.0.0.1", 2, 4}, {"[::ffff:10.0.0.1]:123", 2, 4},
		{"ntp.example:123", 0, 0}, {"", 0, 0},
	} {
		a := serverAddress(tc.in)
		if a.Family != tc.family || len(a.Address) != tc.n {
			t.Errorf("%q: %+v", tc.in, a)
		}
	}
}

func TestGnomonMapping(t *testing.T) {
	b := &fakeBackend{snap: syncedSnapshot(), ntp: true, mode: "observe"}
	s := newTestService(t, b, t.TempDir())
	o := s.gm.props
	if got := get(t, o, "SelectedSource"); got != godbus.ObjectPath("/org/gnomon/Gnomon1/source/2") {
		t.Errorf("SelectedSource %v", got)
	}
	if got := get(t, o, "Sources"); !reflect.DeepEqual(got, []godbus.ObjectPath{"/org/gnomon/Gnomon1/source/1", "/org/gnomon/Gnomon1/source/2"}) {
		t.Errorf("Sources %v", got)
	}
	if got := get(t, o, "Offset"); got != int64(-1500) {
		t.Errorf("Offset %v", got)
	}
	if got := get(t, o, "Leap"); got != "none" {
		t.Errorf("Leap %v", got)
	}
	if got := get(t, o, "Stratum"); got != byte(2) {
		t.Errorf("Stratum %v", got)
	}
	b.snap = system.Snapshot{State: system.StateUnsynchronized, Stratum: 16}
	if got := get(t, o, "SelectedSource"); got != godbus.ObjectPath("/") {
		t.Errorf("SelectedSource unsynchronized %v", got)
	}
	if got := get(t, o, "Leap"); got != "unsynchronized" {
		t.Errorf("Leap unsynchronized %v", got)
	}
}

// Only meaningful changes are signalled.
func TestManagerChanges(t *testing.T) {
	base := managerView{Synchronized: true, State: "synchronized", Offset: 1000, Frequency: 10, RootDelay: 100,
		Stratum: 2, Leap: "none", SelectedSource: "/x", Sources: []godbus.ObjectPath{"/x"}}
	for _, tc := range []struct {
		name string
		mod  func(*managerView)
		want []string
	}{
		{"nothing", func(v *managerView) {}, nil},
		{"small offset change", func(v *managerView) { v.Offset = 1050 }, nil},
		{"large offset change", func(v *managerView) { v.Offset = 1200 }, []string{"Offset"}},
		{"offset sign", func(v *managerView) { v.Offset = -1 }, []string{"Offset"}},
		{"frequency 5%", func(v *managerView) { v.Frequency = 10.5 }, nil},
		{"state", func(v *managerView) { v.State = "holdover" }, []string{"State"}},
		{"peer and stratum", func(v *managerView) { v.SelectedSource = "/y"; v.Stratum = 3 }, []string{"SelectedSource", "Stratum"}},
		{"sources", func(v *managerView) { v.Sources = append(v.Sources, "/y") }, []string{"Sources"}},
		{"accuracy out of reach", func(v *managerView) { v.AccuracyStatus = "out of reach" }, []string{"AccuracyStatus"}},
	} {
		cur := base
		cur.Sources = slices.Clone(base.Sources)
		tc.mod(&cur)
		c := base.changes(cur)
		var got []string
		for k := range c {
			got = append(got, k)
		}
		slices.Sort(got)
		if !slices.Equal(got, tc.want) {
			t.Errorf("%s: signalled %v, want %v", tc.name, got, tc.want)
		}
	}
	// Small steps add up: merge keeps the last signalled offset.
	last := base
	for _, off := range []int64{1050, 1090, 1110} {
		cur := base
		cur.Offset = off
		c := last.changes(cur)
		last = last.merge(cur, c)
		if _, ok := c["Offset"]; ok != (off == 1110) {
			t.Errorf("offset %d: signalled %v", off, ok)
		}
	}
}

func TestValidTimezoneName(t *testing.T) {
	for _, tc := range []struct {
		in string
		ok bool
	}{
		{"Europe/Berlin", true}, {"UTC", true}, {"Etc/GMT+5", true}, {"America/Port-au-Prince", true},
		{"", false}, {"/Europe/Berlin", false}, {"Europe//Berlin", false}, {"Europe/Berlin/", false},
		{"../etc/passwd", false}, {"Europe/./Berlin", false}, {"Europe/Ber lin", false}, {"Éurope", false},
		{strings.Repeat("a", 4096), false},
	} {
		if got := ValidTimezoneName(tc.in); got != tc.ok {
			t.Errorf("%q: %v, want %v", tc.in, got, tc.ok)
		}
	}
}

// The /etc/adjtime rules of systemd-timedated, as Debian's autopkgtest
// checks them.
func TestRewriteAdjtime(t *testing.T) {
	for _, tc := range []struct {
		name          string
		old           string
		exists, local bool
		want          string
		write, remove bool
	}{
		{"missing, UTC", "", false, false, "", false, false},
		{"missing, LOCAL", "", false, true, "0.0 0 0\n0\nLOCAL\n", true, false},
		{"defaults to UTC: delete", "0.0 0 0\n0\nLOCAL\n", true, false, "", false, true},
		{"drift kept", "0.5 1700 0.0\n1700\nUTC\n", true, true, "0.5 1700 0.0\n1700\nLOCAL\n", true, false},
		{"unknown word replaced", "0.0 0 0\n0\nFOO\n", true, true, "0.0 0 0\n0\nLOCAL\n", true, false},
		{"fourth line kept", "0.0 0 0\n0\nLOCAL\nextra\nmore", true, false, "0.0 0 0\n0\nUTC\nextra\nmore", true, false},
		{"one line, no newline", "0.0 0 0", true, true, "0.0 0 0\n0\nLOCAL\n", true, false},
		{"one line, newline", "0.0 0 0\n", true, true, "0.0 0 0\n0\nLOCAL\n", true, false},
		{"two lines, no newline", "0.0 0 0\n0", true, true, "0.0 0 0\n0\nLOCAL\n", true, false},
		{"one line to UTC: delete", "0.0 0 0", true, false, "", false, true},
		{"third line without newline", "1 2 3\n4\nUTC", true, true, "1 2 3\n4\nLOCAL\n", true, false},
		{"empty file", "", true, true, "\n0\nLOCAL\n", true, false},
	} {
		got, write, remove := RewriteAdjtime([]byte(tc.old), tc.exists, tc.local)
		if string(got) != tc.want || write != tc.write || remove != tc.remove {
			t.Errorf("%s: %q write=%v remove=%v; want %q %v %v", tc.name, got, write, remove, tc.want, tc.write, tc.remove)
		}
		if write && AdjtimeLocal(got) != tc.local {
			t.Errorf("%s: AdjtimeLocal(%q) != %v", tc.name, got, tc.local)
		}
	}
}

// makeZoneinfo builds a small zoneinfo tree under root.
func makeZoneinfo(t *testing.T, root string) {
	t.Helper()
	zi := filepath.Join(root, "usr/share/zoneinfo")
	for _, z := range []string{"Europe/Berlin", "America/New_York", "UTC", "Etc/UTC"} {
		p := filepath.Join(zi, z)
		os.MkdirAll(filepath.Dir(p), 0o755)
		if err := os.WriteFile(p, []byte("TZif2..."), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	os.WriteFile(filepath.Join(zi, "NotTZ"), []byte("nope"), 0o644)
	os.MkdirAll(filepath.Join(zi, "Dir"), 0o755)
	zi2 := "# comment\nR Foo 1 2\nZ Europe/Berlin 0:53:28 - LMT 1893 Ap\nZ America/New_York -4:56:2 - LMT 1883\nL Etc/UTC UTC\nL Europe/Berlin Missing/Zone\nZ NotTZ 0 - X\n"
	os.WriteFile(filepath.Join(zi, "tzdata.zi"), []byte(zi2), 0o644)
	os.MkdirAll(filepath.Join(root, "etc"), 0o755)
}

func TestTimezoneFiles(t *testing.T) {
	root := t.TempDir()
	makeZoneinfo(t, root)
	p := Paths{Root: root}
	if got := p.ReadTimezone(); got != "UTC" {
		t.Errorf("no /etc/localtime: %q", got)
	}
	for _, z := range []string{"Europe/Berlin", "Dir", "NotTZ", "Missing/Zone"} {
		if p.ValidTimezone(z) != (z == "Europe/Berlin") {
			t.Errorf("ValidTimezone(%q)", z)
		}
	}
	if err := p.WriteTimezone("America/New_York"); err != nil {
		t.Fatal(err)
	}
	if l, _ := os.Readlink(p.Localtime()); l != "../usr/share/zoneinfo/America/New_York" {
		t.Errorf("link %q", l)
	}
	if got := p.ReadTimezone(); got != "America/New_York" {
		t.Errorf("ReadTimezone %q", got)
	}
	os.Remove(p.Localtime())
	os.Symlink("/usr/share/zoneinfo/Europe/Berlin", p.Localtime())
	if got := p.ReadTimezone(); got != "Europe/Berlin" {
		t.Errorf("absolute link: %q", got)
	}
	os.Remove(p.Localtime())
	os.Symlink("/somewhere/else", p.Localtime())
	if got := p.ReadTimezone(); got != "" {
		t.Errorf("foreign link: %q", got)
	}
	os.Remove(p.Localtime())
	os.WriteFile(p.Localtime(), []byte("TZif"), 0o644)
	if got := p.ReadTimezone(); got != "" {
		t.Errorf("regular file: %q", got)
	}
	// UTC without a UTC file removes /etc/localtime.
	os.Remove(filepath.Join(root, "usr/share/zoneinfo/UTC"))
	if err := p.WriteTimezone("UTC"); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Lstat(p.Localtime()); !os.IsNotExist(err) {
		t.Errorf("UTC without zone file: localtime still there: %v", err)
	}
	l, err := p.ListTimezones()
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"America/New_York", "Europe/Berlin", "UTC"}; !slices.Equal(l, want) {
		t.Errorf("ListTimezones %v, want %v", l, want)
	}
	entries, _ := os.ReadDir(filepath.Join(root, "etc"))
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), ".") {
			t.Errorf("left behind %s", e.Name())
		}
	}
}

func TestZoneTabFallback(t *testing.T) {
	got := ParseZoneTab([]byte("# c\nDE\t+5230+01322\tEurope/Berlin\tmost\nUS\t+404251-0740023\tAmerica/New_York\n  # x\n"))
	if !slices.Equal(got, []string{"Europe/Berlin", "America/New_York"}) {
		t.Errorf("%v", got)
	}
}

func TestValidServerName(t *testing.T) {
	for _, tc := range []struct {
		in string
		ok bool
	}{
		{"pool.ntp.org", true}, {"192.0.2.1", true}, {"2001:db8::1", true}, {"time.", true}, {"a_b.example", true},
		// systemd 252's dns_name_is_valid is loose: any printable byte in a label.
		{"", false}, {"fe80::1%eth0", true}, {"::% ", true}, {"a..b", false}, {"host:123", true}, {"-", true}, {"a b", true},
		{"bad name!", true}, {".", true}, {".x", false}, {"x..", false}, {"a\\.b", true}, {"a\\", false}, {"a\\256", false}, {"a\\065", true},
		{"a\tb", false}, {"a\x7fb", false}, {"\xc3\xa9t\xc3\xa9", true},
		{strings.Repeat("a", 64) + ".x", false}, {strings.Repeat("a", 63) + ".x", true},
		{strings.Repeat(strings.Repeat("a", 63)+".", 3) + strings.Repeat("a", 61), true},
		{strings.Repeat(strings.Repeat("a", 63)+".", 3) + strings.Repeat("a", 62), false},
		{strings.Repeat("!", 63), true}, {strings.Repeat("!", 63) + "." + strings.Repeat("!", 63), false},
	} {
		if got := ValidServerName(tc.in); got != tc.ok {
			t.Errorf("%q: %v", tc.in, got)
		}
	}
}

// The exported Go methods of each adapter are exactly the spec's methods,
// with the spec's D-Bus signatures.
func TestMethodsMatchSpec(t *testing.T) {
	msgType := reflect.TypeOf(godbus.Message{})
	for _, tc := range []struct {
		obj  any
		spec *InterfaceSpec
	}{{&timedate{}, TimedateSpec}, {&timesync{}, TimesyncSpec}, {&gnomonManager{}, GnomonManagerSpec}, {&gnomonManager{}, GnomonManagerSpec}} {
		typ := reflect.TypeOf(tc.obj)
		exported := map[string]reflect.Method{}
		for i := 0; i < typ.NumMethod(); i++ {
			m := typ.Method(i)
			if m.Type.NumOut() > 0 && m.Type.Out(m.Type.NumOut()-1) == reflect.TypeOf(&godbus.Error{}) {
				exported[m.Name] = m
			}
		}
		if len(exported) != len(tc.spec.Methods) {
			t.Errorf("%s: %d exported methods, spec has %d", tc.spec.Name, len(exported), len(tc.spec.Methods))
		}
		for _, ms := range tc.spec.Methods {
			m, ok := exported[ms.Name]
			if !ok {
				t.Errorf("%s.%s not implemented", tc.spec.Name, ms.Name)
				continue
			}
			var in []any
			for i := 1; i < m.Type.NumIn(); i++ {
				if m.Type.In(i) != msgType {
					in = append(in, reflect.Zero(m.Type.In(i)).Interface())
				}
			}
			var outs []any
			for i := 0; i < m.Type.NumOut()-1; i++ {
				outs = append(outs, reflect.Zero(m.Type.Out(i)).Interface())
			}
			if got := godbus.SignatureOf(in...).String(); got != ms.InSignature() {
				t.Errorf("%s.%s: in %q, spec %q", tc.spec.Name, ms.Name, got, ms.InSignature())
			}
			if got := godbus.SignatureOf(outs...).String(); got != ms.OutSignature() {
				t.Errorf("%s.%s: out %q, spec %q", tc.spec.Name, ms.Name, got, ms.OutSignature())
			}
		}
	}
}

// docs/dbus.md and the Gnomon1 specs describe the same interface: every
// property (name, type) and method (name, signature) in the doc's tables is
// in the spec and the reverse.
func TestDocsMatchGnomonSpec(t *testing.T) {
	doc, err := os.ReadFile("../docs/dbus.md")
	if err != nil {
		t.Fatal(err)
	}
	sections := map[string]*InterfaceSpec{"## org.gnomon.Gnomon1.Manager": GnomonManagerSpec, "## org.gnomon.Gnomon1.Source": GnomonSourceSpec}
	row := regexp.MustCompile("^\\| `([A-Za-z]+)` \\| `([^`]+)` \\|")
	for heading, spec := range sections {
		i := strings.Index(string(doc), heading+"\n")
		if i < 0 {
			t.Fatalf("docs/dbus.md has no %q", heading)
		}
		body := string(doc[i+len(heading):])
		if j := strings.Index(body, "\n## "); j >= 0 {
			body = body[:j]
		}
		docProps, docMethods := map[string]string{}, map[string]string{}
		for _, l := range strings.Split(body, "\n") {
			m := row.FindStringSubmatch(l)
			if m == nil {
				continue
			}
			if strings.HasPrefix(m[2], "(") {
				docMethods[m[1]] = m[2]
			} else {
				docProps[m[1]] = m[2]
			}
		}
		specProps, specMethods := map[string]string{}, map[string]string{}
		for _, p := range spec.Props {
			specProps[p.Name] = p.Type
		}
		for _, me := range spec.Methods {
			specMethods[me.Name] = docSignature(me)
		}
		if !reflect.DeepEqual(docProps, specProps) {
			t.Errorf("%s properties: doc %v, code %v", spec.Name, docProps, specProps)
		}
		if !reflect.DeepEqual(docMethods, specMethods) {
			t.Errorf("%s methods: doc %v, code %v", spec.Name, docMethods, specMethods)
		}
	}
}

// docSignature renders a method as docs/dbus.md writes it:
// "(s mode, b interactive) → (o source)".
func docSignature(m MethodSpec) string {
	var in, out []string
	for _, a := range m.Args {
		if a.Direction == "in" {
			in = append(in, a.Type+" "+a.Name)
		} else {
			out = append(out, a.Type+" "+a.Name)
		}
	}
	return "(" + strings.Join(in, ", ") + ") → (" + strings.Join(out, ", ") + ")"
}

func TestIntrospectXML(t *testing.T) {
	x := IntrospectXML([]*InterfaceSpec{TimedateSpec}, []string{"b", "a"})
	for _, want := range []string{
		`<interface name="org.freedesktop.timedate1">`,
		`<property name="CanNTP" type="b" access="read">` + "\n" + `   <annotation name="org.freedesktop.DBus.Property.EmitsChangedSignal" value="false"/>`,
		`<property name="Timezone" type="s" access="read">` + "\n  </property>",
		`<arg type="x" name="usec_utc" direction="in"/>`,
		`<node name="a"/>` + "\n" + ` <node name="b"/>`,
		`<signal name="PropertiesChanged">`,
	} {
		if !strings.Contains(x, want) {
			t.Errorf("introspection lacks %q", want)
		}
	}
}

func errName(e *godbus.Error) string {
	if e == nil {
		return ""
	}
	return e.Name
}

// SetTime's checks come in timedated's order, before polkit; relative
// times are against now.
func TestSetTime(t *testing.T) {
	msg := godbus.Message{Headers: map[godbus.HeaderField]godbus.Variant{godbus.FieldSender: godbus.MakeVariant(":1.9")}}
	for _, tc := range []struct {
		name           string
		ntp            bool
		mode           string
		usec           int64
		relative       bool
		deny           bool
		want           string
		wantAuth, sets bool
	}{
		{"NTP on", true, "system", 1_800_000_000_000_000, false, false, ErrAutomaticTimeSyncEnabled, false, false},
		{"NTP on beats bad args", true, "system", -1, false, false, ErrAutomaticTimeSyncEnabled, false, false},
		{"zero absolute", false, "system", 0, false, false, ErrInvalidArgs, false, false},
		{"negative absolute", false, "system", -5, false, false, ErrInvalidArgs, false, false},
		{"relative zero: no-op without polkit", false, "system", 0, true, false, "", false, false},
		// As timedated 252: now + MaxInt64 does not wrap a uint64, so it is
		// no "overflow", but past what the kernel takes (EINVAL).
		{"relative past the kernel's limit", false, "system", math.MaxInt64 - 10, true, false, ErrInvalidArgs, true, false},
		{"relative underflow", false, "system", math.MinInt64 + 10, true, false, ErrInvalidArgs, false, false},
		{"polkit says no", false, "system", 1_800_000_000_000_000, false, true, ErrAccessDenied, true, false},
		{"observe mode", false, "observe", 1_800_000_000_000_000, false, false, ErrNotSupported, true, false},
		{"absolute", false, "system", 1_800_000_000_000_000, false, false, "", true, true},
		{"relative +5 min", false, "system", 300_000_000, true, false, "", true, true},
	} {
		b := &fakeBackend{ntp: tc.ntp, mode: tc.mode}
		auth := &fakeAuth{}
		if tc.deny {
			auth.deny = newError(ErrAccessDenied, "Access denied")
		}
		s := newTestServiceAuth(t, b, t.TempDir(), auth)
		before := time.Now()
		err := s.td.SetTime(msg, tc.usec, tc.relative, true)
		after := time.Now()
		if errName(err) != tc.want {
			t.Errorf("%s: error %v, want %q", tc.name, err, tc.want)
		}
		if (len(auth.actions) > 0) != tc.wantAuth || (tc.wantAuth && auth.actions[0] != polkit.ActionSetTime) {
			t.Errorf("%s: polkit asked %v", tc.name, auth.actions)
		}
		if (len(b.setTime) > 0) != tc.sets {
			t.Errorf("%s: SetTime calls %v", tc.name, b.setTime)
			continue
		}
		if !tc.sets {
			continue
		}
		// timedated works in whole µs of CLOCK_REALTIME: a relative time
		// is against now truncated to the µs, so the earliest right answer
		// is before's µs, not before itself (that was this test's old
		// flake: now and before in the same µs). An absolute time gets the
		// handling latency added, at most after-before.
		lo, hi := time.UnixMicro(tc.usec), time.UnixMicro(tc.usec).Add(after.Sub(before))
		if tc.relative {
			rel := time.Duration(tc.usec) * time.Microsecond
			lo, hi = time.UnixMicro(before.UnixMicro()).Add(rel), after.Add(rel)
		}
		if got := b.setTime[0]; got.Before(lo) || got.After(hi) {
			t.Errorf("%s: set to %v, want within [%v, %v]", tc.name, got, lo, hi)
		}
	}
}

func TestSetTimezoneAndLocalRTC(t *testing.T) {
	root := t.TempDir()
	makeZoneinfo(t, root)
	os.Symlink("../usr/share/zoneinfo/Europe/Berlin", filepath.Join(root, "etc/localtime"))
	b := &fakeBackend{ntp: true, mode: "system"}
	auth := &fakeAuth{}
	s := newTestServiceAuth(t, b, root, auth)
	var msg godbus.Message
	if got := get(t, s.td.props, "Timezone"); got != "Europe/Berlin" {
		t.Fatalf("Timezone %v", got)
	}
	// Same zone: success without polkit.
	if err := s.td.SetTimezone(msg, "Europe/Berlin", false); err != nil || len(auth.actions) != 0 {
		t.Errorf("same zone: %v, polkit %v", err, auth.actions)
	}
	if err := s.td.SetTimezone(msg, "Nowhere/Zone", false); errName(err) != ErrInvalidArgs || len(auth.actions) != 0 {
		t.Errorf("invalid zone: %v, polkit %v", err, auth.actions)
	}
	auth.deny = newError(ErrAccessDenied, "Access denied")
	if err := s.td.SetTimezone(msg, "America/New_York", false); errName(err) != ErrAccessDenied {
		t.Errorf("denied: %v", err)
	}
	if l, _ := os.Readlink(filepath.Join(root, "etc/localtime")); l != "../usr/share/zoneinfo/Europe/Berlin" {
		t.Errorf("denied call changed localtime to %q", l)
	}
	auth.deny = nil
	if err := s.td.SetTimezone(msg, "America/New_York", true); err != nil {
		t.Fatal(err)
	}
	if got := get(t, s.td.props, "Timezone"); got != "America/New_York" {
		t.Errorf("Timezone %v", got)
	}
	if auth.actions[len(auth.actions)-1] != polkit.ActionSetTimezone || !auth.interactive[len(auth.interactive)-1] {
		t.Errorf("polkit %v %v", auth.actions, auth.interactive)
	}
	// The header flag makes a call interactive too.
	msg.Flags = flagAllowInteractiveAuthorization
	if err := s.td.SetTimezone(msg, "Europe/Berlin", false); err != nil || !auth.interactive[len(auth.interactive)-1] {
		t.Errorf("header flag: %v %v", err, auth.interactive)
	}
	msg.Flags = 0

	n := len(auth.actions)
	if err := s.td.SetLocalRTC(msg, false, false, false); err != nil || len(auth.actions) != n {
		t.Errorf("LocalRTC unchanged: %v, polkit %v", err, auth.actions[n:])
	}
	if err := s.td.SetLocalRTC(msg, true, false, false); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(filepath.Join(root, "etc/adjtime")); string(b) != "0.0 0 0\n0\nLOCAL\n" {
		t.Errorf("adjtime %q", b)
	}
	if got := get(t, s.td.props, "LocalRTC"); got != true {
		t.Errorf("LocalRTC %v", got)
	}
	// fix_system without an RTC (every VM) succeeds as in timedated:
	// /etc/adjtime changes, the clock is left alone.
	if err := s.td.SetLocalRTC(msg, false, true, false); err != nil {
		t.Errorf("fix_system without RTC: %v", err)
	}
	if got := get(t, s.td.props, "LocalRTC"); got != false {
		t.Errorf("LocalRTC %v after SetLocalRTC(false, true)", got)
	}
	if len(b.setTime) != 0 {
		t.Errorf("the clock was set without an RTC: %v", b.setTime)
	}
	if _, err := os.Stat(filepath.Join(root, "etc/adjtime")); !os.IsNotExist(err) {
		t.Errorf("adjtime not removed: %v", err)
	}
	if got := get(t, s.td.props, "RTCTimeUSec"); got != uint64(0) {
		t.Errorf("RTCTimeUSec without RTC: %v", got)
	}

	if err := s.td.SetNTP(msg, false, false); err != nil || b.ntp {
		t.Errorf("SetNTP(false): %v, ntp %v", err, b.ntp)
	}
	if got := get(t, s.td.props, "NTP"); got != false {
		t.Errorf("NTP %v", got)
	}
	if auth.actions[len(auth.actions)-1] != polkit.ActionSetNTP {
		t.Errorf("SetNTP asked %v", auth.actions)
	}
}

func TestSetRuntimeNTPServers(t *testing.T) {
	b := &fakeBackend{mode: "system"}
	auth := &fakeAuth{}
	s := newTestServiceAuth(t, b, t.TempDir(), auth)
	var msg godbus.Message
	if err := s.ts.SetRuntimeNTPServers(msg, []string{"ok.example", "a..b"}); errName(err) != ErrInvalidArgs || len(auth.actions) != 0 {
		t.Errorf("bad name: %v, polkit %v", err, auth.actions)
	}
	if err := s.ts.SetRuntimeNTPServers(msg, []string{"a.example", "192.0.2.1"}); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(b.runtime, []string{"a.example", "192.0.2.1"}) || auth.actions[0] != polkit.ActionSetRuntimeServers || !auth.interactive[0] {
		t.Errorf("runtime %v, polkit %v %v", b.runtime, auth.actions, auth.interactive)
	}
	if got := get(t, s.ts.props, "RuntimeNTPServers"); !reflect.DeepEqual(got, []string{"a.example", "192.0.2.1"}) {
		t.Errorf("RuntimeNTPServers %v", got)
	}
	if err := s.ts.SetRuntimeNTPServers(msg, []string{}); err != nil || len(b.runtime) != 0 {
		t.Errorf("clear: %v %v", err, b.runtime)
	}
}

func TestGnomonMethods(t *testing.T) {
	b := &fakeBackend{snap: syncedSnapshot(), mode: "system"}
	auth := &fakeAuth{}
	s := newTestServiceAuth(t, b, t.TempDir(), auth)
	var msg godbus.Message
	for _, tc := range []struct {
		name string
		err  *godbus.Error
		want string
	}{
		{"remove unknown", s.gm.RemoveSource(msg, "/org/gnomon/Gnomon1/source/77", false), ErrNoSuchSource},
		{"remove not a source", s.gm.RemoveSource(msg, "/org/x", false), ErrInvalidArgs},
		{"remove root", s.gm.RemoveSource(msg, "/", false), ErrInvalidArgs},
		{"burst all", s.gm.Burst(msg, "/", false), ""},
		{"burst one", s.gm.Burst(msg, "/org/gnomon/Gnomon1/source/2", false), ""},
		{"remove one", s.gm.RemoveSource(msg, "/org/gnomon/Gnomon1/source/1", false), ""},
	} {
		if errName(tc.err) != tc.want {
			t.Errorf("%s: %v, want %q", tc.name, tc.err, tc.want)
		}
	}
	if changes, err := s.gm.Reload(msg, false); err != nil || len(changes) != 1 || changes[0] != "server 127.0.0.1:123: opened" {
		t.Errorf("Reload = %q, %v; want the backend's one change", changes, err)
	}
	if _, err := s.gm.AddSource(msg, "bogus", "x", false); errName(err) != ErrInvalidArgs {
		t.Errorf("AddSource bad mode: %v", err)
	}
	if _, err := s.gm.AddSource(msg, "server", "a b", false); errName(err) != ErrInvalidArgs {
		t.Errorf("AddSource bad address: %v", err)
	}
	if _, err := s.gm.AddSource(msg, "server", "ntp.example", false); errName(err) != ErrGnomonFailed {
		t.Errorf("AddSource backend failure: %v", err)
	}
	for _, a := range auth.actions {
		if a != polkit.ActionManageSources {
			t.Errorf("asked %s", a)
		}
	}
	if len(auth.actions) != 5 {
		t.Errorf("polkit asked %d times, want 5 (after argument checks only)", len(auth.actions))
	}
}
