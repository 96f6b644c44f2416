package daemon

import (
	"bufio"
	"bytes"
	"context"
	"io"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"gnomon.dev/gnomon/service/config"
)

// Servers from the network ([dhcp] servers-dir): the dhclient exit hook
// and the NetworkManager dispatcher script (debian/) write one
// INTERFACE.servers file per link with the NTP servers its DHCP lease
// offered, and remove it when the link goes down. gnomond polls the
// directory and keeps one source per server (origin "dhcp"), added and
// dropped with the files.

// originDHCP marks sources from [dhcp] servers-dir.
const originDHCP = "dhcp"

const (
	dhcpPoll       = 2 * time.Second
	dhcpMaxServers = 16
	dhcpMaxFile    = 64 << 10
)

type dhcpState struct {
	servers atomic.Pointer[[]string] // as the files give them, for DHCPServers
}

// DHCPServers lists the NTP servers DHCP handed out (part of timesync1's
// LinkNTPServers, with systemd-networkd's).
func (d *Daemon) DHCPServers() []string {
	out := []string{}
	if p := d.dhcp.servers.Load(); p != nil {
		for _, a := range *p {
			// As the network gave them: without the default port.
			if h, port, err := net.SplitHostPort(a); err == nil && port == "123" {
				a = h
			}
			out = append(out, a)
		}
	}
	return out
}

// startDHCP watches [dhcp] servers-dir, if configured.
func (d *Daemon) startDHCP(ctx context.Context) {
	dir := d.cfg.DHCP.ServersDir
	if dir == "" {
		return
	}
	d.wg.Add(1)
	go func() {
		defer d.wg.Done()
		var last []string
		first := true
		t := time.NewTicker(dhcpPoll)
		defer t.Stop()
		for {
			servers, bad := readDHCPDir(dir)
			for _, b := range bad {
				d.logLimited("dhcp:"+b, "ignoring a line of a DHCP servers file", "line", b)
			}
			if first || !slices.Equal(servers, last) {
				first, last = false, servers
				cp := slices.Clone(servers)
				if err := d.call(ctx, func() error { d.setDHCPServers(ctx, cp); return nil }); err != nil {
					return
				}
			}
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
		}
	}()
}

// setDHCPServers makes the dhcp sources those of servers (owner loop).
func (d *Daemon) setDHCPServers(ctx context.Context, servers []string) {
	want := map[string]bool{}
	for _, s := range servers {
		want[s] = true
	}
	have := map[string]bool{}
	for _, sp := range slices.Clone(d.specs) {
		if sp.origin != originDHCP {
			continue
		}
		if !want[sp.src.Address] {
			d.log.Info("dropping a server from DHCP", "address", sp.src.Address)
			d.removeSpec(sp)
			continue
		}
		have[sp.src.Address] = true
	}
	for _, s := range servers {
		if !have[s] {
			d.log.Info("adding a server from DHCP", "address", s)
			d.addSpec(ctx, d.sourceDefaults(config.SourceServer, s), originDHCP)
		}
	}
	d.dhcp.servers.Store(&servers)
	d.log.Info("DHCP NTP servers", "servers", strings.Join(servers, " "))
}

// readDHCPDir reads every *.servers file of dir, in name order: the
// servers (normalized host:port, each once, at most dhcpMaxServers) and
// the lines it could not read. A missing directory is no servers.
func readDHCPDir(dir string) (servers, bad []string) {
	names, _ := filepath.Glob(filepath.Join(dir, "*.servers"))
	slices.Sort(names)
	seen := map[string]bool{}
	for _, name := range names {
		f, err := os.Open(name)
		if err != nil {
			continue
		}
		data, _ := io.ReadAll(io.LimitReader(f, dhcpMaxFile))
		f.Close()
		sc := bufio.NewScanner(bytes.NewReader(data))
		for sc.Scan() {
			line := strings.TrimSpace(sc.Text())
			if line == "" || strings.HasPrefix(line, "#") {
				continue
			}
			for _, field := range strings.Fields(line) {
				addr, err := config.ParseSourceAddress(field, config.SourceServer)
				if err != nil {
					bad = append(bad, filepath.Base(name)+": "+field)
					continue
				}
				if !seen[addr] && len(servers) < dhcpMaxServers {
					seen[addr] = true
					servers = append(servers, addr)
				}
			}
		}
	}
	return servers, bad
}
