package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"

	godbus "github.com/godbus/dbus/v5"
	"github.com/spf13/cobra"

	"gnomon.dev/gnomon/ctl/client"
	"gnomon.dev/gnomon/service/config"
)

// SchemaVersion is the version of the --json output (docs/cli.md).
const SchemaVersion = 1

// StatusJSON is status --json.
type StatusJSON struct {
	SchemaVersion int `json:"schema_version"`
	*client.Status
}

// SourcesJSON is sources --json (one object per line with --watch).
type SourcesJSON struct {
	SchemaVersion int             `json:"schema_version"`
	Time          string          `json:"time,omitempty"` // with --watch: when it was read (RFC 3339)
	Sources       []client.Source `json:"sources"`
}

// readTimeout bounds reading calls; changes may wait for a password.
const (
	readTimeout   = 30 * time.Second
	changeTimeout = 2 * time.Minute
)

// daemonError turns a client error into an exit code and a one-line hint.
func (g *globals) daemonError(err error) error {
	if err == nil {
		return nil
	}
	e := &exitError{code: ExitFailure, err: err}
	switch client.KindOf(err) {
	case client.Unreachable:
		e.code = ExitUnreachable
		e.hint = "is the D-Bus bus running? gnomonctl uses --bus " + g.bus + " (see gnomonctl --help)"
	case client.NotRunning:
		e.code = ExitUnreachable
		e.hint = "gnomond is not running: start it with \"systemctl start gnomond\" (\"systemctl status gnomond\" says why it stopped)"
	case client.Refused:
		e.hint = "polkit refused: run it as root (sudo gnomonctl ...), or have an administrator grant you org.gnomon.manage-sources"
	case client.NoSuchSource:
		e.hint = "\"gnomonctl sources\" lists the sources"
	}
	return e
}

// connect connects for one command.
func (g *globals) connect(ctx context.Context) (*client.Client, error) {
	c, err := client.Connect(ctx, g.bus, g.env.Getenv)
	if err != nil {
		if client.KindOf(err) == client.InvalidArgs {
			return nil, fail(ExitUsage, err)
		}
		return nil, g.daemonError(err)
	}
	return c, nil
}

func (g *globals) withClient(cmd *cobra.Command, timeout time.Duration, f func(ctx context.Context, c *client.Client) error) error {
	ctx := cmd.Context()
	if ctx == nil {
		ctx = context.Background()
	}
	if timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, timeout)
		defer cancel()
	}
	c, err := g.connect(ctx)
	if err != nil {
		return err
	}
	defer c.Close()
	return f(ctx, c)
}

func newStatus(g *globals) *cobra.Command {
	var asJSON, addresses, verbose bool
	c := &cobra.Command{
		Use:   "status",
		Short: "Show whether the clock is synchronized, and every source",
		Long: "status shows, on one screen, whether gnomond keeps the clock synchronized, the selected\n" +
			"source, the offset, frequency, stratum, root distance and leap status, then the sources\n" +
			"table (see sources).",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return g.withClient(cmd, readTimeout, func(ctx context.Context, c *client.Client) error {
				st, err := c.Status(ctx)
				if err != nil {
					return g.daemonError(err)
				}
				if asJSON {
					return writeJSON(g.env.Stdout, StatusJSON{SchemaVersion, st})
				}
				writeStatus(g.env.Stdout, st, addresses, verbose)
				return nil
			})
		},
	}
	c.Flags().BoolVar(&asJSON, "json", false, "print as JSON (schema in docs/cli.md)")
	c.Flags().BoolVarP(&addresses, "addresses", "n", false, "show sources' addresses instead of their names")
	c.Flags().BoolVarP(&verbose, "verbose", "v", false, "explain the columns, and show each source's last error")
	return c
}

