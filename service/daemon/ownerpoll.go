package daemon

import (
	"context"
	"errors"
	"log/slog"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"

	"gnomon.dev/gnomon/engine/system"
	"gnomon.dev/gnomon/service/netio"
)

// The owner waits for a poll's events itself. An idle client's poll used
// to take six goroutine wake-ups: the wake timer's reader, the owner (to
// send), the source's reader (the transmit timestamp), the owner again,
// the reader (the reply) and the owner (to use it), each a pass through
// the Go scheduler (findRunnable, netpoll: a fifth of the client's CPU
// time) and, for the readers, a channel send. With ownerPoll the owner
// keeps an epoll set of its own with the wake timer's timerfd, every NTP
// source's socket and a doorbell (an eventfd), and parks on that set
// through the Go netpoller: three wake-ups a poll (the timer, the
// timestamp, the reply), all of them the owner's, and no channel.
// Everything else that used to send the owner events (resolvers, key
// exchanges, D-Bus calls, reference clocks, PTP, the watchdog) still
// sends on d.events; one forwarding goroutine moves those to a queue and
// rings the doorbell. Where the epoll set cannot be had, the owner selects
// on channels and each source has its reader goroutine, as before.

// Tokens of the epoll set (EpollEvent.Fd): the timer, the doorbell, then
// one per source socket.
const (
	tokTimer int32 = iota
	tokBell
	tokFirstSource
)

// pollReadsPerTurn bounds how many datagrams and timestamps the owner
// takes from one socket in one turn (a flood must not starve the rest).
const pollReadsPerTurn = 16

// mutedFor is how long a source socket that returned an error other than
// a consumed ICMP report stays out of the set (the reader goroutine
// paused as long).
const mutedFor = 100 * time.Millisecond

type ownerPoll struct {
	log  *slog.Logger
	epfd int
	file *os.File // epfd, so the netpoller wakes the owner
	rc   syscall.RawConn
	bell int // eventfd
	rung atomic.Bool
	wake *wakeTimer
	// fired: the wake timer's Go fallback fired (the timerfd could not be
	// armed); the doorbell rang for it.
	fired atomic.Bool

	evs    [32]unix.EpollEvent
	n      int
	err    error
	waitFn func(uintptr) bool

	mu     sync.Mutex
	queue  []event // from d.events, moved by forward
	spare  []event
	closed bool // the doorbell's descriptor is gone: ring no more

	// owner goroutine only
	next  int32
	socks map[int32]system.ID
	buf   []byte
}

// newOwnerPoll makes the epoll set with the wake timer and the doorbell in
// it; nil when any part cannot be had (the caller falls back).
func newOwnerPoll(log *slog.Logger) *ownerPoll {
	p := &ownerPoll{log: log, epfd: -1, bell: -1, next: tokFirstSource, socks: map[int32]system.ID{}, buf: make([]byte, 2048)}
	fail := func(what string, err error) *ownerPoll {
		log.Debug("the owner loop cannot poll its sockets itself: a reader goroutine per source", "step", what, "err", err)
		p.close()
		return nil
	}
	wake, ok := newPolledWakeTimer(log, func() {
		p.fired.Store(true)
		p.ring()
	})
	if !ok {
		return fail("timerfd", nil)
	}
	p.wake = wake
	var err error
	if p.epfd, err = unix.EpollCreate1(unix.EPOLL_CLOEXEC); err != nil {
		p.epfd = -1
		return fail("epoll_create1", err)
	}
	if p.bell, err = unix.Eventfd(0, unix.EFD_NONBLOCK|unix.EFD_CLOEXEC); err != nil {
		p.bell = -1
		return fail("eventfd", err)
	}
	for _, x := range []struct {
		fd  int
		tok int32
	}{{wake.fd, tokTimer}, {p.bell, tokBell}} {
		if err := unix.EpollCtl(p.epfd, unix.EPOLL_CTL_ADD, x.fd, &unix.EpollEvent{Events: unix.EPOLLIN, Fd: x.tok}); err != nil {
			return fail("epoll_ctl", err)
		}
	}
	// Non-blocking, so that os.NewFile hands it to the netpoller (an epoll
	// set is readable while any of its members is ready).
	if err := unix.SetNonblock(p.epfd, true); err != nil {
		return fail("nonblock", err)
	}
	p.file = os.NewFile(uintptr(p.epfd), "gnomond-owner-epoll")
	if p.rc, err = p.file.SyscallConn(); err != nil {
		return fail("rawconn", err)
	}
	p.waitFn = p.doWait
	return p
}

