package daemon

import (
	"context"
	"net"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"gnomon.dev/gnomon/service/netio"
)

// waitFor waits on the owner's set until an event with token tok comes
// (other events are skipped), within a generous bound: a hang, not a speed
// limit.
func waitFor(t *testing.T, p *ownerPoll, tok int32) unix.EpollEvent {
	t.Helper()
	done := make(chan unix.EpollEvent, 1)
	errc := make(chan error, 1)
	go func() {
		for {
			if err := p.wait(); err != nil {
				errc <- err
				return
			}
			for _, e := range p.evs[:p.n] {
				if e.Fd == tok {
					done <- e
					return
				}
				if e.Fd == tokTimer {
					p.wake.expired()
				}
				if e.Fd == tokBell {
					p.answer()
				}
			}
		}
	}()
	select {
	case e := <-done:
		return e
	case err := <-errc:
		t.Fatalf("wait: %v", err)
	case <-time.After(30 * time.Second):
		t.Fatalf("no event for token %d", tok)
	}
	return unix.EpollEvent{}
}

// The owner's epoll set wakes it for its timer, for events other
// goroutines send, and for a source socket's transmit timestamp and reply;
// a removed socket is reported no more.
func TestOwnerPoll(t *testing.T) {
	p := newOwnerPoll(quietLogger())
	if p == nil {
		t.Skip("no epoll set here: the owner falls back to channels")
	}
	defer p.close()

	// The timer.
	p.wake.Reset(time.Millisecond, true)
	waitFor(t, p, tokTimer)
	if !p.wake.expired() {
		t.Fatal("woken for the timer, but the timerfd had not expired")
	}
	if p.wake.expired() {
		t.Fatal("one expiry read twice")
	}

	// Events from d.events, through the forwarding goroutine.
	ctx, cancel := context.WithCancel(t.Context())
	events := make(chan event, 4)
	fwd := make(chan struct{})
	go func() {
		defer close(fwd)
		p.forward(ctx, events, nil, func(string) error { return nil })
	}()
	events <- event{kind: evReadErr}
	events <- event{kind: evCall, call: func() {}}
	var got []event
	for len(got) < 2 {
		waitFor(t, p, tokBell)
		got = append(got, p.answer()...)
	}
	if len(got) != 2 || got[0].kind != evReadErr || got[1].kind != evCall {
		t.Fatalf("queued events %+v, want the read error then the call, in order", got)
	}
	cancel()
	<-fwd

	// A source socket: the transmit timestamp (EPOLLERR) and the reply
	// (EPOLLIN), read without a goroutine.
	srv, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	conn, err := netio.Dial(t.Context(), "udp", srv.LocalAddr().(*net.UDPAddr).AddrPort())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	ls := &liveSource{conn: conn}
	if err := p.add(7, ls); err != nil {
		t.Fatal(err)
	}
	if ls.token < tokFirstSource || p.socks[ls.token] != 7 {
		t.Fatalf("token %d, socks %v", ls.token, p.socks)
	}
	if _, _, err := conn.Send(make([]byte, 48)); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 64)
	if conn.Timestamping().TX() {
		e := waitFor(t, p, ls.token)
		if e.Events&unix.EPOLLERR == 0 {
			t.Fatalf("events %#x after a send: want EPOLLERR (the transmit timestamp)", e.Events)
		}
		ev, ok, err := conn.TryRead(buf, true)
		if err != nil || !ok || ev.Kind != netio.EventTxTimestamp {
			t.Fatalf("TryRead: %+v %v %v, want the transmit timestamp", ev, ok, err)
		}
	}
	_, from, err := srv.ReadFromUDPAddrPort(buf)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := srv.WriteToUDPAddrPort([]byte("reply"), from); err != nil {
		t.Fatal(err)
	}
	e := waitFor(t, p, ls.token)
	if e.Events&unix.EPOLLIN == 0 {
		t.Fatalf("events %#x after the reply: want EPOLLIN", e.Events)
	}
	ev, ok, err := conn.TryRead(buf, false)
	if err != nil || !ok || ev.Kind != netio.EventPacket || string(buf[:ev.N]) != "reply" {
		t.Fatalf("TryRead: %+v %v %v, want the reply", ev, ok, err)
	}
	if _, ok, err := conn.TryRead(buf, true); ok || err != nil {
		t.Fatalf("TryRead of an empty socket: %v %v, want nothing", ok, err)
	}

	// Removed: a datagram for it no longer wakes the owner.
	tok := ls.token
	p.remove(ls)
	if ls.token != 0 || p.socks[tok] != 0 {
		t.Fatalf("after remove: token %d, socks %v", ls.token, p.socks)
	}
	if _, err := srv.WriteToUDPAddrPort([]byte("late"), from); err != nil {
		t.Fatal(err)
	}
	p.wake.Reset(50*time.Millisecond, true)
	waitFor(t, p, tokTimer)
	for _, e := range p.evs[:p.n] {
		if e.Fd == tok {
			t.Fatal("a removed socket's datagram woke the owner")
		}
	}
}

// A gnomond that polls its sources itself keeps no reader goroutine per
// source, and falls back to them when it has no epoll set.
func TestOwnerPollSourceHasNoReader(t *testing.T) {
	d := observingDaemon(t)
	p := newOwnerPoll(quietLogger())
	if p == nil {
		t.Skip("no epoll set here")
	}
	defer p.close()
	d.poll = p
	srv, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	sp := &spec{}
	if err := d.addSource(t.Context(), sp, srv.LocalAddr().(*net.UDPAddr).AddrPort()); err != nil {
		t.Fatal(err)
	}
	defer d.closeSources()
	for _, ls := range d.sources {
		if ls.token == 0 {
			t.Fatal("a source of a polling owner got a reader goroutine")
		}
	}
	d.closeSources()
	if len(p.socks) != 0 {
		t.Fatalf("sockets left in the set after the sources were dropped: %v", p.socks)
	}
	d.wg.Wait() // no reader goroutine to wait for
}
