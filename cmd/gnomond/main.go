// Command gnomond is the Gnomon time daemon: flags, wiring, nothing else.
package main

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	gdbus "gnomon.dev/gnomon/dbus"
	"gnomon.dev/gnomon/service/config"
	"gnomon.dev/gnomon/service/daemon"
	"gnomon.dev/gnomon/service/gcstat"
	"gnomon.dev/gnomon/service/sd"
	"gnomon.dev/gnomon/service/sysfiles"
	"gnomon.dev/gnomon/service/tdhelper"
)

var version = "dev"

// Exit codes (docs/gnomond.md).
const (
	exitOK      = 0
	exitFailure = 1 // the daemon failed at run time
	exitUsage   = 2 // bad flags or arguments
	exitConfig  = 3 // the configuration is invalid
)

const defaultConfig = "/etc/gnomon/gnomon.toml"

type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string { return e.err.Error() }
func (e *exitError) Unwrap() error { return e.err }

func main() {
	os.Exit(run(os.Args[1:]))
}

func run(args []string) int {
	cmd := newRoot()
	cmd.SetArgs(args)
	err := cmd.Execute()
	if err == nil {
		return exitOK
	}
	fmt.Fprintln(os.Stderr, "gnomond:", err)
	var ee *exitError
	if errors.As(err, &ee) {
		return ee.code
	}
	return exitUsage
}

// loadConfig reads path, or with path "" the installed configuration if
// there is one and the embedded default otherwise.
func loadConfig(path string) (*config.Config, error) {
	opts := config.Options{CanSetClock: canSetClock()}
	if path == "" {
		if _, err := os.Stat(defaultConfig); err == nil {
			path = defaultConfig
		} else if errors.Is(err, fs.ErrNotExist) {
			return config.Embedded(opts)
		}
	}
	return config.Load(path, opts)
}

// pollSeconds turns a poll exponent (log2 s) into a duration.
func pollSeconds(exp int) time.Duration {
	if exp < -30 || exp > 30 {
		return 0
	}
	if exp >= 0 {
		return time.Duration(1<<exp) * time.Second
	}
	return time.Second >> -exp
}

// systemFiles chooses how timedate1 writes /etc/localtime, /etc/adjtime
// and the RTC: through gnomon-timedate-helper at socket, unless socket is
// "" or the flag was not given and gnomond stays root (then directly,
// under sysRoot). It also says which, for the log.
func systemFiles(socket string, given, staysRoot bool, sysRoot string) (gdbus.SystemFiles, string) {
	if socket == "" || (!given && staysRoot) {
		return sysfiles.Direct{Paths: sysfiles.Paths{Root: sysRoot}}, "direct"
	}
	return &tdhelper.Client{Path: socket}, "helper " + socket
}

