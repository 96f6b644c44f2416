package refclock

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"time"

	erc "gnomon.dev/gnomon/engine/refclock"
)

// GPSD is a gpsd client: it connects to Address (host:port, or a unix
// socket path starting with /), asks for JSON reports with
// ?WATCH={"enable":true,"json":true,"pps":true}, and reconnects with
// backoff (MinBackoff doubling to MaxBackoff) when gpsd goes away.
type GPSD struct {
	Address string
	// Device selects one receiver; "" takes the first that reports time.
	Device string
	Log    *slog.Logger
	// MinBackoff and MaxBackoff bound the wait before reconnecting
	// (defaults 1 s and 30 s).
	MinBackoff, MaxBackoff time.Duration
	// MaxLine bounds a report (engine default when 0).
	MaxLine int
}

// Network is "unix" for a path, "tcp" otherwise.
func (g *GPSD) Network() string {
	if strings.HasPrefix(g.Address, "/") {
		return "unix"
	}
	return "tcp"
}

// Run connects and reads until ctx is done.
func (g *GPSD) Run(ctx context.Context, emit Emit) error {
	log := g.Log
	if log == nil {
		log = slog.Default()
	}
	b := backoff{min: g.MinBackoff, max: g.MaxBackoff}
	if b.min <= 0 {
		b.min = time.Second
	}
	if b.max <= 0 {
		b.max = 30 * time.Second
	}
	dec := &erc.GPSD{Device: g.Device, MaxLine: g.MaxLine}
	for ctx.Err() == nil {
		got, err := g.session(ctx, dec, emit)
		if ctx.Err() != nil {
			break
		}
		if got {
			b.reset()
		}
		wait := b.next()
		log.Warn("gpsd connection lost; reconnecting", "address", g.Address, "err", err, "retry_in", wait)
		st := dec.State
		st.Connected = false
		emit(Report{Receiver: &st})
		if !sleep(ctx, wait) {
			break
		}
	}
	return nil
}

// session is one connection; got says whether it carried a sample (then
// the backoff starts over).
func (g *GPSD) session(ctx context.Context, dec *erc.GPSD, emit Emit) (got bool, err error) {
	var d net.Dialer
	dctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	conn, err := d.DialContext(dctx, g.Network(), g.Address)
	cancel()
	if err != nil {
		return false, err
	}
	defer conn.Close()
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	defer stop()
	dec.Reset()
	if _, err := conn.Write(dec.Watch()); err != nil {
		return false, fmt.Errorf("send ?WATCH: %w", err)
	}
	st := dec.State
	st.Connected = true
	emit(Report{Receiver: &st})
	buf := make([]byte, 16<<10)
	for {
		n, err := conn.Read(buf)
		rx := time.Now().Round(0)
		if n > 0 {
			before := dec.State
			// A fresh slice each time: the report goes to the daemon's
			// loop, which reads it while this goroutine reads on.
			samples, errs := dec.Feed(buf[:n], rx, nil)
			r := Report{Samples: samples, Errs: errs}
			dec.State.Connected = true
			if dec.State != before || len(samples) > 0 {
				st := dec.State
				r.Receiver = &st
			}
			if len(samples) > 0 || len(errs) > 0 || r.Receiver != nil {
				emit(r)
			}
			got = got || len(samples) > 0
		}
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				err = ctx.Err()
			}
			return got, err
		}
	}
}
