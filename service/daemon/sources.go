package daemon

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"time"

	"gnomon.dev/gnomon/engine/ntp"
	"gnomon.dev/gnomon/engine/nts"
	"gnomon.dev/gnomon/engine/system"
	"gnomon.dev/gnomon/service/config"
	"gnomon.dev/gnomon/service/netio"
)

// Where a source came from.
const (
	originConfig  = "config"  // the configuration file
	originRuntime = "runtime" // timesync1's SetRuntimeNTPServers
	originDBus    = "dbus"    // Gnomon1's AddSource
)

// How often pools are checked, and how long a member may stay useless
// (unreachable, or a falseticker) before it is replaced; a shorter
// Options.PoolReplaceAfter overrides both (poolReplaceAfter,
// maintenanceEvery).
const (
	maintenanceInterval = time.Minute
	replaceAfter        = 8 * time.Minute
	badAddressMemory    = time.Hour
)

// spec is one configured source: a server (one address) or a pool (up to
// Count addresses), however many engine sources it currently has.
type spec struct {
	key     int
	src     config.SourceConfig
	origin  string
	removed bool
	// pools: addresses recently dropped, not to be taken again for a while
	bad       map[netip.AddrPort]time.Time
	resolving bool
	useless   map[system.ID]time.Time // since when a member has been useless
	keBackoff time.Duration           // NTS: wait before the next key exchange
	lastErr   string                  // the last resolution or key exchange error, "" after a success
}

func (d *Daemon) addSpec(ctx context.Context, src config.SourceConfig, origin string) *spec {
	sp := &spec{key: d.nextSpec, src: src, origin: origin,
		bad: map[netip.AddrPort]time.Time{}, useless: map[system.ID]time.Time{}}
	d.nextSpec++
	d.specs = append(d.specs, sp)
	if src.Refclock != nil {
		d.startRefclock(ctx, sp)
		return sp
	}
	d.startResolve(ctx, sp, 0)
	return sp
}

// removeSpec stops every engine source of sp.
func (d *Daemon) removeSpec(sp *spec) {
	sp.removed = true
	for id, ls := range d.sources {
		if ls.spec == sp {
			d.dropSource(id)
		}
	}
	for i, x := range d.specs {
		if x == sp {
			d.specs = append(d.specs[:i], d.specs[i+1:]...)
			break
		}
	}
}

func (d *Daemon) dropSource(id system.ID) {
	ls := d.sources[id]
	if ls == nil {
		return
	}
	ls.cancel()
	if ls.conn != nil { // reference clocks have none
		ls.conn.Close()
	}
	delete(d.sources, id)
	d.eng.RemoveSource(id)
}

func (d *Daemon) want(sp *spec) int {
	if sp.src.Mode == config.SourcePool {
		return max(sp.src.Count, 1)
	}
	return 1
}

func (d *Daemon) members(sp *spec) int {
	n := 0
	for _, ls := range d.sources {
		if ls.spec == sp {
			n++
		}
	}
	return n
}

// startResolve resolves sp's name in the background after delay, and
// sends the addresses to the owner. DNS never blocks the owner loop.
func (d *Daemon) startResolve(ctx context.Context, sp *spec, delay time.Duration) {
	if sp.src.Mode == config.SourceNTS {
		d.startKeyExchange(ctx, sp, delay)
		return
	}
	d.background(ctx, sp, delay, 10*time.Second, func(ctx context.Context) event {
		ips, err := d.lookup(ctx, sp.src.Host())
		return event{kind: evResolved, spec: sp, err: err, addrs: withPort(ips, sp.src.Port())}
	})
}

// background runs work for sp off the owner loop, one at a time per spec
// (sp.resolving), after delay and within timeout, and hands its event to
// the owner.
func (d *Daemon) background(ctx context.Context, sp *spec, delay, timeout time.Duration, work func(context.Context) event) {
	if sp.resolving || sp.removed {
		return
	}
	sp.resolving = true
	d.wg.Add(1)
	go func() {
		defer d.wg.Done()
		if delay > 0 {
			select {
			case <-ctx.Done():
				return
			case <-time.After(delay):
			}
		}
		wctx, cancel := context.WithTimeout(ctx, timeout)
		ev := work(wctx)
		cancel()
		select {
		case d.events <- ev:
		case <-ctx.Done():
		}
	}()
}