// close releases everything; the sources' sockets are the daemon's.
func (p *ownerPoll) close() {
	if p.wake != nil {
		p.wake.Stop()
	}
	switch {
	case p.file != nil:
		_ = p.file.Close()
	case p.epfd >= 0:
		_ = unix.Close(p.epfd)
	}
	p.file, p.epfd = nil, -1
	p.mu.Lock()
	p.closed = true
	if p.bell >= 0 {
		_ = unix.Close(p.bell)
		p.bell = -1
	}
	p.mu.Unlock()
}

// wait parks the owner until the set has events, then leaves them in
// p.evs[:p.n].
func (p *ownerPoll) wait() error {
	p.n, p.err = 0, nil
	if err := p.rc.Read(p.waitFn); err != nil {
		return err
	}
	return p.err
}

func (p *ownerPoll) doWait(fd uintptr) bool {
	for {
		// Raw, with a zero timeout: it never blocks (the netpoller does
		// the waiting), and a blocking-syscall entry would wake sysmon.
		r, _, e := unix.RawSyscall6(unix.SYS_EPOLL_PWAIT, fd, uintptr(unsafe.Pointer(&p.evs[0])), uintptr(len(p.evs)), 0, 0, 0)
		switch {
		case e == unix.EINTR:
			continue
		case e != 0:
			p.err = os.NewSyscallError("epoll_pwait", e)
			return true
		case r == 0:
			return false
		}
		p.n = int(r)
		return true
	}
}

// ring wakes the owner (once until it answers). Never after close: a
// timer's late call must not write into a descriptor number reused since.
func (p *ownerPoll) ring() {
	if !p.rung.CompareAndSwap(false, true) {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return
	}
	one := uint64(1)
	_, _, _ = unix.RawSyscall(unix.SYS_WRITE, uintptr(p.bell), uintptr(unsafe.Pointer(&one)), 8)
}

// answer resets the doorbell and returns the queued events (valid until
// the next answer). The eventfd is read before rung is cleared: a ring in
// between either finds rung still set (and its event is taken below) or
// writes again.
func (p *ownerPoll) answer() []event {
	var b [8]byte
	_, _, _ = unix.RawSyscall(unix.SYS_READ, uintptr(p.bell), uintptr(unsafe.Pointer(&b[0])), 8)
	p.rung.Store(false)
	p.mu.Lock()
	q := p.queue
	clear(p.spare)
	p.queue = p.spare[:0]
	p.spare = q
	p.mu.Unlock()
	return q
}

func (p *ownerPoll) push(ev event) {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return
	}
	p.queue = append(p.queue, ev)
	p.mu.Unlock()
	p.ring()
}

// forward moves what other goroutines send on events to the owner's queue,
// and turns the watchdog's ticks into calls on the owner (the watchdog
// must see the owner loop alive, not this goroutine). It rings once more
// when ctx ends.
func (p *ownerPoll) forward(ctx context.Context, events <-chan event, watchdog <-chan time.Time, notify func(string) error) {
	ping := event{kind: evCall, call: func() { _ = notify("WATCHDOG=1") }}
	for {
		select {
		case <-ctx.Done():
			p.ring()
			return
		case ev := <-events:
			p.push(ev)
		case <-watchdog:
			p.push(ping)
		}
	}
}

