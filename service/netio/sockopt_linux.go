package netio

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// TimestampMode says which kernel timestamps a socket got.
type TimestampMode uint8

const (
	// TimestampRX: the kernel stamps received datagrams (software).
	TimestampRX TimestampMode = 1 << iota
	// TimestampTX: the kernel accepted the request for software transmit
	// timestamps with IDs; they arrive as EventTxTimestamp from Read. The
	// kernel accepting the option does not prove the driver will stamp:
	// a caller should still expect Sends whose timestamp never comes.
	TimestampTX
	// TimestampRXLegacy: receive timestamps come from the SO_TIMESTAMPNS
	// fallback instead of SO_TIMESTAMPING. Only set together with TimestampRX.
	TimestampRXLegacy
)

// RX reports whether received datagrams carry a kernel timestamp.
func (m TimestampMode) RX() bool { return m&TimestampRX != 0 }

// TX reports whether transmit timestamps were enabled.
func (m TimestampMode) TX() bool { return m&TimestampTX != 0 }

func (m TimestampMode) String() string {
	var parts []string
	switch {
	case m&TimestampRX != 0 && m&TimestampRXLegacy != 0:
		parts = append(parts, "rx=kernel(SO_TIMESTAMPNS)")
	case m&TimestampRX != 0:
		parts = append(parts, "rx=kernel(SO_TIMESTAMPING)")
	default:
		parts = append(parts, "rx=user")
	}
	if m&TimestampTX != 0 {
		parts = append(parts, "tx=kernel(SO_TIMESTAMPING)")
	} else {
		parts = append(parts, "tx=user")
	}
	return strings.Join(parts, " ")
}

const (
	tsRX = unix.SOF_TIMESTAMPING_RX_SOFTWARE | unix.SOF_TIMESTAMPING_SOFTWARE
	tsTX = unix.SOF_TIMESTAMPING_TX_SOFTWARE | unix.SOF_TIMESTAMPING_OPT_ID
)

// enableTimestamps asks the kernel for the best software timestamps it gives,
// falling back step by step, and returns what it got. wantTX asks for
// transmit timestamps too.
func enableTimestamps(fd int, wantTX bool) TimestampMode {
	if wantTX {
		// OPT_TSONLY: the error queue gets only the timestamp, not a copy
		// of the packet.
		for _, flags := range []int{
			tsRX | tsTX | unix.SOF_TIMESTAMPING_OPT_TSONLY,
			tsRX | tsTX,
		} {
			if unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_TIMESTAMPING, flags) == nil {
				return TimestampRX | TimestampTX
			}
		}
	}
	if unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_TIMESTAMPING, tsRX) == nil {
		return TimestampRX
	}
	if unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_TIMESTAMPNS, 1) == nil {
		return TimestampRX | TimestampRXLegacy
	}
	return 0
}

// socketFamily returns AF_INET or AF_INET6 for a UDP socket, or an error for
// anything else.
func socketFamily(fd int) (int, error) {
	typ, err := unix.GetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_TYPE)
	if err != nil {
		return 0, fmt.Errorf("netio: SO_TYPE: %w", err)
	}
	if typ != unix.SOCK_DGRAM {
		return 0, fmt.Errorf("netio: socket type %d is not SOCK_DGRAM", typ)
	}
	dom, err := unix.GetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_DOMAIN)
	if err != nil {
		return 0, fmt.Errorf("netio: SO_DOMAIN: %w", err)
	}
	if dom != unix.AF_INET && dom != unix.AF_INET6 {
		return 0, fmt.Errorf("netio: socket family %d is not AF_INET or AF_INET6", dom)
	}
	return dom, nil
}

// control runs f on the socket's descriptor and returns f's error.
func control(rc syscall.RawConn, f func(fd int) error) error {
	var ferr error
	if err := rc.Control(func(fd uintptr) { ferr = f(int(fd)) }); err != nil {
		return err
	}
	return ferr
}

// aLongTimeAgo is a read deadline in the past: setting it makes a blocked
// read return at once.
var aLongTimeAgo = time.Unix(1, 0)

type readDeadliner interface {
	SetReadDeadline(time.Time) error
}

// readCanceler ties the cancellation of a context to a socket's read
// deadline. The reader calls arm before each blocking read; arm registers
// with context.AfterFunc only when the context's Done channel differs from
// the one already watched, so a reader that loops with one context allocates
// nothing per read.
//
// arm and release are called by the one goroutine that holds the reader's
// lock; the AfterFunc callback runs on its own goroutine and is fenced by mu
// and gen so that a stale callback never touches a newer read.
type readCanceler struct {
	conn readDeadliner

	done <-chan struct{} // reader-owned
	stop func() bool     // reader-owned

	mu  sync.Mutex
	gen uint64
}

func (r *readCanceler) arm(ctx context.Context) {
	done := ctx.Done()
	if done == r.done {
		return
	}
	r.release()
	r.done = done
	if done == nil {
		return
	}
	r.mu.Lock()
	gen := r.gen
	r.mu.Unlock()
	r.stop = context.AfterFunc(ctx, func() {
		r.mu.Lock()
		defer r.mu.Unlock()
		if r.gen == gen {
			_ = r.conn.SetReadDeadline(aLongTimeAgo)
		}
	})
}

// release forgets the watched context and clears any deadline its
// cancellation set.
func (r *readCanceler) release() {
	if r.stop != nil {
		r.stop()
		r.stop = nil
	}
	r.done = nil
	r.mu.Lock()
	r.gen++
	_ = r.conn.SetReadDeadline(time.Time{})
	r.mu.Unlock()
}

// readErr turns the error of an interrupted read into the one the caller
// should see: the context's error when the context ended it.
func readErr(ctx context.Context, err error) error {
	if cerr := ctx.Err(); cerr != nil && errors.Is(err, os.ErrDeadlineExceeded) {
		return cerr
	}
	return err
}
