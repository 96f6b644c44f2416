// Command ntpload is a load generator for NTP servers on loopback.
//
// It runs -clients simulated clients, each a goroutine pair with its own UDP
// socket bound to its own loopback address (127.0.0.2, 127.0.0.3, ...: a
// server keeping per-client state, such as a rate limiter, sees that many
// clients). Together they send valid NTPv4 client requests, built with
// gnomon.dev/gnomon/engine/ntp, at -rate requests/s (open loop: the
// schedule does not wait for answers; 0 sends as fast as it can) for
// -duration, then wait up to -drain for the last replies. Replies are
// matched to requests by their origin timestamp and checked like a client
// checks them. It reports requests sent, answered, loss, answers/s and the
// 50th and 99th percentile of the request-to-reply latency, and where
// datagrams were dropped (the server's or the clients' sockets, from
// /proc/net/udp).
//
// With -sweep it searches for the highest rate the server answers with less
// than -max-loss loss: it raises the rate by -step from -rate until the loss
// reaches -max-loss, bisects -refine times, and ends with a RESULT line.
//
// It only ever sends to 127.0.0.0/8 and stops by itself.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/netip"
	"os"
	"os/signal"
	"syscall"
	"time"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

type options struct {
	runConfig
	sweep   bool
	maxLoss float64 // fraction
	step    float64
	refine  int
	maxRate float64
	maxRuns int
	pause   time.Duration
	label   string
	wait    time.Duration
}

func parseFlags(args []string, stderr io.Writer) (*options, error) {
	o := &options{}
	fs := flag.NewFlagSet("ntpload", flag.ContinueOnError)
	fs.SetOutput(stderr)
	target := fs.String("target", "127.0.0.1:123", "server address (IPv4 loopback only)")
	base := fs.String("base", "127.0.0.2", "address of the first client; the others count up from it")
	fs.IntVar(&o.clients, "clients", 16, "number of clients (sockets, source addresses, sender goroutines)")
	fs.Float64Var(&o.rate, "rate", 0, "requests per second over all clients; 0 = as fast as possible (with -sweep: the first rate, default 10000)")
	fs.DurationVar(&o.duration, "duration", 5*time.Second, "how long to send (each run)")
	fs.DurationVar(&o.drain, "drain", time.Second, "how long to wait for replies after the last request")
	fs.DurationVar(&o.tick, "tick", time.Millisecond, "longest pause of a sender between batches")
	fs.BoolVar(&o.sweep, "sweep", false, "search for the highest rate answered with less than -max-loss loss")
	lossPct := fs.Float64("max-loss", 1, "with -sweep: acceptable loss, percent")
	fs.Float64Var(&o.step, "step", 1.5, "with -sweep: factor between rates while searching upwards")
	fs.IntVar(&o.refine, "refine", 3, "with -sweep: bisection steps after the first failing rate")
	fs.Float64Var(&o.maxRate, "max-rate", 2e6, "with -sweep: never ask for more than this many requests/s")
	fs.IntVar(&o.maxRuns, "max-runs", 20, "with -sweep: at most this many runs")
	fs.DurationVar(&o.pause, "pause", time.Second, "with -sweep: quiet time between runs")
	fs.StringVar(&o.label, "label", "ntpload", "name printed at the start of every line")
	fs.DurationVar(&o.wait, "wait", 0, "first wait up to this long for the server to give a valid (synchronized) answer")
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected arguments: %v", fs.Args())
	}
	var err error
	if o.target, err = netip.ParseAddrPort(*target); err != nil {
		return nil, fmt.Errorf("-target: %w", err)
	}
	if o.base, err = netip.ParseAddr(*base); err != nil || !o.base.Is4() || !o.base.IsLoopback() {
		return nil, fmt.Errorf("-base %q: want an IPv4 loopback address", *base)
	}
	if !o.target.Addr().Is4() || !o.target.Addr().IsLoopback() {
		return nil, fmt.Errorf("-target %v: want an IPv4 loopback address (127.0.0.0/8)", o.target)
	}
	if _, err := sourceAddr(o.base, o.clients-1); err != nil {
		return nil, fmt.Errorf("-clients %d from -base %v: %w", o.clients, o.base, err)
	}
	switch {
	case o.clients < 1:
		return nil, errors.New("-clients must be at least 1")
	case o.rate < 0:
		return nil, errors.New("-rate must not be negative")
	case o.duration <= 0 || o.duration > time.Hour:
		return nil, errors.New("-duration must be in (0, 1h]")
	case o.drain < 0 || o.drain > time.Minute:
		return nil, errors.New("-drain must be in [0, 1m]")
	case o.tick <= 0:
		return nil, errors.New("-tick must be positive")
	case *lossPct <= 0 || *lossPct >= 100:
		return nil, errors.New("-max-loss must be in (0, 100)")
	case o.step <= 1:
		return nil, errors.New("-step must be more than 1")
	case o.maxRuns < 1 || o.maxRuns > 1000:
		return nil, errors.New("-max-runs must be in [1, 1000]")
	}
	o.maxLoss = *lossPct / 100
	if o.sweep && o.rate == 0 {
		o.rate = 10000
	}
	return o, nil
}