func newRoot() *cobra.Command {
	var (
		cfgPath  string
		observe  bool
		logLevel string
		showVer  bool
		runAs    string
		stateDir string
		busAddr  string
		noDBus   bool
		sysRoot  string
		helper   string
		poolRepl time.Duration
		keyRetry time.Duration
		traceGC  bool
	)
	root := &cobra.Command{
		Use:   "gnomond",
		Short: "Gnomon time daemon: NTP client and server",
		Long: "gnomond keeps this machine's clock in time from NTP sources and serves time to others.\n" +
			"Without --config it reads " + defaultConfig + ", or its embedded default when that file is absent.",
		Args:          cobra.NoArgs,
		SilenceUsage:  true,
		SilenceErrors: true,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if showVer {
				fmt.Println("gnomond", version)
				return nil
			}
			if traceGC {
				gcstat.Trace(os.Stderr)
			}
			cfg, err := loadConfig(cfgPath)
			if err != nil {
				return &exitError{exitConfig, err}
			}
			mode, observeWhy, unasked := clockMode(cfg, observe, canSetClock())
			cfg.Clock.Mode = mode
			// One LevelVar: reload ([log] level) and LogControl1
			// (systemctl service-log-level) change it at run time.
			level := new(slog.LevelVar)
			level.Set(cfg.Log.Level.Level())
			if logLevel != "" {
				var l config.LogLevel
				if err := l.UnmarshalText([]byte(logLevel)); err != nil {
					return &exitError{exitUsage, fmt.Errorf("--log-level: %w", err)}
				}
				level.Set(l.Level())
			}
			if !cmd.Flags().Changed("user") {
				runAs = cfg.Security.User
			} else {
				cfg.Security.User = runAs // for Check's warnings
			}
			// LogControl1's LogTarget (systemctl service-log-target) moves
			// the log at run time.
			targets := sd.NewTargets(os.Stderr, level, string(cfg.Log.Format))
			log := slog.New(targets)
			for _, w := range cfg.Check() {
				log.Warn("configuration", "warning", w.String())
			}
			if unasked {
				log.Error("OBSERVE MODE: gnomond will NOT discipline the clock", "reason", observeWhy,
					"fix", "grant CAP_SYS_TIME (the packaged gnomond.service does), or set mode = \"observe\" in [clock] to ask for this mode")
			}
			listeners, err := sd.Listeners()
			if err != nil {
				return &exitError{exitFailure, fmt.Errorf("socket activation: %w", err)}
			}
			var notify func(string) error
			if sd.Enabled() {
				notify = sd.Notify
			}
			d, err := daemon.New(daemon.Options{Config: cfg, Logger: log, Listeners: listeners, Notify: notify,
				User: runAs, StateDir: stateDir, PoolReplaceAfter: poolRepl,
				Observe: observe || unasked, LogLevel: level, LogLevelFixed: logLevel != "", KeySaveRetry: keyRetry,
				ObserveReason: observeWhy, ObserveUnasked: unasked})
			if err != nil {
				return &exitError{exitFailure, err}
			}
			ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
			defer stop()
			hup := make(chan os.Signal, 1)
			signal.Notify(hup, syscall.SIGHUP)
			defer signal.Stop(hup)
			go func() {
				for range hup {
					// The same reload as org.gnomon.Gnomon1.Manager.Reload;
					// a storm of SIGHUPs is served one at a time.
					rctx, cancel := context.WithTimeout(ctx, 30*time.Second)
					if _, err := d.Reload(rctx); err != nil {
						log.Warn("SIGHUP: reload failed", "err", err)
					}
					cancel()
				}
			}()
			var dbusDone chan struct{}
			if !noDBus {
				files, how := systemFiles(helper, cmd.Flags().Changed("timedate-helper"), os.Geteuid() == 0 && runAs == "", sysRoot)
				log.Debug("timedate1 writes files", "how", how)
				svc, err := gdbus.New(d, gdbus.Options{
					Paths:           gdbus.Paths{Root: sysRoot},
					Files:           files,
					Address:         busAddr,
					Logger:          log.With("part", "dbus"),
					Version:         version,
					PollIntervalMin: pollSeconds(cfg.SourceDefaults.PollIntervalLimits.Min),
					PollIntervalMax: pollSeconds(cfg.SourceDefaults.PollIntervalLimits.Max),
					RootDistanceMax: cfg.Synchronization.MaxDistance,
					LogLevel:        level,
					SetLogTarget:    targets.SetTarget,
				})
				if err != nil {
					return &exitError{exitFailure, err}
				}
				// The bus is optional: time keeping never waits for it, and
				// Serve reconnects whenever the bus comes back.
				dbusDone = make(chan struct{})
				go func() {
					defer close(dbusDone)
					_ = svc.Serve(ctx)
				}()
			}
			err = d.Run(ctx)
			stop()
			if dbusDone != nil {
				<-dbusDone
			}
			if err != nil {
				return &exitError{exitFailure, err}
			}
			return nil
		},
	}
	root.Flags().StringVarP(&cfgPath, "config", "c", "", "configuration file (default "+defaultConfig+", else the embedded default)")
	root.Flags().BoolVarP(&observe, "observe", "x", false, "never touch any clock: measure, select and report only (like chronyd -x)")
	root.Flags().StringVar(&logLevel, "log-level", "", "debug, info, warn or error (overrides [log] level)")
	root.Flags().BoolVar(&showVer, "version", false, "print the version and exit")
	root.Flags().StringVar(&runAs, "user", config.DefaultUser, "user to become after binding when started as root; gnomond exits (status 1) if it cannot (\"\" to stay root; overrides [security] user)")
	root.Flags().StringVar(&stateDir, "state-dir", "/var/lib/gnomon", "directory for state kept across restarts (\"\" for none)")
	root.Flags().StringVar(&busAddr, "bus-address", "", "D-Bus system bus address (default $DBUS_SYSTEM_BUS_ADDRESS, else "+gdbus.DefaultSystemBus+")")
	root.Flags().BoolVar(&noDBus, "no-dbus", false, "do not serve timedate1, timesync1 and Gnomon1 on the system bus")
	root.Flags().StringVar(&sysRoot, "system-root", "/", "directory under which timedate1 finds etc/localtime, etc/adjtime, usr/share/zoneinfo and dev/rtc (for tests)")
	root.Flags().StringVar(&helper, "timedate-helper", tdhelper.DefaultSocket,
		"socket of gnomon-timedate-helper, which writes /etc/localtime, /etc/adjtime and the RTC for timedate1 (\"\": write them directly; "+
			"without this flag gnomond writes directly when it stays root, that is when started as root with --user \"\")")
	// For tests: how long a useless pool member is kept (0: 8 minutes).
	root.Flags().DurationVar(&poolRepl, "pool-replace-after", 0, "replace a pool member after it has been unreachable or a falseticker this long (default 8m)")
	_ = root.Flags().MarkHidden("pool-replace-after")
	// For tests: how often NTS master keys that could not be saved are retried.
	root.Flags().DurationVar(&keyRetry, "key-save-retry", 0, "retry saving NTS master keys that could not be saved this often (default 30s)")
	_ = root.Flags().MarkHidden("key-save-retry")
	// For benchmarks: the Go heap in bytes after every collection
	// (GODEBUG=gctrace=1 rounds it to whole MB); scripts/bench-long.sh.
	root.Flags().BoolVar(&traceGC, "trace-gc", false, "write the Go runtime's memory figures (bytes) to stderr after every garbage collection")
	_ = root.Flags().MarkHidden("trace-gc")
	root.AddCommand(&cobra.Command{
		Use:           "check-config [PATH]",
		Short:         "Validate a configuration file without starting",
		Args:          cobra.MaximumNArgs(1),
		SilenceUsage:  true,
		SilenceErrors: true,
		RunE: func(cmd *cobra.Command, args []string) error {
			path := ""
			if len(args) == 1 {
				path = args[0]
			}
			cfg, err := loadConfig(path)
			if err != nil {
				return &exitError{exitConfig, err}
			}
			for _, w := range cfg.Check() {
				fmt.Fprintln(cmd.OutOrStdout(), "warning:", w.String())
			}
			name := cfg.Path
			if name == "" {
				name = "embedded default"
			}
			fmt.Fprintf(cmd.OutOrStdout(), "%s: ok (%d sources, %d servers)\n", name, len(cfg.Sources), len(cfg.Servers))
			return nil
		},
	})
	return root
}