// lookup resolves a host name (or takes an address as it is).
func (d *Daemon) lookup(ctx context.Context, host string) ([]netip.Addr, error) {
	if ip, err := netip.ParseAddr(host); err == nil {
		return []netip.Addr{ip}, nil
	}
	r := d.opts.Resolver
	if r == nil {
		r = net.DefaultResolver
	}
	return r.LookupNetIP(ctx, "ip", host)
}

func withPort(ips []netip.Addr, port uint16) []netip.AddrPort {
	var out []netip.AddrPort
	for _, ip := range ips {
		out = append(out, netip.AddrPortFrom(ip.Unmap(), port))
	}
	return out
}

func (d *Daemon) addResolved(ctx context.Context, ev event) {
	sp := ev.spec
	sp.resolving = false
	if sp.removed {
		return
	}
	if sp.src.Mode == config.SourceNTS {
		d.keyExchanged(ctx, ev)
		return
	}
	if ev.err != nil || len(ev.addrs) == 0 {
		err := ev.err
		if err == nil {
			err = errors.New("no addresses")
		}
		sp.lastErr = resolveErrText(sp, err)
		d.logLimited("dns:"+sp.src.Address, "cannot resolve source; retrying in 60 s", "address", sp.src.Address, "err", err)
		d.startResolve(ctx, sp, time.Minute)
		return
	}
	sp.lastErr = ""
	have := map[netip.AddrPort]bool{}
	for _, ls := range d.sources {
		have[ls.addr] = true // never two sources at one address
	}
	now := time.Now()
	for a, since := range sp.bad {
		if now.Sub(since) > badAddressMemory {
			delete(sp.bad, a)
		}
	}
	for _, a := range ev.addrs {
		if d.members(sp) >= d.want(sp) {
			break
		}
		if have[a] {
			continue
		}
		if _, bad := sp.bad[a]; bad {
			continue
		}
		if err := d.addSource(ctx, sp, a); err != nil {
			sp.lastErr = "socket: " + errText(err)
			d.logLimited("dial:"+a.String(), "cannot open socket to source", "address", a, "err", err)
			continue
		}
		have[a] = true
	}
	if sp.src.Mode == config.SourcePool {
		d.log.Debug("pool resolved", "pool", sp.src.Host(), "addresses", len(ev.addrs),
			"members", d.members(sp), "count", d.want(sp))
	}
	if sp.src.Mode == config.SourcePool && d.members(sp) < d.want(sp) {
		// The name gave too few usable addresses: ask again later.
		d.startResolve(ctx, sp, 5*time.Minute)
	}
}

func (d *Daemon) addSource(ctx context.Context, sp *spec, addr netip.AddrPort) error {
	return d.addSourceAuth(ctx, sp, addr, nil)
}

// addSourceAuth adds an engine source at addr; session, when set, makes
// every exchange NTS-authenticated.
func (d *Daemon) addSourceAuth(ctx context.Context, sp *spec, addr netip.AddrPort, session *nts.ClientSession) error {
	src := sp.src
	conn, err := netio.Dial(ctx, "udp", addr)
	if err != nil {
		return err
	}
	id := d.eng.AddSource(system.SourceConfig{
		Name:    src.Host(),
		Address: addr.String(),
		Kind:    string(src.Mode),
		Origin:  sp.origin,
		RefID:   RefID(addr.Addr()),
		NTP: ntp.SourceConfig{
			MinPoll:     int8(src.PollIntervalLimits.Min),
			MaxPoll:     int8(src.PollIntervalLimits.Max),
			IBurst:      src.IBurst,
			Interleaved: src.XLeave,
			Leaps:       d.leaps,
			Auth:        d.sourceAuth(src, session),
		},
		Prefer:   src.Prefer,
		NoSelect: src.NoSelect,
		Trust:    src.Trust,
	}, d.now())
	rctx, cancel := context.WithCancel(ctx)
	d.sources[id] = &liveSource{spec: sp, addr: addr, conn: conn, cancel: cancel, added: time.Now(), session: session}
	d.log.Info("source added", "name", src.Host(), "address", addr, "origin", sp.origin,
		"timestamping", conn.Timestamping().String())
	d.wg.Add(1)
	go d.readSource(rctx, id, conn)
	return nil
}

