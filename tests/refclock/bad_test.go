package refclock

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"gnomon.dev/gnomon/ctl/client"
	"gnomon.dev/gnomon/tests/peers"
)

// logLines counts the log lines with s that were logged at their own
// level: the rate limiter still logs the lines it holds back, at debug
// level and marked rate_limited, and those are not counted.
func (e *env) logLines(s string) int {
	b, err := os.ReadFile(e.gn.Log)
	if err != nil {
		e.t.Fatal(err)
	}
	n := 0
	for _, line := range strings.Split(string(b), "\n") {
		if strings.Contains(line, s) && !strings.Contains(line, "rate_limited") {
			n++
		}
	}
	return n
}

var (
	ignoreLineRE = regexp.MustCompile(`^time=(\S+) level=(\S+) msg="reference clock (?:report ignored|sample not used)[^"]*".* err="((?:[^"\\]|\\.)*)"`)
	rateLimited  = " rate_limited=true"
)

// checkIgnoreLog checks gnomond's log lines about ignored reports and
// unused samples (one per report, one rate limiter key per source; the
// test has one source) against the limiter's rule for what a receiver
// sends, which is input, not state: a line is a warning when it is the
// first or a minute after the last warning, whatever its error (a hostile
// feed's varying error texts must not each make a warning); the others
// are held back, and logged at debug level only, marked rate_limited. It
// returns the warnings and the lines held back.
func (e *env) checkIgnoreLog() (warns, held int) {
	e.t.Helper()
	b, err := os.ReadFile(e.gn.Log)
	if err != nil {
		e.t.Fatal(err)
	}
	var prev string
	var lastWarn time.Time
	for _, l := range strings.Split(string(b), "\n") {
		m := ignoreLineRE.FindStringSubmatch(l)
		if m == nil {
			continue
		}
		at, err := time.Parse(time.RFC3339Nano, m[1])
		if err != nil {
			e.t.Fatalf("log line %q: %v", l, err)
		}
		changed := warns == 0 || at.Sub(lastWarn) >= time.Minute
		switch {
		case m[2] == "WARN" && changed:
			warns++
			lastWarn = at
		case m[2] == "DEBUG" && strings.Contains(l, rateLimited) && !changed:
			held++
		default:
			e.t.Errorf("log line out of the rate limiter's rule (after %q): %s", prev, l)
		}
		prev = m[3]
	}
	return warns, held
}

func selected(s *client.Source) error {
	if s.State != "selected" || s.Reach == 0 {
		return fmt.Errorf("%s is %s, reach %o", s.Name, s.State, s.Reach)
	}
	return nil
}

func TestGPSDRestart(t *testing.T) {
	e := newEnv(t)
	e.startGnomond(e.gpsdSource(""))
	e.waitSource(60*time.Second, "the gpsd source selected", "GPS", selected)

	e.gpsd.Stop()
	e.waitSource(30*time.Second, "the gpsd source disconnected, no sample in its last poll", "GPS", func(s *client.Source) error {
		if s.Refclock == nil || s.Refclock.Connected || s.Reach&1 != 0 {
			return fmt.Errorf("reach %o receiver %+v", s.Reach, s.Refclock)
		}
		return nil
	})
	restarted := time.Now()
	e.startGPSD()
	st := e.waitSource(60*time.Second, "the gpsd source reachable again after gpsd restarted", "GPS", func(s *client.Source) error {
		r := s.Refclock
		if r == nil || !r.Connected || s.Reach&1 == 0 || time.UnixMicro(int64(r.LastFixUSec)).Before(restarted) {
			return fmt.Errorf("reach %o receiver %+v", s.Reach, r)
		}
		return nil
	})
	if n := e.logLines("gpsd connection lost; reconnecting"); n < 1 {
		t.Errorf("%d reconnect log lines", n)
	}
	t.Logf("after the restart: %+v", *source(st, "GPS"))
}

