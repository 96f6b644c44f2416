package cli

import (
	"errors"
	"fmt"
	"io/fs"
	"os"

	"github.com/spf13/cobra"

	"gnomon.dev/gnomon/ctl/migrate"
	"gnomon.dev/gnomon/service/atomicfile"
)

func newMigrate(g *globals) *cobra.Command {
	c := &cobra.Command{
		Use:   "migrate",
		Short: "Turn another time daemon's configuration into gnomon.toml",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return fail(ExitUsage, errors.New("migrate needs a daemon to migrate from: gnomonctl migrate chrony [FILE] or gnomonctl migrate ptp4l [FILE]"))
		},
	}
	c.AddCommand(newMigrateChrony(g))
	c.AddCommand(newMigratePTP4l(g)) // migrate_ptp4l.go
	return c
}

func newMigrateChrony(g *globals) *cobra.Command {
	var (
		output string
		force  bool
	)
	c := &cobra.Command{
		Use:   "chrony [FILE]",
		Short: "Turn a chrony.conf into an equivalent gnomon.toml",
		Long: "migrate chrony reads a chrony.conf (default " + migrate.DefaultChronyConf + ") with every file it includes\n" +
			"(include, confdir, sourcedir) and writes the equivalent gnomon.toml on standard output (or to\n" +
			"--output). Each setting in it names the chrony.conf line it came from. On standard error it\n" +
			"prints one line for every directive or option that cannot be carried over exactly, with its\n" +
			"file, line and why. The result always passes validate.\n\n" +
			"Exit status: 0 migrated (warnings allowed), 1 the file could not be read (missing, binary,\n" +
			"too large, an include cycle) or --output exists, 2 usage.",
		Example: "  gnomonctl migrate chrony > /etc/gnomon/gnomon.toml.new\n" +
			"  gnomonctl migrate chrony /etc/chrony/chrony.conf --output /etc/gnomon/gnomon.toml --force",
		Args: cobra.MaximumNArgs(1),
		ValidArgsFunction: func(_ *cobra.Command, args []string, _ string) ([]string, cobra.ShellCompDirective) {
			if len(args) == 0 {
				return []string{"conf"}, cobra.ShellCompDirectiveFilterFileExt
			}
			return nil, cobra.ShellCompDirectiveNoFileComp
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			in := migrate.DefaultChronyConf
			if len(args) == 1 {
				in = args[0]
			}
			res, err := migrate.Chrony(in, migrate.Options{})
			if err != nil {
				return fail(ExitFailure, err)
			}
			for _, w := range res.Warnings {
				fmt.Fprintf(g.env.Stderr, "%s\n", w)
			}
			// The migrator promises output that gnomond accepts; check it.
			keyProblems, err := migrate.Check("(migrated gnomon.toml)", res.TOML)
			if err != nil {
				return fail(ExitFailure, fmt.Errorf("the migrated configuration is not valid (a bug in gnomonctl; please report it with your chrony.conf):\n%v", err))
			}
			for _, e := range keyProblems {
				// The key file is the machine's business: gnomond checks it again at start.
				fmt.Fprintf(g.env.Stderr, "warning: fix before starting gnomond: %s\n", e)
			}
			if output == "" || output == "-" {
				_, err := g.env.Stdout.Write(res.TOML)
				return err
			}
			if err := writeOutput(output, res.TOML, force); err != nil {
				return fail(ExitFailure, err)
			}
			fmt.Fprintf(g.env.Stderr, "wrote %s (%s); check it with: gnomonctl validate --config %s\n",
				output, plural(len(res.Warnings), "warning"), output)
			return nil
		},
	}
	c.Flags().StringVarP(&output, "output", "o", "", "write the gnomon.toml to `FILE` instead of standard output")
	c.Flags().BoolVar(&force, "force", false, "replace --output if it exists")
	return c
}

// writeOutput writes data to path atomically (atomicfile.WriteFile), so a
// reader never sees half a file and a failure leaves no file behind.
func writeOutput(path string, data []byte, force bool) error {
	if _, err := os.Lstat(path); err == nil && !force {
		return fmt.Errorf("%s exists (use --force to replace it)", path)
	} else if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	return atomicfile.WriteFile(path, data, 0o644)
}
