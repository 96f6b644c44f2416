// Package refclock tests gnomond's reference clocks against the real gpsd
// (Debian's 3.22): gpsd -n reads NMEA from a tcp:// device the test
// serves (testdata/receiver.nmea re-stamped to the current second), and
// gnomond, in observe mode without CAP_SYS_TIME, reads gpsd's JSON and
// its SHM segment NTP0; a C program built from testdata feeds the SOCK
// source with chrony's struct. An NMEA feed over TCP has no PPS: gpsd
// sends no PPS reports and writes neither SHM unit 1 nor chrony's SOCK
// socket (it does both only for a PPS on a serial or USB port); those
// paths, and the PPS ioctls on a real kernel, are TestVMPPS (vm_test.go,
// make test-refclock-vm), in a guest.
package refclock

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"gnomon.dev/gnomon/ctl/client"
	erc "gnomon.dev/gnomon/engine/refclock"
	"gnomon.dev/gnomon/tests/peers"
)

var gnomondBin, gnomonctlBin string

func TestMain(m *testing.M) {
	os.Exit(peers.BuildAndRun(m, map[string]*string{"./cmd/gnomond": &gnomondBin, "./cmd/gnomonctl": &gnomonctlBin}))
}

// feedLag is how long after the second the feed sends it; gnomond's gpsd
// source corrects it with offset. NMEA time is good to a few ms at best,
// and on a loaded machine the feed, gpsd and gnomond add tens of ms of
// scheduling delay (seen: up to 47 ms): offsets are bounded by nmeaBound.
const feedLag = 50 * time.Millisecond

const nmeaBound = 50 * time.Millisecond

// env is one test's gpsd, gnomond and private bus.
type env struct {
	t     *testing.T
	dir   string
	feed  *feeder
	gpsd  *peers.Proc
	gport int
	pids  []int // gpsd and gnomond processes, whose SHM segments are removed at the end
	bus   *peers.SystemBus
	gn    *peers.Proc
	ntp   int // gnomond's NTP server port
	root  string
	start time.Time
}

// newEnv starts the NMEA feed and gpsd on it.
func newEnv(t *testing.T) *env {
	e := newBareEnv(t)
	peers.NeedTool(t, "gpsd")
	e.clearStaleSHM()
	t.Cleanup(e.removeSHM)
	e.feed = startFeeder(t, loadNMEA(t, "testdata/receiver.nmea"), feedLag)
	e.gport = peers.FreePort(t)
	e.startGPSD()
	return e
}

// newBareEnv is an env without gpsd.
func newBareEnv(t *testing.T) *env {
	peers.NeedRoot(t, "gpsd's SHM segments NTP0/NTP1 are root's, setpriv")
	for _, tool := range []string{"setpriv", "dbus-daemon"} {
		peers.NeedTool(t, tool)
	}
	return &env{t: t, dir: peers.TempDir(t, 0o755), start: time.Now().Add(-time.Second)}
}

func (e *env) startGPSD() {
	e.t.Helper()
	e.gpsd = peers.Start(e.t, e.dir, "gpsd", nil, peers.NeedTool(e.t, "gpsd"), "-N", "-n", "-D", "1",
		"-S", fmt.Sprint(e.gport), "-F", filepath.Join(e.dir, "gpsd.sock"), "-P", filepath.Join(e.dir, "gpsd.pid"),
		"tcp://"+e.feed.addr())
	e.pids = append(e.pids, e.gpsd.Cmd.Process.Pid)
}

// gpsdKey says whether a SysV key is one gpsd uses: NTP0..NTP7, and its
// export segment ("GPSD", or "Gp.." under gpsfake).
func gpsdKey(k int) bool {
	return (k >= erc.SHMKeyBase && k < erc.SHMKeyBase+8) || k == 0x47505344 || k>>16 == 0x4770
}

type shmSeg struct {
	key, id, cpid, nattch int
	ctime                 int64
}

// shmSegments lists the SysV segments (/proc/sysvipc/shm).
func shmSegments(t *testing.T) []shmSeg {
	b, err := os.ReadFile("/proc/sysvipc/shm")
	if err != nil {
		t.Logf("cannot list SysV segments: %v", err)
		return nil
	}
	var out []shmSeg
	for _, line := range strings.Split(string(b), "\n")[1:] {
		f := strings.Fields(line)
		if len(f) < 14 {
			continue
		}
		var s shmSeg
		fmt.Sscan(f[0], &s.key)
		fmt.Sscan(f[1], &s.id)
		fmt.Sscan(f[4], &s.cpid)
		fmt.Sscan(f[6], &s.nattch)
		fmt.Sscan(f[13], &s.ctime)
		out = append(out, s)
	}
	return out
}