// TestGPSDBadTimes: the real gpsd passes on a receiver whose date is 15
// years ahead, then one that lost its fix; gnomond ignores both, counts
// them, and keeps the good time.
func TestGPSDBadTimes(t *testing.T) {
	e := newEnv(t)
	e.startGnomond(e.gpsdSource(""))
	st := e.waitSource(60*time.Second, "the gpsd source selected", "GPS", selected)
	before := source(st, "GPS").Refclock.Ignored

	e.feed.mode.Store(feedYearsOff)
	st = e.waitSource(30*time.Second, "years-off reports ignored", "GPS", func(s *client.Source) error {
		if r := s.Refclock; r == nil || r.Ignored < before+2 || !strings.Contains(r.LastIgnored, "more than a year") {
			return fmt.Errorf("receiver %+v", s.Refclock)
		}
		return nil
	})
	e.feed.mode.Store(feedNoFix)
	before = source(st, "GPS").Refclock.Ignored
	e.waitSource(30*time.Second, "no-fix reports ignored", "GPS", func(s *client.Source) error {
		if r := s.Refclock; r == nil || r.Ignored < before+2 || !strings.Contains(r.LastIgnored, "no time fix") || r.FixMode != 1 {
			return fmt.Errorf("receiver %+v", s.Refclock)
		}
		return nil
	})
	e.feed.mode.Store(feedNormal)
	st = e.waitSource(30*time.Second, "the gpsd source selected again", "GPS", func(s *client.Source) error {
		if err := selected(s); err != nil {
			return err
		}
		if s.Refclock.FixMode != 3 {
			return fmt.Errorf("fix mode %d", s.Refclock.FixMode)
		}
		return nil
	})
	// gnomond's time never followed the bad date: its server agrees with
	// this clock (which the NMEA feed follows) within NMEA's accuracy.
	c := peers.NewNTPClient(t, "127.0.0.1")
	off, _, h, err := c.Measure(peers.Loop4(e.ntp), 2*time.Second)
	if err != nil || h.Stratum != 1 || off > nmeaBound || off < -nmeaBound {
		t.Errorf("server: offset %v stratum %d err %v (source %+v)", off, h.Stratum, err, *source(st, "GPS"))
	}
	// Rate-limited: the first is a warning, the rest of the minute's
	// (every second here, of four kinds) are held back.
	if warns, held := e.checkIgnoreLog(); warns != 1 || held < 3 {
		t.Errorf("%d warnings about ignored reports, %d held back; want 1 warning a minute and the rest held back", warns, held)
	}
}

// fakeGPSD speaks gpsd's protocol on a TCP port: good reports each
// second, and the bad ones the test asks for in between.
func fakeGPSD(t *testing.T, bad <-chan string) string {
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				fmt.Fprintf(c, "{\"class\":\"VERSION\",\"release\":\"fake\",\"proto_major\":3,\"proto_minor\":14}\n")
				for range 120 {
					now := time.Now().UTC()
					fmt.Fprintf(c, "{\"class\":\"TPV\",\"device\":\"/dev/fake\",\"mode\":3,\"time\":%q}\n", now.Format(time.RFC3339Nano))
					fmt.Fprintf(c, "{\"class\":\"TOFF\",\"device\":\"/dev/fake\",\"real_sec\":%d,\"real_nsec\":%d,\"clock_sec\":%d,\"clock_nsec\":%d}\n",
						now.Unix(), now.Nanosecond(), now.Unix(), now.Nanosecond())
					select {
					case b := <-bad:
						if _, err := c.Write([]byte(b)); err != nil {
							return
						}
					case <-time.After(time.Second):
					}
				}
			}()
		}
	}()
	return ln.Addr().String()
}

// TestGPSDBogusReports: bogus JSON, an endless line, a report years in the
// future and a fix without time, from a gpsd impostor: each is ignored
// and counted, the log says so at most once a minute, nothing crashes,
// and good reports go on being used.
func TestGPSDBogusReports(t *testing.T) {
	e := newBareEnv(t)
	bad := make(chan string)
	addr := fakeGPSD(t, bad)
	e.startGnomond(fmt.Sprintf("[[source]]\nmode = \"gpsd\"\naddress = %q\npoll = 0\n", addr))
	st := e.waitSource(60*time.Second, "the fake gpsd selected", "GPS", selected)
	base := source(st, "GPS").Refclock.Ignored
	future := time.Now().AddDate(20, 0, 0).Unix()
	for i, b := range []string{
		"{\"class\":\"TPV\",\"mode\":3,\"time\":\n",
		strings.Repeat("x", 200<<10) + "\n",
		fmt.Sprintf("{\"class\":\"TOFF\",\"device\":\"/dev/fake\",\"real_sec\":%d,\"real_nsec\":0,\"clock_sec\":%d,\"clock_nsec\":0}\n", future, time.Now().Unix()),
		"{\"class\":\"TPV\",\"device\":\"/dev/fake\",\"mode\":3}\n",
	} {
		bad <- b
		want := base + uint64(i) + 1
		e.waitSource(20*time.Second, fmt.Sprintf("bad report %d counted", i), "GPS", func(s *client.Source) error {
			if s.Refclock == nil || s.Refclock.Ignored < want {
				return fmt.Errorf("receiver %+v", s.Refclock)
			}
			return nil
		})
	}
	st = e.waitSource(20*time.Second, "still selected", "GPS", selected)
	r := source(st, "GPS").Refclock
	if r.Ignored != base+4 || r.LastIgnored != "gpsd: fix without time" {
		t.Errorf("receiver %+v, want %d ignored", r, base+4)
	}
	// Four different errors within the minute: one warning, three held
	// back (the counter and LastIgnored above say what each was).
	if warns, held := e.checkIgnoreLog(); warns != 1 || held != 3 {
		t.Errorf("%d warnings about the 4 bad reports, %d held back; want 1 and 3", warns, held)
	}
	if !e.gn.Alive() {
		t.Fatal("gnomond died")
	}
}

