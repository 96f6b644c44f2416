package daemon

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"runtime"
	"syscall"
	"time"

	"gnomon.dev/gnomon/engine/ntp"
	eptp "gnomon.dev/gnomon/engine/ptp"
	"gnomon.dev/gnomon/engine/system"
	"gnomon.dev/gnomon/service/config"
	ptpsvc "gnomon.dev/gnomon/service/ptp"
)

// CSPTP clients get source IDs above the PTP ports'.
const csptpIDBase system.ID = 1<<40 + 1<<20

// csptpState is the daemon's client-server PTP part (csptp.go).
type csptpState struct {
	clients []*ptpsvc.CSPTPClient
	servers []*ptpsvc.CSPTPServer
	ids     []system.ID // the clients' engine sources (csptpsys.go)
}

// startCSPTP binds every [[csptp-server]] (before the privilege drop: port
// 319 is privileged) and starts every mode = "csptp" source.
func (d *Daemon) startCSPTP(ctx context.Context) error {
	for i, sc := range d.cfg.CSPTPServers {
		workers := sc.Workers
		if workers <= 0 {
			workers = runtime.NumCPU()
		}
		eng := eptp.CSPTPServerConfig{Identity: ptpsvc.IdentityFor(fmt.Sprintf("server %d %s", i, sc.Listen)),
			Domain: uint8(sc.Domain), Priority1: uint8(sc.Priority1), Priority2: uint8(sc.Priority2),
			Quality:   eptp.ClockQuality{Class: uint8(sc.ClockClass), Accuracy: uint8(sc.ClockAccuracy), OffsetScaledLogVariance: eptp.VarianceUnknown},
			UTCOffset: int16(sc.UTCOffset), PTPTimescale: sc.PTPTimescale}
		rl := ntp.RateLimitConfig{Interval: sc.RateLimit.Interval, Burst: sc.RateLimit.Burst, TableSize: sc.RateLimit.TableSize}
		s, err := ptpsvc.ListenCSPTP(ctx, ptpsvc.CSPTPServerOptions{Listen: sc.Listen, Workers: workers, RateLimit: rl, Engine: eng}, d.log)
		if err != nil {
			if errors.Is(err, syscall.EACCES) && sc.Listen.Port() < 1024 {
				return fmt.Errorf("csptp-server %s: %w (a port below 1024 needs CAP_NET_BIND_SERVICE)", sc.Listen, err)
			}
			return fmt.Errorf("csptp-server %s: %w", sc.Listen, err)
		}
		d.csptp.servers = append(d.csptp.servers, s)
		d.wg.Add(1)
		go func() {
			defer d.wg.Done()
			_ = s.Serve(ctx)
		}()
		d.log.Info("serving CSPTP", "listen", s.Addr(), "workers", workers)
	}
	for _, src := range d.cfg.Sources {
		if src.Mode != config.SourceCSPTP || src.CSPTP == nil {
			continue
		}
		addr, err := resolveCSPTP(ctx, src.Address)
		if err != nil {
			return fmt.Errorf("csptp source %s: %w", src.Address, err)
		}
		name := "csptp:" + src.Address
		feed := d.addCSPTPSource(ctx, name, addr.String(), src.Prefer, src.NoSelect) // csptpsys.go
		c, err := ptpsvc.NewCSPTPClient(ptpsvc.CSPTPClientOptions{Name: name, Server: addr, Feed: feed,
			Engine: eptp.CSPTPClientConfig{Variant: eptp.CSPTPVariant(src.CSPTP.Variant), Domain: uint8(src.CSPTP.Domain), Interval: src.CSPTP.Interval}}, d.log)
		if err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
		d.csptp.clients = append(d.csptp.clients, c)
		d.wg.Add(1)
		go func() {
			defer d.wg.Done()
			if err := c.Run(ctx); err != nil {
				d.log.Error("CSPTP client stopped", "source", name, "err", err)
			}
		}()
	}
	if len(d.csptp.clients) > 0 && len(d.ptp) == 0 {
		d.republishEverySecond(ctx) // unless the PTP ports do already (ptp.go)
	}
	return nil
}

func resolveCSPTP(ctx context.Context, hostport string) (netip.AddrPort, error) {
	if ap, err := netip.ParseAddrPort(hostport); err == nil {
		return ap, nil
	}
	host, port, err := net.SplitHostPort(hostport)
	if err != nil {
		return netip.AddrPort{}, err
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	ips, err := net.DefaultResolver.LookupNetIP(ctx, "ip", host)
	if err != nil || len(ips) == 0 {
		return netip.AddrPort{}, fmt.Errorf("resolving %s: %v", host, err)
	}
	return netip.ParseAddrPort(net.JoinHostPort(ips[0].Unmap().String(), port))
}

// addCSPTPViews adds a source per CSPTP client to the snapshot.
func (d *Daemon) addCSPTPViews(sn *system.Snapshot) {
	for i, c := range d.csptp.clients {
		st := c.Status()
		if st == nil {
			continue
		}
		ss := system.SourceSnapshot{
			ID:         csptpIDBase + system.ID(i),
			Name:       st.Name,
			Address:    st.Server.String(),
			Kind:       "csptp",
			Origin:     originConfig,
			Protocol:   string(st.Variant),
			Selection:  "csptp",
			Offset:     st.Offset,
			Delay:      st.PathDelay,
			LastSample: st.LastSample,
			LastError:  st.LastError,
			Valid:      st.Counters.Measurements,
			Sent:       st.Counters.Sent,
			Stratum:    uint8(min(st.StepsRemoved+1, 15)),
		}
		if !st.LastSample.IsZero() && time.Since(st.LastSample) < 10*time.Second {
			ss.Reach = 0xff
		}
		if es := d.csptpSnapshot(sn, i); es != nil {
			// the engine's source (csptpsys.go): its selection state,
			// reach, stratum, offset and delay stay
			es.Protocol = ss.Protocol
			if ss.LastError != "" {
				es.LastError = ss.LastError
			}
			continue
		}
		sn.Sources = append(sn.Sources, ss)
	}
}
