package mangen

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/spf13/cobra"
)

// render writes p and, when groff is installed, checks that groff reads it
// without a warning and returns groff's plain-text rendering.
func render(t *testing.T, p *Page) (roff, text string) {
	t.Helper()
	var b bytes.Buffer
	if err := p.WriteRoff(&b); err != nil {
		t.Fatal(err)
	}
	groff, err := exec.LookPath("groff")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("groff: %v", err)
		}
		return b.String(), ""
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, groff, "-man", "-Tutf8", "-ww", "-rLL=200n")
	cmd.Stdin = bytes.NewReader(b.Bytes())
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	if err := cmd.Run(); err != nil || errOut.Len() > 0 {
		t.Fatalf("groff: %v\n%s\n%s", err, errOut.String(), b.String())
	}
	// Strip overstriking (bold, underline) for comparisons.
	plain := regexpOverstrike(out.String())
	return b.String(), plain
}

func regexpOverstrike(s string) string {
	var b strings.Builder
	rs := []rune(s)
	for i := 0; i < len(rs); i++ {
		if i+2 < len(rs) && rs[i+1] == '\b' {
			continue
		}
		if rs[i] == '\b' {
			continue
		}
		b.WriteRune(rs[i])
	}
	return b.String()
}

func TestFromCobra(t *testing.T) {
	root := &cobra.Command{Use: "tool", Short: "does things", Long: "tool does things.\n\nA second paragraph\n.dots start this line, with 'quotes' and a \\backslash."}
	root.PersistentFlags().String("bus", "system", "the `BUS` to use")
	sub := &cobra.Command{Use: "run [FILE]", Short: "run it", Example: "  tool run x", RunE: func(*cobra.Command, []string) error { return nil }}
	sub.Flags().BoolP("force", "f", false, "force it")
	group := &cobra.Command{Use: "group", Short: "a group"}
	leafCmd := &cobra.Command{Use: "leaf", Short: "a leaf", RunE: func(*cobra.Command, []string) error { return nil }}
	group.AddCommand(leafCmd)
	root.AddCommand(sub, group)
	p := FromCobra(root, "1", Section{Title: "see also", Level: 1, Body: []Node{Para("other(1)")}})
	p.Date, p.Source, p.Manual = "2026-01-01", "Test 1", "Test Manual"
	roff, text := render(t, p)
	for _, want := range []string{`.TH "TOOL" 1 "2026\-01\-01"`, `.SH "SYNOPSIS"`, `\fB\-\-bus\fR \fIBUS\fR`, `\fB\-f\fR, \fB\-\-force\fR`, `.SH "SEE ALSO"`, `\&.dots`} {
		if !strings.Contains(roff, want) {
			t.Errorf("roff lacks %q:\n%s", want, roff)
		}
	}
	if strings.Contains(roff, "tool group\n") || strings.Contains(roff, `.SS "tool group"`) {
		t.Errorf("a group of commands got its own entry:\n%s", roff)
	}
	if text != "" {
		for _, want := range []string{"tool - does things", "tool run [OPTIONS] [FILE]", "tool group leaf", "--bus BUS", "(default: system)", "\\backslash", "tool run x", ".dots start this line"} {
			if !strings.Contains(text, want) {
				t.Errorf("rendered page lacks %q:\n%s", want, text)
			}
		}
	}
}

const help = `gnomond keeps this machine's clock in time.
Without --config it reads /etc/gnomon/gnomon.toml.

Usage:
  gnomond [flags]
  gnomond [command]

Available Commands:
  check-config Validate a configuration file without starting
  completion   Generate the autocompletion script for the specified shell
  help         Help about any command

Flags:
  -c, --config string        configuration file (default /etc/gnomon/gnomon.toml, else the embedded default)
  -h, --help                 help for gnomond
      --no-dbus              do not serve D-Bus
  -x, --observe              never touch any clock

Use "gnomond [command] --help" for more information about a command.
`

func TestFromHelp(t *testing.T) {
	h := ParseHelp(help)
	if len(h.Usage) != 2 || len(h.Commands) != 3 || len(h.Flags) != 4 || !strings.HasPrefix(h.Long, "gnomond keeps") {
		t.Fatalf("ParseHelp = %+v", h)
	}
	if h.Flags[0] != [2]string{"-c, --config string", "configuration file (default /etc/gnomon/gnomon.toml, else the embedded default)"} {
		t.Errorf("flag 0 = %q", h.Flags[0])
	}
	sub := ParseHelp("Validate a configuration file without starting\n\nUsage:\n  gnomond check-config [PATH] [flags]\n\nFlags:\n  -h, --help   help for check-config\n")
	p := FromHelp("gnomond", "8", "the daemon", h, map[string]Help{"check-config": sub})
	p.Date = "2026-01-01"
	roff, text := render(t, p)
	if strings.Contains(roff, "[command]") || strings.Contains(roff, "help for") {
		t.Errorf("roff keeps cobra's [command] or --help:\n%s", roff)
	}
	if text != "" {
		for _, want := range []string{"gnomond [OPTIONS]", "gnomond check-config [PATH] [OPTIONS]", "-c, --config STRING", "-x, --observe", "--no-dbus"} {
			if !strings.Contains(text, want) {
				t.Errorf("rendered page lacks %q:\n%s", want, text)
			}
		}
	}
}

func TestFromMarkdown(t *testing.T) {
	md := "# title\n\nIntro with `code` and **bold** and a [link](#x).\n\n## Contents\n\n* [a](#a)\n\n## `[clock]`\n\n| key | type | default |\n| --- | --- | --- |\n| `mode` | string | `\"system\"` |\n| `a|b` | int | — |\n\n* **`mode`**: first\n  continued\n  * nested one\n  * nested two\n* second\n\n```\nFILE:LINE: KEY\n.starts with a dot\n```\n\n### Sub\n\nText.\n"
	p := FromMarkdown("gnomon.toml", "5", "config", []byte(md))
	p.Date = "2026-01-01"
	roff, text := render(t, p)
	if strings.Contains(roff, "Contents") || strings.Contains(roff, `"[CLOCK]"`) || !strings.Contains(roff, `.SH "[clock]"`) {
		t.Errorf("sections:\n%s", roff)
	}
	if text != "" {
		for _, want := range []string{"Intro with code and bold and a link.", "mode", "type: string; default: \"system\"", "a|b", "first continued", "nested one", "second", "FILE:LINE: KEY", ".starts with a dot", "Sub", "Text."} {
			if !strings.Contains(text, want) {
				t.Errorf("rendered page lacks %q:\n%s", want, text)
			}
		}
	}
}
