// Command gnomon-exporter serves gnomond's state as Prometheus metrics. It
// reads gnomond over D-Bus (org.gnomon.Gnomon1) at every scrape, so the
// time daemon itself opens no HTTP port. Under systemd it takes its
// listening socket from gnomon-exporter.socket; otherwise it listens on
// --listen. Metrics: docs/metrics.md.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"gnomon.dev/gnomon/ctl/client"
	"gnomon.dev/gnomon/ctl/exporter"
	"gnomon.dev/gnomon/service/sd"
)

var version = "dev"

// DefaultListen is where gnomon-exporter listens without socket activation
// (and what gnomon-exporter.socket binds): localhost only.
const DefaultListen = "127.0.0.1:9975"

func main() {
	os.Exit(run(os.Args[1:]))
}

func run(args []string) int {
	fs := flag.NewFlagSet("gnomon-exporter", flag.ContinueOnError)
	bus := fs.String("bus", "system", "the `BUS` gnomond is on: system, session, or a D-Bus address")
	listen := fs.String("listen", DefaultListen, "`ADDRESS:PORT` to listen on when systemd passes no socket")
	path := fs.String("path", "/metrics", "the metrics `PATH`")
	timeout := fs.Duration("timeout", 5*time.Second, "bound on one scrape's D-Bus reads")
	showVersion := fs.Bool("version", false, "print the version and exit")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(os.Stderr, "gnomon-exporter: unexpected argument %q (see --help)\n", fs.Arg(0))
		return 2
	}
	if *showVersion {
		fmt.Println("gnomon-exporter", version)
		return 0
	}
	if *timeout <= 0 {
		fmt.Fprintf(os.Stderr, "gnomon-exporter: --timeout %v: must be positive\n", *timeout)
		return 2
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, nil))

	ln, err := listener(*listen)
	if err != nil {
		log.Error("cannot listen", "err", err)
		return 1
	}
	coll := exporter.New(func(ctx context.Context) (exporter.Reader, error) {
		return client.Connect(ctx, *bus, os.Getenv)
	}, *timeout, log)
	defer coll.Close()
	reg := prometheus.NewRegistry()
	reg.MustRegister(coll)
	mux := http.NewServeMux()
	mux.Handle(*path, promhttp.HandlerFor(reg, promhttp.HandlerOpts{ErrorLog: slog.NewLogLogger(log.Handler(), slog.LevelWarn)}))
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/" {
			http.NotFound(w, r)
			return
		}
		fmt.Fprintf(w, "gnomon-exporter %s: metrics at %s\n", version, *path)
	})
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second, ReadTimeout: 30 * time.Second,
		WriteTimeout: *timeout + 30*time.Second, IdleTimeout: 2 * time.Minute, MaxHeaderBytes: 16 << 10}

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	go func() {
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		srv.Shutdown(sctx)
	}()
	log.Info("serving metrics", "address", ln.Addr().String(), "path", *path, "bus", *bus)
	if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
		log.Error("serving", "err", err)
		return 1
	}
	return 0
}

// listener is the socket systemd passed (exactly one stream socket), or
// a new one on addr.
func listener(addr string) (net.Listener, error) {
	files, err := sd.Listeners()
	if err != nil {
		return nil, err
	}
	var all []*os.File
	for _, fs := range files {
		all = append(all, fs...)
	}
	switch len(all) {
	case 0:
		return net.Listen("tcp", addr)
	case 1:
		ln, err := net.FileListener(all[0])
		if err != nil {
			return nil, fmt.Errorf("the socket systemd passed: %w (gnomon-exporter.socket needs ListenStream=)", err)
		}
		all[0].Close()
		return ln, nil
	default:
		return nil, fmt.Errorf("systemd passed %d sockets; gnomon-exporter takes one", len(all))
	}
}
