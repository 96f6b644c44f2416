package daemon

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"os"
	"time"

	erc "gnomon.dev/gnomon/engine/refclock"
	"gnomon.dev/gnomon/engine/system"
	"gnomon.dev/gnomon/service/config"
	"gnomon.dev/gnomon/service/refclock"
)

// Reference clocks ([[source]] mode = gpsd, pps, shm, sock). What needs
// privileges (a PPS device, a SOCK socket under /run, gpsd's root-owned
// SHM segments) is opened by openRefclocks before the privilege drop and
// the seccomp filter; the readers then run on their own goroutines and
// hand their reports to the owner loop.

type openSock struct {
	s *refclock.Sock
	c *net.UnixConn
}

// refclockOpen holds what openRefclocks opened, by refclockKey, until the
// source starts.
type refclockOpen struct {
	pps  map[string]*os.File
	sock map[string]*openSock
	shm  map[string][]byte
}

func refclockKey(s config.SourceConfig) string {
	return string(s.Mode) + "|" + s.Refclock.Endpoint(s.Mode, s.Address)
}

// openRefclocks opens the configured PPS devices, binds the SOCK sockets
// and attaches the SHM segments. A failure is logged; that source then
// tries again when it starts, with the privileges left.
func (d *Daemon) openRefclocks() {
	o := &refclockOpen{pps: map[string]*os.File{}, sock: map[string]*openSock{}, shm: map[string][]byte{}}
	d.refOpen = o
	for _, s := range d.cfg.Sources {
		r := s.Refclock
		if r == nil {
			continue
		}
		k := refclockKey(s)
		var err error
		switch s.Mode {
		case config.SourcePPS:
			var f *os.File
			if f, err = (&refclock.PPS{Device: r.Device, Clear: r.Edge == config.EdgeClear}).Open(); err == nil {
				o.pps[k] = f
			}
		case config.SourceSOCK:
			sk := &refclock.Sock{Path: r.Path}
			var c *net.UnixConn
			if c, err = sk.Listen(); err == nil {
				o.sock[k] = &openSock{sk, c}
			}
		case config.SourceSHM:
			var seg []byte
			if seg, err = (&refclock.SHM{Unit: r.Unit}).Attach(); err == nil {
				o.shm[k] = seg
			}
		}
		if err != nil {
			d.log.Error("cannot open reference clock", "mode", s.Mode, "refid", r.RefID, "err", err)
		}
	}
}

// closeRefclocks releases what no source took.
func (d *Daemon) closeRefclocks() {
	o := d.refOpen
	if o == nil {
		return
	}
	for _, f := range o.pps {
		f.Close()
	}
	for _, c := range o.sock {
		c.c.Close()
	}
	d.refOpen = nil
}

// startRefclock adds a reference clock's engine source and starts its
// reader.
func (d *Daemon) startRefclock(ctx context.Context, sp *spec) {
	src := sp.src
	r := src.Refclock
	endpoint := r.Endpoint(src.Mode, src.Address)
	id := d.eng.AddRefclock(system.SourceConfig{
		Name:     r.RefID,
		Address:  endpoint,
		Kind:     string(src.Mode),
		Origin:   sp.origin,
		RefID:    erc.RefID(r.RefID),
		Prefer:   src.Prefer,
		NoSelect: src.NoSelect,
		Trust:    src.Trust,
	}, system.RefclockConfig{
		Clock: erc.Config{
			Kind:      string(src.Mode),
			Poll:      int8(r.Poll),
			Filter:    r.Filter,
			Offset:    r.Offset,
			Delay:     r.Delay,
			Precision: r.Precision,
			Pulse:     src.Mode == config.SourcePPS,
		},
		Lock: r.Lock,
	}, d.now())
	rctx, cancel := context.WithCancel(ctx)
	d.sources[id] = &liveSource{spec: sp, cancel: cancel, added: time.Now()}
	d.log.Info("reference clock added", "mode", src.Mode, "refid", r.RefID, "from", endpoint, "poll", r.Poll)

	rec := &erc.Receiver{}
	emit := func(rep refclock.Report) {
		select {
		case d.events <- event{kind: evCall, call: func() { d.refclockReport(id, src, rec, rep) }}:
		case <-rctx.Done():
		}
	}
	run := d.refclockReader(src)
	d.wg.Add(1)
	go func() {
		defer d.wg.Done()
		if err := run(rctx, emit); err != nil && rctx.Err() == nil {
			d.log.Error("reference clock stopped", "mode", src.Mode, "refid", r.RefID, "err", err)
			emit(refclock.Report{Errs: []error{err}})
		}
	}()
}

