//go:build linux && amd64

package refclock

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"gnomon.dev/gnomon/ctl/cli"
	"gnomon.dev/gnomon/ctl/client"
	"gnomon.dev/gnomon/tests/peers"
)

// TestVMPPS is the reference clocks on a real kernel: a Debian 12 guest
// (scripts/vm/image.sh, its own kernel 6.1) under QEMU (TCG), where a
// module built here (vm/ppsgen, against Debian's linux-headers for the
// guest's kernel) registers a PPS source whose assert edge fires at every
// second of the guest's CLOCK_REALTIME plus vmPhase, with the sysfs path
// /dev/ttyS1. The host writes NMEA (testdata/receiver.nmea re-stamped)
// into the guest's ttyS1 once a second, vmLag after the second.
//
// In the guest: ppstest reads the edges (PPS_FETCH); the packaged gnomond
// (observe mode, the unit's sandbox with the drop-in docs/refclock.md
// gives) reads /dev/pps0 through the ioctls, locked to the gpsd source;
// gpsd 3.22 on /dev/ttyS1 finds /dev/pps0 by its path and sends each edge
// to gnomond's SOCK source (/run/chrony.ttyS1.sock) and SHM unit 1, the
// NMEA time to SHM unit 0, and both as JSON. Every clock change is the
// guest's own; the host's clock is only read.
//
// The edges are late by vmPhase on the guest's clock, so every PPS-derived
// offset must be −vmPhase, less the timer's latency; the NMEA ones −vmLag
// and the serial path's latency.
//
// make test-refclock-vm (GNOMON_REFCLOCK_VM=1; GNOMON_VM_DEB names a .deb
// from make deb, otherwise the test runs make deb). The guest takes 2.5 to
// 3 minutes, at most 4.
func TestVMPPS(t *testing.T) {
	if os.Getenv("GNOMON_REFCLOCK_VM") == "" {
		t.Skip("boots a qemu guest (about 2.5 minutes): make test-refclock-vm (GNOMON_REFCLOCK_VM=1)")
	}
	peers.NeedRoot(t, "mkfs.ext4 -d, the guest image, chronyd")
	for _, tool := range []string{"qemu-system-x86_64", "mkfs.ext4", "chronyd", "make", "cc"} {
		peers.NeedTool(t, tool)
	}
	root := peers.ModuleRoot(t)
	dir := peers.TempDir(t, 0o777)
	image, kver := peers.GuestImage(t)
	job := filepath.Join(dir, "job")
	if err := os.MkdirAll(job, 0o755); err != nil {
		t.Fatal(err)
	}
	buildPPSModule(t, root, kver, job)
	peers.CopyFile(t, peers.GuestDeb(t, dir), filepath.Join(job, "gnomon.deb"))
	peers.CopyFile(t, filepath.Join(root, "tests/refclock/vm/run.sh"), filepath.Join(job, "run.sh"))
	cmd := exec.Command("go", "build", "-o", filepath.Join(job, "vmguest"), "./tests/vm/vmguest")
	cmd.Dir = root
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOARCH=amd64")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("build vmguest: %v\n%s", err, out)
	}

	chrony := peers.StartChronyd(t, dir, peers.FreePort(t), "")
	ntpAddr := fmt.Sprintf("10.0.2.2:%d", chrony.Port)
	writeTo(t, filepath.Join(job, "env"), fmt.Sprintf("NTP=%s\nPHASE_US=%d\nWAIT_S=%d\n", ntpAddr, vmPhase.Microseconds(), 90))
	writeTo(t, filepath.Join(job, "gnomon.toml"), vmConfig(ntpAddr))
	// The drop-ins docs/refclock.md gives: PPS devices, the host's SysV
	// IPC (gpsd's SHM), and a runtime directory for the SOCK socket with
	// the link gpsd looks for.
	for _, f := range []string{"40-pps.conf", "60-gnomon-pps.rules"} {
		peers.CopyFile(t, filepath.Join(root, "units/refclock", f), filepath.Join(job, f))
	}
	writeTo(t, filepath.Join(job, "50-refclock.conf"), vmDropIn)
	jobImg := filepath.Join(dir, "job.img")
	peers.RunIn(t, dir, "mkfs.ext4", "-q", "-d", job, jobImg, "64M")

	l := loadNMEA(t, "testdata/receiver.nmea")
	console := bootWithReceiver(t, image, jobImg, filepath.Join(dir, "ttyS1.sock"), l, 4*time.Minute)
	checkVMPPS(t, console)
}

