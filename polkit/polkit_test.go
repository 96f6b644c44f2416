package polkit

import (
	"errors"
	"fmt"
	"testing"

	godbus "github.com/godbus/dbus/v5"
)

// Errors that mean "polkit is not there" fail closed; polkit's own refusals
// are passed on.
func TestNoPolkit(t *testing.T) {
	for _, tc := range []struct {
		err  error
		want bool
	}{
		{godbus.Error{Name: "org.freedesktop.DBus.Error.ServiceUnknown"}, true},
		{&godbus.Error{Name: "org.freedesktop.DBus.Error.NameHasNoOwner"}, true},
		{fmt.Errorf("wrapped: %w", godbus.Error{Name: "org.freedesktop.DBus.Error.NoReply"}), true},
		{errors.New("dbus: connection closed by user"), true},
		{godbus.Error{Name: "org.freedesktop.PolicyKit1.Error.Cancelled"}, false},
		{godbus.Error{Name: "org.freedesktop.PolicyKit1.Error.NotAuthorized"}, false},
	} {
		if got := noPolkit(tc.err); got != tc.want {
			t.Errorf("%v: %v, want %v", tc.err, got, tc.want)
		}
	}
}

func TestBusNameSubject(t *testing.T) {
	s := BusNameSubject(":1.42")
	if s.Kind != "system-bus-name" || s.Details["name"].Value() != ":1.42" {
		t.Errorf("%+v", s)
	}
	if sig := godbus.SignatureOf(s).String(); sig != "(sa{sv})" {
		t.Errorf("subject signature %s", sig)
	}
}
