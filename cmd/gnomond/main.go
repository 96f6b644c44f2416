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

	"github.com/spf13/cobra"

	"gnomon.dev/gnomon/service/config"
	"gnomon.dev/gnomon/service/daemon"
	"gnomon.dev/gnomon/service/sd"
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
	opts := config.Options{IsRoot: os.Geteuid() == 0}
	if path == "" {
		if _, err := os.Stat(defaultConfig); err == nil {
			path = defaultConfig
		} else if errors.Is(err, fs.ErrNotExist) {
			return config.Embedded(opts)
		}
	}
	return config.Load(path, opts)
}

func newRoot() *cobra.Command {
	var (
		cfgPath  string
		observe  bool
		logLevel string
		showVer  bool
		runAs    string
		stateDir string
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
			cfg, err := loadConfig(cfgPath)
			if err != nil {
				return &exitError{exitConfig, err}
			}
			if observe {
				cfg.Clock.Mode = config.ClockObserve
			}
			level := cfg.Log.Level.Level()
			if logLevel != "" {
				var l config.LogLevel
				if err := l.UnmarshalText([]byte(logLevel)); err != nil {
					return &exitError{exitUsage, fmt.Errorf("--log-level: %w", err)}
				}
				level = l.Level()
			}
			log := slog.New(sd.NewLogHandler(os.Stderr, level, string(cfg.Log.Format)))
			for _, w := range cfg.Check() {
				log.Warn("configuration", "warning", w.String())
			}
			listeners, err := sd.Listeners()
			if err != nil {
				return &exitError{exitFailure, fmt.Errorf("socket activation: %w", err)}
			}
			d, err := daemon.New(daemon.Options{Config: cfg, Logger: log, Listeners: listeners, Notify: sd.Notify,
				User: runAs, StateDir: stateDir})
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
					// Reloading arrives with the D-Bus issue; until then a
					// SIGHUP (or a storm of them) only costs a debug line.
					log.Debug("SIGHUP: reload is not supported yet; ignored")
				}
			}()
			if err := d.Run(ctx); err != nil {
				return &exitError{exitFailure, err}
			}
			return nil
		},
	}
	root.Flags().StringVarP(&cfgPath, "config", "c", "", "configuration file (default "+defaultConfig+", else the embedded default)")
	root.Flags().BoolVarP(&observe, "observe", "x", false, "never touch any clock: measure, select and report only (like chronyd -x)")
	root.Flags().StringVar(&logLevel, "log-level", "", "debug, info, warn or error (overrides [log] level)")
	root.Flags().BoolVar(&showVer, "version", false, "print the version and exit")
	root.Flags().StringVar(&runAs, "user", "gnomon", "user to become after binding when started as root (\"\" to stay root)")
	root.Flags().StringVar(&stateDir, "state-dir", "/var/lib/gnomon", "directory for state kept across restarts (\"\" for none)")
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
