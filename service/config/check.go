package config

import (
	"cmp"
	"fmt"
	"os/user"
	"slices"
)

// Check lists settings that are legal but risky, in file order, for the
// daemon to log at start and for tools to show. It does not change c.
func (c *Config) Check() []Warning {
	var ws []Warning
	warn := func(key, format string, args ...any) {
		ws = append(ws, Warning{File: c.Path, Line: lineOf(c.lines, key), Key: key, Msg: fmt.Sprintf(format, args...)})
	}

	if c.FileMode&0o002 != 0 {
		warn("", "the file is world-writable (mode %04o): anyone on this machine can choose where the time comes from (chmod o-w)", c.FileMode)
	}

	// Sources that can take part in selection; a pool counts as its members.
	selectable, first := 0, -1
	for i, s := range c.Sources {
		if s.NoSelect || s.Mode.NotNTP() {
			continue
		}
		if first < 0 {
			first = i
		}
		selectable += max(1, s.Count)
	}
	switch {
	case len(c.Sources) == 0 && len(c.PTPPorts) == 0:
		warn("", "no [[source]] is configured: the clock will not be synchronized")
	case selectable == 0 && c.ptpOnly():
	case selectable == 0:
		warn(indexKey("source", 0)+".noselect", "every source has noselect = true: none will be used to adjust the clock")
	case selectable == 1:
		warn(indexKey("source", first), "only one source: there is no majority to tell when it is wrong; configure 3 or more, or a pool")
	case selectable == 2:
		warn(indexKey("source", first), "only two sources: when they disagree there is no majority to say which is wrong; configure 3 or more, or a pool")
	}
	if n := c.Synchronization.MinimumAgreeingSources; selectable > 0 && n > selectable {
		warn("synchronization.minimum-agreeing-sources", "is %d, but only %d sources can be selected: the clock will never be adjusted", n, selectable)
	}

	if c.Clock.Mode == ClockSystem && c.Clock.StepLimit == -1 && c.Clock.PanicThreshold == 0 {
		warn("clock.step-limit", "with step-limit = -1 and panic-threshold = 0 the clock may be stepped by any amount at any time")
	}

	for i, s := range c.Servers {
		if s.Listen.Addr().IsUnspecified() && s.Allowlist == nil && !s.RateLimit.Enabled() {
			warn(indexKey("server", i)+".listen", "listens on every address with neither an allowlist nor a rate-limit: anyone who can reach it may use it as much as they like")
		}
	}

	c.fileWarnings(warn)
	c.userFileWarnings(warn)
	// Only a user named in the file: the default one comes with the
	// package (sysusers.d), and a missing one is gnomond's to report.
	if _, set := c.lines["security.user"]; set && c.Security.User != "" {
		u := c.Security.User
		if _, err := user.Lookup(u); err != nil {
			if _, uerr := user.LookupId(u); uerr != nil {
				warn("security.user", "no user %q on this machine: gnomond started as root will refuse to run (exit status 1); create it, or set user = \"\" to run as root", u)
			}
		}
	}
	ws = append(ws, c.checkAuth()...) // auth.go

	slices.SortStableFunc(ws, func(a, b Warning) int { return cmp.Compare(a.Line, b.Line) })
	return ws
}
