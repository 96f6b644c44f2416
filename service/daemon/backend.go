package daemon

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"time"

	gdbus "gnomon.dev/gnomon/dbus"
	"gnomon.dev/gnomon/engine/system"
	"gnomon.dev/gnomon/service/atomicfile"
	"gnomon.dev/gnomon/service/config"
)

var _ gdbus.Backend = (*Daemon)(nil)

// Errors the D-Bus layer maps to named D-Bus errors.
var (
	ErrObserveMode = errors.New("the clock is in observe mode: gnomond never sets it (run it with [clock] mode = \"system\")")
	ErrNTPActive   = errors.New("automatic time synchronization is enabled")
	ErrNoSource    = errors.New("no such source")
	ErrNotRunning  = errors.New("the daemon is not running")
)

// call runs f on the owner loop and waits for it, honouring ctx.
func (d *Daemon) call(ctx context.Context, f func() error) error {
	done := make(chan error, 1)
	ev := event{kind: evCall, call: func() { done <- f() }}
	select {
	case d.events <- ev:
	case <-ctx.Done():
		return ctx.Err()
	}
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Changed returns a channel closed at the next published snapshot.
func (d *Daemon) Changed() <-chan struct{} {
	d.changeMu.Lock()
	defer d.changeMu.Unlock()
	return d.changed
}

// ClockMode is "system" or "observe".
func (d *Daemon) ClockMode() string {
	if d.virtual != nil {
		return string(config.ClockObserve)
	}
	return string(config.ClockSystem)
}

// ObserveReason says why the clock mode is observe; "" in system mode.
func (d *Daemon) ObserveReason() string {
	if d.virtual == nil {
		return ""
	}
	if d.opts.ObserveReason == "" {
		return "observe mode configured"
	}
	return d.opts.ObserveReason
}

// ntpStateFile persists SetNTP across restarts.
func (d *Daemon) ntpStateFile() string {
	if d.opts.StateDir == "" {
		return ""
	}
	return filepath.Join(d.opts.StateDir, "ntp-disabled")
}

// NTP reports whether synchronization is on.
func (d *Daemon) NTP() bool { return !d.ntpOffFlag.Load() }

// SetNTP turns synchronization on or off; off stops every request (the
// clock then runs free on its last frequency) and is remembered in the
// state directory. The setting changes only once it is persisted: when
// the state file cannot be written (a full, read-only or missing state
// directory) the call fails and nothing changes, now or at the next start.
func (d *Daemon) SetNTP(ctx context.Context, on bool) error {
	return d.call(ctx, func() error {
		if f := d.ntpStateFile(); f != "" {
			var err error
			if on {
				err = atomicfile.Remove(f)
			} else {
				err = atomicfile.WriteFile(f, []byte("synchronization disabled through SetNTP\n"), 0o644)
			}
			if err != nil {
				return fmt.Errorf("persist NTP setting: %w", d.stateError(err))
			}
		}
		d.ntpOff = !on
		d.ntpOffFlag.Store(!on)
		if on {
			now := d.now()
			for id := range d.sources {
				d.eng.Burst(id, now)
			}
		}
		d.log.Info("time synchronization", "enabled", on)
		return nil
	})
}

// SetTime steps the clock to t.
func (d *Daemon) SetTime(ctx context.Context, t time.Time) error {
	return d.call(ctx, func() error {
		if d.virtual != nil {
			return ErrObserveMode
		}
		if !d.ntpOff {
			return ErrNTPActive
		}
		off := t.Sub(d.clk.Now())
		if err := d.clk.Step(off); err != nil {
			return fmt.Errorf("set time: %w", err)
		}
		d.log.Info("clock set by request", "step", off)
		return nil
	})
}

// AddSource adds a source at run time.
func (d *Daemon) AddSource(ctx context.Context, mode, address string) (system.ID, error) {
	var m config.SourceMode
	if err := m.UnmarshalText([]byte(mode)); err != nil {
		return 0, err
	}
	if m.IsRefclock() {
		return 0, errRefclockRuntime
	}
	addr, err := config.ParseSourceAddress(address, m)
	if err != nil {
		return 0, err
	}
	var key int
	if err := d.call(ctx, func() error {
		if sp := d.findSpec(m, addr); sp != nil {
			id := pendingID(sp)
			for sid, ls := range d.sources {
				if ls.spec == sp && sid < id {
					id = sid
				}
			}
			return fmt.Errorf("%w: %s %s is source %d, from %s", ErrSourceExists, m, addr, id, sourceOrigin(sp.origin))
		}
		src := d.sourceDefaults(m, addr)
		sp := d.addSpec(d.ctx, src, originDBus)
		key = sp.key
		return nil
	}); err != nil {
		return 0, err
	}
	// The name resolves in the background; wait (bounded) for its first
	// engine source so the caller gets its ID, or, once resolving failed,
	// return the ID it shows under until it resolves.
	deadline := time.NewTimer(10 * time.Second)
	defer deadline.Stop()
	for {
		var id system.ID
		_ = d.call(ctx, func() error {
			for sid, ls := range d.sources {
				if ls.spec.key == key && (id == 0 || sid < id) {
					id = sid
				}
			}
			if id == 0 {
				for _, sp := range d.specs {
					if sp.key == key && sp.lastErr != "" {
						id = pendingID(sp)
					}
				}
			}
			return nil
		})
		if id != 0 {
			return id, nil
		}
		select {
		case <-ctx.Done():
			return 0, ctx.Err()
		case <-deadline.C:
			return pendingBase + system.ID(key), nil
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// sourceOrigin says where a source came from, for messages.
func sourceOrigin(origin string) string {
	switch origin {
	case originConfig:
		return "the configuration file"
	case originRuntime:
		return "timesync1's runtime servers"
	}
	return "added at run time"
}

func (d *Daemon) sourceDefaults(m config.SourceMode, addr string) config.SourceConfig {
	src := config.SourceConfig{Mode: m, Address: addr, IBurst: true,
		PollIntervalLimits: d.cfg.SourceDefaults.PollIntervalLimits}
	if m == config.SourcePool {
		src.Count = 4
	}
	return src
}

// RemoveSource removes one engine source (and, for a server, its spec; a
// pool member is replaced like a bad one).
func (d *Daemon) RemoveSource(ctx context.Context, id system.ID) error {
	return d.call(ctx, func() error {
		ls := d.sources[id]
		if ls == nil && id >= pendingBase {
			for _, sp := range d.specs {
				if pendingID(sp) == id && d.members(sp) == 0 {
					d.removeSpec(sp)
					return nil
				}
			}
		}
		if ls == nil {
			return fmt.Errorf("%w: %d", ErrNoSource, id)
		}
		if ls.spec.src.Mode == config.SourcePool && d.members(ls.spec) > 1 {
			ls.spec.bad[ls.addr] = time.Now()
			d.dropSource(id)
			return nil
		}
		d.removeSpec(ls.spec)
		return nil
	})
}

// Burst makes one source, or all with id 0, poll quickly now.
func (d *Daemon) Burst(ctx context.Context, id system.ID) error {
	return d.call(ctx, func() error {
		now := d.now()
		if id == 0 {
			for sid := range d.sources {
				d.eng.Burst(sid, now)
			}
			return nil
		}
		if !d.eng.Burst(id, now) {
			return fmt.Errorf("%w: %d", ErrNoSource, id)
		}
		return nil
	})
}

func specKey(s config.SourceConfig) string {
	k := fmt.Sprintf("%s|%s|%v|%v|%v|%v|%v|%d|%s", s.Mode, s.Address, s.PollIntervalLimits, s.IBurst,
		s.Prefer, s.NoSelect, s.Trust, s.Count, s.CertificateAuthority)
	if s.Refclock != nil {
		k += fmt.Sprintf("|%+v", *s.Refclock)
	}
	return k
}

// SetRuntimeServers replaces the runtime servers (timesync1).
func (d *Daemon) SetRuntimeServers(ctx context.Context, servers []string) error {
	servers = append([]string{}, servers...)
	return d.call(ctx, func() error {
		// d.cfg (the source defaults) is the owner's: read it here.
		srcs := d.serverSources(servers, "runtime")
		for _, sp := range append([]*spec(nil), d.specs...) {
			if sp.origin == originRuntime {
				d.removeSpec(sp)
			}
		}
		for _, src := range srcs {
			d.addSpec(d.ctx, src, originRuntime)
		}
		d.runtime.Store(&servers)
		d.applyPrecedence()
		return nil
	})
}

// RuntimeServers lists the servers set through SetRuntimeServers.
func (d *Daemon) RuntimeServers() []string {
	if p := d.runtime.Load(); p != nil {
		return append([]string(nil), (*p)...)
	}
	return []string{}
}

// ConfigServers lists the configured sources' host names.
// It is called from D-Bus goroutines: it reads the list the owner loop
// publishes, never d.cfg.
func (d *Daemon) ConfigServers() []string {
	if p := d.cfgServers.Load(); p != nil {
		return append([]string(nil), (*p)...)
	}
	return []string{}
}

// publishConfigServers records the configured sources' host names for
// ConfigServers; the owner calls it whenever d.cfg.Sources changes.
func (d *Daemon) publishConfigServers() {
	out := []string{}
	for _, s := range d.cfg.Sources {
		if s.Refclock != nil || s.Mode.NotNTP() {
			continue // not an NTP server
		}
		out = append(out, strings.TrimSuffix(s.Host(), "."))
	}
	d.cfgServers.Store(&out)
	d.applyPrecedence()
}
