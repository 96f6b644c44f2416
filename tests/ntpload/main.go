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
// With -nts KEHOST:PORT (and -ca FILE, the server's certificate or its CA)
// the requests are NTS-authenticated (RFC 8915): every client first runs
// NTS key exchanges with ntsio.KeyExchange and then seals each request with
// an engine/nts.ClientSession from a pool of -sessions per client, sending
// it to the NTP server the key exchange names; a reply counts as an answer
// only when the session authenticates it. NAKs, unauthenticated replies and
// the re-keying are reported separately.
//
// With -ke KEHOST:PORT (and -ca FILE) it measures NTS-KE instead:
// -concurrency workers run complete key exchanges (TLS 1.3 handshake,
// request, response records) back to back for -duration, and it reports
// handshakes/s, failures and the 50th and 99th percentile of their
// duration.
//
// It only ever sends to 127.0.0.0/8 and stops by itself.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"os/signal"
	"strconv"
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
	csvPath string // -csv: append each single run's figures (csv.go)
	csvTag  string

	// NTS and NTS-KE modes.
	ntsMode, keMode bool
	nts             ntsConfig
	concurrency     int
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
	ntsKE := fs.String("nts", "", "NTS mode: the NTS-KE server (IPv4 loopback HOST:PORT); NTP goes where it says")
	keKE := fs.String("ke", "", "NTS-KE mode: measure key exchanges with this server (IPv4 loopback HOST:PORT)")
	ca := fs.String("ca", "", "with -nts or -ke: PEM file of the certificate(s) to trust (the test certificate)")
	fs.IntVar(&o.nts.sessions, "sessions", 64, "with -nts: NTS sessions per client (the most requests a client has in flight)")
	fs.DurationVar(&o.nts.stale, "stale", 250*time.Millisecond, "with -nts: a request unanswered this long frees its session")
	fs.BoolVar(&o.nts.replay, "replay", false, "with -nts: each session seals one request per run, sent again and again without waiting for replies (open loop; replies are counted, not opened)")
	fs.DurationVar(&o.nts.keTimeout, "ke-timeout", 5*time.Second, "with -nts or -ke: bound on one key exchange")
	fs.IntVar(&o.concurrency, "concurrency", 8, "with -ke: key exchanges in progress at once")
	fs.StringVar(&o.csvPath, "csv", "", "append the run's figures as a CSV row to this file (header when new); single runs only")
	fs.StringVar(&o.csvTag, "tag", "", "with -csv: the row's first column (e.g. the round)")
	fs.IntVar(&o.pad, "pad", 0, "plain NTP: make each request this many bytes long with one extension field (a multiple of 4 in [64, 256]; 228 is an NTS request with one cookie)")
	pids := fs.String("server-pid", "", "comma-separated process ids of the server: report its CPU time per answer (per key exchange with -ke)")
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	var perr error
	if o.serverPIDs, perr = parsePIDs(*pids); perr != nil {
		return nil, fmt.Errorf("-server-pid: %w", perr)
	}
	o.ntsMode, o.keMode = *ntsKE != "", *keKE != ""
	if o.ntsMode || o.keMode {
		ke := *ntsKE
		if o.keMode {
			ke = *keKE
		}
		switch {
		case o.ntsMode && o.keMode:
			return nil, errors.New("-nts and -ke: choose one")
		case *ca == "":
			return nil, errors.New("-nts and -ke need -ca FILE (the certificate to trust)")
		case o.keMode && o.sweep:
			return nil, errors.New("-sweep is for NTP and NTS requests, not with -ke")
		case o.nts.sessions < 1 || o.nts.sessions > 4096:
			return nil, errors.New("-sessions must be in [1, 4096]")
		case o.nts.stale <= 0:
			return nil, errors.New("-stale must be positive")
		case o.nts.keTimeout <= 0 || o.nts.keTimeout > time.Minute:
			return nil, errors.New("-ke-timeout must be in (0, 1m]")
		case o.concurrency < 1 || o.concurrency > 4096:
			return nil, errors.New("-concurrency must be in [1, 4096]")
		}
		var err error
		if o.nts.ke, err = parseLoopback(ke); err != nil {
			return nil, err
		}
		if o.nts.roots, err = loadRoots(*ca); err != nil {
			return nil, fmt.Errorf("-ca: %w", err)
		}
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
	case o.pad != 0 && (o.pad < 64 || o.pad > pktLen || o.pad%4 != 0):
		return nil, fmt.Errorf("-pad %d: want 0 or a multiple of 4 in [64, %d]", o.pad, pktLen)
	case o.pad != 0 && o.ntsMode:
		return nil, errors.New("-pad is for plain NTP requests, not with -nts")
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
	if o.keMode {
		return runKEMode(ctx, o, stdout, stderr)
	}
	if o.ntsMode {
		if o.wait > 0 {
			if err := waitNTS(ctx, o.nts, o.base, o.wait); err != nil {
				fmt.Fprintln(stderr, "ntpload:", err)
				return 1
			}
		}
		st, err := newNTSState(ctx, o.nts, o.clients, o.base)
		if err != nil {
			fmt.Fprintln(stderr, "ntpload: NTS set-up:", err)
			return 1
		}
		defer st.close()
		fmt.Fprintf(stdout, "%s nts: %d clients x %d sessions, NTP at %v, %d key exchanges to set up\n",
			o.label, o.clients, o.nts.sessions, st.ntp, st.keys.Load())
		o.runConfig.nts = st
	} else if o.wait > 0 {
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
		if o.csvPath != "" {
			if err := appendCSV(o.csvPath, o.csvTag, o.label, r); err != nil {
				fmt.Fprintln(stderr, "ntpload:", err)
				return 1
			}
		}
		if r.stats.answers() == 0 && r.lastErr != nil {
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
	proto := "ntp"
	if o.ntsMode {
		proto = "nts"
	}
	fmt.Fprintf(stdout, "RESULT label=%s proto=%s max_answers_per_s=%.0f rate=%.0f loss_pct=%.3f p50_us=%.1f p99_us=%.1f naks=%d server_cpu_us=%.1f generator_limited=%s gen_cpu_pct=%.0f\n",
		o.label, proto, best.answerRate(), best.rate, 100*best.loss(),
		float64(best.hist.quantile(0.5))/1e3, float64(best.hist.quantile(0.99))/1e3, best.stats.nak,
		float64(best.serverCPUPerAnswer())/1e3, limited, 100*best.genCPU)
	return 0
}

// runKEMode is -ke: optionally wait for the server, describe what TLS
// negotiates, run the key exchanges and end with a RESULT line.
func runKEMode(ctx context.Context, o *options, stdout, stderr io.Writer) int {
	if o.wait > 0 {
		deadline := time.Now().Add(o.wait)
		for {
			kc := o.nts
			kc.keTimeout = min(kc.keTimeout, max(time.Until(deadline), time.Millisecond))
			_, err := probeKE(ctx, kc)
			if err == nil {
				break
			}
			if ctx.Err() != nil || time.Now().After(deadline) {
				fmt.Fprintf(stderr, "ntpload: NTS-KE %v did not answer within %v: %v\n", o.nts.ke, o.wait, err)
				return 1
			}
			sleepCtx(ctx, 200*time.Millisecond)
		}
	}
	desc, err := probeKE(ctx, o.nts)
	if err != nil {
		fmt.Fprintln(stderr, "ntpload: NTS-KE probe:", err)
		return 1
	}
	fmt.Fprintf(stdout, "%s ke: %s\n", o.label, desc)
	r, err := runKE(ctx, keConfig{ntsConfig: o.nts, concurrency: o.concurrency, duration: o.duration, serverPIDs: o.serverPIDs})
	if err != nil {
		fmt.Fprintln(stderr, "ntpload:", err)
		return 1
	}
	reportKE(stdout, o.label, r)
	fmt.Fprintf(stdout, "RESULT label=%s proto=ke ke_per_s=%.0f concurrency=%d handshakes=%d failures=%d p50_us=%.1f p99_us=%.1f server_cpu_us=%.1f gen_cpu_pct=%.0f\n",
		o.label, r.rate(), r.concurrency, r.ok, r.failed,
		float64(r.hist.quantile(0.5))/1e3, float64(r.hist.quantile(0.99))/1e3,
		float64(r.serverCPUPerKE())/1e3, 100*r.genCPU)
	if r.ok == 0 {
		fmt.Fprintln(stderr, "ntpload: no key exchange completed; first error:", r.firstErr)
		return 1
	}
	return 0
}

// parseLoopback parses an IPv4 loopback HOST:PORT (a literal address).
func parseLoopback(s string) (netip.AddrPort, error) {
	host, port, err := net.SplitHostPort(s)
	if err != nil {
		return netip.AddrPort{}, err
	}
	a, err := netip.ParseAddr(host)
	if err != nil || !a.Is4() || !a.IsLoopback() {
		return netip.AddrPort{}, fmt.Errorf("%q: want an IPv4 loopback address (127.0.0.0/8)", s)
	}
	p, err := strconv.ParseUint(port, 10, 16)
	if err != nil || p == 0 {
		return netip.AddrPort{}, fmt.Errorf("%q: bad port", s)
	}
	return netip.AddrPortFrom(a, uint16(p)), nil
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
		if r.stats.answers() == 0 && r.lastErr != nil {
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
