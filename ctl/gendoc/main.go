// Command gendoc writes Gnomon's manual pages: gnomonctl(1) from gnomonctl's
// cobra tree, gnomond(8) from the --help of a built gnomond, and
// gnomon.toml(5) from docs/configuration.md. mk/ctl.mk runs it ("make man").
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"time"

	"gnomon.dev/gnomon/ctl/cli"
	"gnomon.dev/gnomon/ctl/mangen"
)

func main() {
	out := flag.String("out", "build/man", "directory to write the pages to")
	gnomond := flag.String("gnomond", "bin/gnomond", "a built gnomond, whose --help becomes gnomond(8)")
	configDoc := flag.String("config-doc", "docs/configuration.md", "the Markdown source of gnomon.toml(5)")
	version := flag.String("version", "dev", "the version shown in the pages' footers")
	date := flag.String("date", "", "the date shown in the pages (default: $SOURCE_DATE_EPOCH, else today)")
	flag.Parse()
	if err := run(*out, *gnomond, *configDoc, *version, *date); err != nil {
		fmt.Fprintln(os.Stderr, "gendoc:", err)
		os.Exit(1)
	}
}

func pageDate(date string) (string, error) {
	if date != "" {
		return date, nil
	}
	if s := os.Getenv("SOURCE_DATE_EPOCH"); s != "" {
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			return "", fmt.Errorf("SOURCE_DATE_EPOCH=%q: %v", s, err)
		}
		return time.Unix(n, 0).UTC().Format("2006-01-02"), nil
	}
	return time.Now().UTC().Format("2006-01-02"), nil
}

func helpOf(bin string, args ...string) (mangen.Help, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	b, err := exec.CommandContext(ctx, bin, append(args, "--help")...).Output()
	if err != nil {
		return mangen.Help{}, fmt.Errorf("%s %v --help: %w", bin, args, err)
	}
	return mangen.ParseHelp(string(b)), nil
}

func run(out, gnomond, configDoc, version, date string) error {
	date, err := pageDate(date)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(out, 0o755); err != nil {
		return err
	}
	source := "Gnomon " + version
	write := func(p *mangen.Page) error {
		p.Date, p.Source, p.Manual = date, source, "Gnomon Manual"
		path := filepath.Join(out, p.Name+"."+p.Section)
		f, err := os.Create(path)
		if err != nil {
			return err
		}
		if err := p.WriteRoff(f); err != nil {
			f.Close()
			return err
		}
		return f.Close()
	}

	// gnomonctl(1)
	root := cli.NewRoot(&cli.Env{Version: version})
	if err := write(mangen.FromCobra(root, "1", CtlSections...)); err != nil {
		return err
	}

	// gnomond(8)
	h, err := helpOf(gnomond)
	if err != nil {
		return err
	}
	cmds := map[string]mangen.Help{}
	for _, c := range h.Commands {
		if c[0] == "help" || c[0] == "completion" {
			continue
		}
		if cmds[c[0]], err = helpOf(gnomond, c[0]); err != nil {
			return err
		}
	}
	if err := write(mangen.FromHelp("gnomond", "8", "the Gnomon time daemon", h, cmds, DaemonSections...)); err != nil {
		return err
	}

	// gnomon.toml(5)
	md, err := os.ReadFile(configDoc)
	if err != nil {
		return err
	}
	return write(mangen.FromMarkdown("gnomon.toml", "5", "configuration of gnomond, the Gnomon time daemon", md, ConfigSections...))
}

// CtlSections follow gnomonctl(1)'s commands.
var CtlSections = []mangen.Section{
	{Title: "EXIT STATUS", Level: 1, Body: []mangen.Node{
		mangen.Item{Tag: "**0**", Body: []mangen.Node{mangen.Para("Done (validate and migrate: with warnings or without).")}},
		mangen.Item{Tag: "**1**", Body: []mangen.Node{mangen.Para("The command failed: gnomond refused (polkit, no such source, bad argument), the configuration is invalid, or a file could not be read.")}},
		mangen.Item{Tag: "**2**", Body: []mangen.Node{mangen.Para("Usage: an unknown command or flag, or a bad argument.")}},
		mangen.Item{Tag: "**3**", Body: []mangen.Node{mangen.Para("gnomond is not running, or the bus cannot be reached.")}},
		mangen.Para("When gnomond is not running or polkit refused, a line starting with `hint:` follows the error on standard error."),
	}},
	{Title: "ENVIRONMENT", Level: 1, Body: []mangen.Node{
		mangen.Item{Tag: "**DBUS_SYSTEM_BUS_ADDRESS**", Body: []mangen.Node{mangen.Para("The system bus for `--bus system` (default `unix:path=/run/dbus/system_bus_socket`).")}},
		mangen.Item{Tag: "**DBUS_SESSION_BUS_ADDRESS**", Body: []mangen.Node{mangen.Para("The session bus for `--bus session` (else `$XDG_RUNTIME_DIR/bus`).")}},
	}},
	{Title: "FILES", Level: 1, Body: []mangen.Node{
		mangen.Item{Tag: "*/etc/gnomon/gnomon.toml*", Body: []mangen.Node{mangen.Para("What `validate` checks by default; see gnomon.toml(5).")}},
		mangen.Item{Tag: "*/etc/chrony/chrony.conf*", Body: []mangen.Node{mangen.Para("What `migrate chrony` reads by default.")}},
	}},
	{Title: "SEE ALSO", Level: 1, Body: []mangen.Node{mangen.Para("gnomond(8), gnomon.toml(5), timedatectl(1), polkit(8), chronyc(1)")}},
}

// DaemonSections follow gnomond(8)'s options. The exit codes are those of
// cmd/gnomond.
var DaemonSections = []mangen.Section{
	{Title: "EXIT STATUS", Level: 1, Body: []mangen.Node{
		mangen.Item{Tag: "**0**", Body: []mangen.Node{mangen.Para("Stopped cleanly (SIGTERM or SIGINT), or check-config found the configuration valid.")}},
		mangen.Item{Tag: "**1**", Body: []mangen.Node{mangen.Para("Failed while running (a socket could not be opened, a privilege could not be dropped).")}},
		mangen.Item{Tag: "**2**", Body: []mangen.Node{mangen.Para("Usage: bad flags or arguments.")}},
		mangen.Item{Tag: "**3**", Body: []mangen.Node{mangen.Para("The configuration is invalid; every problem is printed as FILE:LINE: KEY: MESSAGE.")}},
	}},
	{Title: "FILES", Level: 1, Body: []mangen.Node{
		mangen.Item{Tag: "*/etc/gnomon/gnomon.toml*", Body: []mangen.Node{mangen.Para("The configuration; see gnomon.toml(5). Without it gnomond runs on its built-in default.")}},
		mangen.Item{Tag: "*/var/lib/gnomon/*", Body: []mangen.Node{mangen.Para("State kept across restarts: the drift file, whether synchronization is on.")}},
	}},
	{Title: "SEE ALSO", Level: 1, Body: []mangen.Node{mangen.Para("gnomonctl(1), gnomon.toml(5), timedatectl(1), systemd-timedated(8)")}},
}

// ConfigSections follow gnomon.toml(5).
var ConfigSections = []mangen.Section{
	{Title: "SEE ALSO", Level: 1, Body: []mangen.Node{mangen.Para("gnomond(8), gnomonctl(1), chrony.conf(5)")}},
}
