package dbus

import (
	"log/slog"
	"strings"
	"testing"

	godbus "github.com/godbus/dbus/v5"
)

func routerMsg(path, iface, member string, body ...any) *godbus.Message {
	m := &godbus.Message{Type: godbus.TypeMethodCall, Headers: map[godbus.HeaderField]godbus.Variant{
		godbus.FieldPath:   godbus.MakeVariant(godbus.ObjectPath(path)),
		godbus.FieldMember: godbus.MakeVariant(member),
	}, Body: body}
	if iface != "" {
		m.Headers[godbus.FieldInterface] = godbus.MakeVariant(iface)
	}
	if len(body) > 0 {
		m.Headers[godbus.FieldSignature] = godbus.MakeVariant(godbus.SignatureOf(body...))
	}
	intercept(m)
	return m
}

// The router answers as sd-bus does: exact signatures, UnknownObject,
// intermediate nodes, GetAll in introspection order, Peer on any path.
func TestRouterDispatch(t *testing.T) {
	b := &fakeBackend{snap: syncedSnapshot(), ntp: true, mode: "observe"}
	s := newTestService(t, b, t.TempDir())
	r := s.tdr
	for _, tc := range []struct {
		msg        *godbus.Message
		err, sig   string
		bodyPrefix string
	}{
		{routerMsg(string(PathTimedate), TimedateSpec.Name, "SetTime", int32(1), false, false), ErrInvalidArgs + ": Invalid arguments 'ibb' to call org.freedesktop.timedate1.SetTime(), expecting 'xbb'.", "", ""},
		{routerMsg(string(PathTimedate), TimedateSpec.Name, "SetTime", uint64(1), false, false), ErrInvalidArgs + ": Invalid arguments 'tbb' to call org.freedesktop.timedate1.SetTime(), expecting 'xbb'.", "", ""},
		{routerMsg("/nope", TimedateSpec.Name, "SetTime", int64(1), false, false), "org.freedesktop.DBus.Error.UnknownObject: Unknown object '/nope'.", "", ""},
		{routerMsg(string(PathTimesync), ifaceProperties, "GetAll", ""), "org.freedesktop.DBus.Error.UnknownObject: Unknown object '/org/freedesktop/timesync1'.", "", ""},
		{routerMsg("/org/freedesktop", ifaceIntrospect, "Introspect"), "", "s", "<!DOCTYPE"},
		{routerMsg("/org", ifaceProperties, "GetAll", ""), "org.freedesktop.DBus.Error.UnknownObject: Unknown object '/org'.", "", ""},
		{routerMsg(string(PathTimedate), ifaceProperties, "Get", int32(1), int32(2)), ErrInvalidArgs + ": Expected interface and member parameters", "", ""},
		{routerMsg(string(PathTimedate), ifaceProperties, "Get", "", "Timezone"), "org.freedesktop.DBus.Error.UnknownProperty: Unknown interface  or property Timezone.", "", ""},
		{routerMsg(string(PathTimedate), ifaceProperties, "Set", TimedateSpec.Name, "Timezone", godbus.MakeVariant("UTC")), "org.freedesktop.DBus.Error.PropertyReadOnly: Property 'Timezone' is not writable.", "", ""},
		{routerMsg(string(PathTimedate), ifaceProperties, "GetAll", "org.bogus"), "org.freedesktop.DBus.Error.UnknownInterface: Unknown interface 'org.bogus'.", "", ""},
		{routerMsg(string(PathTimedate), "org.bogus", "X"), "org.freedesktop.DBus.Error.UnknownMethod: Unknown method X or interface org.bogus.", "", ""},
		{routerMsg(string(PathTimedate), "", "ListTimezones"), "org.freedesktop.DBus.Error.UnknownObject: Unknown object '/org/freedesktop/timedate1'.", "", ""},
		{routerMsg("/nope", ifacePeer, "Ping"), "", "", ""},
		{routerMsg("/", ifacePeer, "Foo"), "org.freedesktop.DBus.Error.UnknownMethod: Unknown method 'Foo' on interface 'org.freedesktop.DBus.Peer'.", "", ""},
		{routerMsg(string(PathLogControl), ifaceProperties, "Set", LogControlSpec.Name, "LogLevel", godbus.MakeVariant(int32(7))), ErrInvalidArgs + ": Incorrect parameters for property 'LogLevel', expected 's', got 'i'.", "", ""},
	} {
		out, sig, err := r.dispatch(tc.msg)
		got := ""
		if err != nil {
			got = err.Name + ": " + err.Body[0].(string)
		}
		if got != tc.err {
			t.Errorf("%v %v: error %q, want %q", tc.msg.Headers[godbus.FieldPath], tc.msg.Headers[godbus.FieldMember], got, tc.err)
			continue
		}
		if sig != tc.sig {
			t.Errorf("%v: reply signature %q, want %q", tc.msg.Headers[godbus.FieldMember], sig, tc.sig)
		}
		if tc.bodyPrefix != "" && (len(out) != 1 || !strings.HasPrefix(out[0].(string), tc.bodyPrefix)) {
			t.Errorf("%v: reply %v", tc.msg.Headers[godbus.FieldMember], out)
		}
	}
	// GetAll keeps the introspection order, every time.
	out, sig, derr := r.dispatch(routerMsg(string(PathTimedate), ifaceProperties, "GetAll", ""))
	if derr != nil || sig != "a{sv}" {
		t.Fatalf("GetAll: %v %q", derr, sig)
	}
	var names []string
	for _, e := range out[0].([]dictEntry) {
		names = append(names, e.Key)
	}
	if strings.Join(names, " ") != "Timezone LocalRTC CanNTP NTP NTPSynchronized TimeUSec RTCTimeUSec" {
		t.Errorf("GetAll order %v", names)
	}
	// "/" lists only "org", as systemd-timedated's does.
	out, _, _ = r.dispatch(routerMsg("/", ifaceIntrospect, "Introspect"))
	if x := out[0].(string); !strings.Contains(x, ` <node name="org"/>`) || strings.Count(x, "<node name=") != 1 {
		t.Errorf("/ introspection:\n%s", x)
	}
	// Each name its own objects.
	if _, _, err := s.tsr.dispatch(routerMsg(string(PathTimedate), ifaceIntrospect, "Introspect")); err == nil {
		t.Error("timesync1's name serves timedate1's object")
	}
}

