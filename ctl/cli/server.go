package cli

import (
	"context"
	"fmt"
	"io"
	"maps"
	"slices"

	"github.com/spf13/cobra"

	"gnomon.dev/gnomon/ctl/client"
)

// ServersJSON is server --json.
type ServersJSON struct {
	SchemaVersion int             `json:"schema_version"`
	Servers       []client.Server `json:"servers"`
}

func newServer(g *globals) *cobra.Command {
	var asJSON bool
	c := &cobra.Command{
		Use:   "server",
		Short: "Show the counters of gnomond's NTP and NTS-KE servers",
		Long: "server shows, for every address gnomond serves NTP or NTS-KE on, what it counted since the\n" +
			"address was opened: requests, answers, Kiss-o'-Death replies by code, rate-limited drops,\n" +
			"malformed requests, NTS NAKs (cookie failures); for NTS-KE, connections accepted, served,\n" +
			"failed and limited. The names are explained in docs/dbus.md (GetServers).",
		Example: "  gnomonctl server\n  gnomonctl server --json | jq '.servers[0].counters.answers'",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return g.withClient(cmd, readTimeout, func(ctx context.Context, c *client.Client) error {
				list, err := c.Servers(ctx)
				if err != nil {
					return g.daemonError(err)
				}
				if asJSON {
					return writeJSON(g.env.Stdout, ServersJSON{SchemaVersion, list})
				}
				writeServers(g.env.Stdout, list)
				return nil
			})
		},
	}
	c.Flags().BoolVar(&asJSON, "json", false, "print as JSON (schema in docs/cli.md)")
	return c
}

// serverOrder is the order counters are printed in; others follow sorted.
var serverOrder = []string{
	"requests", "answers", "nts_answers", "kod_rate", "kod_deny", "kod_ntsn", "rate_limited", "filtered",
	"malformed", "ignored", "send_errors",
	"accepted", "served", "failed", "timeouts", "limited_conns", "limited_rate", "evicted", "refused",
}

func writeServers(w io.Writer, list []client.Server) {
	if len(list) == 0 {
		fmt.Fprintln(w, "gnomond serves nothing (no [[server]] or [[nts-ke-server]] in its configuration).")
		return
	}
	for i, s := range list {
		if i > 0 {
			fmt.Fprintln(w)
		}
		fmt.Fprintf(w, "%s %s\n", s.Protocol, s.Listen)
		keys := slices.Sorted(maps.Keys(s.Counters))
		slices.SortStableFunc(keys, func(a, b string) int {
			ia, ib := slices.Index(serverOrder, a), slices.Index(serverOrder, b)
			if ia < 0 {
				ia = len(serverOrder)
			}
			if ib < 0 {
				ib = len(serverOrder)
			}
			return ia - ib
		})
		for _, k := range keys {
			fmt.Fprintf(w, "  %-14s %d\n", k+":", s.Counters[k])
		}
	}
}
