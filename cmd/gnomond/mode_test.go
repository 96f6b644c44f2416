package main

import (
	"os"
	"strconv"
	"strings"
	"testing"

	"gnomon.dev/gnomon/service/config"
)

func TestClockMode(t *testing.T) {
	for _, tc := range []struct {
		name     string
		file     string // [clock] mode, "" for none
		flag     bool
		canSet   bool
		want     config.ClockMode
		warn     bool
		reasonIs string
	}{
		{"default with CAP_SYS_TIME", "", false, true, config.ClockSystem, false, ""},
		{"default without CAP_SYS_TIME", "", false, false, config.ClockObserve, true, "lacks CAP_SYS_TIME"},
		{"system without CAP_SYS_TIME", "system", false, false, config.ClockObserve, true, `mode = "system" in`},
		{"system with CAP_SYS_TIME", "system", false, true, config.ClockSystem, false, ""},
		{"observe asked in the file", "observe", false, true, config.ClockObserve, false, `mode = "observe" in`},
		{"--observe", "system", true, true, config.ClockObserve, false, "--observe"},
		{"--observe without CAP_SYS_TIME", "", true, false, config.ClockObserve, false, "--observe"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			src := "[clock]\n"
			if tc.file != "" {
				src += "mode = \"" + tc.file + "\"\n"
			}
			cfg, err := config.Parse("t.toml", []byte(src), config.Options{CanSetClock: tc.canSet})
			if err != nil {
				t.Fatal(err)
			}
			mode, reason, warn := clockMode(cfg, tc.flag, tc.canSet)
			if mode != tc.want || warn != tc.warn {
				t.Errorf("mode %q warn %t, want %q %t", mode, warn, tc.want, tc.warn)
			}
			if (tc.reasonIs == "") != (reason == "") || !strings.Contains(reason, tc.reasonIs) {
				t.Errorf("reason %q, want one containing %q", reason, tc.reasonIs)
			}
		})
	}
}

// On the machines the tests run on, nothing may set the clock: every test
// process runs as root but the tests start gnomond without CAP_SYS_TIME.
// This checks the capability probe itself against /proc/self/status.
func TestCanSetClockMatchesProc(t *testing.T) {
	want, ok := capSysTimeFromProc(t)
	if !ok {
		t.Skip("no CapEff in /proc/self/status")
	}
	if got := canSetClock(); got != want {
		t.Errorf("canSetClock() = %t, /proc/self/status says %t", got, want)
	}
}

func capSysTimeFromProc(t *testing.T) (bool, bool) {
	t.Helper()
	data, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return false, false
	}
	for _, l := range strings.Split(string(data), "\n") {
		if v, ok := strings.CutPrefix(l, "CapEff:"); ok {
			n, err := strconv.ParseUint(strings.TrimSpace(v), 16, 64)
			if err != nil {
				t.Fatalf("CapEff %q: %v", v, err)
			}
			return n&(1<<25) != 0, true
		}
	}
	return false, false
}
