package cli

import (
	"fmt"
	"io"
	"math"
	"strconv"
	"strings"

	"gnomon.dev/gnomon/ctl/client"
)

// stateMarks are the S column of the sources table, after chronyc's.
var stateMarks = map[string]byte{
	"selected":    '*',
	"combined":    '+',
	"candidate":   '-',
	"falseticker": 'x',
	"outlier":     '~',
	"too-far":     'd',
	"noselect":    'n',
	"unreachable": '?',
	"unresolved":  '?',
	"none":        '?',
}

// StateMark is a source state's one-character mark ('?' for one it does not know).
func StateMark(state string) byte {
	if m, ok := stateMarks[state]; ok {
		return m
	}
	return '?'
}

// modeMark is the M column: '^' a server (or a pool's member, or NTS), '#'
// a local reference clock, '=' a peer.
func modeMark(kind string) byte {
	switch kind {
	case "server", "pool", "nts", "ntp":
		return '^'
	case "peer":
		return '='
	case "":
		return ' '
	}
	return '#'
}

const sourcesLegend = `  .-- Source mode  '^' = server, '#' = local clock (refclock, PTP).
 / .- Source state '*' = selected, '+' = combined, '-' = candidate (not combined),
| /                'x' = falseticker, '~' = outlier (too variable),
||                 'd' = too far (root distance above max-distance),
||                 'n' = noselect, '?' = unreachable, unresolved or no usable measurement.
||                                                 .- Reachability register (octal): 377 =
||                                                /   each of the last 8 polls answered.
||                                               |    Offset: reference minus local, the
||                                               |    clock filter's pick (+ = local is behind).
`

// fmtSigned writes a signed nanosecond value with a unit chosen by size:
// "+12ns", "-3.456us", "+1.234ms", "+2.000s".
func fmtSigned(ns int64) string {
	sign := "+"
	if ns < 0 {
		sign = "-"
	}
	return sign + fmtNS(uint64(absInt64(ns)))
}

func absInt64(v int64) int64 {
	if v < 0 {
		if v == math.MinInt64 {
			return math.MaxInt64
		}
		return -v
	}
	return v
}

// fmtNS writes a non-negative nanosecond value with a unit chosen by size.
func fmtNS(ns uint64) string {
	v := float64(ns)
	switch {
	case ns < 1000:
		return strconv.FormatUint(ns, 10) + "ns"
	case v < 1e6:
		return strconv.FormatFloat(v/1e3, 'f', 3, 64) + "us"
	case v < 1e9:
		return strconv.FormatFloat(v/1e6, 'f', 3, 64) + "ms"
	}
	return strconv.FormatFloat(v/1e9, 'f', 3, 64) + "s"
}

// pollExp is the poll interval as chronyc shows it: log2 seconds.
func pollExp(us uint64) string {
	if us == 0 {
		return "-"
	}
	return strconv.Itoa(int(math.Round(math.Log2(float64(us) / 1e6))))
}

// sourceLabel is the name shown for a source: its configured name, or its
// address for a pool's members and with addresses.
func sourceLabel(s client.Source, addresses bool) string {
	label := s.Name
	if addresses || s.Kind == "pool" || label == "" {
		label = s.Address
	}
	if label == "" {
		label = s.Path
	}
	return label
}

// writeSources writes the sources table.
func writeSources(w io.Writer, sources []client.Source, addresses, verbose bool) {
	if verbose {
		io.WriteString(w, sourcesLegend)
	}
	fmt.Fprintf(w, "MS %-29s %7s %4s %5s %10s %10s %10s\n", "Name/IP address", "Stratum", "Poll", "Reach", "Offset", "Delay", "Jitter")
	fmt.Fprintln(w, strings.Repeat("=", 83))
	if len(sources) == 0 {
		fmt.Fprintln(w, "(no sources)")
	}
	for _, s := range sources {
		label := sourceLabel(s, addresses)
		if len(label) > 29 {
			label = label[:28] + "…"
		}
		offset, delay, jitter := fmtSigned(s.OffsetNS), fmtNS(s.DelayNS), fmtNS(s.JitterNS)
		if s.Reach == 0 && s.OffsetNS == 0 && s.DelayNS == 0 {
			offset, delay, jitter = "-", "-", "-"
		}
		stratum := strconv.Itoa(int(s.Stratum))
		if s.Stratum == 0 && s.Reach == 0 {
			stratum = "-"
		}
		poll := pollExp(s.PollUS)
		if s.State == "unresolved" {
			poll = "-" // not polled yet: its name does not resolve
		}
		fmt.Fprintf(w, "%c%c %-29s %7s %4s %5o %10s %10s %10s\n", modeMark(s.Kind), StateMark(s.State), label,
			stratum, poll, s.Reach, offset, delay, jitter)
		if s.Kind == "ptp" && s.PTPPortState != "" {
			fmt.Fprintf(w, "   PTP %s (BMCA %s), grandmaster %s, parent %s (offset from master, mean path delay)\n",
				s.PTPPortState, s.PTPDecision, s.PTPGrandmaster, s.PTPParent)
			writePTPPHC(w, s.PTPPHC)   // ptpphc.go
			writePTPLink(w, s.PTPLink) // ptplink.go
		}
		if s.LastError != "" && (verbose || s.Reach == 0 || s.State == "unresolved" || s.State == "unreachable") {
			fmt.Fprintf(w, "   last error: %s\n", s.LastError)
		}
		writeRefclock(w, s.Refclock, verbose)
	}
}

// writeStatus writes status's one screen: the manager, then the sources.
func writeStatus(w io.Writer, st *client.Status, addresses, verbose bool) {
	row := func(k, format string, args ...any) { fmt.Fprintf(w, "%-17s %s\n", k+":", fmt.Sprintf(format, args...)) }
	sync := "no"
	if st.Synchronized {
		sync = "yes"
	}
	ntp := "on"
	if !st.NTP {
		ntp = "off (timedatectl set-ntp true turns it on)"
	}
	row("Synchronized", "%s (%s)", sync, st.State)
	row("Synchronization", "%s", ntp)
	mode := st.ClockMode
	if mode == "observe" {
		mode += " (measures only; never adjusts the clock)"
	}
	row("Clock mode", "%s", mode)
	selected := "none"
	for _, s := range st.Sources {
		if s.Selected {
			selected = s.Name
			if s.Address != "" && s.Address != s.Name {
				selected += " (" + s.Address + ")"
			}
		}
	}
	row("Selected source", "%s", selected)
	ref := st.ReferenceID
	if st.Reference != "" {
		ref += " (" + st.Reference + ")"
	}
	row("Reference ID", "%s", ref)
	row("Stratum", "%d", st.Stratum)
	row("Offset", "%s (reference minus local)", fmtSigned(st.OffsetNS))
	row("Frequency", "%+.3f ppm", st.FrequencyPPM)
	row("Root delay", "%s", fmtNS(st.RootDelayNS))
	row("Root dispersion", "%s", fmtNS(st.RootDispersionNS))
	row("Root distance", "%s", fmtNS(st.RootDistanceNS))
	row("Leap", "%s", st.Leap)
	if st.AccuracyStatus != "" {
		row("Accuracy", "%s", st.AccuracyStatus)
	}
	if st.Panic != "" {
		row("Panic", "%s", st.Panic)
	}
	if st.Version != "" {
		row("gnomond", "%s", st.Version)
	}
	fmt.Fprintln(w)
	writeSources(w, st.Sources, addresses, verbose)
}
