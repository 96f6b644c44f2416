package daemon

import (
	"context"
	"slices"
	"strings"
	"sync"

	gdbus "gnomon.dev/gnomon/dbus"
	"gnomon.dev/gnomon/service/config"
)

// originLink marks sources taken from systemd-networkd (timesync1's
// LinkNTPServers).
const originLink = "link"

// timesyncd's four server lists (docs/dbus.md, "NTP servers"):
//
//   - Fallback: the packaged default sources, while gnomon.toml still
//     lists exactly those (by host name);
//   - System: the sources the administrator wrote instead;
//   - Link: systemd-networkd's servers (SetLinkServers);
//   - Runtime: SetRuntimeServers.
//
// Which ones gnomond polls follows timesyncd's precedence: the runtime
// list when it is not empty; otherwise the system (or fallback) sources
// together with the link servers, except that link servers replace the
// fallback ones. Sources set aside are removed from the engine and come
// back when the lists that replaced them are emptied.
type ntpServerState struct {
	mu   sync.Mutex
	link []string
	// config sources set aside while runtime (or link) servers rule
	suspended []config.SourceConfig
}

var (
	_ gdbus.ServerLists = (*Daemon)(nil)
	_ gdbus.LinkSetter  = (*Daemon)(nil)
)

// packagedHosts are the host names of the packaged default sources.
var packagedHosts = sync.OnceValue(func() []string {
	c, err := config.Embedded(config.Options{CanSetClock: true})
	if err != nil {
		return nil
	}
	var out []string
	for _, s := range c.Sources {
		out = append(out, strings.TrimSuffix(s.Host(), "."))
	}
	return out
})

// configIsPackaged reports whether the configured sources are the
// packaged defaults.
func (d *Daemon) configIsPackaged() bool {
	p := packagedHosts()
	return len(p) > 0 && slices.Equal(d.ConfigServers(), p)
}

// SystemServers is timesync1's SystemNTPServers.
func (d *Daemon) SystemServers() []string {
	if d.configIsPackaged() {
		return []string{}
	}
	return d.ConfigServers()
}

// FallbackServers is timesync1's FallbackNTPServers.
func (d *Daemon) FallbackServers() []string {
	if d.configIsPackaged() {
		return d.ConfigServers()
	}
	return []string{}
}

// LinkServers lists systemd-networkd's servers as last set.
func (d *Daemon) LinkServers() []string {
	d.ntpsrv.mu.Lock()
	defer d.ntpsrv.mu.Unlock()
	return append([]string{}, d.ntpsrv.link...)
}

// serverSources turns timesync1 server names into server sources; names
// gnomond cannot poll (systemd accepts "bad name!") are skipped with a
// warning, and stay in the list timesync1 shows.
func (d *Daemon) serverSources(servers []string, what string) []config.SourceConfig {
	var srcs []config.SourceConfig
	for _, s := range servers {
		addr, err := config.ParseSourceAddress(s, config.SourceServer)
		if err != nil {
			d.log.Warn("NTP server name gnomond cannot use; ignored", "list", what, "server", s, "err", err)
			continue
		}
		srcs = append(srcs, d.sourceDefaults(config.SourceServer, addr))
	}
	return srcs
}

// SetLinkServers replaces systemd-networkd's servers.
func (d *Daemon) SetLinkServers(ctx context.Context, servers []string) error {
	servers = append([]string{}, servers...)
	return d.call(ctx, func() error {
		d.ntpsrv.mu.Lock()
		same := slices.Equal(d.ntpsrv.link, servers)
		d.ntpsrv.link = servers
		d.ntpsrv.mu.Unlock()
		if same {
			return nil
		}
		d.log.Info("systemd-networkd's NTP servers", "servers", servers)
		for _, sp := range append([]*spec(nil), d.specs...) {
			if sp.origin == originLink {
				d.removeSpec(sp)
			}
		}
		d.applyPrecedence()
		return nil
	})
}

// applyPrecedence adds and sets aside sources so that the lists in use
// follow timesyncd's precedence. It runs on the owner loop after any list
// changes (and after a reload).
func (d *Daemon) applyPrecedence() {
	if d.ctx == nil {
		return // not running yet: Run adds the configured sources
	}
	runtime := len(d.RuntimeServers()) > 0
	link := d.LinkServers()
	wantConfig := !runtime && !(len(link) > 0 && d.configIsPackaged())
	wantLink := !runtime
	var cfgSpecs, linkSpecs []*spec
	for _, sp := range d.specs {
		switch sp.origin {
		case originConfig:
			cfgSpecs = append(cfgSpecs, sp)
		case originLink:
			linkSpecs = append(linkSpecs, sp)
		}
	}
	d.ntpsrv.mu.Lock()
	defer d.ntpsrv.mu.Unlock()
	switch {
	case !wantConfig && len(cfgSpecs) > 0:
		d.ntpsrv.suspended = nil
		for _, sp := range cfgSpecs {
			d.ntpsrv.suspended = append(d.ntpsrv.suspended, sp.src)
			d.removeSpec(sp)
		}
		d.log.Info("configured sources set aside: timesync1's runtime or link servers take precedence", "sources", len(cfgSpecs))
	case wantConfig && len(cfgSpecs) == 0 && d.ntpsrv.suspended != nil:
		for _, src := range d.ntpsrv.suspended {
			d.addSpec(d.ctx, src, originConfig)
		}
		d.log.Info("configured sources back in use", "sources", len(d.ntpsrv.suspended))
		d.ntpsrv.suspended = nil
	case wantConfig && len(cfgSpecs) > 0:
		d.ntpsrv.suspended = nil
	}
	switch {
	case !wantLink:
		for _, sp := range linkSpecs {
			d.removeSpec(sp)
		}
	case len(linkSpecs) == 0:
		for _, src := range d.serverSources(d.ntpsrv.link, "link") {
			d.addSpec(d.ctx, src, originLink)
		}
	}
}
