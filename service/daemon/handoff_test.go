package daemon

import (
	"context"
	"errors"
	"fmt"
	"net"
	"syscall"
	"testing"
	"time"
)

// serveOnce is ntsio.Server.Serve's contract in small: accept until ctx
// ends (then Close the listener and return), handing each connection's
// first byte to got.
func serveOnce(ctx context.Context, ln net.Listener, got chan<- string, tag string) {
	stop := context.AfterFunc(ctx, func() { ln.Close() })
	defer stop()
	for {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		got <- tag
		c.Close()
	}
}

// One listening socket passes from one server to the next without being
// closed: connections made after the hand-off reach the second server.
func TestHandoffListener(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	h, err := newHandoff(ln)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	got := make(chan string, 4)
	dial := func() {
		c, err := net.DialTimeout("tcp", ln.Addr().String(), time.Second)
		if err != nil {
			t.Fatal(err)
		}
		c.Close()
	}
	ctx1, cancel1 := context.WithCancel(context.Background())
	h.reset()
	done1 := make(chan struct{})
	go func() { serveOnce(ctx1, h, got, "first"); close(done1) }()
	dial()
	if s := <-got; s != "first" {
		t.Fatalf("got %q", s)
	}
	cancel1()
	h.waitStopped()
	<-done1
	h.reset()
	ctx2, cancel2 := context.WithCancel(context.Background())
	defer cancel2()
	go serveOnce(ctx2, h, got, "second")
	dial()
	select {
	case s := <-got:
		if s != "second" {
			t.Fatalf("after the hand-off %q accepted", s)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("nothing accepted after the hand-off")
	}
}

func TestErrText(t *testing.T) {
	for _, tc := range []struct {
		err  error
		want string
	}{
		{fmt.Errorf("read udp 127.0.0.1:1->127.0.0.1:2: %w", &net.OpError{Op: "read", Err: syscall.ECONNREFUSED}), "connection refused"},
		{&net.DNSError{Err: "no such host", Name: "x.test"}, "resolving: no such host"},
		{errors.New("other"), "other"},
	} {
		if got := errText(tc.err); got != tc.want {
			t.Errorf("errText(%v) = %q, want %q", tc.err, got, tc.want)
		}
	}
}