// poolReplaceAfter is how long a pool member may stay useless before it is
// replaced: Options.PoolReplaceAfter, or replaceAfter when that is zero.
func (d *Daemon) poolReplaceAfter() time.Duration {
	if d.opts.PoolReplaceAfter > 0 {
		return d.opts.PoolReplaceAfter
	}
	return replaceAfter
}

// maintenanceEvery is how often maintainPools runs: every
// maintenanceInterval, or a quarter of a shorter replacement delay, so
// that a member is replaced at most a quarter late.
func (d *Daemon) maintenanceEvery() time.Duration {
	return max(min(maintenanceInterval, d.poolReplaceAfter()/4), time.Millisecond)
}

// havePools reports whether any pool is configured, from any origin: pool
// maintenance is due only then.
func (d *Daemon) havePools() bool {
	for _, sp := range d.specs {
		if sp.src.Mode == config.SourcePool && !sp.removed {
			return true
		}
	}
	return false
}

// maintainPools replaces pool members that have been unreachable or
// falsetickers for poolReplaceAfter, re-resolving the pool's name for new
// ones (chrony does the same for its pools).
func (d *Daemon) maintainPools(ctx context.Context) {
	sn := d.snap.Load()
	now := time.Now()
	for _, s := range sn.Sources {
		ls := d.sources[s.ID]
		if ls == nil || ls.spec.src.Mode != config.SourcePool {
			continue
		}
		sp := ls.spec
		useless := s.Protocol == ntp.StateUnreachable.String() || s.Protocol == ntp.StateDenied.String() ||
			s.Selection == "falseticker"
		if !useless {
			delete(sp.useless, s.ID)
			continue
		}
		since, ok := sp.useless[s.ID]
		if !ok {
			sp.useless[s.ID] = now
			d.log.Debug("pool member not useful", "pool", sp.src.Host(), "address", ls.addr,
				"state", s.Protocol, "selection", s.Selection, "replace_in", d.poolReplaceAfter())
			continue
		}
		if now.Sub(since) < d.poolReplaceAfter() {
			continue
		}
		d.log.Info("replacing pool member", "pool", sp.src.Host(), "address", ls.addr,
			"state", s.Protocol, "selection", s.Selection)
		delete(sp.useless, s.ID)
		sp.bad[ls.addr] = now
		d.dropSource(s.ID)
		d.startResolve(ctx, sp, 0)
	}
}

// readSource forwards a source socket's datagrams and transmit timestamps.
func (d *Daemon) readSource(ctx context.Context, id system.ID, conn *netio.ClientConn) {
	defer d.wg.Done()
	buf := make([]byte, 2048)
	for {
		ev, err := conn.Read(ctx, buf)
		if ctx.Err() != nil {
			return
		}
		var out event
		switch {
		case err != nil:
			out = event{kind: evReadErr, src: id, err: err}
			// ICMP errors and the like: keep reading, but not in a hot loop.
			select {
			case <-time.After(100 * time.Millisecond):
			case <-ctx.Done():
				return
			}
		case ev.Kind == netio.EventPacket:
			out = event{kind: evPacket, src: id, data: append([]byte(nil), buf[:ev.N]...), at: ev.Time.Round(0), kern: ev.Kernel}
		case ev.Kind == netio.EventTxTimestamp:
			out = event{kind: evTxStamp, src: id, at: ev.Time.Round(0), txID: ev.ID}
		default:
			continue
		}
		select {
		case d.events <- out:
		case <-ctx.Done():
			return
		}
	}
}

func (d *Daemon) closeSources() {
	for id := range d.sources {
		d.dropSource(id)
	}
}
