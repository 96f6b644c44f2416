package dbus

import (
	"context"
	"maps"
	"slices"

	godbus "github.com/godbus/dbus/v5"

	"gnomon.dev/gnomon/engine/system"
)

// ServerCounters are one listening address's counters since its sockets
// were opened (a reload that keeps the address keeps them). Protocol is
// "ntp" or "nts-ke"; Counters maps a counter's name (docs/dbus.md,
// GetServers) to its value. The map is a copy: callers may keep it.
type ServerCounters struct {
	Protocol string
	Listen   string
	Counters map[string]uint64
}

// SourceCounters are what the client did with one source since it was
// added: requests sent, replies received, replies rejected (and why, by
// reason: docs/dbus.md), and socket errors (failed sends, ICMP errors).
type SourceCounters struct {
	Sent, Received, Rejected, SocketErrors uint64
	RejectedBy                             map[string]uint64
}

// CountersBackend is the part of a Backend that gives counters; a Backend
// without it reports none (GetServers returns an empty list, Counters is
// empty).
type CountersBackend interface {
	// ServerCounters lists every NTP and NTS-KE listening address.
	ServerCounters(ctx context.Context) ([]ServerCounters, error)
	// SourceCounters gives the counters of every source that has a socket.
	SourceCounters(ctx context.Context) (map[system.ID]SourceCounters, error)
}

// serverDicts is GetServers' value.
func serverDicts(list []ServerCounters) []map[string]godbus.Variant {
	out := make([]map[string]godbus.Variant, 0, len(list))
	for _, sc := range list {
		d := map[string]godbus.Variant{
			"Protocol": godbus.MakeVariant(sc.Protocol),
			"Listen":   godbus.MakeVariant(sc.Listen),
		}
		for _, k := range slices.Sorted(maps.Keys(sc.Counters)) {
			d[k] = godbus.MakeVariant(sc.Counters[k])
		}
		out = append(out, d)
	}
	return out
}

// sourceCounterDict is a Source's Counters property.
func sourceCounterDict(c SourceCounters, ok bool) map[string]godbus.Variant {
	out := map[string]godbus.Variant{}
	if !ok {
		return out
	}
	by := map[string]uint64{}
	maps.Copy(by, c.RejectedBy)
	out["Sent"] = godbus.MakeVariant(c.Sent)
	out["Received"] = godbus.MakeVariant(c.Received)
	out["Rejected"] = godbus.MakeVariant(c.Rejected)
	out["SocketErrors"] = godbus.MakeVariant(c.SocketErrors)
	out["RejectedBy"] = godbus.MakeVariant(by)
	return out
}

// GetServers lists the counters of every NTP and NTS-KE listening address
// (docs/dbus.md). It needs no authorization: it only reads.
func (g *gnomonManager) GetServers() ([]map[string]godbus.Variant, *godbus.Error) {
	cb, ok := g.s.b.(CountersBackend)
	if !ok {
		return []map[string]godbus.Variant{}, nil
	}
	var list []ServerCounters
	if err := g.run(func(ctx context.Context) error {
		var err error
		list, err = cb.ServerCounters(ctx)
		return err
	}); err != nil {
		return nil, err
	}
	return serverDicts(list), nil
}

// sourceCounters is a Source's Counters property for id.
func (s *Service) sourceCounters(id system.ID) (map[string]godbus.Variant, error) {
	cb, ok := s.b.(CountersBackend)
	if !ok {
		return sourceCounterDict(SourceCounters{}, false), nil
	}
	ctx, cancel := s.call()
	defer cancel()
	all, err := cb.SourceCounters(ctx)
	if err != nil {
		return nil, newError(ErrGnomonFailed, "%v", err)
	}
	c, ok := all[id]
	return sourceCounterDict(c, ok), nil
}
