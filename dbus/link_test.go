package dbus

import (
	"io"
	"log/slog"
	"reflect"
	"testing"
)

type linkBackend struct {
	fakeBackend
	link []string
}

func (l *linkBackend) DHCPServers() []string { return l.link }

func TestLinkNTPServers(t *testing.T) {
	b := &linkBackend{fakeBackend: fakeBackend{snap: syncedSnapshot(), ntp: true, mode: "system"}, link: []string{"192.0.2.1", "192.0.2.2"}}
	s, err := New(b, Options{Paths: Paths{Root: t.TempDir()}, Version: "test", Authorizer: &fakeAuth{},
		Logger:       slog.New(slog.NewTextHandler(io.Discard, nil)),
		KernelSynced: func() (bool, error) { return true, nil }})
	if err != nil {
		t.Fatal(err)
	}
	if got := get(t, s.ts.props, "LinkNTPServers"); !reflect.DeepEqual(got, []string{"192.0.2.1", "192.0.2.2"}) {
		t.Errorf("LinkNTPServers %#v", got)
	}
	plain := newTestService(t, &fakeBackend{snap: syncedSnapshot(), ntp: true, mode: "system"}, t.TempDir())
	if got := get(t, plain.ts.props, "LinkNTPServers"); !reflect.DeepEqual(got, []string{}) {
		t.Errorf("LinkNTPServers without link servers %#v", got)
	}
}
