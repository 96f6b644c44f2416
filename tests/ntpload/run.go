package main

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"io"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"
)

// runConfig is one load run.
type runConfig struct {
	target   netip.AddrPort
	clients  int
	rate     float64 // requests/s over all clients; 0 = as fast as possible
	duration time.Duration
	drain    time.Duration // how long to wait for replies after the last send
	tick     time.Duration // longest sleep of a sender between batches
	base     netip.Addr    // first client address
}

// result is what one run measured.
type result struct {
	rate       float64 // asked for
	sent       uint64
	sendErrs   uint64
	elapsed    time.Duration // sending time
	stats      stats
	hist       histogram
	clientDrop uint64 // datagrams the kernel dropped at our sockets (/proc/net/udp)
	serverDrop uint64 // ... at the sockets listening on the target port
	dropsKnown bool
	lastErr    error
}

func (r *result) loss() float64 {
	if r.sent == 0 {
		return 0
	}
	return 1 - float64(r.stats.answered)/float64(r.sent)
}

func (r *result) sendRate() float64   { return float64(r.sent) / r.elapsed.Seconds() }
func (r *result) answerRate() float64 { return float64(r.stats.answered) / r.elapsed.Seconds() }

// generatorLimited: the generator could not send at the rate asked for, so
// the run says nothing about the server beyond the rate actually sent.
func (r *result) generatorLimited() bool {
	return r.rate > 0 && r.sendRate() < 0.97*r.rate
}

// runLoad runs one load test and returns its result. It stops by itself
// after duration + drain, or earlier when ctx ends.
func runLoad(ctx context.Context, cfg runConfig) (*result, error) {
	if cfg.clients < 1 {
		return nil, fmt.Errorf("need at least one client")
	}
	if !cfg.target.Addr().Is4() || !cfg.target.Addr().IsLoopback() {
		return nil, fmt.Errorf("target %v is not an IPv4 loopback address: this generator only sends on 127.0.0.0/8", cfg.target)
	}
	clients := make([]*client, 0, cfg.clients)
	defer func() {
		for _, c := range clients {
			c.conn.Close()
		}
	}()
	for i := range cfg.clients {
		src, err := sourceAddr(cfg.base, i)
		if err != nil {
			return nil, err
		}
		var seed [4]byte
		rand.Read(seed[:])
		c, err := newClient(src, cfg.target, binary.LittleEndian.Uint32(seed[:]))
		if err != nil {
			return nil, fmt.Errorf("client %d on %v: %w", i, src, err)
		}
		clients = append(clients, c)
	}
	dropsBefore, _ := readUDPDrops(clients, cfg.target.Port())

	start := time.Now()
	stop := start.Add(cfg.duration)
	perClient := cfg.rate / float64(cfg.clients)
	var recv, send sync.WaitGroup
	for _, c := range clients {
		recv.Add(1)
		go func() { defer recv.Done(); c.recvLoop(start) }()
		send.Add(1)
		go func() { defer send.Done(); c.sendLoop(ctx, start, stop, perClient, cfg.tick) }()
	}
	send.Wait()
	elapsed := time.Since(start)

	res := &result{rate: cfg.rate, elapsed: elapsed}
	for _, c := range clients {
		res.sent += c.sent.Load()
	}
	// Drain: wait until every request is answered or the drain time is up.
	deadline := time.Now().Add(cfg.drain)
	for time.Now().Before(deadline) && ctx.Err() == nil {
		var answered uint64
		for _, c := range clients {
			answered += c.answered.Load()
		}
		if answered >= res.sent {
			break
		}
		time.Sleep(min(10*time.Millisecond, time.Until(deadline)))
	}
	dropsAfter, derr := readUDPDrops(clients, cfg.target.Port())
	for _, c := range clients {
		c.conn.Close()
	}
	recv.Wait()
	for _, c := range clients {
		res.stats.add(&c.tr.stats)
		res.hist.merge(&c.tr.hist)
		res.sendErrs += c.sendErrs.Load()
		if e, ok := c.lastErr.Load().(error); ok && res.lastErr == nil {
			res.lastErr = e
		}
	}
	clients = nil
	if derr == nil {
		res.dropsKnown = true
		res.clientDrop = dropsAfter.client - dropsBefore.client
		res.serverDrop = dropsAfter.server - dropsBefore.server
	}
	return res, nil
}

type udpDrops struct{ client, server uint64 }

// readUDPDrops sums the "drops" column of /proc/net/udp for our client
// sockets and for the sockets bound to the target port (the server's).
func readUDPDrops(clients []*client, port uint16) (udpDrops, error) {
	f, err := os.Open("/proc/net/udp")
	if err != nil {
		return udpDrops{}, err
	}
	defer f.Close()
	ours := make(map[netip.AddrPort]bool, len(clients))
	for _, c := range clients {
		ours[c.local] = true
	}
	return parseUDPDrops(f, ours, port)
}

