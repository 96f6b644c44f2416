// Package cli is gnomonctl's command tree: reading gnomond's state and asking
// it for changes over D-Bus (org.gnomon.Gnomon1), validating gnomon.toml, and
// migrating chrony.conf. cmd/gnomonctl only calls Run; the man page and the
// shell completions are generated from NewRoot's tree.
package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/spf13/cobra"
)

// Exit codes (docs/cli.md).
const (
	ExitOK          = 0 // done
	ExitFailure     = 1 // the command failed (invalid configuration, refused, no such source, ...)
	ExitUsage       = 2 // bad flags or arguments
	ExitUnreachable = 3 // gnomond is not running or the bus cannot be reached
)

// exitError carries an exit code, and an optional one-line hint shown after
// the error.
type exitError struct {
	code int
	err  error
	hint string
	// quiet: the command already printed what went wrong.
	quiet bool
}

func (e *exitError) Error() string { return e.err.Error() }
func (e *exitError) Unwrap() error { return e.err }

func fail(code int, err error) error { return &exitError{code: code, err: err} }

// Env is what a command reads and writes besides D-Bus.
type Env struct {
	Stdout, Stderr io.Writer
	Stdin          io.Reader
	// Getenv reads the environment (DBUS_SYSTEM_BUS_ADDRESS and friends).
	Getenv func(string) string
	// Version is gnomonctl's version.
	Version string
	// Context, when set, bounds every command (tests); Run otherwise ends
	// commands on SIGINT and SIGTERM.
	Context context.Context
}

func (e *Env) defaults() {
	if e.Stdout == nil {
		e.Stdout = os.Stdout
	}
	if e.Stderr == nil {
		e.Stderr = os.Stderr
	}
	if e.Stdin == nil {
		e.Stdin = os.Stdin
	}
	if e.Getenv == nil {
		e.Getenv = os.Getenv
	}
	if e.Version == "" {
		e.Version = "dev"
	}
}

// globals are the flags every command has.
type globals struct {
	bus string
	env *Env
}

// NewRoot builds gnomonctl's command tree.
func NewRoot(env *Env) *cobra.Command {
	if env == nil {
		env = &Env{}
	}
	env.defaults()
	g := &globals{env: env}
	root := &cobra.Command{
		Use:   "gnomonctl",
		Short: "Show and control gnomond, the Gnomon time daemon",
		Long: "gnomonctl shows gnomond's synchronization state and its sources, and asks it to add, remove\n" +
			"or poll sources and to reload its configuration, over D-Bus (org.gnomon.Gnomon1); polkit decides\n" +
			"who may change what. Without a daemon it checks gnomon.toml files (validate) and turns a\n" +
			"chrony.conf into gnomon.toml (migrate chrony).",
		Version:           env.Version,
		SilenceUsage:      true,
		SilenceErrors:     true,
		DisableAutoGenTag: true,
	}
	root.SetOut(env.Stdout)
	root.SetErr(env.Stderr)
	root.SetIn(env.Stdin)
	root.SetVersionTemplate("gnomonctl {{.Version}}\n")
	root.PersistentFlags().StringVar(&g.bus, "bus", "system",
		"the `BUS` gnomond is on: system, session, or a D-Bus address like unix:path=/run/dbus/system_bus_socket")
	root.SetFlagErrorFunc(func(c *cobra.Command, err error) error {
		return fail(ExitUsage, fmt.Errorf("%w (see %s --help)", err, c.CommandPath()))
	})
	root.AddGroup(&cobra.Group{ID: "daemon", Title: "Talking to gnomond (over D-Bus):"},
		&cobra.Group{ID: "files", Title: "Working on files (no daemon needed):"})
	for _, c := range []*cobra.Command{
		newStatus(g), newSources(g), newServer(g), newAddSource(g), newRemoveSource(g), newBurst(g), newReload(g),
	} {
		c.GroupID = "daemon"
		root.AddCommand(c)
	}
	for _, c := range []*cobra.Command{newValidate(g), newMigrate(g)} {
		c.GroupID = "files"
		root.AddCommand(c)
	}
	root.SetHelpCommandGroupID("")
	root.SetCompletionCommandGroupID("")
	// Argument errors are usage errors too.
	walk(root, func(c *cobra.Command) {
		if c.Args != nil {
			args := c.Args
			c.Args = func(c *cobra.Command, a []string) error {
				if err := args(c, a); err != nil {
					return fail(ExitUsage, fmt.Errorf("%w (see %s --help)", err, c.CommandPath()))
				}
				return nil
			}
		}
	})
	return root
}

func walk(c *cobra.Command, f func(*cobra.Command)) {
	f(c)
	for _, s := range c.Commands() {
		walk(s, f)
	}
}

// Run runs gnomonctl with args and returns its exit code.
func Run(args []string, env *Env) int {
	if env == nil {
		env = &Env{}
	}
	env.defaults()
	root := NewRoot(env)
	root.SetArgs(args)
	ctx := env.Context
	if ctx == nil {
		var stop context.CancelFunc
		ctx, stop = signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
		defer stop()
	}
	err := root.ExecuteContext(ctx)
	if err == nil {
		return ExitOK
	}
	var ee *exitError
	if !errors.As(err, &ee) {
		// cobra's own errors: unknown command, missing or bad flags.
		fmt.Fprintf(env.Stderr, "gnomonctl: %v\n", err)
		return ExitUsage
	}
	if !ee.quiet {
		fmt.Fprintf(env.Stderr, "gnomonctl: %v\n", ee.err)
	}
	if ee.hint != "" {
		fmt.Fprintf(env.Stderr, "hint: %s\n", ee.hint)
	}
	return ee.code
}
