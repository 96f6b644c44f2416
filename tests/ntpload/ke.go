package main

import (
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"sync"
	"time"

	"gnomon.dev/gnomon/engine/nts"
	"gnomon.dev/gnomon/service/ntsio"
)

// KE mode: -concurrency workers each run complete NTS key exchanges (TCP
// connect, TLS 1.3 handshake, NTS-KE request, response with its records
// and cookies, close) back to back with ntsio.KeyExchange for -duration.

// keConfig is one KE run.
type keConfig struct {
	ntsConfig
	concurrency int
	duration    time.Duration
	serverPIDs  []int
}

// keResult is what one KE run measured.
type keResult struct {
	concurrency int
	ok, failed  uint64
	cookies     uint64 // received in all
	elapsed     time.Duration
	hist        histogram // latency of the successful exchanges
	genCPU      float64
	serverCPU   time.Duration // -1: not measured
	firstErr    error
}

func (r *keResult) rate() float64 { return float64(r.ok) / r.elapsed.Seconds() }

// serverCPUPerKE is the server's CPU time per key exchange, 0 if unknown.
func (r *keResult) serverCPUPerKE() time.Duration {
	if r.serverCPU < 0 || r.ok == 0 {
		return 0
	}
	return r.serverCPU / time.Duration(r.ok)
}

// runKE runs the key-exchange load. It stops by itself after duration
// (and the exchanges in progress, each bounded by keTimeout).
func runKE(ctx context.Context, cfg keConfig) (*keResult, error) {
	if cfg.concurrency < 1 {
		return nil, fmt.Errorf("need at least one worker")
	}
	if !cfg.ke.Addr().Is4() || !cfg.ke.Addr().IsLoopback() {
		return nil, fmt.Errorf("NTS-KE server %v is not an IPv4 loopback address", cfg.ke)
	}
	type worker struct {
		ok, failed, cookies uint64
		hist                histogram
		firstErr            error
	}
	workers := make([]worker, cfg.concurrency)
	kc := cfg.clientConfig()
	cpu0 := cpuTime()
	srvCPU0, srvErr := procCPU(cfg.serverPIDs)
	start := time.Now()
	stop := start.Add(cfg.duration)
	var wg sync.WaitGroup
	for i := range workers {
		w := &workers[i]
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil && time.Now().Before(stop) {
				t0 := time.Now()
				res, err := ntsio.KeyExchange(ctx, kc)
				d := time.Since(t0)
				if err == nil && len(res.Cookies) == 0 {
					err = fmt.Errorf("no cookies")
				}
				if err != nil {
					w.failed++
					if w.firstErr == nil {
						w.firstErr = err
					}
					// Do not spin on a refused connection.
					sleepCtx(ctx, time.Millisecond)
					continue
				}
				w.ok++
				w.cookies += uint64(len(res.Cookies))
				w.hist.add(d)
			}
		}()
	}
	wg.Wait()
	res := &keResult{concurrency: cfg.concurrency, elapsed: time.Since(start)}
	res.genCPU = cpuShare(cpu0, res.elapsed)
	res.serverCPU = -1
	if srvCPU1, err := procCPU(cfg.serverPIDs); len(cfg.serverPIDs) > 0 && srvErr == nil && err == nil {
		res.serverCPU = srvCPU1 - srvCPU0
	}
	for i := range workers {
		w := &workers[i]
		res.ok += w.ok
		res.failed += w.failed
		res.cookies += w.cookies
		res.hist.merge(&w.hist)
		if res.firstErr == nil {
			res.firstErr = w.firstErr
		}
	}
	return res, nil
}

// reportKE writes one human line about r.
func reportKE(w io.Writer, label string, r *keResult) {
	fmt.Fprintf(w, "%s ke concurrency=%d handshakes=%d failures=%d handshakes/s=%.0f p50=%s p99=%s",
		label, r.concurrency, r.ok, r.failed, r.rate(),
		fmtDur(r.hist.quantile(0.5)), fmtDur(r.hist.quantile(0.99)))
	if r.ok > 0 {
		fmt.Fprintf(w, " cookies/ke=%.1f", float64(r.cookies)/float64(r.ok))
	}
	if d := r.serverCPUPerKE(); d > 0 {
		fmt.Fprintf(w, " server-cpu/ke=%s", fmtDur(d))
	}
	fmt.Fprintf(w, " gen-cpu=%.0f%%", 100*r.genCPU)
	if r.genCPU > 0.9 {
		fmt.Fprint(w, " GENERATOR-BUSY")
	}
	if r.firstErr != nil {
		fmt.Fprintf(w, " first-error=%q", r.firstErr.Error())
	}
	fmt.Fprintln(w)
}

// probeKE runs one key exchange by hand, with ntsio's TLS configuration,
// and describes what was negotiated: TLS version, cipher suite, key
// exchange group (X25519, or X25519MLKEM768 when both ends offer it).
func probeKE(ctx context.Context, cfg ntsConfig) (string, error) {
	kc := cfg.clientConfig()
	tcfg, err := kc.TLSClientConfig()
	if err != nil {
		return "", err
	}
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	d := tls.Dialer{Config: tcfg}
	c, err := d.DialContext(ctx, "tcp", cfg.ke.String())
	if err != nil {
		return "", err
	}
	conn := c.(*tls.Conn)
	defer conn.Close()
	dl, _ := ctx.Deadline()
	conn.SetDeadline(dl)
	if _, err := conn.Write(nts.ClientRequest(nil)); err != nil {
		return "", err
	}
	// Read the response to its end, so that the exchange is complete
	// for the server too.
	io.Copy(io.Discard, io.LimitReader(conn, nts.MaxMessageLen))
	cs := conn.ConnectionState()
	version := "TLS 1.3"
	if cs.Version != tls.VersionTLS13 {
		version = fmt.Sprintf("TLS version %#x", cs.Version)
	}
	host, _, _ := net.SplitHostPort(conn.RemoteAddr().String())
	return fmt.Sprintf("%s with %s: %s, group %v, ALPN %q", version, host, tls.CipherSuiteName(cs.CipherSuite), cs.CurveID, cs.NegotiatedProtocol), nil
}