func newSources(g *globals) *cobra.Command {
	var (
		asJSON, addresses, verbose, watch bool
		interval                          time.Duration
		count                             int
	)
	c := &cobra.Command{
		Use:   "sources",
		Short: "List the sources, with state markers like chronyc sources",
		Long: "sources lists gnomond's sources. The first column is the mode ('^' server, '#' local\n" +
			"clock), the second the state ('*' selected, '+' combined, '-' candidate, 'x' falseticker,\n" +
			"'~' outlier, 'd' too far, 'n' noselect, '?' unreachable); -v explains every column.\n" +
			"With --watch the table is redrawn when gnomond signals a change, and every --interval.",
		Example: "  gnomonctl sources -v\n  gnomonctl sources --watch\n  gnomonctl sources --watch --json --count 10 | jq .sources[0].offset_ns",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if count < 0 || interval <= 0 {
				return fail(ExitUsage, errors.New("--count must be 0 or more and --interval more than 0"))
			}
			if !watch {
				return g.withClient(cmd, readTimeout, func(ctx context.Context, c *client.Client) error {
					st, err := c.Status(ctx)
					if err != nil {
						return g.daemonError(err)
					}
					if asJSON {
						return writeJSON(g.env.Stdout, SourcesJSON{SchemaVersion: SchemaVersion, Sources: st.Sources})
					}
					writeSources(g.env.Stdout, st.Sources, addresses, verbose)
					return nil
				})
			}
			return g.withClient(cmd, 0, func(ctx context.Context, c *client.Client) error {
				return g.watchSources(ctx, c, interval, count, asJSON, addresses, verbose)
			})
		},
	}
	c.Flags().BoolVar(&asJSON, "json", false, "print as JSON (schema in docs/cli.md); with --watch one object per line")
	c.Flags().BoolVarP(&addresses, "addresses", "n", false, "show addresses instead of names")
	c.Flags().BoolVarP(&verbose, "verbose", "v", false, "explain the columns, and show each source's last error")
	c.Flags().BoolVarP(&watch, "watch", "w", false, "keep redrawing until interrupted")
	c.Flags().DurationVar(&interval, "interval", 2*time.Second, "with --watch: redraw at least every `DURATION`")
	c.Flags().IntVar(&count, "count", 0, "with --watch: stop after `N` redraws (0: never)")
	return c
}

func isTerminal(w any) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}

// watchSources redraws the sources table on every change gnomond signals
// and every interval, until ctx ends (Ctrl-C) or count redraws.
func (g *globals) watchSources(ctx context.Context, c *client.Client, interval time.Duration, count int, asJSON, addresses, verbose bool) error {
	changes, err := c.Watch(ctx)
	if err != nil {
		return g.daemonError(err)
	}
	tty := !asJSON && isTerminal(g.env.Stdout)
	tick := time.NewTicker(interval)
	defer tick.Stop()
	for n := 0; count == 0 || n < count; n++ {
		rctx, cancel := context.WithTimeout(ctx, readTimeout)
		st, err := c.Status(rctx)
		cancel()
		if ctx.Err() != nil {
			return nil
		}
		now := time.Now()
		switch {
		case err != nil && client.KindOf(err) == client.Unreachable:
			return g.daemonError(err)
		case asJSON && err != nil:
			// Keep the stream one object per line: report on stderr.
			fmt.Fprintf(g.env.Stderr, "gnomonctl: %v\n", err)
		case asJSON:
			b, err := json.Marshal(SourcesJSON{SchemaVersion: SchemaVersion, Time: now.Format(time.RFC3339Nano), Sources: st.Sources})
			if err != nil {
				return fail(ExitFailure, err)
			}
			fmt.Fprintf(g.env.Stdout, "%s\n", b)
		default:
			if tty {
				fmt.Fprint(g.env.Stdout, "\x1b[H\x1b[2J")
			} else if n > 0 {
				fmt.Fprintln(g.env.Stdout)
			}
			fmt.Fprintf(g.env.Stdout, "%s  (every %s; Ctrl-C to stop)\n\n", now.Format("2006-01-02 15:04:05"), interval)
			if err != nil {
				fmt.Fprintf(g.env.Stdout, "%v\n", err)
			} else {
				writeSources(g.env.Stdout, st.Sources, addresses, verbose)
			}
		}
		if count != 0 && n+1 >= count {
			break
		}
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
		case _, ok := <-changes:
			if !ok {
				if ctx.Err() != nil {
					return nil
				}
				return fail(ExitUnreachable, errors.New("the bus connection closed"))
			}
		}
	}
	return nil
}

type changeFlags struct {
	noAsk bool
}

func (f *changeFlags) add(c *cobra.Command) {
	c.Flags().BoolVar(&f.noAsk, "no-ask-password", false, "do not let polkit ask for a password; fail instead")
}

func (f *changeFlags) interactive() bool { return !f.noAsk }

