// Command gnomonctl shows and controls gnomond over D-Bus, checks gnomon.toml
// files and migrates chrony.conf. The command tree is in ctl/cli.
package main

import (
	"os"

	"gnomon.dev/gnomon/ctl/cli"
)

var version = "dev"

func main() {
	os.Exit(cli.Run(os.Args[1:], &cli.Env{Version: version}))
}