// refclockReader is the reading loop for src, on what openRefclocks opened
// when it did.
func (d *Daemon) refclockReader(src config.SourceConfig) func(context.Context, refclock.Emit) error {
	r := src.Refclock
	k := refclockKey(src)
	o := d.refOpen
	if o == nil {
		o = &refclockOpen{}
	}
	switch src.Mode {
	case config.SourcePPS:
		p := &refclock.PPS{Device: r.Device, Clear: r.Edge == config.EdgeClear}
		if f := o.pps[k]; f != nil {
			delete(o.pps, k)
			return func(ctx context.Context, e refclock.Emit) error { return p.Serve(ctx, f, e) }
		}
		return p.Run
	case config.SourceSOCK:
		if c := o.sock[k]; c != nil {
			delete(o.sock, k)
			return func(ctx context.Context, e refclock.Emit) error { return c.s.Serve(ctx, c.c, e) }
		}
		s := &refclock.Sock{Path: r.Path}
		return s.Run
	case config.SourceSHM:
		s := &refclock.SHM{Unit: r.Unit, Log: d.log}
		if seg := o.shm[k]; seg != nil {
			delete(o.shm, k)
			return func(ctx context.Context, e refclock.Emit) error { s.Serve(ctx, seg, e); return nil }
		}
		return s.Run
	}
	g := &refclock.GPSD{Address: src.Address, Device: r.Device, Log: d.log}
	return g.Run
}

// refclockReport hands a reader's report to the engine (owner loop).
func (d *Daemon) refclockReport(id system.ID, src config.SourceConfig, rec *erc.Receiver, rep refclock.Report) {
	if d.sources[id] == nil {
		return // removed meanwhile
	}
	name := src.Refclock.RefID
	if rep.Receiver != nil {
		*rec = *rep.Receiver
	} else if src.Mode != config.SourceGPSD {
		// gpsd's decoder counts what it ignores; the others are counted here.
		for _, err := range rep.Errs {
			rec.Ignored++
			rec.LastIgnored = err.Error()
		}
	}
	for _, err := range rep.Errs {
		// What a receiver (or whoever writes to its socket) sends is
		// not state: one line a minute whatever the reasons, the rest
		// at debug level.
		d.limiter.Log(context.Background(), d.log, time.Now(), slog.LevelWarn, "refclock:"+name,
			"reference clock report ignored", "source", name, "err", err)
	}
	now := d.now()
	for _, s := range rep.Samples {
		s.Local = d.mapRaw(s.Local)
		if err := d.eng.RefclockSample(id, now, s); err != nil {
			d.limiter.Log(context.Background(), d.log, time.Now(), slog.LevelWarn, "refclock:"+name,
				"reference clock sample not used", "source", name, "err", err)
		}
	}
	if rep.Receiver != nil || len(rep.Errs) > 0 {
		d.eng.SetReceiver(id, *rec)
	}
}

// errRefclockRuntime refuses reference clocks over D-Bus: they need files
// and privileges only the configuration can grant.
var errRefclockRuntime = errors.New("reference clocks (gpsd, pps, shm, sock) are configured in the file, not added at run time")
