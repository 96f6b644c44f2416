package cli

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"

	"github.com/spf13/cobra"

	"gnomon.dev/gnomon/service/config"
)

// ValidateReport is validate's --json output (docs/cli.md).
type ValidateReport struct {
	SchemaVersion int             `json:"schema_version"`
	File          string          `json:"file"`
	Valid         bool            `json:"valid"`
	Sources       int             `json:"sources"`
	Servers       int             `json:"servers"`
	Errors        []ProblemReport `json:"errors"`
	Warnings      []ProblemReport `json:"warnings"`
}

// ProblemReport is one error or warning.
type ProblemReport struct {
	File    string `json:"file"`
	Line    int    `json:"line,omitempty"`
	Column  int    `json:"column,omitempty"`
	Key     string `json:"key,omitempty"`
	Message string `json:"message"`
	Text    string `json:"text"` // the whole line as printed without --json
}

// Validate checks the gnomon.toml at path as gnomond would read it (running
// as root), and lists every error and warning.
func Validate(path string) ValidateReport {
	rep := ValidateReport{SchemaVersion: SchemaVersion, File: path, Errors: []ProblemReport{}, Warnings: []ProblemReport{}}
	cfg, err := config.Load(path, config.Options{CanSetClock: true})
	if err != nil {
		var es config.Errors
		if !errors.As(err, &es) {
			es = config.Errors{{File: path, Msg: err.Error(), Err: err}}
		}
		for _, e := range es {
			rep.Errors = append(rep.Errors, ProblemReport{File: e.File, Line: e.Line, Column: e.Column, Key: e.Key, Message: e.Msg, Text: e.Error()})
		}
		return rep
	}
	rep.Valid = true
	rep.Sources, rep.Servers = len(cfg.Sources), len(cfg.Servers)
	for _, w := range cfg.Check() {
		rep.Warnings = append(rep.Warnings, ProblemReport{File: w.File, Line: w.Line, Key: w.Key, Message: w.Msg, Text: w.String()})
	}
	return rep
}

func newValidate(g *globals) *cobra.Command {
	var (
		path   string
		strict bool
		asJSON bool
	)
	c := &cobra.Command{
		Use:   "validate [--config FILE]",
		Short: "Check a gnomon.toml without starting anything",
		Long: "validate reads a gnomon.toml (default " + config.DefaultPath + ") exactly as gnomond would, and lists\n" +
			"every error and every warning (a risky but legal setting), each as FILE:LINE: KEY: MESSAGE.\n" +
			"It needs no daemon. Exit status: 0 valid (warnings allowed), 1 invalid (or, with --strict,\n" +
			"any warning), 2 usage.",
		Example: "  gnomonctl validate\n  gnomonctl validate --config ./gnomon.toml --strict\n  gnomonctl migrate chrony > new.toml && gnomonctl validate -c new.toml",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			rep := Validate(path)
			if asJSON {
				if err := writeJSON(g.env.Stdout, rep); err != nil {
					return fail(ExitFailure, err)
				}
			} else {
				printValidate(g.env.Stdout, g.env.Stderr, rep)
			}
			switch {
			case !rep.Valid:
				return &exitError{code: ExitFailure, err: fmt.Errorf("%s is not valid", path), quiet: true}
			case strict && len(rep.Warnings) > 0:
				return &exitError{code: ExitFailure, err: fmt.Errorf("%s has warnings", path), quiet: true}
			}
			return nil
		},
	}
	c.Flags().StringVarP(&path, "config", "c", config.DefaultPath, "the `FILE` to check")
	c.Flags().BoolVar(&strict, "strict", false, "fail (exit status 1) on warnings too")
	c.Flags().BoolVar(&asJSON, "json", false, "print the result as JSON (schema in docs/cli.md)")
	return c
}

func printValidate(stdout, stderr io.Writer, rep ValidateReport) {
	for _, e := range rep.Errors {
		fmt.Fprintf(stderr, "error: %s\n", e.Text)
	}
	for _, w := range rep.Warnings {
		fmt.Fprintf(stderr, "warning: %s\n", w.Text)
	}
	if !rep.Valid {
		fmt.Fprintf(stdout, "%s: invalid (%s)\n", rep.File, plural(len(rep.Errors), "error"))
		return
	}
	fmt.Fprintf(stdout, "%s: valid (%s, %s, %s)\n", rep.File,
		plural(rep.Sources, "source"), plural(rep.Servers, "server"), plural(len(rep.Warnings), "warning"))
}

func plural(n int, word string) string {
	if n == 1 {
		return "1 " + word
	}
	return fmt.Sprintf("%d %ss", n, word)
}

func writeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}