// vmPhase is how late the module's edge fires after each second; vmLag how
// late the host writes the NMEA of a second (a receiver's serial delay).
const (
	vmPhase = 10 * time.Millisecond
	vmLag   = 120 * time.Millisecond
)

// vmConfig is the guest's /etc/gnomon/gnomon.toml: observe mode, every
// reference clock at a 4 s poll, chronyd on the host for comparison only.
// SHM0 is NMEA time (vmLag late): noselect, it would be a falseticker.
func vmConfig(ntp string) string {
	return fmt.Sprintf(`[clock]
mode = "observe"

[[source]]
mode = "server"
address = %q
noselect = true
poll-interval-limits = { min = 1, max = 2 }

[[source]]
mode = "gpsd"
poll = 2

[[source]]
mode = "pps"
device = "/dev/pps0"
lock = "GPS"
prefer = true
poll = 2

[[source]]
mode = "sock"
path = "/run/gnomond/chrony.ttyS1.sock"
lock = "GPS"
poll = 2

[[source]]
mode = "shm"
unit = 0
noselect = true
poll = 2

[[source]]
mode = "shm"
unit = 1
poll = 2
`, ntp)
}

// vmDropIn is the guest's drop-in for SHM and SOCK (docs/refclock.md).
const vmDropIn = `[Service]
PrivateIPC=no
RuntimeDirectory=gnomond
ExecStartPre=+/bin/ln -sfn /run/gnomond/chrony.ttyS1.sock /run/chrony.ttyS1.sock
`

// TestPPSModuleBuild is the part of TestVMPPS that make test runs: the
// module builds against Debian's headers (linux-headers-amd64, the guest's
// kernel flavour) without a warning, for that kernel (its vermagic).
func TestPPSModuleBuild(t *testing.T) {
	peers.NeedTool(t, "make")
	peers.NeedTool(t, "cc")
	heads, _ := filepath.Glob("/usr/src/linux-headers-*-amd64/Makefile")
	if len(heads) == 0 {
		peers.SkipOrFatal(t, "no /usr/src/linux-headers-*-amd64 (scripts/install-peers.sh installs linux-headers-amd64)")
	}
	slices.Sort(heads)
	kver := strings.TrimPrefix(filepath.Base(filepath.Dir(heads[len(heads)-1])), "linux-headers-")
	job := t.TempDir()
	out := buildPPSModule(t, peers.ModuleRoot(t), kver, job)
	if strings.Contains(out, "warning:") {
		t.Errorf("the module builds with warnings:\n%s", out)
	}
	ko, err := os.ReadFile(filepath.Join(job, "gnomon_ppsgen.ko"))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"vermagic=" + kver + " ", "license=GPL", "depends=", "parmtype=phase_us:int", "parmtype=path:charp"} {
		if !bytes.Contains(ko, []byte(want)) {
			t.Errorf("gnomon_ppsgen.ko has no %q", want)
		}
	}
}

// buildPPSModule builds vm/ppsgen against the headers of the guest's
// kernel (Debian's linux-headers-KVER, the compiler Debian built it with)
// into job/gnomon_ppsgen.ko, and returns make's output.
func buildPPSModule(t *testing.T, root, kver, job string) string {
	t.Helper()
	kdir := "/usr/src/linux-headers-" + kver
	if _, err := os.Stat(filepath.Join(kdir, "Makefile")); err != nil {
		peers.SkipOrFatal(t, "no headers for the guest's kernel %s (%v): apt-get install linux-headers-%s (scripts/install-peers.sh installs linux-headers-amd64)", kver, err, kver)
	}
	src := peers.TempDir(t, 0o755)
	for _, f := range []string{"gnomon_ppsgen.c", "Kbuild"} {
		peers.CopyFile(t, filepath.Join(root, "tests/refclock/vm/ppsgen", f), filepath.Join(src, f))
	}
	out := peers.RunIn(t, src, "nice", "make", "-s", "-C", kdir, "M="+src, "modules")
	peers.CopyFile(t, filepath.Join(src, "gnomon_ppsgen.ko"), filepath.Join(job, "gnomon_ppsgen.ko"))
	return out
}

