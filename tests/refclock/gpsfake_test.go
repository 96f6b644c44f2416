package refclock

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"gnomon.dev/gnomon/ctl/client"
	"gnomon.dev/gnomon/tests/peers"
)

// TestGPSFake replays testdata/receiver.nmea through gpsfake, gpsd's own
// test harness (a pty as the receiver's serial port). gpsd sends no TOFF
// for a pty, so gnomond takes the TPV reports' time against the time it
// read them: this is that path. gpsfake paces the log sentence by
// sentence (every 1/7 s here, seven a block) and starts feeding when its
// gpsd is up, so the log's seconds arrive late by its start-up time and
// drift with its pacing (seen: 0.5 to 2.3 s late, drifting by tens of ms
// a second on a loaded machine): gpsfake is no time reference, and the
// accuracy tests are the gpsd -n ones (a loaded run saw 5.8 s late). Here
// the time is only checked to lie in the log's span as fed so far: not
// before its first second (start), nor ahead by more than the second
// gpsfake starts early, with everything else the views show.
func TestGPSFake(t *testing.T) {
	e := newBareEnv(t)
	gpsfake := peers.NeedTool(t, "gpsfake")
	peers.NeedTool(t, "gpsd")
	e.clearStaleSHM()
	t.Cleanup(e.removeSHM)
	l := loadNMEA(t, "testdata/receiver.nmea")
	start := time.Now().Truncate(time.Second).Add(3 * time.Second)
	var log []byte
	for i := range 60 {
		log = append(log, l.block(i, start.Add(time.Duration(i)*time.Second), feedNormal)...)
	}
	path := filepath.Join(e.dir, "replay.nmea")
	if err := os.WriteFile(path, log, 0o644); err != nil {
		t.Fatal(err)
	}
	e.gport = peers.FreePort(t)
	time.Sleep(time.Until(start.Add(-time.Second)))
	fake := peers.Start(t, e.dir, "gpsfake", nil, gpsfake, "-1", "-q", "-n", "-P", fmt.Sprint(e.gport),
		"-c", fmt.Sprint(1.0/float64(len(l.blocks[0]))), "-W", "90", path)
	e.pids = append(e.pids, fake.Cmd.Process.Pid)
	// gpsfake leaves its gpsd's control socket behind.
	t.Cleanup(func() { os.Remove(fmt.Sprintf("/tmp/gpsfake-%d.sock", fake.Cmd.Process.Pid)) })
	e.startGnomond(fmt.Sprintf("[[source]]\nmode = \"gpsd\"\naddress = \"127.0.0.1:%d\"\npoll = 1\n", e.gport))
	// gnomond (observe mode) moves its own time to the source's: then the
	// source's offset against it is small, and its NTP server's offset from
	// this machine's clock is the source's.
	st := e.waitSource(60*time.Second, "the gpsfake source selected and followed", "GPS", func(s *client.Source) error {
		if err := selected(s); err != nil {
			return err
		}
		if off := time.Duration(s.OffsetNS); s.Reach&7 != 7 || off > 50*time.Millisecond || off < -50*time.Millisecond {
			return fmt.Errorf("reach %o, offset %v from gnomond's time", s.Reach, off)
		}
		return nil
	})
	gps := source(st, "GPS")
	srv, _, h, err := peers.NewNTPClient(t, "127.0.0.1").Measure(peers.Loop4(e.ntp), 2*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	// gnomond's time is a time of the log: at least start, so at most
	// time.Since(start) behind; a block of the log is fed at the
	// earliest a second before its time (gpsfake starts at start-1s).
	if behind := time.Since(start) + 100*time.Millisecond; srv > time.Second+100*time.Millisecond || srv < -behind {
		t.Errorf("gnomond's time is %v from this clock, want within [-%v, 1.1s]: outside the replayed log", srv, behind)
	}
	if h.Stratum != 1 || st.Reference != "GPS" || gps.Refclock.FixMode != 3 || gps.Refclock.SatellitesSeen != 11 ||
		!strings.HasPrefix(gps.Refclock.Device, "/dev/pts/") {
		t.Errorf("stratum %d reference %q receiver %+v", h.Stratum, st.Reference, gps.Refclock)
	}
	t.Logf("gpsfake source: %v from gnomond's time, which is %v from this clock; jitter %v; receiver %+v",
		time.Duration(gps.OffsetNS), srv, time.Duration(gps.JitterNS), *gps.Refclock)
}
