package ptp

import (
	"fmt"
	"math"
	"net/netip"
	"os/exec"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	eptp "gnomon.dev/gnomon/engine/ptp"
	"gnomon.dev/gnomon/tests/peers"
)

// Bounds for software timestamps on veth. What was measured is printed
// beside ptp4l's own figure on the same master at the same time; the
// bounds only catch a broken measurement (a wrong sign, a missing path
// delay, the UTC offset applied twice), not the last microsecond.
const (
	offsetRMSBound    = 50 * time.Microsecond
	offsetMedianBound = 10 * time.Microsecond
)

// TestPTP4lMasterGnomondSlave: ptp4l is master on two ports of one clock
// (a veth pair to gnomond's namespace, another to a ptp4l slave's), so
// gnomond and the yardstick, ptp4l as a slave of ptp4l, see the same
// master over equal links at the same time. gnomond must reach SLAVE,
// name ptp4l's clock as grandmaster, and measure an offset near zero
// (every namespace shares the one CLOCK_REALTIME).
func TestPTP4lMasterGnomondSlave(t *testing.T) {
	t.Parallel()
	cases := []struct{ transport, delay string }{{"udp4", "E2E"}, {"ethernet", "P2P"}}
	if full() {
		cases = append(cases, struct{ transport, delay string }{"udp6", "E2E"}, struct{ transport, delay string }{"ethernet", "E2E"},
			struct{ transport, delay string }{"udp4", "P2P"}, struct{ transport, delay string }{"udp6", "P2P"})
	}
	for _, c := range cases {
		t.Run(c.transport+"-"+c.delay, func(t *testing.T) {
			t.Parallel()
			tag, dir := setup(t)
			m, g, p := netns(t, tag, "m"), netns(t, tag, "g"), netns(t, tag, "p")
			link(t, tag, m, "m0", "10.74.0.1/24", g, "g0", "10.74.0.2/24")
			link(t, tag, m, "m1", "10.74.1.1/24", p, "p0", "10.74.1.2/24")
			if c.transport == "udp6" {
				time.Sleep(2500 * time.Millisecond) // link-local addresses leave duplicate address detection
			}
			gm := identityOf(t, m, "m0") // ptp4l's clock identity: its first port's MAC
			master := peers.Start(t, dir, "ptp4l-master", nil, safeIn(t, m, append([]string{"ptp4l", "-i", "m0", "-i", "m1",
				"--masterOnly", "1", "--uds_address", dir + "/m.sock", "--logAnnounceInterval", "0"}, ptp4lFlags(c.transport, c.delay)...)...)...)
			slave := peers.Start(t, dir, "ptp4l-slave", nil, safeIn(t, p, append([]string{"ptp4l", "-i", "p0", "-s",
				"--uds_address", dir + "/s.sock"}, ptp4lFlags(c.transport, c.delay)...)...)...)
			cfg := gnomondHead + fmt.Sprintf("[[source]]\nmode = \"ptp\"\ninterface = \"g0\"\ntransport = %q\ndelay-mechanism = %q\ntimestamping = \"software\"\n",
				c.transport, strings.ToLower(c.delay))
			gn := startGnomond(t, dir, g, "gnomond", cfg)
			slaveSince := time.Time{}
			ok := waitFor(60*time.Second, func() bool {
				ms := gnomondMeasurements(t, gn)
				if len(ms) > 0 && ms[len(ms)-1].State == "SLAVE" && slaveSince.IsZero() {
					slaveSince = time.Now()
				}
				return !slaveSince.IsZero() && time.Since(slaveSince) > 10*time.Second || !gn.Alive() || !master.Alive()
			})
			if !ok || !gn.Alive() {
				t.Fatalf("gnomond did not stay SLAVE for 10 s (alive %v)", gn.Alive())
			}
			ms := gnomondMeasurements(t, gn)
			last := ms[len(ms)-1]
			if last.State != "SLAVE" || last.Grandmaster != gm {
				t.Errorf("gnomond: state %s, grandmaster %s; ptp4l's clock is %s", last.State, last.Grandmaster, gm)
			}
			var offs, raws, dels []float64
			for _, x := range ms[len(ms)/3:] {
				offs = append(offs, float64(x.OffsetNS))
				raws = append(raws, float64(x.RawOffsetNS))
				dels = append(dels, float64(x.PathDelayNS))
			}
			gs, graw := statsOf(offs, dels), statsOf(raws, dels)
			po, pd := ptp4lOffsets(t, slave)
			for i := range po {
				po[i] = -po[i] // ptp4l prints local minus master; gnomond's offsets are master minus local
			}
			ps := statsOf(po[len(po)/3:], pd[len(pd)/3:])
			t.Logf("%s %s offset of the master (master minus local):", c.transport, c.delay)
			t.Logf("  gnomond, system clock:     %s", graw)
			t.Logf("  ptp4l slave (yardstick):   %s", ps)
			t.Logf("  gnomond, its servo's clock: %s", gs)
			for _, s := range []stats{gs, graw} {
				if s.RMS > float64(offsetRMSBound) || s.Med > float64(offsetMedianBound) {
					t.Errorf("gnomond's offset (%s) is beyond the bounds (RMS %v, median %v)", s, offsetRMSBound, offsetMedianBound)
				}
			}
			if gs.DelayMean <= 0 || gs.DelayMean > 1e6 {
				t.Errorf("mean path delay %.0f ns is not a veth's", gs.DelayMean)
			}
			if ps.N == 0 {
				t.Errorf("the ptp4l yardstick measured nothing")
			}
		})
	}
}

