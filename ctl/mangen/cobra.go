package mangen

import (
	"fmt"
	"regexp"
	"strings"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
)

// FromCobra builds a page from a cobra command tree: NAME from Short,
// SYNOPSIS from every command's usage line, DESCRIPTION from Long, OPTIONS
// from the root's flags, COMMANDS with each command's text, flags and
// examples; extra sections (EXIT STATUS, FILES, SEE ALSO ...) follow.
func FromCobra(root *cobra.Command, section string, extra ...Section) *Page {
	p := &Page{Name: root.Name(), Section: section, Short: root.Short}
	var synopsis []string
	cmds := visible(root)
	synopsis = append(synopsis, root.Name()+" [OPTIONS] COMMAND ...")
	for _, c := range cmds {
		if leaf(c) {
			synopsis = append(synopsis, useLine(c))
		}
	}
	p.Sections = append(p.Sections, Section{Title: "SYNOPSIS", Level: 1, Body: []Node{Code(strings.Join(synopsis, "\n"))}})
	p.Sections = append(p.Sections, Section{Title: "DESCRIPTION", Level: 1, Body: paragraphs(root.Long)})
	if opts := flagItems(root.PersistentFlags()); len(opts) > 0 {
		p.Sections = append(p.Sections, Section{Title: "OPTIONS", Level: 1, Body: opts})
	}
	p.Sections = append(p.Sections, Section{Title: "COMMANDS", Level: 1})
	for _, c := range cmds {
		if !leaf(c) {
			continue
		}
		body := []Node{Code(useLine(c))}
		text := c.Long
		if text == "" {
			text = c.Short
		}
		body = append(body, paragraphs(text)...)
		body = append(body, flagItems(c.LocalNonPersistentFlags())...)
		if c.Example != "" {
			body = append(body, Para("Examples:"), Code(dedent(c.Example)))
		}
		p.Sections = append(p.Sections, Section{Title: c.CommandPath(), Level: 2, Body: body})
	}
	p.Sections = append(p.Sections, extra...)
	return p
}

// leaf: a command that does something (not a group of commands).
func leaf(c *cobra.Command) bool { return c.Runnable() && !c.HasAvailableSubCommands() }

// visible lists the commands under root, depth first, without hidden ones
// and cobra's help command.
func visible(root *cobra.Command) []*cobra.Command {
	var out []*cobra.Command
	var walk func(c *cobra.Command)
	walk = func(c *cobra.Command) {
		for _, s := range c.Commands() {
			if s.Hidden || s.Name() == "help" || !s.IsAvailableCommand() && !s.HasAvailableSubCommands() {
				continue
			}
			out = append(out, s)
			walk(s)
		}
	}
	walk(root)
	return out
}

func useLine(c *cobra.Command) string {
	u := c.UseLine()
	u = strings.Replace(u, " [flags]", "", 1)
	if c.HasAvailableLocalFlags() && !strings.Contains(u, "[") {
		u += " [OPTIONS]"
	} else if c.HasAvailableLocalFlags() {
		u = strings.Replace(u, c.Name(), c.Name()+" [OPTIONS]", 1)
	}
	return u
}

// flagItems describes each flag as an .TP item: "-c, --config FILE".
func flagItems(fs *pflag.FlagSet) []Node {
	var items []Node
	fs.VisitAll(func(f *pflag.Flag) {
		if f.Hidden || f.Name == "help" {
			return
		}
		items = append(items, flagItem(f))
	})
	return items
}

func flagItem(f *pflag.Flag) Item {
	varname, usage := pflag.UnquoteUsage(f)
	tag := "**--" + f.Name + "**"
	if f.Shorthand != "" {
		tag = "**-" + f.Shorthand + "**, " + tag
	}
	if varname != "" {
		tag += " *" + strings.ToUpper(varname) + "*"
	}
	if f.DefValue != "" && f.DefValue != "false" && f.DefValue != "0" && f.DefValue != "[]" {
		usage += fmt.Sprintf(" (default: `%s`)", f.DefValue)
	}
	return Item{Tag: tag, Body: []Node{Para(usage)}}
}

// paragraphs splits text at blank lines.
func paragraphs(text string) []Node {
	var out []Node
	for _, p := range strings.Split(strings.TrimSpace(text), "\n\n") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, Para(p))
		}
	}
	return out
}

func dedent(s string) string {
	lines := strings.Split(strings.Trim(s, "\n"), "\n")
	minIndent := -1
	for _, l := range lines {
		if strings.TrimSpace(l) == "" {
			continue
		}
		n := len(l) - len(strings.TrimLeft(l, " \t"))
		if minIndent < 0 || n < minIndent {
			minIndent = n
		}
	}
	for i, l := range lines {
		if len(l) >= minIndent && minIndent > 0 {
			lines[i] = l[minIndent:]
		}
	}
	return strings.Join(lines, "\n")
}