// TestSOCK feeds the SOCK source from a C program that uses chrony's
// struct sock_sample as compiled by the host's C compiler, and checks a
// PPS source on a device that is no PPS device is reported, not fatal.
func TestSOCK(t *testing.T) {
	e := newBareEnv(t)
	cc := peers.NeedTool(t, "cc")
	writer := filepath.Join(e.dir, "sockwriter")
	if out, err := exec.Command(cc, "-Wall", "-O2", "-o", writer, "testdata/sockwriter.c").CombinedOutput(); err != nil {
		t.Fatalf("cc: %v\n%s", err, out)
	}
	sock := filepath.Join(e.dir, "chrony.ttyS0.sock")
	e.startGnomond(fmt.Sprintf("[[source]]\nmode = \"sock\"\npath = %q\npoll = 0\n", sock),
		"[[source]]\nmode = \"pps\"\ndevice = \"/dev/null\"\nlock = \"SOCK\"\nnoselect = true\n")
	peers.Eventually(t, 20*time.Second, "the SOCK socket", func() error {
		_, err := os.Stat(sock)
		return err
	})
	// gnomond measures the offset the samples carry: +12.5 ms.
	w := peers.Start(t, e.dir, "sockwriter", nil, writer, sock, "60", "0.0125")
	st := e.waitSource(30*time.Second, "the SOCK source selected", "SOCK", selected)
	s := source(st, "SOCK")
	if off := time.Duration(s.OffsetNS); off < 12*time.Millisecond || off > 13*time.Millisecond {
		t.Errorf("SOCK offset %v, want 12.5 ms", off)
	}
	e.waitReference("SOCK")
	if !strings.Contains(w.Tail(200), "sizeof(struct sock_sample) = 40") {
		t.Errorf("writer: %s", w.Tail(200))
	}
	// A datagram that is not a sample is counted.
	c, err := net.DialUnix("unixgram", nil, &net.UnixAddr{Name: sock, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	c.Write([]byte("not a sock_sample"))
	c.Close()
	e.waitSource(20*time.Second, "the bad datagram counted", "SOCK", func(s *client.Source) error {
		if s.Refclock == nil || s.Refclock.Ignored != 1 || !strings.Contains(s.Refclock.LastIgnored, "struct sock_sample") {
			return fmt.Errorf("receiver %+v", s.Refclock)
		}
		return nil
	})
	e.waitSource(20*time.Second, "the PPS source's error", "PPS", func(s *client.Source) error {
		if s.Refclock == nil || !strings.Contains(s.Refclock.LastIgnored, "/dev/null is not a PPS device") {
			return fmt.Errorf("receiver %+v", s.Refclock)
		}
		return nil
	})
	e.gn.Stop()
	if _, err := os.Lstat(sock); !os.IsNotExist(err) {
		t.Errorf("gnomond left its socket behind: %v", err)
	}
}

// TestPulseLockedToGPSD: a SOCK client sends pulses (chrony's pulse flag:
// only the phase within the second), for a system clock 0.3 ms ahead;
// gnomond gives each pulse its second from the gpsd source (lock, NMEA
// good to milliseconds) and measures the 0.3 ms: the PPS path through the
// daemon, with a real gpsd for the second.
func TestPulseLockedToGPSD(t *testing.T) {
	e := newEnv(t)
	cc := peers.NeedTool(t, "cc")
	writer := filepath.Join(e.dir, "sockwriter")
	if out, err := exec.Command(cc, "-Wall", "-O2", "-o", writer, "testdata/sockwriter.c").CombinedOutput(); err != nil {
		t.Fatalf("cc: %v\n%s", err, out)
	}
	sock := filepath.Join(e.dir, "chrony.pps.sock")
	e.startGnomond(e.gpsdSource("noselect = true"),
		fmt.Sprintf("[[source]]\nmode = \"sock\"\npath = %q\nrefid = \"PPS\"\nlock = \"GPS\"\npoll = 1\nprefer = true\n", sock))
	peers.Eventually(t, 20*time.Second, "the SOCK socket", func() error {
		_, err := os.Stat(sock)
		return err
	})
	peers.Start(t, e.dir, "sockwriter", nil, writer, sock, "90", "0.0003", "pulse")
	st := e.waitSource(60*time.Second, "the pulses selected", "PPS", func(s *client.Source) error {
		if err := selected(s); err != nil {
			return err
		}
		if s.Reach&7 != 7 {
			return fmt.Errorf("reach %o", s.Reach)
		}
		return nil
	})
	pps := source(st, "PPS")
	// gnomond (observe mode) follows the pulses: its time is 0.3 ms behind
	// this machine's clock, as its NTP server shows (median of 5 queries on
	// loopback; the writer reads the clock a few µs after the second).
	c := peers.NewNTPClient(t, "127.0.0.1")
	var offs []time.Duration
	for range 5 {
		off, _, h, err := c.Measure(peers.Loop4(e.ntp), 2*time.Second)
		if err != nil || h.Stratum != 1 {
			t.Fatalf("NTP query: %v (stratum %d)", err, h.Stratum)
		}
		offs = append(offs, off)
	}
	slices.Sort(offs)
	if off := offs[2]; off < -400*time.Microsecond || off > -200*time.Microsecond {
		t.Errorf("gnomond's time is %v from this clock, want -300µs (source offset %v)", off, time.Duration(pps.OffsetNS))
	}
	e.waitReference("PPS")
	t.Logf("gnomond's time from this clock: %v; pulses: offset %v jitter %v; gpsd: %v; receiver %+v", offs, time.Duration(pps.OffsetNS),
		time.Duration(pps.JitterNS), time.Duration(source(st, "GPS").OffsetNS), *pps.Refclock)
}

// TestGPSDDeviceSelection: gpsd reads two receivers; gnomond's device key
// takes the one named, whose sentences arrive 300 ms after their second
// instead of 50 ms (noselect: the offsets stay against this clock).
func TestGPSDDeviceSelection(t *testing.T) {
	e := newEnv(t)
	late := startFeeder(t, loadNMEA(t, "testdata/receiver.nmea"), 300*time.Millisecond)
	// A second gpsd for both receivers (the env's has only the first).
	e.gpsd.Stop()
	e.gpsd = peers.Start(t, e.dir, "gpsd2", nil, peers.NeedTool(t, "gpsd"), "-N", "-n", "-S", fmt.Sprint(e.gport),
		"-F", filepath.Join(e.dir, "gpsd2.sock"), "-P", filepath.Join(e.dir, "gpsd2.pid"),
		"tcp://"+e.feed.addr(), "tcp://"+late.addr())
	e.pids = append(e.pids, e.gpsd.Cmd.Process.Pid)
	dev := "tcp://" + late.addr()
	e.startGnomond(e.gpsdSource(fmt.Sprintf("device = %q\nnoselect = true", dev)))
	st := e.waitSource(60*time.Second, "the named receiver's samples", "GPS", func(s *client.Source) error {
		if s.Reach&3 != 3 || s.Refclock == nil || s.Refclock.Device != dev {
			return fmt.Errorf("reach %o receiver %+v", s.Reach, s.Refclock)
		}
		return nil
	})
	// offset = 0.05 corrects the first receiver's lag, not this one's.
	if off := time.Duration(source(st, "GPS").OffsetNS); off < -250*time.Millisecond-nmeaBound || off > -250*time.Millisecond+nmeaBound {
		t.Errorf("offset %v, want about -250 ms (the late receiver's)", off)
	}
	t.Logf("device %s: offset %v", dev, time.Duration(source(st, "GPS").OffsetNS))
}
