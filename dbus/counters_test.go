package dbus

import (
	"context"
	"io"
	"log/slog"
	"testing"

	godbus "github.com/godbus/dbus/v5"

	"gnomon.dev/gnomon/engine/system"
)

// countingBackend is a fakeBackend that also gives counters.
type countingBackend struct {
	*fakeBackend
	servers []ServerCounters
	sources map[system.ID]SourceCounters
}

func (c *countingBackend) ServerCounters(context.Context) ([]ServerCounters, error) {
	return c.servers, nil
}

func (c *countingBackend) SourceCounters(context.Context) (map[system.ID]SourceCounters, error) {
	return c.sources, nil
}

func TestGetServersAndSourceCounters(t *testing.T) {
	fb := &fakeBackend{snap: syncedSnapshot(), mode: "system"}
	auth := &fakeAuth{}
	cb := &countingBackend{fakeBackend: fb,
		servers: []ServerCounters{{Protocol: "ntp", Listen: "127.0.0.1:123", Counters: map[string]uint64{"Requests": 5, "Answers": 4}}},
		sources: map[system.ID]SourceCounters{1: {Sent: 3, Received: 2, Rejected: 1, RejectedBy: map[string]uint64{"not-pending": 1}}},
	}
	s, err := New(cb, Options{Paths: Paths{Root: t.TempDir()}, Version: "test", Authorizer: auth,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), KernelSynced: func() (bool, error) { return true, nil }})
	if err != nil {
		t.Fatal(err)
	}
	got, derr := s.gm.GetServers()
	if derr != nil || len(got) != 1 {
		t.Fatalf("GetServers = %v, %v", got, derr)
	}
	if got[0]["Protocol"].Value() != "ntp" || got[0]["Listen"].Value() != "127.0.0.1:123" ||
		got[0]["Requests"].Value() != uint64(5) || got[0]["Answers"].Value() != uint64(4) {
		t.Errorf("GetServers()[0] = %v", got[0])
	}
	if godbus.SignatureOf(got).String() != "aa{sv}" {
		t.Errorf("GetServers signature %s", godbus.SignatureOf(got))
	}
	if len(auth.actions) != 0 {
		t.Errorf("GetServers asked polkit: %v", auth.actions)
	}
	c, err := s.sourceCounters(1)
	if err != nil {
		t.Fatal(err)
	}
	if c["Sent"].Value() != uint64(3) || c["Rejected"].Value() != uint64(1) ||
		c["RejectedBy"].Value().(map[string]uint64)["not-pending"] != 1 {
		t.Errorf("Counters of source 1 = %v", c)
	}
	if c, _ := s.sourceCounters(2); len(c) != 0 {
		t.Errorf("Counters of a source without any = %v, want empty", c)
	}

	// A backend without counters: an empty list, empty dictionaries.
	plain := newTestService(t, fb, t.TempDir())
	if got, derr := plain.gm.GetServers(); derr != nil || len(got) != 0 {
		t.Errorf("GetServers without counters = %v, %v", got, derr)
	}
}
