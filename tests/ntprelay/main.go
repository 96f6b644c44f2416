// Command ntprelay is a userspace UDP relay for accuracy benchmarks (this
// kernel has no netem): it forwards NTP requests from its clients to one
// upstream server and the replies back, delaying each direction by a base
// delay plus exponentially distributed jitter (different delays each way
// make the path asymmetric), dropping a share of datagrams, and, as a
// falseticker, shifting the receive and transmit timestamps of the replies.
//
// Each client gets its own upstream socket, so the server sees one address
// per client. Its delays come from Go timers, which on a loaded machine
// fire up to a millisecond late, later after idleness (the requests) than
// right after a send (the replies): good for experiments by hand at
// millisecond scale, not for µs accuracy. The benchmarks (make
// bench-accuracy, make bench-relay) use the relay in
// tests/relay_bench_test.go, real-time threads that spin to the due time. It only relays between IPv4 loopback addresses and stops by
// itself after -duration (or on SIGINT/SIGTERM).
//
//	ntprelay -listen 127.0.0.1:12500 -upstream 127.0.0.11:123 -delay 5ms -jitter 1ms -back-delay 7ms -loss 0.1
package main

import (
	"context"
	"encoding/binary"
	"errors"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/netip"
	"os"
	"os/signal"
	"sync"
	"syscall"
	"time"
)

// config is one relay's behaviour.
type config struct {
	listen, upstream netip.AddrPort
	out, back        path
	loss             float64       // probability of dropping a datagram, each direction
	shift            time.Duration // added to the replies' receive and transmit timestamps
	seed             uint64
}

// path is one direction's delay: base + Exp(mean jitter).
type path struct {
	delay, jitter time.Duration
}

func (p path) sample(r *rand.Rand) time.Duration {
	d := p.delay
	if p.jitter > 0 {
		d += time.Duration(r.ExpFloat64() * float64(p.jitter))
	}
	return d
}

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func parse(args []string, stderr io.Writer) (config, time.Duration, error) {
	fs := flag.NewFlagSet("ntprelay", flag.ContinueOnError)
	fs.SetOutput(stderr)
	listen := fs.String("listen", "127.0.0.1:12500", "IPv4 loopback ADDRESS:PORT the clients send to")
	upstream := fs.String("upstream", "", "IPv4 loopback ADDRESS:PORT of the server")
	var c config
	fs.DurationVar(&c.out.delay, "delay", 0, "base delay client -> server")
	fs.DurationVar(&c.out.jitter, "jitter", 0, "mean of the exponential jitter added client -> server")
	backDelay := fs.Duration("back-delay", -1, "base delay server -> client (default: -delay)")
	backJitter := fs.Duration("back-jitter", -1, "mean jitter server -> client (default: -jitter)")
	fs.Float64Var(&c.loss, "loss", 0, "probability in [0, 1) of dropping a datagram, in each direction")
	fs.DurationVar(&c.shift, "shift", 0, "falseticker: add this to the replies' receive and transmit timestamps")
	fs.Uint64Var(&c.seed, "seed", 1, "random seed (runs are repeatable)")
	duration := fs.Duration("duration", time.Hour, "stop after this long (at most 24h)")
	if err := fs.Parse(args); err != nil {
		return c, 0, err
	}
	var err error
	if c.listen, err = loopback("-listen", *listen); err != nil {
		return c, 0, err
	}
	if c.upstream, err = loopback("-upstream", *upstream); err != nil {
		return c, 0, err
	}
	c.back = c.out
	if *backDelay >= 0 {
		c.back.delay = *backDelay
	}
	if *backJitter >= 0 {
		c.back.jitter = *backJitter
	}
	switch {
	case c.out.delay < 0 || c.out.jitter < 0:
		return c, 0, errors.New("-delay and -jitter must not be negative")
	case c.loss < 0 || c.loss >= 1:
		return c, 0, errors.New("-loss must be in [0, 1)")
	case *duration <= 0 || *duration > 24*time.Hour:
		return c, 0, errors.New("-duration must be in (0, 24h]")
	case fs.NArg() > 0:
		return c, 0, fmt.Errorf("unexpected arguments: %v", fs.Args())
	}
	return c, *duration, nil
}

func loopback(flagName, s string) (netip.AddrPort, error) {
	ap, err := netip.ParseAddrPort(s)
	if err != nil {
		return ap, fmt.Errorf("%s %q: %w", flagName, s, err)
	}
	if !ap.Addr().Is4() || !ap.Addr().IsLoopback() {
		return ap, fmt.Errorf("%s %v: want an IPv4 loopback address (127.0.0.0/8)", flagName, ap)
	}
	return ap, nil
}

