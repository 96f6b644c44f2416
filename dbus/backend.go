// Package dbus exports gnomond's D-Bus services: org.freedesktop.timedate1,
// org.freedesktop.timesync1 and org.gnomon.Gnomon1. The objects are thin
// adapters: every property is a view of the daemon's one snapshot, every
// change is a method that asks polkit and then hands a request to the
// daemon's owner loop through Backend. Nothing here locks engine state.
package dbus

import (
	"context"
	"time"

	"gnomon.dev/gnomon/engine/system"
)

// Backend is what the D-Bus objects need from the daemon. The daemon
// implements it by sending each call to its owner loop; every method may
// block until the owner has carried it out, and honours ctx.
type Backend interface {
	// Snapshot is the latest engine snapshot (never nil).
	Snapshot() *system.Snapshot
	// Changed is closed-and-replaced, or signalled, whenever a new snapshot
	// is published: it returns a channel that is closed at the next change.
	Changed() <-chan struct{}
	// ClockMode is "system" or "observe".
	ClockMode() string
	// NTP reports whether gnomon's own synchronization is on.
	NTP() bool
	// SetNTP turns synchronization on or off and persists it.
	SetNTP(ctx context.Context, on bool) error
	// SetTime steps the clock to t (only while NTP is off; an error in
	// observe mode).
	SetTime(ctx context.Context, t time.Time) error
	// AddSource adds a source ("server", "pool", "nts") at address.
	AddSource(ctx context.Context, mode, address string) (system.ID, error)
	// RemoveSource removes a source by ID.
	RemoveSource(ctx context.Context, id system.ID) error
	// Burst makes a source (or every source when id is 0) poll quickly now.
	Burst(ctx context.Context, id system.ID) error
	// Reload re-reads the configuration file and applies it whole or not
	// at all; it returns one line per change.
	Reload(ctx context.Context) ([]string, error)
	// SetRuntimeServers replaces the sources added at run time through
	// timesync1's SetRuntimeNTPServers (names, each "host" or "host:port").
	SetRuntimeServers(ctx context.Context, servers []string) error
	// RuntimeServers lists them; ConfigServers lists the configured ones.
	RuntimeServers() []string
	ConfigServers() []string
}
