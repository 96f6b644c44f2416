package refclock

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"gnomon.dev/gnomon/tests/peers"
)

// TestGPSFake replays testdata/receiver.nmea through gpsfake, gpsd's own
// test harness (a pty as the receiver's serial port). gpsd sends no TOFF
// for a pty, so gnomond takes the TPV reports' time against the time it
// read them, gpsd's latency included. gpsfake paces the log by sentence
// (one every 1/7 s here, seven a block) from a log re-stamped to start
// just after now, but it starts feeding when its gpsd is up, so the log's
// seconds arrive late by its start-up time (0.7 s measured): the offset
// is bounded at 2 s, the jitter (gpsfake's steady pacing) at 50 ms.
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
	st := e.waitSource(60*time.Second, "the gpsfake source selected", "GPS", selected)
	gps := source(st, "GPS")
	if off := time.Duration(gps.OffsetNS); off > 2*time.Second || off < -2*time.Second || gps.JitterNS > uint64(50*time.Millisecond) {
		t.Errorf("offset %v jitter %v", off, time.Duration(gps.JitterNS))
	}
	if st.Stratum != 1 || st.Reference != "GPS" || gps.Refclock.FixMode != 3 {
		t.Errorf("stratum %d reference %q receiver %+v", st.Stratum, st.Reference, gps.Refclock)
	}
	t.Logf("gpsfake source: offset %v jitter %v receiver %+v", time.Duration(gps.OffsetNS), time.Duration(gps.JitterNS), *gps.Refclock)
}
