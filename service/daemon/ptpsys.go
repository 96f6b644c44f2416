package daemon

import (
	"context"
	"log/slog"
	"time"

	"gnomon.dev/gnomon/engine/clock"
	"gnomon.dev/gnomon/engine/system"
	ptpsvc "gnomon.dev/gnomon/service/ptp"
)

// PTP ports as sources of the system clock: every port (a [[source]]
// with mode = "ptp", or a [[ptp-port]]) is an external source of the
// engine. While it is SLAVE (or UNCALIBRATED) its measurements, or with
// hardware timestamps the comparisons of its PHC with the system clock,
// are that source's samples; when it loses its master the engine is told
// at once and selects among the other sources (docs/ptp.md).

// addPTPSource adds the engine source of a port about to start, and
// points the port's feed at it. It runs on the owner goroutine (Run,
// before the loop).
func (d *Daemon) addPTPSource(ctx context.Context, name string, prefer, noSelect bool, cfg *ptpsvc.PortConfig) {
	id := d.eng.AddExternal(system.SourceConfig{
		Name:     name,
		Address:  cfg.Transport.Interface + "/" + string(cfg.Transport.Kind),
		Kind:     "ptp",
		Origin:   originConfig,
		RefID:    system.PTPRefID,
		Prefer:   prefer,
		NoSelect: noSelect,
	}, system.ExternalConfig{Poll: system.DefaultExternalPoll, Precision: 100 * time.Nanosecond}, d.now())
	d.ptpIDs = append(d.ptpIDs, id)
	cfg.Feed = func(f ptpsvc.Feed) {
		select {
		case d.events <- event{kind: evCall, call: func() { d.ptpFeed(id, name, f) }}:
		case <-ctx.Done():
		}
	}
}

// ptpFeed hands a port's samples to the engine (owner loop).
func (d *Daemon) ptpFeed(id system.ID, name string, f ptpsvc.Feed) {
	now := d.now()
	if f.Lost != "" {
		d.log.Info("PTP source lost its master", "source", name, "why", f.Lost)
		d.eng.ExternalLost(id, now, f.Lost)
	}
	for _, s := range f.Samples {
		s.Local = d.mapRaw(s.Local)
		if err := d.eng.ExternalSample(id, now, s); err != nil {
			d.limiter.Log(context.Background(), d.log, time.Now(), slog.LevelWarn, "ptp:"+name,
				"PTP sample not used", "source", name, "err", err)
		}
	}
}

// ptpSnapshot finds the engine's snapshot of port i's source.
func (d *Daemon) ptpSnapshot(sn *system.Snapshot, i int) *system.SourceSnapshot {
	if i >= len(d.ptpIDs) {
		return nil
	}
	for j := range sn.Sources {
		if sn.Sources[j].ID == d.ptpIDs[i] {
			return &sn.Sources[j]
		}
	}
	return nil
}

// ptpStepHook is the system clock as the engine steers it (system mode):
// when the engine steps it or changes its frequency, the PTP ports whose
// virtual clocks ride on it (software timestamps) are told, so that their
// own clocks and servos do not chase the engine's corrections
// (service/ptp Port.BaseStepped, Port.BaseFrequency).
type ptpStepHook struct {
	clock.Clock
	d       *Daemon
	freqPPM float64
	known   bool // freqPPM was set through the hook
}

func (h *ptpStepHook) SetFrequency(freqPPM float64) error {
	if err := h.Clock.SetFrequency(freqPPM); err != nil {
		return err
	}
	at := time.Now().Round(0)
	if h.known {
		for _, p := range h.d.ptp {
			p.BaseFrequency(at, freqPPM-h.freqPPM)
		}
	}
	h.freqPPM, h.known = freqPPM, true
	return nil
}

func (h *ptpStepHook) Step(offset time.Duration) error {
	if err := h.Clock.Step(offset); err != nil {
		return err
	}
	for _, p := range h.d.ptp {
		p.BaseStepped(offset)
	}
	return nil
}