func newAddSource(g *globals) *cobra.Command {
	var cf changeFlags
	c := &cobra.Command{
		Use:   "add-source [server|pool|nts] ADDRESS",
		Short: "Add a source until gnomond restarts",
		Long: "add-source asks gnomond to use one more source: an NTP server (the default), a pool, or an\n" +
			"NTS server, at host[:port]. It lasts until gnomond restarts or reloads; to keep it, add a\n" +
			"[[source]] to gnomon.toml. polkit decides (action org.gnomon.manage-sources).",
		Example: "  gnomonctl add-source ntp.example.net\n  gnomonctl add-source nts time.cloudflare.com\n  gnomonctl add-source pool 2.debian.pool.ntp.org",
		Args:    cobra.RangeArgs(1, 2),
		ValidArgsFunction: func(_ *cobra.Command, args []string, _ string) ([]string, cobra.ShellCompDirective) {
			if len(args) == 0 {
				return []string{"server\tone NTP server", "pool\ta DNS name with several servers", "nts\tan NTP server secured with NTS"}, cobra.ShellCompDirectiveNoFileComp
			}
			return nil, cobra.ShellCompDirectiveNoFileComp
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			mode, addr := "server", args[0]
			if len(args) == 2 {
				mode, addr = args[0], args[1]
			}
			var m config.SourceMode
			if err := m.UnmarshalText([]byte(mode)); err != nil {
				return fail(ExitUsage, fmt.Errorf("%v (see gnomonctl add-source --help)", err))
			}
			if _, err := config.ParseSourceAddress(addr, m); err != nil {
				return fail(ExitUsage, fmt.Errorf("address %v", err))
			}
			return g.withClient(cmd, changeTimeout, func(ctx context.Context, c *client.Client) error {
				p, err := c.AddSource(ctx, mode, addr, cf.interactive())
				if err != nil {
					return g.daemonError(err)
				}
				fmt.Fprintf(g.env.Stdout, "added %s %s as %s\n", mode, addr, p)
				if s, err := c.Source(ctx, p); err == nil && s.State == "unresolved" {
					why := s.LastError
					if why == "" {
						why = "still resolving"
					}
					fmt.Fprintf(g.env.Stdout, "not usable yet (%s); gnomond keeps trying: see gnomonctl sources\n", why)
				}
				return nil
			})
		},
	}
	cf.add(c)
	return c
}

// resolveSource finds the source the user named: an object path, an ID, a
// name or an address.
func resolveSource(ctx context.Context, c *client.Client, arg string) (godbus.ObjectPath, error) {
	if strings.HasPrefix(arg, "/") {
		if !godbus.ObjectPath(arg).IsValid() {
			return "", fail(ExitUsage, fmt.Errorf("%q is not a D-Bus object path", arg))
		}
		return godbus.ObjectPath(arg), nil
	}
	st, err := c.Status(ctx)
	if err != nil {
		return "", err
	}
	id, idErr := strconv.ParseUint(arg, 10, 64)
	var found []client.Source
	for _, s := range st.Sources {
		switch {
		case idErr == nil && s.ID == id,
			strings.EqualFold(s.Name, arg), strings.EqualFold(s.Address, arg):
			found = append(found, s)
		}
	}
	switch len(found) {
	case 0:
		return "", &exitError{code: ExitFailure, err: fmt.Errorf("no source %q", arg), hint: "\"gnomonctl sources\" lists the sources"}
	case 1:
		return godbus.ObjectPath(found[0].Path), nil
	}
	var ids []string
	for _, s := range found {
		ids = append(ids, fmt.Sprintf("%d (%s)", s.ID, s.Address))
	}
	return "", fail(ExitFailure, fmt.Errorf("%q names %d sources: %s; give its ID", arg, len(found), strings.Join(ids, ", ")))
}

// resolveSource is resolveSource with a D-Bus failure turned into the
// command's error (a usage-level error from the lookup stays as it is).
func (g *globals) resolveSource(ctx context.Context, c *client.Client, arg string) (godbus.ObjectPath, error) {
	p, err := resolveSource(ctx, c, arg)
	if err != nil {
		var ee *exitError
		if errors.As(err, &ee) {
			return "", err
		}
		return "", g.daemonError(err)
	}
	return p, nil
}