// TestGnomondMasterPTP4lSlave: gnomond is master ([[ptp-port]]), ptp4l
// (free_running, so it never adjusts a clock) selects it, and pmc's GETs
// of the current, parent and port datasets are answered.
func TestGnomondMasterPTP4lSlave(t *testing.T) {
	t.Parallel()
	tag, dir := setup(t)
	pmc := peers.NeedTool(t, "pmc")
	g, p := netns(t, tag, "g"), netns(t, tag, "p")
	link(t, tag, g, "g0", "10.75.0.1/24", p, "p0", "10.75.0.2/24")
	me := identityOf(t, g, "g0")
	gn := startGnomond(t, dir, g, "gnomond", gnomondHead+`[[ptp-port]]
interface = "g0"
timestamping = "software"
priority1 = 100
announce-interval = 0
management-socket = "`+dir+`/gnomond-ptp.sock"
`)
	slave := peers.Start(t, dir, "ptp4l-slave", nil, safeIn(t, p, append([]string{"ptp4l", "-i", "p0", "-s",
		"--uds_address", dir + "/s.sock"}, ptp4lFlags("udp4", "E2E")...)...)...)
	if !waitFor(40*time.Second, func() bool {
		o, _ := ptp4lOffsets(t, slave)
		return len(o) >= 8 || !slave.Alive() || !gn.Alive()
	}) {
		t.Fatal("ptp4l measured no offsets from gnomond")
	}
	if !logHas(t, slave, "selected best master clock "+me) || !logHas(t, slave, "LISTENING to UNCALIBRATED") {
		t.Errorf("ptp4l did not select gnomond (%s) as its master", me)
	}
	o, d := ptp4lOffsets(t, slave)
	for i := range o {
		o[i] = -o[i] // master minus local
	}
	t.Logf("ptp4l as slave of gnomond, master minus local: %s (free_running: ptp4l stays in s0/UNCALIBRATED, it never locks without a clock to steer)", statsOf(o[len(o)/3:], d[len(d)/3:]))
	if s := statsOf(o[len(o)/3:], d[len(d)/3:]); s.RMS > float64(offsetRMSBound) {
		t.Errorf("ptp4l measures gnomond %s", s)
	}

	// pmc over UDPv4 from the slave's namespace (only gnomond answers:
	// ptp4l there does not hear its own namespace's multicast), and over
	// gnomond's local management socket (pmc -u, as ptp4l's users do).
	var viaUDS bool
	query := func(what string) string {
		args := []string{"netns", "exec", p, pmc, "-4", "-i", "p0", "-b", "0", "GET " + what}
		if viaUDS {
			args = []string{"netns", "exec", g, pmc, "-u", "-s", dir + "/gnomond-ptp.sock", "-b", "0", "GET " + what}
		}
		out, err := exec.Command("ip", args...).CombinedOutput()
		if err != nil {
			t.Fatalf("pmc GET %s: %v\n%s", what, err, out)
		}
		return string(out)
	}
	for _, c := range []struct {
		what string
		want []string
		uds  bool
	}{
		{"CURRENT_DATA_SET", []string{"stepsRemoved     0", "offsetFromMaster", "meanPathDelay"}, false},
		{"PARENT_DATA_SET", []string{"grandmasterIdentity                   " + me, "grandmasterPriority1                  100", "parentPortIdentity                    " + me}, false},
		{"PORT_DATA_SET", []string{"portIdentity            " + me + "-1", "portState               MASTER", "delayMechanism          1", "logAnnounceInterval     0"}, false},
		{"DEFAULT_DATA_SET", []string{"clockIdentity           " + me, "priority1               100", "twoStepFlag             1"}, false},
		{"TIME_PROPERTIES_DATA_SET", []string{"currentUtcOffset      37", "timeSource            0xa0"}, false},
		{"PARENT_DATA_SET", []string{"grandmasterIdentity                   " + me}, true},
		{"PORT_DATA_SET", []string{"portState               MASTER"}, true},
	} {
		viaUDS = c.uds
		out := query(c.what)
		if !strings.Contains(out, me+"-1 seq") || !strings.Contains(out, "RESPONSE MANAGEMENT "+c.what) {
			t.Errorf("pmc GET %s (local socket %v): no response from gnomond (%s-1):\n%s", c.what, c.uds, me, out)
			continue
		}
		for _, w := range c.want {
			if !strings.Contains(out, w) {
				t.Errorf("pmc GET %s: want %q in\n%s", c.what, w, out)
			}
		}
	}
	// ptp4l, asked the same over its own socket, names gnomond too.
	out, err := exec.Command("ip", "netns", "exec", p, pmc, "-u", "-s", dir+"/s.sock", "-b", "0", "GET PARENT_DATA_SET").CombinedOutput()
	if err != nil || !strings.Contains(string(out), "grandmasterIdentity                   "+me) {
		t.Errorf("ptp4l's PARENT_DATA_SET does not name gnomond (%v):\n%s", err, out)
	}
}

