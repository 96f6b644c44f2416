package daemon

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	gdbus "gnomon.dev/gnomon/dbus"
	"gnomon.dev/gnomon/engine/system"
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
// state directory.
func (d *Daemon) SetNTP(ctx context.Context, on bool) error {
	return d.call(ctx, func() error {
		if f := d.ntpStateFile(); f != "" {
			var err error
			if on {
				err = os.Remove(f)
				if errors.Is(err, os.ErrNotExist) {
					err = nil
				}
			} else {
				err = os.WriteFile(f, []byte("synchronization disabled through SetNTP\n"), 0o644)
			}
			if err != nil {
				return fmt.Errorf("persist NTP setting: %w", err)
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
	addr, err := config.ParseSourceAddress(address, m)
	if err != nil {
		return 0, err
	}
	src := d.sourceDefaults(m, addr)
	var key int
	if err := d.call(ctx, func() error {
		sp := d.addSpec(d.ctx, src, originDBus)
		key = sp.key
		return nil
	}); err != nil {
		return 0, err
	}
	// The name resolves in the background; wait (bounded) for its first
	// engine source so the caller gets an ID.
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
			return nil
		})
		if id != 0 {
			return id, nil
		}
		select {
		case <-ctx.Done():
			return 0, ctx.Err()
		case <-deadline.C:
			return 0, fmt.Errorf("source %s added, but its name has not resolved yet", address)
		case <-time.After(50 * time.Millisecond):
		}
	}
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

// Reload re-reads the NTS-KE certificates and the configuration file, and
// applies what can change at run time: the sources (added, removed).
// Servers and the clock mode need a restart; a change to them is logged.
func (d *Daemon) Reload(ctx context.Context) error {
	// NTS-KE certificates first: renewed certificates are the common
	// reason to reload, and clients mid-exchange keep the old one.
	if err := d.reloadCertificates(); err != nil {
		return fmt.Errorf("reload NTS-KE certificates: %w", err)
	}
	if d.cfg.Path == "" {
		return errors.New("reload: running on the embedded default configuration; there is no file to re-read")
	}
	cfg, err := config.Load(d.cfg.Path, config.Options{IsRoot: os.Geteuid() == 0})
	if err != nil {
		return fmt.Errorf("reload: %w", err)
	}
	return d.call(ctx, func() error {
		old := map[string]*spec{}
		for _, sp := range d.specs {
			if sp.origin == originConfig {
				old[specKey(sp.src)] = sp
			}
		}
		added, removed := 0, 0
		for _, src := range cfg.Sources {
			if src.Mode.NotNTP() {
				continue // PTP ports and CSPTP clients change at the next restart
			}
			k := specKey(src)
			if _, ok := old[k]; ok {
				delete(old, k)
				continue
			}
			d.addSpec(d.ctx, src, originConfig)
			added++
		}
		for _, sp := range old {
			d.removeSpec(sp)
			removed++
		}
		if len(cfg.Servers) != len(d.cfg.Servers) || cfg.Clock.Mode != d.cfg.Clock.Mode {
			d.log.Warn("reload: [[server]] and [clock] mode changes take effect at the next restart")
		}
		d.cfg.Sources = cfg.Sources
		d.publishConfigServers()
		d.log.Info("configuration reloaded", "path", cfg.Path, "sources_added", added, "sources_removed", removed)
		return nil
	})
}

func specKey(s config.SourceConfig) string {
	return fmt.Sprintf("%s|%s|%v|%v|%v|%v|%d|%s", s.Mode, s.Address, s.PollIntervalLimits, s.IBurst,
		s.Prefer, s.NoSelect, s.Count, s.CertificateAuthority)
}

// SetRuntimeServers replaces the runtime servers (timesync1).
func (d *Daemon) SetRuntimeServers(ctx context.Context, servers []string) error {
	var srcs []config.SourceConfig
	for _, s := range servers {
		addr, err := config.ParseSourceAddress(s, config.SourceServer)
		if err != nil {
			return fmt.Errorf("invalid NTP server %q: %w", s, err)
		}
		srcs = append(srcs, d.sourceDefaults(config.SourceServer, addr))
	}
	return d.call(ctx, func() error {
		for _, sp := range append([]*spec(nil), d.specs...) {
			if sp.origin == originRuntime {
				d.removeSpec(sp)
			}
		}
		for _, src := range srcs {
			d.addSpec(d.ctx, src, originRuntime)
		}
		d.runtime.Store(&servers)
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
		if s.Mode.NotNTP() {
			continue
		}
		out = append(out, strings.TrimSuffix(s.Host(), "."))
	}
	d.cfgServers.Store(&out)
}
