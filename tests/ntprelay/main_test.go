package main

import (
	"context"
	"encoding/binary"
	"io"
	"net"
	"net/netip"
	"testing"
	"time"
)

// fakeServer answers every datagram with a 48-byte reply whose origin is the
// request's transmit timestamp and whose receive and transmit timestamps
// are rx and tx.
func fakeServer(t *testing.T, rx, tx uint64) netip.AddrPort {
	t.Helper()
	c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	go func() {
		buf := make([]byte, 2048)
		for {
			n, from, err := c.ReadFromUDPAddrPort(buf)
			if err != nil {
				return
			}
			if n < 48 {
				continue
			}
			out := make([]byte, 48)
			out[0] = 0x24 // version 4, mode 4
			copy(out[24:32], buf[40:48])
			binary.BigEndian.PutUint64(out[32:], rx)
			binary.BigEndian.PutUint64(out[40:], tx)
			c.WriteToUDPAddrPort(out, from)
		}
	}()
	return c.LocalAddr().(*net.UDPAddr).AddrPort()
}

func startRelay(t *testing.T, c config) (*relay, chan stats) {
	t.Helper()
	c.listen = netip.MustParseAddrPort("127.0.0.1:0")
	r, err := newRelay(c)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan stats, 1)
	go func() { done <- r.Serve(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	return r, done
}

func TestRelayDelaysAndShifts(t *testing.T) {
	const rx, tx = uint64(0xe0000000_80000000), uint64(0xe0000000_90000000)
	srv := fakeServer(t, rx, tx)
	r, _ := startRelay(t, config{upstream: srv, out: path{delay: 20 * time.Millisecond}, back: path{delay: 30 * time.Millisecond}, shift: time.Second, seed: 1})
	cl, err := net.DialUDP("udp4", nil, net.UDPAddrFromAddrPort(r.Addr()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	req := make([]byte, 48)
	req[0] = 0x23
	binary.BigEndian.PutUint64(req[40:], 0x1234)
	start := time.Now()
	if _, err := cl.Write(req); err != nil {
		t.Fatal(err)
	}
	cl.SetReadDeadline(time.Now().Add(5 * time.Second))
	buf := make([]byte, 128)
	n, err := cl.Read(buf)
	if err != nil {
		t.Fatal(err)
	}
	// A lower bound (the delays the relay adds), not a speed.
	if rtt := time.Since(start); rtt < 50*time.Millisecond {
		t.Errorf("round trip %v through 20 ms out and 30 ms back", rtt)
	}
	if n != 48 {
		t.Fatalf("reply of %d bytes", n)
	}
	if got := binary.BigEndian.Uint64(buf[24:]); got != 0x1234 {
		t.Errorf("origin %#x, want the request's transmit 0x1234 (untouched)", got)
	}
	if got := binary.BigEndian.Uint64(buf[32:]); got != rx+1<<32 {
		t.Errorf("receive %#x, want %#x + 1 s", got, rx)
	}
	if got := binary.BigEndian.Uint64(buf[40:]); got != tx+1<<32 {
		t.Errorf("transmit %#x, want %#x + 1 s", got, tx)
	}
}

func TestRelayLoss(t *testing.T) {
	srv := fakeServer(t, 1, 2)
	r, done := startRelay(t, config{upstream: srv, loss: 0.5, seed: 7})
	cl, err := net.DialUDP("udp4", nil, net.UDPAddrFromAddrPort(r.Addr()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	const sent = 400
	req := make([]byte, 48)
	got := make(chan int)
	go func() {
		buf := make([]byte, 128)
		k := 0
		for {
			cl.SetReadDeadline(time.Now().Add(time.Second))
			if _, err := cl.Read(buf); err != nil {
				got <- k
				return
			}
			k++
		}
	}()
	for range sent {
		cl.Write(req)
		time.Sleep(200 * time.Microsecond)
	}
	k := <-got
	_ = done
	// Each direction drops half: about a quarter come back. The bounds are
	// many standard deviations wide (binomial, n = 400).
	if k < 50 || k > 150 {
		t.Errorf("%d of %d replies came back through 50%% loss each way, want about 100", k, sent)
	}
}

func TestParse(t *testing.T) {
	for _, args := range [][]string{
		{"-upstream", "192.0.2.1:123"},
		{"-upstream", "127.0.0.1:123", "-listen", "[::1]:1"},
		{"-upstream", "127.0.0.1:123", "-loss", "1"},
		{"-upstream", "127.0.0.1:123", "-delay", "-1ms"},
		{"-upstream", "127.0.0.1:123", "-duration", "0s"},
		{},
	} {
		if _, _, err := parse(args, io.Discard); err == nil {
			t.Errorf("parse(%q) accepted", args)
		}
	}
	c, _, err := parse([]string{"-upstream", "127.0.0.11:123", "-delay", "5ms", "-jitter", "1ms", "-back-delay", "7ms"}, io.Discard)
	if err != nil || c.out.delay != 5*time.Millisecond || c.back.delay != 7*time.Millisecond || c.back.jitter != time.Millisecond {
		t.Errorf("parse = %+v, %v", c, err)
	}
}

func FuzzShiftTimestamps(f *testing.F) {
	f.Add(make([]byte, 48), int64(time.Second))
	f.Add([]byte{1, 2, 3}, int64(-time.Millisecond))
	f.Fuzz(func(t *testing.T, pkt []byte, shift int64) {
		before := append([]byte(nil), pkt...)
		shiftTimestamps(pkt, time.Duration(shift))
		if len(pkt) != len(before) {
			t.Fatal("length changed")
		}
		for i := range pkt {
			if (i < 32 || i >= 48) && pkt[i] != before[i] {
				t.Fatalf("byte %d outside the receive and transmit timestamps changed", i)
			}
		}
	})
}