// removeSHM removes the SysV segments at gpsd's keys that our processes
// created (they outlive them): by creator, or, for the gpsd that gpsfake
// starts as its child, created since the test began by a process that is
// gone, with nobody attached.
func (e *env) removeSHM() {
	for _, s := range shmSegments(e.t) {
		if !gpsdKey(s.key) {
			continue
		}
		ours := slices.Contains(e.pids, s.cpid) ||
			(s.ctime >= e.start.Unix() && s.nattch == 0 && unix.Kill(s.cpid, 0) != nil)
		if ours {
			unix.SysvShmCtl(s.id, unix.IPC_RMID, nil)
		}
	}
}

// clearStaleSHM removes segments at gpsd's keys whose creator is gone
// and which nobody has attached (left by a killed test run); a live
// writer's segment fails the test rather than being touched.
func (e *env) clearStaleSHM() {
	for _, s := range shmSegments(e.t) {
		if !gpsdKey(s.key) {
			continue
		}
		if unix.Kill(s.cpid, 0) == nil || s.nattch > 0 {
			e.t.Fatalf("SHM key 0x%08x is in use by pid %d (another gpsd, ntpd or chronyd?): refusing to share it", s.key, s.cpid)
		}
		unix.SysvShmCtl(s.id, unix.IPC_RMID, nil)
	}
}

// startGnomond starts gnomond in observe mode without CAP_SYS_TIME, on a
// private system bus, with an NTP server on a free port and the given
// [[source]] tables.
func (e *env) startGnomond(sources ...string) {
	e.t.Helper()
	if e.bus == nil {
		e.bus = peers.StartSystemBus(e.t, e.dir, peers.PermissiveBusPolicy)
		e.root = peers.NewSystemRoot(e.t, e.dir, "UTC")
	}
	e.ntp = peers.FreePort(e.t)
	cfg := fmt.Sprintf("[clock]\nmode = \"observe\"\ndrift-file = \"\"\n\n%s\n[[server]]\nlisten = \"127.0.0.1:%d\"\n",
		strings.Join(sources, "\n"), e.ntp)
	path := filepath.Join(e.dir, "gnomon.toml")
	if err := os.WriteFile(path, []byte(cfg), 0o644); err != nil {
		e.t.Fatal(err)
	}
	e.gn = peers.Start(e.t, e.dir, "gnomond", []string{"DBUS_SYSTEM_BUS_ADDRESS=" + e.bus.Addr},
		peers.Safe(e.t, gnomondBin, "--config", path, "--user", "", "--state-dir", "", "--system-root", e.root, "--log-level", "debug")...)
	e.pids = append(e.pids, e.gn.Cmd.Process.Pid)
}

func (e *env) gpsdSource(extra string) string {
	return fmt.Sprintf("[[source]]\nmode = \"gpsd\"\naddress = \"127.0.0.1:%d\"\npoll = 1\noffset = %g\n%s\n", e.gport, feedLag.Seconds(), extra)
}

