package cli

import (
	"fmt"
	"io"
	"strings"
	"time"

	"gnomon.dev/gnomon/ctl/client"
)

// writeRefclock writes a reference clock's receiver line under its row of
// the sources table.
func writeRefclock(w io.Writer, r *client.Refclock, verbose bool) {
	if r == nil {
		return
	}
	var parts []string
	if !r.Connected {
		parts = append(parts, "not connected")
	}
	if r.Device != "" {
		parts = append(parts, r.Device)
	}
	if r.Release != "" {
		parts = append(parts, "gpsd "+r.Release)
	}
	if r.Driver != "" {
		parts = append(parts, r.Driver)
	}
	switch r.FixMode {
	case 1:
		parts = append(parts, "no fix")
	case 2:
		parts = append(parts, "2D fix")
	case 3:
		parts = append(parts, "3D fix")
	}
	if r.SatellitesSeen > 0 {
		parts = append(parts, fmt.Sprintf("%d/%d satellites", r.Satellites, r.SatellitesSeen))
	}
	if r.LastPPSUSec != 0 {
		parts = append(parts, "last PPS "+time.UnixMicro(int64(r.LastPPSUSec)).UTC().Format(time.RFC3339))
	}
	if r.Ignored > 0 {
		parts = append(parts, fmt.Sprintf("%d ignored", r.Ignored))
	}
	fmt.Fprintf(w, "   receiver: %s\n", strings.Join(parts, ", "))
	if verbose && r.LastIgnored != "" {
		fmt.Fprintf(w, "   last ignored: %s\n", r.LastIgnored)
	}
}