func newRemoveSource(g *globals) *cobra.Command {
	var cf changeFlags
	c := &cobra.Command{
		Use:   "remove-source SOURCE",
		Short: "Remove a source until gnomond restarts",
		Long: "remove-source asks gnomond to stop using a source, named by its name, address, ID (as in\n" +
			"sources --json) or object path. A configured source comes back when gnomond restarts or\n" +
			"reloads. polkit decides (action org.gnomon.manage-sources).",
		Example:           "  gnomonctl remove-source ntp.example.net\n  gnomonctl remove-source 3",
		Args:              cobra.ExactArgs(1),
		ValidArgsFunction: g.completeSources,
		RunE: func(cmd *cobra.Command, args []string) error {
			return g.withClient(cmd, changeTimeout, func(ctx context.Context, c *client.Client) error {
				p, err := g.resolveSource(ctx, c, args[0])
				if err != nil {
					return err
				}
				if err := c.RemoveSource(ctx, p, cf.interactive()); err != nil {
					return g.daemonError(err)
				}
				fmt.Fprintf(g.env.Stdout, "removed %s\n", p)
				return nil
			})
		},
	}
	cf.add(c)
	return c
}

func newBurst(g *globals) *cobra.Command {
	var cf changeFlags
	c := &cobra.Command{
		Use:   "burst [SOURCE]",
		Short: "Poll a source (or every source) quickly now",
		Long: "burst makes gnomond send a quick series of requests to a source, or to every source\n" +
			"without SOURCE, for a fresh measurement now. polkit decides (action org.gnomon.manage-sources).",
		Args:              cobra.MaximumNArgs(1),
		ValidArgsFunction: g.completeSources,
		RunE: func(cmd *cobra.Command, args []string) error {
			return g.withClient(cmd, changeTimeout, func(ctx context.Context, c *client.Client) error {
				p := godbus.ObjectPath("/")
				if len(args) == 1 {
					var err error
					if p, err = g.resolveSource(ctx, c, args[0]); err != nil {
						return err
					}
				}
				if err := c.Burst(ctx, p, cf.interactive()); err != nil {
					return g.daemonError(err)
				}
				if p == "/" {
					fmt.Fprintln(g.env.Stdout, "burst: every source")
				} else {
					fmt.Fprintf(g.env.Stdout, "burst: %s\n", p)
				}
				return nil
			})
		},
	}
	cf.add(c)
	return c
}

func newReload(g *globals) *cobra.Command {
	var cf changeFlags
	c := &cobra.Command{
		Use:   "reload",
		Short: "Make gnomond re-read its configuration file",
		Long: "reload asks gnomond to re-read gnomon.toml and apply it whole, and prints what changed.\n" +
			"An invalid file, or one changing a key only a restart applies (clock.mode, log.format, ...),\n" +
			"is refused, naming the key, and the running configuration kept: check a file first with\n" +
			"gnomonctl validate. polkit decides (action org.gnomon.manage-sources).",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return g.withClient(cmd, changeTimeout, func(ctx context.Context, c *client.Client) error {
				changes, err := c.Reload(ctx, cf.interactive())
				if err != nil {
					return g.daemonError(err)
				}
				if len(changes) == 0 {
					fmt.Fprintln(g.env.Stdout, "reloaded")
					return nil
				}
				fmt.Fprintln(g.env.Stdout, "reloaded:")
				for _, c := range changes {
					fmt.Fprintf(g.env.Stdout, "  %s\n", c)
				}
				return nil
			})
		},
	}
	cf.add(c)
	return c
}

// completeSources offers the running gnomond's sources (names, or
// addresses for a pool's members) for shell completion; nothing when it
// cannot be asked quickly.
func (g *globals) completeSources(cmd *cobra.Command, args []string, _ string) ([]string, cobra.ShellCompDirective) {
	if len(args) > 0 {
		return nil, cobra.ShellCompDirectiveNoFileComp
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	c, err := client.Connect(ctx, g.bus, g.env.Getenv)
	if err != nil {
		return nil, cobra.ShellCompDirectiveNoFileComp
	}
	defer c.Close()
	st, err := c.Status(ctx)
	if err != nil {
		return nil, cobra.ShellCompDirectiveNoFileComp
	}
	var out []string
	for _, s := range st.Sources {
		out = append(out, sourceLabel(s, false)+"\t"+s.Kind+", "+s.State)
	}
	return out, cobra.ShellCompDirectiveNoFileComp
}