// Help is what a cobra program's --help says.
type Help struct {
	Long     string
	Usage    []string
	Commands [][2]string // name, short
	Flags    [][2]string // "-c, --config string", usage
}

var helpFlag = regexp.MustCompile(`^\s+((?:-\w, )?--[\w-]+(?: \w+)?)\s{2,}(.*)$`)

// ParseHelp reads cobra's default help template: the long text, "Usage:",
// "Available Commands:" and "Flags:" (and "Global Flags:").
func ParseHelp(text string) Help {
	var h Help
	section := "long"
	var long []string
	for _, l := range strings.Split(text, "\n") {
		switch strings.TrimSpace(l) {
		case "Usage:":
			section = "usage"
			continue
		case "Available Commands:", "Additional Commands:":
			section = "commands"
			continue
		case "Flags:", "Global Flags:":
			section = "flags"
			continue
		}
		if strings.HasPrefix(l, "Use \"") || strings.HasSuffix(strings.TrimSpace(l), ":") && section != "long" && !strings.HasPrefix(l, " ") {
			section = "other"
			continue
		}
		switch section {
		case "long":
			long = append(long, l)
		case "usage":
			if s := strings.TrimSpace(l); s != "" {
				h.Usage = append(h.Usage, s)
			}
		case "commands":
			if f := strings.Fields(l); len(f) > 0 {
				h.Commands = append(h.Commands, [2]string{f[0], strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(l), f[0]))})
			}
		case "flags":
			if m := helpFlag.FindStringSubmatch(l); m != nil {
				h.Flags = append(h.Flags, [2]string{m[1], strings.TrimSpace(m[2])})
			} else if s := strings.TrimSpace(l); s != "" && len(h.Flags) > 0 {
				h.Flags[len(h.Flags)-1][1] += " " + s
			}
		}
	}
	h.Long = strings.TrimSpace(strings.Join(long, "\n"))
	return h
}

// FromHelp builds a page from a program's --help and its commands' (by
// name); like FromCobra, for programs whose tree cannot be imported.
func FromHelp(name, section, short string, root Help, commands map[string]Help, extra ...Section) *Page {
	p := &Page{Name: name, Section: section, Short: short}
	usage := func(lines []string) []string {
		var out []string
		for _, l := range lines {
			if !strings.HasSuffix(l, " [command]") {
				out = append(out, strings.Replace(l, " [flags]", " [OPTIONS]", 1))
			}
		}
		return out
	}
	synopsis := usage(root.Usage)
	for _, c := range root.Commands {
		if h, ok := commands[c[0]]; ok {
			synopsis = append(synopsis, usage(h.Usage)...)
		}
	}
	p.Sections = append(p.Sections, Section{Title: "SYNOPSIS", Level: 1, Body: []Node{Code(strings.Join(synopsis, "\n"))}})
	p.Sections = append(p.Sections, Section{Title: "DESCRIPTION", Level: 1, Body: paragraphs(root.Long)})
	p.Sections = append(p.Sections, Section{Title: "OPTIONS", Level: 1, Body: helpFlagItems(root.Flags)})
	var cmdSecs []Section
	for _, c := range root.Commands {
		h, ok := commands[c[0]]
		if !ok {
			continue
		}
		body := []Node{Code(strings.Join(usage(h.Usage), "\n"))}
		text := h.Long
		if text == "" {
			text = c[1]
		}
		body = append(body, paragraphs(text)...)
		body = append(body, helpFlagItems(h.Flags)...)
		cmdSecs = append(cmdSecs, Section{Title: name + " " + c[0], Level: 2, Body: body})
	}
	if len(cmdSecs) > 0 {
		p.Sections = append(p.Sections, Section{Title: "COMMANDS", Level: 1})
		p.Sections = append(p.Sections, cmdSecs...)
	}
	p.Sections = append(p.Sections, extra...)
	return p
}

func helpFlagItems(flags [][2]string) []Node {
	var items []Node
	for _, f := range flags {
		if strings.HasSuffix(f[0], "--help") {
			continue
		}
		tag := f[0]
		// "-c, --config string" -> bold names, italic upper-case value.
		parts := strings.Fields(strings.ReplaceAll(tag, ",", ""))
		var out []string
		for _, p := range parts {
			if strings.HasPrefix(p, "-") {
				out = append(out, "**"+p+"**")
			} else {
				out = append(out, "*"+strings.ToUpper(p)+"*")
			}
		}
		tag = strings.Join(out, " ")
		if len(parts) > 1 && strings.HasPrefix(parts[0], "-") && strings.HasPrefix(parts[1], "--") {
			tag = strings.Replace(tag, "** **--", "**, **--", 1)
		}
		items = append(items, Item{Tag: tag, Body: []Node{Para(f[1])}})
	}
	return items
}
