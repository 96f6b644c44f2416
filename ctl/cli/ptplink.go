package cli

import (
	"fmt"
	"io"

	"gnomon.dev/gnomon/ctl/client"
)

// writePTPLink is an 802.1AS port's link line in gnomonctl sources and
// status.
func writePTPLink(w io.Writer, l *client.PTPLink) {
	if l == nil {
		return
	}
	capable := "asCapable"
	if !l.AsCapable {
		capable = "not asCapable (" + l.NotCapable + ")"
	}
	fmt.Fprintf(w, "   802.1AS %s, neighborRateRatio %.9f, neighborPropDelay %d ns (thresh %d ns), peer %s, Sync 2^%d s, Pdelay 2^%d s\n",
		capable, l.NeighborRateRatio, l.NeighborPropDelayNS, l.NeighborPropDelayThreshNS, l.Peer, l.LogSyncInterval, l.LogPdelayReqInterval)
}