// TestBadInput: with gnomond following ptp4l, malformed messages and a
// flood of Announce from two thousand fake masters (each heard once, all
// claiming priority1 1) are counted and ignored: gnomond stays SLAVE to
// the real master.
func TestBadInput(t *testing.T) {
	t.Parallel()
	tag, dir := setup(t)
	m, g := netns(t, tag, "m"), netns(t, tag, "g")
	link(t, tag, m, "m0", "10.76.0.1/24", g, "g0", "10.76.0.2/24")
	gm := identityOf(t, m, "m0")
	peers.Start(t, dir, "ptp4l-master", nil, safeIn(t, m, append([]string{"ptp4l", "-i", "m0", "--masterOnly", "1",
		"--uds_address", dir + "/m.sock", "--logAnnounceInterval", "0"}, ptp4lFlags("udp4", "E2E")...)...)...)
	gn := startGnomond(t, dir, g, "gnomond", gnomondHead+"[[source]]\nmode = \"ptp\"\ninterface = \"g0\"\ntimestamping = \"software\"\n")
	if !waitFor(50*time.Second, func() bool {
		ms := gnomondMeasurements(t, gn)
		return len(ms) > 0 && ms[len(ms)-1].State == "SLAVE" || !gn.Alive()
	}) {
		t.Fatal("gnomond did not reach SLAVE")
	}

	// The injector: UDP sockets in the master's namespace on its link.
	var fds [2]int
	inNetns(t, m, func() {
		for i := range fds {
			fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
			if err != nil {
				t.Error(err)
				return
			}
			unix.SetsockoptIPMreqn(fd, unix.IPPROTO_IP, unix.IP_MULTICAST_IF, &unix.IPMreqn{Ifindex: int32(ifIndex(t, "m0"))})
			fds[i] = fd
		}
	})
	defer unix.Close(fds[0])
	defer unix.Close(fds[1])
	group := netip.MustParseAddr("224.0.1.129").As4()
	send := func(port int, b []byte) {
		if err := unix.Sendto(fds[port-319], b, 0, &unix.SockaddrInet4{Port: port, Addr: group}); err != nil {
			t.Fatal(err)
		}
	}
	enc := func(msg eptp.Message) []byte {
		b := make([]byte, eptp.MaxLen)
		n, err := msg.MarshalTo(b)
		if err != nil {
			t.Fatal(err)
		}
		return b[:n]
	}
	ann := func(id eptp.ClockIdentity) []byte {
		return enc(&eptp.Announce{Header: eptp.Header{Version: 2, MinorVersion: 1, Source: eptp.PortIdentity{Clock: id, Port: 1}, LogInterval: 0},
			CurrentUTCOffset: 37, GMPriority1: 1, GMQuality: eptp.ClockQuality{Class: 6, Accuracy: 0x20}, GMPriority2: 1, GMIdentity: id})
	}
	good := ann(eptp.ClockIdentity{0xde, 0xad, 0, 0xff, 0xfe, 0, 0, 1})
	truncated := good[:20]
	badVersion := append([]byte(nil), good...)
	badVersion[1] = 0x01
	tlvPast := append(append([]byte(nil), good...), 0x00, 0x08, 0x00, 0x40, 1, 2, 3, 4)
	tlvPast[2], tlvPast[3] = byte(len(tlvPast)>>8), byte(len(tlvPast))
	oversized := append(append([]byte(nil), good...), make([]byte, 1600)...)
	oversized[2], oversized[3] = byte(len(oversized)>>8), byte(len(oversized))
	for _, b := range [][]byte{truncated, badVersion, tlvPast, oversized} {
		send(320, b)
		send(319, b)
	}
	const fakes = 2000
	for i := 0; i < fakes; i++ {
		send(320, ann(eptp.ClockIdentity{0xfa, 0x4e, byte(i >> 8), 0xff, 0xfe, byte(i), 0, 1}))
		if i%100 == 99 {
			time.Sleep(100 * time.Millisecond) // about 1000 per second, over two seconds
		}
	}
	time.Sleep(8 * time.Second) // past the foreign masters' window, with more Syncs
	ms := gnomondMeasurements(t, gn)
	if len(ms) == 0 || !gn.Alive() {
		t.Fatal("gnomond stopped")
	}
	last := ms[len(ms)-1]
	t.Logf("after the bad input: state %s, grandmaster %s, malformed %d, wrong version %d, foreign masters dropped %d, Announces %d, foreign masters kept %d",
		last.State, last.Grandmaster, last.Malformed, last.WrongVersion, last.ForeignDropped, last.RxAnnounce, last.Foreign)
	if last.State != "SLAVE" || last.Grandmaster != gm {
		t.Errorf("gnomond left the real master: %+v", last)
	}
	if last.Malformed < 6 || last.WrongVersion < 2 {
		t.Errorf("malformed messages not counted: %+v", last)
	}
	// The kernel may drop part of a flood when the socket's buffer fills (a
	// loaded machine, a race-enabled gnomond): most must still arrive and be
	// counted.
	if last.RxAnnounce < fakes/2 {
		t.Errorf("only %d Announces counted, %d fakes sent", last.RxAnnounce, fakes)
	}
	if math.Abs(float64(last.OffsetNS)) > float64(offsetRMSBound) {
		t.Errorf("offset %d ns after the flood", last.OffsetNS)
	}
}

func ifIndex(t testing.TB, name string) int {
	t.Helper()
	var ifr *unix.Ifreq
	ifr, err := unix.NewIfreq(name)
	if err != nil {
		t.Fatal(err)
	}
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fd)
	if err := unix.IoctlIfreq(fd, unix.SIOCGIFINDEX, ifr); err != nil {
		t.Fatal(err)
	}
	return int(ifr.Uint32())
}