func run(args []string, stdout, stderr io.Writer) int {
	c, d, err := parse(args, stderr)
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		fmt.Fprintln(stderr, "ntprelay:", err)
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	ctx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	r, err := newRelay(c)
	if err != nil {
		fmt.Fprintln(stderr, "ntprelay:", err)
		return 1
	}
	fmt.Fprintf(stdout, "ntprelay: %v -> %v, out %v+Exp(%v), back %v+Exp(%v), loss %.2f, shift %v\n",
		r.Addr(), c.upstream, c.out.delay, c.out.jitter, c.back.delay, c.back.jitter, c.loss, c.shift)
	st := r.Serve(ctx)
	fmt.Fprintf(stdout, "ntprelay: relayed %d requests and %d replies, dropped %d and %d\n", st.out, st.back, st.outLost, st.backLost)
	return 0
}

type stats struct{ out, back, outLost, backLost uint64 }

// relay is one running relay.
type relay struct {
	cfg  config
	conn *net.UDPConn

	mu      sync.Mutex
	rng     *rand.Rand
	clients map[netip.AddrPort]*net.UDPConn
	st      stats
	wg      sync.WaitGroup
}

func newRelay(c config) (*relay, error) {
	conn, err := net.ListenUDP("udp4", net.UDPAddrFromAddrPort(c.listen))
	if err != nil {
		return nil, err
	}
	return &relay{cfg: c, conn: conn, rng: rand.New(rand.NewPCG(c.seed, 0x6e7470)), clients: map[netip.AddrPort]*net.UDPConn{}}, nil
}

// Addr is the address the clients send to.
func (r *relay) Addr() netip.AddrPort { return r.conn.LocalAddr().(*net.UDPAddr).AddrPort() }

// decide draws, under the lock, whether a datagram is lost and its delay.
func (r *relay) decide(p path) (bool, time.Duration) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.cfg.loss > 0 && r.rng.Float64() < r.cfg.loss {
		return true, 0
	}
	return false, p.sample(r.rng)
}

// Serve relays until ctx ends, then closes every socket.
func (r *relay) Serve(ctx context.Context) stats {
	stop := context.AfterFunc(ctx, func() { r.conn.Close() })
	defer stop()
	buf := make([]byte, 2048)
	for {
		n, from, err := r.conn.ReadFromUDPAddrPort(buf)
		if err != nil {
			break
		}
		from = netip.AddrPortFrom(from.Addr().Unmap(), from.Port())
		up, err := r.upstreamFor(ctx, from)
		if err != nil {
			continue
		}
		lost, d := r.decide(r.cfg.out)
		r.mu.Lock()
		if lost {
			r.st.outLost++
		} else {
			r.st.out++
		}
		r.mu.Unlock()
		if lost {
			continue
		}
		pkt := append([]byte(nil), buf[:n]...)
		time.AfterFunc(d, func() { up.Write(pkt) })
	}
	r.mu.Lock()
	for _, c := range r.clients {
		c.Close()
	}
	r.mu.Unlock()
	r.wg.Wait()
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.st
}

// upstreamFor is client's own socket to the server, made at its first
// request, with a reader sending the replies back.
func (r *relay) upstreamFor(ctx context.Context, client netip.AddrPort) (*net.UDPConn, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if c := r.clients[client]; c != nil {
		return c, nil
	}
	if ctx.Err() != nil {
		return nil, ctx.Err()
	}
	c, err := net.DialUDP("udp4", nil, net.UDPAddrFromAddrPort(r.cfg.upstream))
	if err != nil {
		return nil, err
	}
	r.clients[client] = c
	r.wg.Add(1)
	go func() {
		defer r.wg.Done()
		buf := make([]byte, 2048)
		for {
			n, err := c.Read(buf)
			if err != nil {
				if errors.Is(err, net.ErrClosed) {
					return
				}
				continue // ICMP port unreachable and the like
			}
			pkt := append([]byte(nil), buf[:n]...)
			shiftTimestamps(pkt, r.cfg.shift)
			lost, d := r.decide(r.cfg.back)
			r.mu.Lock()
			if lost {
				r.st.backLost++
			} else {
				r.st.back++
			}
			r.mu.Unlock()
			if lost {
				continue
			}
			time.AfterFunc(d, func() { r.conn.WriteToUDPAddrPort(pkt, client) })
		}
	}()
	return c, nil
}

// shiftTimestamps adds shift to an NTP packet's receive (bytes 32-39) and
// transmit (40-47) timestamps; shorter packets are left alone. (An NTS
// reply's authenticator then fails: a falseticker must be a plain NTP
// server.)
func shiftTimestamps(pkt []byte, shift time.Duration) {
	if shift == 0 || len(pkt) < 48 {
		return
	}
	// 2^32 units per second.
	delta := int64(shift.Seconds() * (1 << 32))
	for _, off := range []int{32, 40} {
		v := binary.BigEndian.Uint64(pkt[off:])
		if v == 0 {
			continue
		}
		binary.BigEndian.PutUint64(pkt[off:], uint64(int64(v)+delta))
	}
}
