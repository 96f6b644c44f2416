package client

import (
	"context"
	"errors"
	"fmt"
	"testing"

	godbus "github.com/godbus/dbus/v5"
)

func TestAddress(t *testing.T) {
	env := func(m map[string]string) func(string) string { return func(k string) string { return m[k] } }
	tests := []struct {
		bus  string
		env  map[string]string
		want string
		kind Kind // for errors
	}{
		{"system", nil, DefaultSystem, 0},
		{"", nil, DefaultSystem, 0},
		{"system", map[string]string{"DBUS_SYSTEM_BUS_ADDRESS": "unix:path=/x"}, "unix:path=/x", 0},
		{"session", map[string]string{"DBUS_SESSION_BUS_ADDRESS": "unix:path=/s"}, "unix:path=/s", 0},
		{"session", map[string]string{"XDG_RUNTIME_DIR": "/run/user/1000"}, "unix:path=/run/user/1000/bus", 0},
		{"session", nil, "", Unreachable},
		{"unix:abstract=foo", nil, "unix:abstract=foo", 0},
		{"bogus", nil, "", InvalidArgs},
	}
	for _, tt := range tests {
		got, err := Address(tt.bus, env(tt.env))
		if tt.want == "" {
			if err == nil || KindOf(err) != tt.kind {
				t.Errorf("Address(%q) = %q, %v; want a %v error", tt.bus, got, err, tt.kind)
			}
			continue
		}
		if err != nil || got != tt.want {
			t.Errorf("Address(%q) = %q, %v; want %q", tt.bus, got, err, tt.want)
		}
	}
}

func TestSort(t *testing.T) {
	tests := []struct {
		err  error
		kind Kind
	}{
		{godbus.Error{Name: "org.freedesktop.DBus.Error.ServiceUnknown"}, NotRunning},
		{&godbus.Error{Name: "org.freedesktop.DBus.Error.NameHasNoOwner", Body: []any{"x"}}, NotRunning},
		{godbus.Error{Name: "org.freedesktop.DBus.Error.UnknownMethod"}, NotRunning},
		{godbus.Error{Name: "org.freedesktop.DBus.Error.NoReply"}, Unreachable},
		{godbus.Error{Name: "org.freedesktop.DBus.Error.AccessDenied"}, Refused},
		{godbus.Error{Name: "org.freedesktop.DBus.Error.InteractiveAuthorizationRequired"}, Refused},
		{godbus.Error{Name: "org.freedesktop.PolicyKit1.Error.Cancelled"}, Refused},
		{godbus.Error{Name: "org.gnomon.Gnomon1.Error.NoSuchSource"}, NoSuchSource},
		{godbus.Error{Name: "org.freedesktop.DBus.Error.InvalidArgs"}, InvalidArgs},
		{godbus.Error{Name: "org.gnomon.Gnomon1.Error.Failed"}, Failed},
		{fmt.Errorf("wrapped: %w", godbus.Error{Name: "org.freedesktop.DBus.Error.AccessDenied"}), Refused},
		{context.DeadlineExceeded, Unreachable},
		{errors.New("dbus: connection closed by user"), Unreachable},
	}
	for _, tt := range tests {
		err := sort("doing", tt.err)
		if KindOf(err) != tt.kind {
			t.Errorf("sort(%v) kind = %v, want %v", tt.err, KindOf(err), tt.kind)
		}
		var e *Error
		if !errors.As(err, &e) || e.Err == nil || e.Msg == "" {
			t.Errorf("sort(%v) = %#v, want an *Error wrapping it", tt.err, err)
		}
	}
	if sort("x", nil) != nil {
		t.Error("sort(nil) != nil")
	}
}

func TestRefID(t *testing.T) {
	tests := []struct {
		ref       uint32
		stratum   uint8
		hex, text string
	}{
		{0xC0000201, 3, "C0000201", "192.0.2.1"},
		{0x47505300, 1, "47505300", "GPS"},
		{0x4C4F434C, 1, "4C4F434C", "LOCL"},
		{0x52415445, 0, "52415445", "RATE"},
		{0x494E4954, 16, "494E4954", "INIT"},
		{0x01020304, 1, "01020304", ""},
		{0, 16, "00000000", ""},
	}
	for _, tt := range tests {
		h, s := refID(tt.ref, tt.stratum)
		if h != tt.hex || s != tt.text {
			t.Errorf("refID(%#x, %d) = %q %q, want %q %q", tt.ref, tt.stratum, h, s, tt.hex, tt.text)
		}
	}
}

func TestFillToleratesMissingAndMistyped(t *testing.T) {
	var m Manager
	m.fill(map[string]godbus.Variant{
		"Version": godbus.MakeVariant(uint32(7)), // wrong type: ignored
		"Stratum": godbus.MakeVariant(uint8(2)), "RootDelay": godbus.MakeVariant(uint64(10)),
		"RootDispersion": godbus.MakeVariant(uint64(3)),
	})
	if m.Version != "" || m.Stratum != 2 || m.RootDistanceNS != 8 || m.SelectedPath != "/" {
		t.Errorf("fill = %+v", m)
	}
}

func TestSnakeCase(t *testing.T) {
	for in, want := range map[string]string{
		"Requests": "requests", "KoDRate": "kod_rate", "KoDNTSN": "kod_ntsn", "NTSAnswers": "nts_answers",
		"LimitedConns": "limited_conns", "SendErrors": "send_errors", "Served": "served",
	} {
		if got := SnakeCase(in); got != want {
			t.Errorf("SnakeCase(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestCountersOf(t *testing.T) {
	if c := countersOf(map[string]godbus.Variant{}); c != nil {
		t.Errorf("no Counters: %+v, want nil", c)
	}
	if c := countersOf(map[string]godbus.Variant{"Counters": godbus.MakeVariant("bogus")}); c != nil {
		t.Errorf("mistyped Counters: %+v, want nil", c)
	}
	c := countersOf(map[string]godbus.Variant{"Counters": godbus.MakeVariant(map[string]godbus.Variant{
		"Sent": godbus.MakeVariant(uint64(5)), "Received": godbus.MakeVariant(uint32(4)), // wrong type: 0
		"RejectedBy": godbus.MakeVariant(map[string]uint64{"auth": 2}),
	})})
	if c == nil || c.Sent != 5 || c.Received != 0 || c.RejectedBy["auth"] != 2 {
		t.Errorf("countersOf = %+v", c)
	}
	c = countersOf(map[string]godbus.Variant{"Counters": godbus.MakeVariant(map[string]godbus.Variant{
		"Sent": godbus.MakeVariant(uint64(1)), "RejectedBy": godbus.MakeVariant("x"),
	})})
	if c == nil || c.RejectedBy == nil {
		t.Errorf("a mistyped RejectedBy must leave an empty map (JSON {}), got %+v", c)
	}
}
