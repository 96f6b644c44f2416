package cli

import (
	"bytes"
	"strings"
	"testing"

	"gnomon.dev/gnomon/ctl/client"
)

func TestWritePTPLink(t *testing.T) {
	var b bytes.Buffer
	writePTPLink(&b, nil)
	if b.Len() != 0 {
		t.Errorf("no link, yet %q", b.String())
	}
	writePTPLink(&b, &client.PTPLink{AsCapable: false, NotCapable: "Pdelay responses lost", NeighborRateRatio: 1.0000001,
		NeighborPropDelayNS: 912, NeighborPropDelayThreshNS: 800, Peer: "001122.fffe.334455-1", LogSyncInterval: -3})
	got := b.String()
	for _, want := range []string{"not asCapable (Pdelay responses lost)", "neighborRateRatio 1.000000100", "neighborPropDelay 912 ns (thresh 800 ns)", "peer 001122.fffe.334455-1", "Sync 2^-3 s"} {
		if !strings.Contains(got, want) {
			t.Errorf("%q not in %q", want, got)
		}
	}
}