// gnomonctl runs gnomonctl on the private bus.
func (e *env) gnomonctl(args ...string) (string, error) {
	cmd := exec.Command(gnomonctlBin, args...)
	cmd.Env = append(os.Environ(), "DBUS_SYSTEM_BUS_ADDRESS="+e.bus.Addr)
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// status is gnomonctl status --json.
func (e *env) status() (*client.Status, error) {
	out, err := e.gnomonctl("status", "--json")
	if err != nil {
		return nil, fmt.Errorf("gnomonctl status: %v: %s", err, out)
	}
	var st client.Status
	if err := json.Unmarshal([]byte(out), &st); err != nil {
		return nil, fmt.Errorf("%v: %s", err, out)
	}
	return &st, nil
}

func source(st *client.Status, name string) *client.Source {
	for i := range st.Sources {
		if st.Sources[i].Name == name {
			return &st.Sources[i]
		}
	}
	return nil
}

// waitReference waits until gnomond's own view (the Manager's
// properties) says stratum 1 from ref. gnomonctl status reads them and
// each source's with separate calls, so a source can be seen selected in
// a snapshot newer than the Manager's: a check of both right after
// waitSource races.
func (e *env) waitReference(ref string) {
	e.t.Helper()
	peers.Eventually(e.t, 10*time.Second, "gnomond at stratum 1 from "+ref, func() error {
		st, err := e.status()
		if err != nil {
			return err
		}
		if st.Stratum != 1 || st.Reference != ref {
			return fmt.Errorf("gnomond stratum %d reference %q, want 1 %s", st.Stratum, st.Reference, ref)
		}
		return nil
	})
}

// waitSource waits until the named source satisfies ok.
func (e *env) waitSource(timeout time.Duration, what, name string, ok func(*client.Source) error) *client.Status {
	e.t.Helper()
	var last *client.Status
	peers.Eventually(e.t, timeout, what, func() error {
		if !e.gn.Alive() {
			e.t.Fatalf("gnomond exited: %v", e.gn.Err())
		}
		st, err := e.status()
		if err != nil {
			return err
		}
		last = st
		s := source(st, name)
		if s == nil {
			return fmt.Errorf("no source %s in %+v", name, st.Sources)
		}
		return ok(s)
	})
	return last
}

func TestGPSDSelectedStratumOne(t *testing.T) {
	e := newEnv(t)
	e.startGnomond(e.gpsdSource(""),
		"[[source]]\nmode = \"shm\"\nunit = 0\npoll = 1\nnoselect = true\noffset = 0.05\n")
	st := e.waitSource(60*time.Second, "the gpsd source selected", "GPS", func(s *client.Source) error {
		if s.State != "selected" || s.Reach == 0 {
			return fmt.Errorf("GPS is %s, reach %o", s.State, s.Reach)
		}
		return nil
	})
	e.waitReference("GPS")
	gps := source(st, "GPS")
	if gps.Kind != "gpsd" || gps.Stratum != 0 || gps.Refclock == nil || !gps.Refclock.Connected ||
		gps.Refclock.Release != "3.22" || gps.Refclock.FixMode != 3 || gps.Refclock.Satellites != 9 || gps.Refclock.SatellitesSeen != 11 {
		t.Errorf("gpsd source %+v %+v", gps, gps.Refclock)
	}
	// NMEA time over TCP with the lag corrected.
	if off := time.Duration(gps.OffsetNS); off > nmeaBound || off < -nmeaBound {
		t.Errorf("gpsd source offset %v", off)
	}
	t.Logf("gpsd source: offset %v jitter %v; receiver %+v", time.Duration(gps.OffsetNS), time.Duration(gps.JitterNS), *gps.Refclock)

	// gpsd writes what it sends as TOFF into NTP0 too: the SHM source
	// (noselect) sees the same time.
	st = e.waitSource(30*time.Second, "the SHM source reachable", "SHM0", func(s *client.Source) error {
		if s.Reach == 0 || s.State != "noselect" {
			return fmt.Errorf("SHM0 is %s, reach %o", s.State, s.Reach)
		}
		return nil
	})
	shm := source(st, "SHM0")
	if off := time.Duration(shm.OffsetNS); off > nmeaBound || off < -nmeaBound {
		t.Errorf("SHM source offset %v", off)
	}
	t.Logf("SHM source: offset %v jitter %v", time.Duration(shm.OffsetNS), time.Duration(shm.JitterNS))

	out, err := e.gnomonctl("sources")
	if err != nil || !strings.Contains(out, "receiver: tcp://"+e.feed.addr()+", gpsd 3.22, NMEA0183, 3D fix, 9/11 satellites") {
		t.Errorf("gnomonctl sources: %v\n%s", err, out)
	}
	t.Logf("gnomonctl sources:\n%s", out)

	// gnomond's NTP server answers at stratum 1 with reference id GPS.
	c := peers.NewNTPClient(t, "127.0.0.1")
	off, _, h, err := c.Measure(peers.Loop4(e.ntp), 2*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if h.Stratum != 1 || erc.RefIDString(h.ReferenceID) != "GPS" {
		t.Errorf("server answers stratum %d refid %q", h.Stratum, erc.RefIDString(h.ReferenceID))
	}
	if off > nmeaBound || off < -nmeaBound {
		t.Errorf("server offset %v from this clock", off)
	}
	// chronyd -Q agrees: it takes the answer and measures the same offset.
	if chronyd, err := exec.LookPath("chronyd"); err == nil {
		argv := peers.Safe(t, chronyd, "-Q", "-t", "10", "-f", "/dev/null", fmt.Sprintf("server 127.0.0.1 port %d iburst maxsamples 3", e.ntp))
		out, err := exec.Command(argv[0], argv[1:]...).CombinedOutput()
		var wrong float64
		if err != nil || !strings.Contains(string(out), "System clock wrong by") {
			t.Errorf("chronyd -Q: %v\n%s", err, out)
		} else if _, err := fmt.Sscanf(string(out[strings.Index(string(out), "System clock wrong by"):]), "System clock wrong by %g", &wrong); err != nil || wrong > nmeaBound.Seconds() || wrong < -nmeaBound.Seconds() {
			t.Errorf("chronyd -Q: %v\n%s", err, out)
		} else {
			t.Logf("chronyd -Q: %s", strings.TrimSpace(string(out)))
		}
	} else {
		peers.SkipOrFatal(t, "chronyd not installed")
	}
}
