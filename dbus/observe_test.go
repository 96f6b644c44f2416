package dbus

import (
	"testing"
)

// observeBackend is a backend that can say why it observes.
type observeBackend struct {
	*fakeBackend
	reason string
}

func (o observeBackend) ObserveReason() string { return o.reason }

// Manager.ObserveReason is the backend's reason, and "" for a backend that
// does not give one.
func TestObserveReasonProperty(t *testing.T) {
	for _, tc := range []struct {
		b    Backend
		want string
	}{
		{observeBackend{&fakeBackend{mode: "observe"}, "the process lacks CAP_SYS_TIME"}, "the process lacks CAP_SYS_TIME"},
		{observeBackend{&fakeBackend{mode: "system"}, ""}, ""},
		{&fakeBackend{mode: "observe"}, ""},
	} {
		s := &Service{b: tc.b}
		g := newGnomonManager(s)
		v, derr := g.props.Get(GnomonManagerSpec.Name, "ObserveReason")
		if derr != nil {
			t.Fatal(derr)
		}
		if got := v.Value().(string); got != tc.want {
			t.Errorf("ObserveReason = %q, want %q", got, tc.want)
		}
	}
}
