// Command gnomon-timedate-helper writes /etc/localtime, /etc/adjtime and the
// RTC, and reads the RTC, for gnomond, which runs as the unprivileged user
// gnomon and may not (/etc and /dev/rtc are root's).
// systemd starts it as root on the first connection to
// gnomon-timedate-helper.socket (/run/gnomon/timedate-helper.sock, owned by
// gnomon, mode 0600); it answers one request per connection, checks the
// peer's uid (SO_PEERCRED: root or the --allow-user), validates every
// request itself, and exits after --idle-timeout without a connection.
// The protocol is in package service/tdhelper; docs/security.md explains
// why it exists.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"os/user"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/coreos/go-systemd/v22/activation"

	"gnomon.dev/gnomon/service/sd"
	"gnomon.dev/gnomon/service/sysfiles"
	"gnomon.dev/gnomon/service/tdhelper"
)

var version = "dev"

func main() {
	os.Exit(run(os.Args[1:], os.Stderr))
}

// options are the command line.
type options struct {
	root, allowUsers, listen, logLevel string
	idle                               time.Duration
	version                            bool
}

func parseFlags(args []string, stderr io.Writer) (options, error) {
	var o options
	fs := flag.NewFlagSet("gnomon-timedate-helper", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&o.root, "root", "/", "directory under which etc/localtime, etc/adjtime, usr/share/zoneinfo and dev/rtc are found (for tests)")
	fs.StringVar(&o.allowUsers, "allow-user", "gnomon", "comma-separated users (names or uids) that may send requests besides root")
	fs.StringVar(&o.listen, "listen", "", "listen on this Unix socket path (mode 0666: the uid check decides) instead of the socket systemd passes")
	fs.DurationVar(&o.idle, "idle-timeout", 30*time.Second, "exit after this long without a connection (0: never)")
	fs.StringVar(&o.logLevel, "log-level", "info", "debug, info, warn or error")
	fs.BoolVar(&o.version, "version", false, "print the version and exit")
	if err := fs.Parse(args); err != nil {
		return o, err
	}
	if fs.NArg() != 0 {
		return o, fmt.Errorf("unexpected arguments: %q", fs.Args())
	}
	return o, nil
}

// allowedUIDs resolves the --allow-user list; names that do not exist are
// reported and left out (root is always allowed).
func allowedUIDs(list string, log *slog.Logger) []uint32 {
	var uids []uint32
	for _, name := range strings.Split(list, ",") {
		name = strings.TrimSpace(name)
		if name == "" {
			continue
		}
		if n, err := strconv.ParseUint(name, 10, 32); err == nil {
			uids = append(uids, uint32(n))
			continue
		}
		u, err := user.Lookup(name)
		if err != nil {
			log.Warn("allowed user not found; only root may use the helper", "user", name, "err", err)
			continue
		}
		n, err := strconv.ParseUint(u.Uid, 10, 32)
		if err != nil {
			continue
		}
		uids = append(uids, uint32(n))
	}
	return uids
}

// listener is the socket to serve: --listen, else the one socket systemd
// passed.
func listener(o options) (*net.UnixListener, error) {
	if o.listen != "" {
		os.Remove(o.listen)
		l, err := net.ListenUnix("unix", &net.UnixAddr{Name: o.listen, Net: "unix"})
		if err != nil {
			return nil, err
		}
		if err := os.Chmod(o.listen, 0o666); err != nil {
			l.Close()
			return nil, err
		}
		return l, nil
	}
	ls, err := activation.Listeners()
	if err != nil {
		return nil, err
	}
	if len(ls) != 1 {
		for _, l := range ls {
			if l != nil {
				l.Close()
			}
		}
		return nil, fmt.Errorf("want exactly one socket from systemd (LISTEN_FDS), got %d; or use --listen", len(ls))
	}
	ul, ok := ls[0].(*net.UnixListener)
	if !ok {
		return nil, fmt.Errorf("the socket from systemd is not a Unix stream socket")
	}
	return ul, nil
}

func run(args []string, stderr io.Writer) int {
	o, err := parseFlags(args, stderr)
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		fmt.Fprintln(stderr, "gnomon-timedate-helper:", err)
		return 2
	}
	if o.version {
		fmt.Fprintln(os.Stdout, "gnomon-timedate-helper", version)
		return 0
	}
	var level slog.Level
	if err := level.UnmarshalText([]byte(o.logLevel)); err != nil {
		fmt.Fprintln(stderr, "gnomon-timedate-helper: --log-level:", err)
		return 2
	}
	// Text on stderr (the journal takes it from there): the unit allows no
	// sockets of any family, so none for journald's native protocol.
	log := slog.New(sd.NewLogHandler(stderr, level, "text"))
	l, err := listener(o)
	if err != nil {
		log.Error("no socket", "err", err)
		return 1
	}
	defer l.Close()
	if o.listen != "" {
		// Leave the socket file behind for nobody; systemd's is systemd's.
		l.SetUnlinkOnClose(true)
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	srv := &tdhelper.Server{
		Files:       sysfiles.Direct{Paths: sysfiles.Paths{Root: o.root}},
		AllowUIDs:   allowedUIDs(o.allowUsers, log),
		Log:         log,
		IdleTimeout: o.idle,
	}
	log.Debug("serving", "root", o.root, "allow", srv.AllowUIDs, "idle", o.idle)
	if err := srv.Serve(ctx, l); err != nil {
		log.Error("serve", "err", err)
		return 1
	}
	return 0
}