// bootWithReceiver boots the guest (root image read-only with -snapshot,
// the job disk as vdb, the console on ttyS0) with ttyS1 on a unix socket
// this test connects to and writes NMEA into, a block a second, vmLag
// after the second it names. It returns the console when the guest has
// powered off.
func bootWithReceiver(t *testing.T, image, jobImg, serial string, l *nmeaLog, timeout time.Duration) []byte {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, "nice", "qemu-system-x86_64",
		"-accel", "tcg", "-m", "1024", "-smp", "1",
		"-display", "none", "-monitor", "none", "-no-reboot", "-nodefaults",
		"-serial", "stdio",
		"-chardev", "socket,id=gps,path="+serial+",server=on,wait=off",
		"-serial", "chardev:gps",
		"-kernel", filepath.Join(image, "vmlinuz"), "-initrd", filepath.Join(image, "initrd.img"),
		"-append", "console=ttyS0 root=/dev/vda rw quiet loglevel=3 systemd.show_status=0",
		"-snapshot",
		"-drive", "file="+filepath.Join(image, "root.img")+",if=virtio,format=raw",
		"-drive", "file="+jobImg+",if=virtio,format=raw,readonly=on",
		// User networking: the guest reaches the host's 127.0.0.1 as
		// 10.0.2.2 and nothing else.
		"-netdev", "user,id=n0,ipv6=off", "-device", "virtio-net-pci,netdev=n0",
		"-rtc", "base=utc")
	var buf bytes.Buffer
	cmd.Stdout = &buf
	cmd.Stderr = &buf
	start := time.Now()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	fed := make(chan string, 1)
	go func() { fed <- feedSerial(ctx, serial, l, done) }()
	err := cmd.Wait()
	close(done)
	t.Logf("ttyS1: %s", <-fed)
	if keep := os.Getenv("GNOMON_VM_LOGDIR"); keep != "" {
		_ = os.WriteFile(filepath.Join(keep, "refclock-console.log"), buf.Bytes(), 0o644)
	}
	t.Logf("guest: %.1f s wall", time.Since(start).Seconds())
	if err != nil {
		t.Fatalf("qemu: %v\n%s", err, tail(buf.Bytes(), 6000))
	}
	return buf.Bytes()
}

// feedSerial connects to QEMU's socket for ttyS1 and writes a block of
// NMEA each second until done; it says how many it wrote, or why it
// stopped.
func feedSerial(ctx context.Context, path string, l *nmeaLog, done <-chan struct{}) string {
	var c net.Conn
	var err error
	for i := 0; i < 600; i++ {
		if c, err = net.Dial("unix", path); err == nil {
			break
		}
		select {
		case <-done:
			return fmt.Sprintf("never connected to %s: %v", path, err)
		case <-time.After(100 * time.Millisecond):
		}
	}
	if c == nil {
		return fmt.Sprintf("never connected to %s: %v", path, err)
	}
	defer c.Close()
	// What the guest writes to ttyS1 (gpsd's probes, the tty's echo) is
	// read and dropped: unread, it stalls the guest's transmitter, and
	// gpsd hangs in tcdrain.
	go io.Copy(io.Discard, c)
	n := 0
	for i := 0; ; i++ {
		next := time.Now().Truncate(time.Second).Add(time.Second)
		select {
		case <-done:
			return fmt.Sprintf("wrote %d blocks of NMEA", n)
		case <-ctx.Done():
			return fmt.Sprintf("wrote %d blocks of NMEA", n)
		case <-time.After(time.Until(next.Add(vmLag))):
		}
		c.SetWriteDeadline(time.Now().Add(2 * time.Second))
		if _, err := c.Write(l.block(i, next, feedNormal)); err != nil {
			if !isTimeout(err) {
				return fmt.Sprintf("wrote %d blocks of NMEA, then: %v", n, err)
			}
			continue
		}
		n++
	}
}

func isTimeout(err error) bool {
	ne, ok := err.(net.Error)
	return ok && ne.Timeout()
}

// vmResult is what the guest printed.
type vmResult struct {
	kv      map[string]map[string]string
	all     map[string][]map[string]string // every line of a name
	asserts []string
	sources *cli.SourcesJSON
}