func run(args []string, stdout, stderr io.Writer) int {
	o, err := parseFlags(args, stderr)
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		fmt.Fprintln(stderr, "ntpload:", err)
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	if o.wait > 0 {
		if err := waitValid(ctx, o.target, o.base, o.wait); err != nil {
			fmt.Fprintln(stderr, "ntpload:", err)
			return 1
		}
	}
	if !o.sweep {
		r, err := runLoad(ctx, o.runConfig)
		if err != nil {
			fmt.Fprintln(stderr, "ntpload:", err)
			return 1
		}
		report(stdout, o.label, r)
		if r.stats.answered == 0 && r.lastErr != nil {
			fmt.Fprintln(stderr, "ntpload: no answers; last error:", r.lastErr)
			return 1
		}
		return 0
	}
	best, err := sweep(ctx, o, stdout)
	if err != nil {
		fmt.Fprintln(stderr, "ntpload:", err)
		return 1
	}
	if best == nil {
		fmt.Fprintf(stdout, "RESULT label=%s max_answers_per_s=0 rate=0 note=no-rate-under-%.2f%%-loss\n", o.label, 100*o.maxLoss)
		return 1
	}
	limited := "no"
	if best.generatorLimited() {
		limited = "yes"
	}
	fmt.Fprintf(stdout, "RESULT label=%s max_answers_per_s=%.0f rate=%.0f loss_pct=%.3f p50_us=%.1f p99_us=%.1f generator_limited=%s\n",
		o.label, best.answerRate(), best.rate, 100*best.loss(),
		float64(best.hist.quantile(0.5))/1e3, float64(best.hist.quantile(0.99))/1e3, limited)
	return 0
}

// sweep searches for the highest rate answered with less than maxLoss loss
// and returns the best run (the most answers/s among those under the loss
// limit), or nil if even the first rate lost too much.
func sweep(ctx context.Context, o *options, w io.Writer) (*result, error) {
	var best *result
	runs := 0
	try := func(rate float64) (ok bool, limited bool, err error) {
		if runs > 0 {
			select {
			case <-ctx.Done():
				return false, false, ctx.Err()
			case <-time.After(o.pause):
			}
		}
		runs++
		cfg := o.runConfig
		cfg.rate = rate
		r, err := runLoad(ctx, cfg)
		if err != nil {
			return false, false, err
		}
		report(w, o.label, r)
		if r.stats.answered == 0 && r.lastErr != nil {
			return false, false, fmt.Errorf("no answers at %.0f/s; last error: %w", rate, r.lastErr)
		}
		ok = r.loss() < o.maxLoss
		if ok && (best == nil || r.answerRate() > best.answerRate()) {
			best = r
		}
		return ok, r.generatorLimited(), ctx.Err()
	}
	lo, hi := 0.0, 0.0 // highest rate passed, lowest failed
	rate := o.rate
	for runs < o.maxRuns {
		ok, limited, err := try(rate)
		if err != nil {
			return best, err
		}
		if !ok {
			hi = rate
			if lo > 0 {
				break
			}
			// Even the first rate lost too much: search downwards.
			rate /= o.step
			if rate < 1 {
				return best, nil
			}
			continue
		}
		lo = rate
		if hi > 0 {
			break
		}
		if limited {
			fmt.Fprintf(w, "%s: the generator cannot send faster; the result is a lower bound for the server\n", o.label)
			return best, nil
		}
		if rate >= o.maxRate {
			return best, nil
		}
		rate = min(rate*o.step, o.maxRate)
	}
	for i := 0; i < o.refine && runs < o.maxRuns && hi > 0 && lo > 0; i++ {
		mid := (lo + hi) / 2
		ok, _, err := try(mid)
		if err != nil {
			return best, err
		}
		if ok {
			lo = mid
		} else {
			hi = mid
		}
	}
	return best, nil
}
