package main

import (
	"fmt"
	"slices"

	"gnomon.dev/gnomon/service/config"
	"gnomon.dev/gnomon/service/privdrop"
)

// canSetClock reports whether this process holds CAP_SYS_TIME in its
// effective set: what adjtimex needs to change the clock. The packaged unit
// runs gnomond as user gnomon with CAP_SYS_TIME as an ambient capability,
// so the decision is on the capability, never on the uid. It is a variable
// so tests can pretend.
var canSetClock = func() bool {
	eff, _ := privdrop.Current()
	return slices.Contains(eff, privdrop.CapSysTime)
}

// clockMode decides the clock mode and, for observe mode, says why.
// warn is true when observe mode was not asked for: the configuration (or
// its default) wants the system clock but the process lacks CAP_SYS_TIME.
// Observe mode is otherwise only ever chosen explicitly, by --observe or
// by mode = "observe" in the file.
func clockMode(cfg *config.Config, observeFlag, canSet bool) (mode config.ClockMode, reason string, warn bool) {
	where := cfg.Path
	if where == "" {
		where = "the embedded default configuration"
	}
	switch {
	case observeFlag:
		return config.ClockObserve, "--observe given", false
	case cfg.Clock.ModeSet && cfg.Clock.Mode == config.ClockObserve:
		return config.ClockObserve, fmt.Sprintf("mode = \"observe\" in %s", where), false
	case canSet:
		return config.ClockSystem, "", false
	case cfg.Clock.ModeSet:
		return config.ClockObserve, fmt.Sprintf("mode = \"system\" in %s but the process lacks CAP_SYS_TIME", where), true
	default:
		return config.ClockObserve, "the process lacks CAP_SYS_TIME", true
	}
}