func parseVM(t *testing.T, console []byte) vmResult {
	t.Helper()
	r := vmResult{kv: map[string]map[string]string{}, all: map[string][]map[string]string{}}
	const js = "GNOMON-VM-JSON sources "
	lines := peers.GuestLines(console, func(line string) {
		if i := strings.Index(line, js); i >= 0 {
			var s cli.SourcesJSON
			if err := json.Unmarshal([]byte(line[i+len(js):]), &s); err != nil {
				t.Fatalf("gnomonctl sources --json in the guest: %v: %s", err, line)
			}
			r.sources = &s
		}
	})
	for _, l := range lines {
		if l.Name == "ppstest" {
			r.asserts = append(r.asserts, l.KV["assert"])
		}
		r.kv[l.Name] = l.KV
		r.all[l.Name] = append(r.all[l.Name], l.KV)
	}
	return r
}

func (r vmResult) get(t *testing.T, name, key string) string {
	t.Helper()
	v, ok := r.kv[name][key]
	if !ok {
		t.Fatalf("the guest printed no %s %s (%v)", name, key, r.kv[name])
	}
	return v
}

func checkVMPPS(t *testing.T, console []byte) {
	t.Helper()
	r := parseVM(t, console)
	if _, ok := r.kv["done"]; !ok {
		t.Fatalf("the guest did not finish its job:\n%s", tail(console, 8000))
	}
	t.Logf("guest kernel %s; clock vs chronyd on the host after setting it: %s ns, at the end: %s ns",
		r.get(t, "boot", "kernel"), r.get(t, "offset", "offset_ns"), r.kv["offset_after"]["offset_ns"])
	if rc := r.get(t, "insmod", "rc"); rc != "0" {
		t.Fatalf("insmod gnomon_ppsgen.ko in the guest: %v", r.kv["insmod"])
	}
	t.Logf("insmod: tainted %s; PPS device %v", r.get(t, "insmod", "tainted"), r.kv["ppsdev"])
	if p := r.get(t, "ppsdev", "path"); p != "/dev/ttyS1" {
		t.Errorf("pps path %q, want /dev/ttyS1", p)
	}

	// The edges as the kernel time-stamped them: vmPhase after the
	// second, late by the timer's latency only.
	if len(r.asserts) < 3 {
		t.Fatalf("ppstest read %d edges from /dev/pps0, want at least 3:\n%s", len(r.asserts), tail(console, 4000))
	}
	var lat []time.Duration
	for _, a := range r.asserts {
		_, frac, _ := strings.Cut(a, ".")
		ns, err := strconv.ParseInt(frac, 10, 64)
		if err != nil || len(frac) != 9 {
			t.Fatalf("ppstest assert %q", a)
		}
		lat = append(lat, time.Duration(ns)-vmPhase)
	}
	t.Logf("ppstest: %d edges, each after its second + %v by %v", len(lat), vmPhase, lat)
	for _, d := range lat {
		if d < 0 || d > 50*time.Millisecond {
			t.Errorf("an edge %v from second + %v: the module's timer fired before its time or far too late (%v)", d, vmPhase, r.asserts)
		}
	}

	if r.get(t, "install", "rc") != "0" || r.get(t, "daemon", "active") != "active" {
		t.Fatalf("gnomond in the guest: %v %v\n%s", r.kv["install"], r.kv["daemon"], tail(console, 6000))
	}
	if r.sources == nil {
		t.Fatalf("no gnomonctl sources --json from the guest:\n%s", tail(console, 6000))
	}
	t.Logf("gpsd: %v; waited %v", r.kv["gpsd_log"], r.kv["waited"])
	src := map[string]client.Source{}
	for _, s := range r.sources.Sources {
		src[s.Name] = s
		rc := ""
		if s.Refclock != nil {
			b, _ := json.Marshal(s.Refclock)
			rc = " refclock " + string(b)
		}
		t.Logf("%-5s selected %-5v state %-12s reach %03o offset %9.3f ms jitter %7.3f ms%s", s.Name, s.Selected, s.State, s.Reach,
			float64(s.OffsetNS)/1e6, float64(s.JitterNS)/1e6, rc)
	}
	// gpsd's own view of the edges it sent to SOCK: the real second minus
	// the kernel's timestamp.
	gps := r.all["gpsd_sock"]
	if len(gps) == 0 {
		t.Errorf("gpsd sent no edge to chrony's SOCK socket (%v)", r.kv["gpsd_log"])
	}
	for _, kv := range gps {
		f, err := strconv.ParseFloat(kv["offset"], 64)
		if off := time.Duration(f * 1e9); err != nil || off > -vmPhase || off < -vmPhase-5*time.Millisecond {
			t.Errorf("gpsd sent an edge with offset %q, want −%v less at most 5 ms of latency", kv["offset"], vmPhase)
		}
	}

	// gnomond in observe mode reports offsets from its own virtual clock,
	// which has followed the sources; the NTP server (chronyd on the host,
	// noselect) is on that clock too, and the guest's offset to it was
	// measured apart (vmguest): off − ntp + (server − guest) is a source's
	// offset from the guest's system clock.
	ntpSrc, ok := src["10.0.2.2"]
	if !ok || bits(ntpSrc.Reach) < 3 {
		t.Fatalf("the NTP source on the host: %+v", ntpSrc)
	}
	guest, err := strconv.ParseInt(r.get(t, "offset_after", "offset_ns"), 10, 64)
	if err != nil {
		t.Fatal(err)
	}
	vsSystem := func(s client.Source) time.Duration {
		return time.Duration(s.OffsetNS - ntpSrc.OffsetNS + guest)
	}
	// PPS through the ioctls, gpsd's edges through SOCK and SHM1, gpsd's
	// PPS reports: the edge's phase, within the timer's latency (and the
	// NTP measurement's noise under TCG).
	var pulses []time.Duration
	for _, name := range []string{"PPS", "SOCK", "SHM1", "GPS"} {
		s, ok := src[name]
		if !ok {
			t.Errorf("no source %s in the guest's gnomond", name)
			continue
		}
		if bits(s.Reach) < 3 {
			t.Errorf("%s: reach %03o: fewer than 3 polls with a sample (%+v)", name, s.Reach, s.Refclock)
			continue
		}
		off := vsSystem(s)
		pulses = append(pulses, time.Duration(s.OffsetNS))
		if off > -vmPhase+3*time.Millisecond || off < -vmPhase-6*time.Millisecond {
			t.Errorf("%s: offset from the guest's clock %v, want −%v (the edge's phase) less the timer's latency", name, off, vmPhase)
		}
	}
	// The same kernel edges four ways: within 1 ms of each other.
	if len(pulses) > 1 {
		lo, hi := slices.Min(pulses), slices.Max(pulses)
		if hi-lo > time.Millisecond {
			t.Errorf("the PPS, SOCK, SHM1 and GPS offsets span %v; the same edges should agree within 1 ms", hi-lo)
		}
	}
	if s := src["PPS"]; !s.Selected {
		t.Errorf("gnomond follows %q, not the PPS source (prefer)", selectedName(r.sources.Sources))
	}
	if g := src["GPS"]; g.Refclock == nil || g.Refclock.LastPPSUSec == 0 {
		t.Errorf("the gpsd source shows no PPS from gpsd: %+v", g.Refclock)
	}
	// SHM0 is gpsd's NMEA time: the host wrote it vmLag after the second;
	// the serial path adds milliseconds.
	if s := src["SHM0"]; bits(s.Reach) < 3 {
		t.Errorf("SHM0: reach %03o", s.Reach)
	} else if off := vsSystem(s); off > -vmLag+3*time.Millisecond || off < -vmLag-100*time.Millisecond {
		t.Errorf("SHM0 (gpsd's NMEA time): offset from the guest's clock %v, want about −%v", off, vmLag)
	}
	t.Logf("offsets from the guest's clock: PPS %v, SOCK %v, SHM1 %v, GPS %v, SHM0 %v",
		vsSystem(src["PPS"]), vsSystem(src["SOCK"]), vsSystem(src["SHM1"]), vsSystem(src["GPS"]), vsSystem(src["SHM0"]))
}

func selectedName(ss []client.Source) string {
	for _, s := range ss {
		if s.Selected {
			return s.Name
		}
	}
	return ""
}

func bits(reach uint8) int {
	n := 0
	for ; reach != 0; reach &= reach - 1 {
		n++
	}
	return n
}

func writeTo(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

func tail(b []byte, n int) []byte {
	if len(b) > n {
		return b[len(b)-n:]
	}
	return b
}
