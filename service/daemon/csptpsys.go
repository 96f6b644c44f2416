package daemon

import (
	"context"
	"time"

	"gnomon.dev/gnomon/engine/system"
	ptpsvc "gnomon.dev/gnomon/service/ptp"
)

// CSPTP clients as sources of the system clock: each mode = "csptp"
// source is an external source of the engine, like a PTP port
// (ptpsys.go): every measurement is a sample (service/ptp's
// csptpSample), reduced, selected, combined and disciplined like an NTP
// server's; its stratum comes from the server's clock class and steps
// removed (docs/ptp.md).

// addCSPTPSource adds the engine source of a client about to start and
// returns the feed the client hands its samples to. It runs on the
// owner goroutine (Run, before the loop).
func (d *Daemon) addCSPTPSource(ctx context.Context, name, address string, prefer, noSelect bool) func(ptpsvc.Feed) {
	id := d.eng.AddExternal(system.SourceConfig{
		Name:     name,
		Address:  address,
		Kind:     "csptp",
		Origin:   originConfig,
		RefID:    system.PTPRefID,
		Prefer:   prefer,
		NoSelect: noSelect,
	}, system.ExternalConfig{Poll: system.DefaultExternalPoll, Precision: 100 * time.Nanosecond}, d.now())
	d.csptp.ids = append(d.csptp.ids, id)
	return func(f ptpsvc.Feed) {
		select {
		case d.events <- event{kind: evCall, call: func() { d.ptpFeed(id, name, f) }}:
		case <-ctx.Done():
		}
	}
}

// csptpSnapshot finds the engine's snapshot of client i's source.
func (d *Daemon) csptpSnapshot(sn *system.Snapshot, i int) *system.SourceSnapshot {
	if i >= len(d.csptp.ids) {
		return nil
	}
	for j := range sn.Sources {
		if sn.Sources[j].ID == d.csptp.ids[i] {
			return &sn.Sources[j]
		}
	}
	return nil
}
