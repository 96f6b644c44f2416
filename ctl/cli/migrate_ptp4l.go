package cli

import (
	"fmt"

	"github.com/spf13/cobra"

	"gnomon.dev/gnomon/ctl/migrate"
	"gnomon.dev/gnomon/service/config"
)

func newMigratePTP4l(g *globals) *cobra.Command {
	var (
		output  string
		force   bool
		ifaces  []string
		phc2sys []string
	)
	c := &cobra.Command{
		Use:   "ptp4l [FILE]",
		Short: "Turn a linuxptp ptp4l.conf (and phc2sys command lines) into an equivalent gnomon.toml",
		Long: "migrate ptp4l reads a ptp4l.conf (default " + migrate.DefaultPTP4lConf + ": its [global] and interface\n" +
			"sections) and writes the equivalent gnomon.toml on standard output (or to --output): a [[ptp-port]]\n" +
			"per interface, or a [[source]] with mode = \"ptp\" for a slave-only one. ptp4l takes interfaces on its\n" +
			"command line too: give them with --interface. phc2sys command lines (--phc2sys) are migrated as well.\n" +
			"Each setting names the line it came from. On standard error it prints one line for every option\n" +
			"that cannot be carried over, with its file, line and why (a line repeating linuxptp's default is\n" +
			"carried silently). The result always passes validate.\n\n" +
			"Exit status: 0 migrated (warnings allowed), 1 the file could not be read or --output exists, 2 usage.",
		Example: "  gnomonctl migrate ptp4l /etc/linuxptp/ptp4l.conf --interface eth0 --phc2sys 'phc2sys -a -r'\n" +
			"  gnomonctl migrate ptp4l /usr/share/doc/linuxptp/configs/gPTP.cfg -i eth1 -o /etc/gnomon/gnomon.toml",
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			in := migrate.DefaultPTP4lConf
			if len(args) == 1 {
				in = args[0]
			}
			res, err := migrate.PTP4l(in, migrate.PTP4lOptions{Interfaces: ifaces, Phc2sys: phc2sys})
			if err != nil {
				return fail(ExitFailure, err)
			}
			for _, w := range res.Warnings {
				fmt.Fprintf(g.env.Stderr, "%s\n", w)
			}
			if _, err := config.Parse("(migrated gnomon.toml)", res.TOML, config.Options{CanSetClock: true}); err != nil {
				return fail(ExitFailure, fmt.Errorf("the migrated configuration is not valid (a bug in gnomonctl; please report it with your ptp4l.conf):\n%v", err))
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
	c.Flags().StringArrayVarP(&ifaces, "interface", "i", nil, "a port ptp4l was given with -i (repeatable)")
	c.Flags().StringArrayVar(&phc2sys, "phc2sys", nil, "a phc2sys `COMMAND-LINE` to migrate too (repeatable)")
	return c
}