func TestSyslogLevels(t *testing.T) {
	for _, tc := range []struct {
		in   string
		ok   bool
		want slog.Level
	}{{"debug", true, slog.LevelDebug}, {"7", true, slog.LevelDebug}, {"notice", true, slog.LevelInfo}, {"info", true, slog.LevelInfo},
		{"warning", true, slog.LevelWarn}, {"err", true, slog.LevelError}, {"emerg", true, slog.LevelError}, {"0", true, slog.LevelError},
		{"8", false, 0}, {"bogus", false, 0}, {"", false, 0}} {
		n, ok := parseSyslogLevel(tc.in)
		if ok != tc.ok || (ok && slogLevel(n) != tc.want) {
			t.Errorf("%q: %v %v", tc.in, ok, slogLevel(n))
		}
	}
}

// FuzzRouterDispatch: any call (path, interface, member, a body of
// strings, integers and variants in any order) gets a reply or a D-Bus
// error, never a panic, and a reply's values match the signature the
// router claims for them.
func FuzzRouterDispatch(f *testing.F) {
	f.Add(string(PathTimedate), ifaceProperties, "Get", "org.freedesktop.timedate1", "Timezone", int64(1), uint8(0))
	f.Add(string(PathLogControl), ifaceProperties, "Set", LogControlSpec.Name, "LogLevel", int64(7), uint8(5))
	f.Add("/", ifaceIntrospect, "Introspect", "", "", int64(0), uint8(0))
	f.Add(string(PathTimedate), TimedateSpec.Name, "SetTimezone", "UTC", "x", int64(-1), uint8(3))
	f.Add(string(PathTimedate), TimedateSpec.Name, "ListTimezones", "", "", int64(0), uint8(0))
	b := &fakeBackend{snap: syncedSnapshot(), ntp: true, mode: "observe"}
	s := newTestService(f, b, f.TempDir())
	f.Fuzz(func(t *testing.T, path, iface, member, a, c string, n int64, shape uint8) {
		if !godbus.ObjectPath(path).IsValid() || member == "" {
			return // dbus-daemon delivers no such message
		}
		pool := []any{a, c, n, int32(n), uint64(n), n != 0, godbus.MakeVariant(a), godbus.MakeVariant(n), []string{a, c}}
		var body []any
		for i := 0; i < int(shape%5); i++ {
			body = append(body, pool[(int(shape)+i*7)%len(pool)])
		}
		// Methods that change things are left out: they would call the
		// fake backend and polkit; their argument checks come first and
		// are covered by the tests above.
		switch member {
		case "SetTime", "SetTimezone", "SetLocalRTC", "SetNTP", "SetRuntimeNTPServers":
			return
		}
		if member == "Set" {
			return
		}
		for _, r := range []*router{s.tdr, s.tsr} {
			out, sig, err := r.dispatch(routerMsg(path, iface, member, body...))
			if err != nil {
				if err.Name == "" || len(err.Body) != 1 {
					t.Fatalf("malformed error %+v", err)
				}
				continue
			}
			if len(out) > 0 && sig == "" {
				t.Fatalf("reply %v without a signature", out)
			}
		}
	})
}
