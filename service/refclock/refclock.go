// Package refclock reads reference clocks: gpsd over TCP or its unix
// socket, ntpd's SHM segments, chrony's SOCK datagrams and RFC 2783 PPS
// devices. Each reader is a loop that decodes with engine/refclock and
// hands samples (local times as CLOCK_REALTIME readings) to an Emit
// callback; the daemon forwards them to the engine's owner loop.
package refclock

import (
	"context"
	"time"

	erc "gnomon.dev/gnomon/engine/refclock"
)

// Report is what a reader hands on: samples, the receiver's state when it
// changed (nil otherwise), and why reports were ignored.
type Report struct {
	Samples  []erc.Sample
	Receiver *erc.Receiver
	Errs     []error
}

// Emit receives a reader's reports, on the reader's goroutine. It must not
// block for long.
type Emit func(Report)

// Reader is one reference clock's reading loop.
type Reader interface {
	// Run reads until ctx is done. It returns only then, or when the
	// clock cannot be read at all (a bad device).
	Run(ctx context.Context, emit Emit) error
}

// backoff doubles a retry delay from min up to max.
type backoff struct {
	min, max, cur time.Duration
}

func (b *backoff) next() time.Duration {
	if b.cur < b.min {
		b.cur = b.min
	} else {
		b.cur = min(2*b.cur, b.max)
	}
	return b.cur
}

func (b *backoff) reset() { b.cur = 0 }

// sleep waits d or until ctx is done; false when ctx is.
func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}
