package csptp

import (
	"fmt"
	"testing"
	"time"

	"gnomon.dev/gnomon/ctl/client"
	"gnomon.dev/gnomon/engine/ntp"
	"gnomon.dev/gnomon/tests/peers"
)

// A CSPTP client is a source of the system clock like an NTP server: a
// gnomond in observe mode whose only source is a CSPTP server (gnomond's
// own [[csptp-server]], or ptp4u), both with clockClass 6 like a
// GPS-locked grandmaster, becomes synchronized, selects it, counts as
// stratum 1 with the reference "PTP", and serves that time over NTP.
func TestCSPTPSystemSource(t *testing.T) {
	t.Parallel()
	for _, server := range []string{"gnomond", "ptp4u"} {
		t.Run(server, func(t *testing.T) {
			t.Parallel()
			variant := "1588.1"
			if server == "ptp4u" {
				variant = "sptp"
			}
			srv, cli := pair(t)
			dir := peers.TempDir(t, 0o755)
			if server == "ptp4u" {
				startPTP4u(t, fbtool(t, "ptp4u"), dir, srv)
			} else {
				startGnomond(t, dir, srv, "server", gnomondServer)
			}
			ntpPort := peers.FreePort(t)
			gn, ctl := peers.StartGnomondBus(t, gnomondBin, gnomonctlBin, dir, cli, "client",
				fmt.Sprintf("[[source]]\nmode = \"csptp\"\naddress = \"10.77.0.1\"\nvariant = %q\ninterval = 0.25\n"+
					"[[server]]\nlisten = \"127.0.0.1:%d\"\n", variant, ntpPort))
			// gnomonctl status --json: the manager and every source
			var st client.Status
			var sel client.Source
			var last string
			if !waitFor(60*time.Second, func() bool {
				st = client.Status{}
				last = ctl(&st, "status")
				sel = client.Source{}
				for _, s := range st.Sources {
					if s.Path == st.SelectedPath {
						sel = s
					}
				}
				return st.Synchronized && sel.Kind == "csptp"
			}) {
				t.Fatalf("gnomond did not select the CSPTP source; gnomonctl said:\n%s\ngnomond:\n%s", last, gn.Tail(30))
			}
			t.Logf("CSPTP (%s) selected: status %+v, source %+v", server, st.Manager, sel)
			if st.Stratum != 1 || st.Reference != "PTP" || sel.State != "selected" || sel.Stratum != 0 ||
				sel.OffsetNS > 50_000 || sel.OffsetNS < -50_000 {
				t.Errorf("with the CSPTP source as the system peer: status %+v, source %+v", st.Manager, sel)
			}
			// and its time is served over NTP: stratum 1, the reference "PTP"
			// (a reference clock's time one hop away)
			var h ntp.Header
			var err error
			var off time.Duration
			peers.InNetnsDo(t, cli, func() {
				c := peers.NewNTPClient(t, "127.0.0.1")
				for range 10 {
					if off, _, h, err = c.Measure(peers.Loop4(ntpPort), 2*time.Second); err == nil && h.Stratum == 1 {
						return
					}
					time.Sleep(500 * time.Millisecond)
				}
			})
			if err != nil || h.Stratum != 1 || h.ReferenceID != 'P'<<24|'T'<<16|'P'<<8 || off > 5*time.Millisecond || off < -5*time.Millisecond {
				t.Errorf("NTP from the CSPTP-synchronized gnomond: %v, stratum %d, reference %#x, offset %v", err, h.Stratum, h.ReferenceID, off)
			}
		})
	}
}