// add puts a source's socket in the set; its token goes to ls.token.
func (p *ownerPoll) add(id system.ID, ls *liveSource) error {
	tok := p.next
	err := ls.conn.Control(func(fd int) error {
		return unix.EpollCtl(p.epfd, unix.EPOLL_CTL_ADD, fd, &unix.EpollEvent{Events: unix.EPOLLIN, Fd: tok})
	})
	if err != nil {
		return err
	}
	p.next++
	p.socks[tok] = id
	ls.token = tok
	return nil
}

// remove takes a source's socket out of the set (before it is closed).
func (p *ownerPoll) remove(ls *liveSource) {
	if ls.token == 0 {
		return
	}
	delete(p.socks, ls.token)
	ls.token = 0
	p.unwatch(ls)
}

func (p *ownerPoll) unwatch(ls *liveSource) {
	_ = ls.conn.Control(func(fd int) error {
		return unix.EpollCtl(p.epfd, unix.EPOLL_CTL_DEL, fd, nil)
	})
}

// readPolled takes what the socket of token tok has queued and hands it to
// the engine, as the reader goroutine's events were; it reports whether
// all of it was transmit timestamps (Run's quiet). The set is
// level-triggered: what is left behind (a second datagram) is reported by
// the next wait at once, so a turn reads the error queue only when
// EPOLLERR said so, and at most one datagram: two system calls for a
// poll's timestamp and reply, where the reader goroutine made five.
func (d *Daemon) readPolled(ctx context.Context, tok int32, events uint32) (quiet bool) {
	p := d.poll
	id, ok := p.socks[tok]
	ls := d.sources[id]
	if !ok || ls == nil || ls.token != tok {
		return true // removed earlier in this turn
	}
	quiet = true
	errQueue := events&unix.EPOLLERR != 0
	for range pollReadsPerTurn {
		ev, got, err := ls.conn.TryRead(p.buf, errQueue)
		var out event
		switch {
		case err != nil:
			out = event{kind: evReadErr, src: id, err: err}
		case !got:
			return quiet
		case ev.Kind == netio.EventPacket:
			// p.buf is reused: the engine keeps nothing of a datagram
			// after Receive (the NTS cookies in it are cloned).
			out = event{kind: evPacket, src: id, data: p.buf[:ev.N], at: ev.Time.Round(0), kern: ev.Kernel}
		case ev.Kind == netio.EventTxTimestamp:
			out = event{kind: evTxStamp, src: id, at: ev.Time.Round(0), txID: ev.ID}
		default:
			continue
		}
		quiet = d.handle(ctx, out) && quiet
		switch {
		case err == nil && out.kind == evPacket:
			return quiet // one datagram a turn; more are reported again
		case err == nil:
			// A transmit timestamp: one per request. The datagram queue
			// next, if it was ready; else the reply's own event will come.
			errQueue = false
			if events&unix.EPOLLIN == 0 {
				return quiet
			}
			continue
		}
		if err != nil {
			if !errors.Is(err, syscall.ECONNREFUSED) && !errors.Is(err, syscall.EHOSTUNREACH) &&
				!errors.Is(err, syscall.ENETUNREACH) {
				// Not a report the read consumed: keep the socket out of
				// the set for a while rather than spin on it.
				d.mute(ls, tok)
			}
			return quiet
		}
	}
	return quiet
}

// mute takes a source's socket out of the set for mutedFor.
func (d *Daemon) mute(ls *liveSource, tok int32) {
	p := d.poll
	p.unwatch(ls)
	time.AfterFunc(mutedFor, func() {
		p.push(event{kind: evCall, call: func() {
			if d.poll != p || ls.token != tok {
				return // dropped meanwhile (tokens are never reused)
			}
			_ = ls.conn.Control(func(fd int) error {
				return unix.EpollCtl(p.epfd, unix.EPOLL_CTL_ADD, fd, &unix.EpollEvent{Events: unix.EPOLLIN, Fd: tok})
			})
		}})
	})
}