func parseUDPDrops(r io.Reader, ours map[netip.AddrPort]bool, port uint16) (udpDrops, error) {
	var d udpDrops
	sc := bufio.NewScanner(r)
	first := true
	for sc.Scan() {
		if first {
			first = false
			continue
		}
		f := strings.Fields(sc.Text())
		if len(f) < 13 {
			continue
		}
		local, ok := parseProcAddr(f[1])
		if !ok {
			continue
		}
		drops, err := strconv.ParseUint(f[len(f)-1], 10, 64)
		if err != nil {
			continue
		}
		switch {
		case ours[local]:
			d.client += drops
		case local.Port() == port:
			d.server += drops
		}
	}
	return d, sc.Err()
}

// parseProcAddr reads /proc/net/udp's "0100007F:1F90": the IPv4 address as
// a host-order (little-endian here) hex word, the port in hex.
func parseProcAddr(s string) (netip.AddrPort, bool) {
	a, p, ok := strings.Cut(s, ":")
	if !ok || len(a) != 8 {
		return netip.AddrPort{}, false
	}
	b, err := hex.DecodeString(a)
	if err != nil {
		return netip.AddrPort{}, false
	}
	port, err := strconv.ParseUint(p, 16, 16)
	if err != nil {
		return netip.AddrPort{}, false
	}
	ip := netip.AddrFrom4([4]byte{b[3], b[2], b[1], b[0]})
	return netip.AddrPortFrom(ip, uint16(port)), true
}

// report writes one human line about r.
func report(w io.Writer, label string, r *result) {
	rate := "max"
	if r.rate > 0 {
		rate = fmt.Sprintf("%.0f/s", r.rate)
	}
	fmt.Fprintf(w, "%s rate=%s sent=%d answered=%d loss=%.3f%% answers/s=%.0f p50=%s p99=%s",
		label, rate, r.sent, r.stats.answered, 100*r.loss(), r.answerRate(),
		fmtDur(r.hist.quantile(0.5)), fmtDur(r.hist.quantile(0.99)))
	if r.stats.kod > 0 {
		fmt.Fprintf(w, " kod=%d", r.stats.kod)
	}
	if n := r.stats.unsync + r.stats.invalid; n > 0 {
		fmt.Fprintf(w, " not-valid=%d(unsync=%d)", n, r.stats.unsync)
	}
	if n := r.stats.unmatched + r.stats.malformed; n > 0 {
		fmt.Fprintf(w, " unmatched=%d malformed=%d", r.stats.unmatched, r.stats.malformed)
	}
	if r.dropsKnown {
		fmt.Fprintf(w, " drops(server=%d client=%d)", r.serverDrop, r.clientDrop)
	}
	if r.sendErrs > 0 {
		fmt.Fprintf(w, " send-errors=%d", r.sendErrs)
	}
	if r.generatorLimited() {
		fmt.Fprintf(w, " GENERATOR-LIMITED(sent %.0f/s)", r.sendRate())
	}
	fmt.Fprintln(w)
}

func fmtDur(d time.Duration) string {
	switch {
	case d < time.Microsecond:
		return fmt.Sprintf("%dns", d)
	case d < time.Millisecond:
		return fmt.Sprintf("%.1fµs", float64(d)/1e3)
	default:
		return fmt.Sprintf("%.2fms", float64(d)/1e6)
	}
}

// waitValid sends one request every 100 ms from base until the server at
// target gives a reply that passes ntp.CheckReply (it is up and
// synchronized), or fails after timeout.
func waitValid(ctx context.Context, target netip.AddrPort, base netip.Addr, timeout time.Duration) error {
	c, err := newClient(base, target, 1)
	if err != nil {
		return err
	}
	defer c.conn.Close()
	deadline := time.Now().Add(timeout)
	buf := make([]byte, pktLen)
	var last string
	for time.Now().Before(deadline) && ctx.Err() == nil {
		req := make([]byte, pktLen)
		n := c.tr.request(req, time.Now(), 0)
		before := c.tr.stats
		if _, err := c.conn.Write(req[:n]); err != nil {
			last = err.Error()
		} else {
			c.conn.SetReadDeadline(time.Now().Add(100 * time.Millisecond))
			if m, err := c.conn.Read(buf); err == nil {
				c.tr.reply(buf[:m], 0)
				switch {
				case c.tr.valid > before.valid:
					return nil
				case c.tr.unsync > before.unsync:
					last = "answers, but unsynchronized"
				default:
					last = "answers that fail the client checks"
				}
				time.Sleep(100 * time.Millisecond)
			} else {
				last = err.Error()
			}
		}
	}
	return fmt.Errorf("%v gave no valid answer within %v (last: %s)", target, timeout, last)
}
