package refclock

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"

	erc "gnomon.dev/gnomon/engine/refclock"
)

// collector gathers reports from a reader's goroutine.
type collector struct {
	mu sync.Mutex
	rs []Report
	ch chan struct{}
}

func newCollector() *collector { return &collector{ch: make(chan struct{}, 1000)} }

func (c *collector) emit(r Report) {
	c.mu.Lock()
	r.Samples = append([]erc.Sample(nil), r.Samples...)
	c.rs = append(c.rs, r)
	c.mu.Unlock()
	select {
	case c.ch <- struct{}{}:
	default:
	}
}

// wait returns once cond holds over the reports, or fails after 10 s.
func (c *collector) wait(t *testing.T, what string, cond func([]Report) bool) {
	t.Helper()
	deadline := time.After(10 * time.Second)
	for {
		c.mu.Lock()
		ok := cond(c.rs)
		c.mu.Unlock()
		if ok {
			return
		}
		select {
		case <-c.ch:
		case <-deadline:
			t.Fatalf("timed out waiting for %s", what)
		}
	}
}

// reports is a copy of what was emitted so far.
func (c *collector) reports() []Report {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]Report(nil), c.rs...)
}

func samples(rs []Report) (out []erc.Sample) {
	for _, r := range rs {
		out = append(out, r.Samples...)
	}
	return out
}

func TestPPSLayout(t *testing.T) {
	// include/uapi/linux/pps.h on 64-bit: pps_ktime 16 bytes, pps_kinfo
	// 48 (44 padded to 8), pps_kparams 40, pps_fdata 64.
	if s := unsafe.Sizeof(unix.PPSKTime{}); s != 16 {
		t.Errorf("pps_ktime %d", s)
	}
	if s := unsafe.Sizeof(unix.PPSKInfo{}); s != 48 {
		t.Errorf("pps_kinfo %d", s)
	}
	if s := unsafe.Sizeof(unix.PPSKParams{}); s != 40 {
		t.Errorf("pps_kparams %d", s)
	}
	if s := unsafe.Sizeof(unix.PPSFData{}); s != 64 {
		t.Errorf("pps_fdata %d", s)
	}
	if o := unsafe.Offsetof(unix.PPSKInfo{}.Clear_tu); o != 24 {
		t.Errorf("clear_tu at %d", o)
	}
	if o := unsafe.Offsetof(unix.PPSFData{}.Timeout); o != 48 {
		t.Errorf("timeout at %d", o)
	}
	// _IOR/_IOW/_IOWR('p', 0xa1.., pointer): the header declares the
	// argument as a pointer, so the size field is 8 on 64-bit.
	ioc := func(dir, nr uint) uint { return dir<<30 | 8<<16 | uint('p')<<8 | nr }
	for _, c := range []struct{ got, want uint }{
		{unix.PPS_GETPARAMS, ioc(2, 0xa1)}, {unix.PPS_SETPARAMS, ioc(1, 0xa2)},
		{unix.PPS_GETCAP, ioc(2, 0xa3)}, {unix.PPS_FETCH, ioc(3, 0xa4)},
	} {
		if c.got != c.want {
			t.Errorf("ioctl 0x%x, want 0x%x", c.got, c.want)
		}
	}
	if m := ModeFor(0x10, ppsCaptureClear); m != 0x1012 {
		t.Errorf("mode 0x%x", m)
	}
}

func TestPPSEdge(t *testing.T) {
	var fd unix.PPSFData
	if _, _, ok := Edge(&fd, false); ok {
		t.Error("edge before any pulse")
	}
	fd.Info.Assert_sequence = 7
	fd.Info.Assert_tu = unix.PPSKTime{Sec: 1796637601, Nsec: 1234}
	fd.Info.Clear_sequence = 6
	fd.Info.Clear_tu = unix.PPSKTime{Sec: 1796637600, Nsec: 200_000_000}
	seq, ts, ok := Edge(&fd, false)
	if !ok || seq != 7 || ts != time.Unix(1796637601, 1234).UTC() {
		t.Errorf("assert %d %v %v", seq, ts, ok)
	}
	seq, ts, ok = Edge(&fd, true)
	if !ok || seq != 6 || ts != time.Unix(1796637600, 200_000_000).UTC() {
		t.Errorf("clear %d %v %v", seq, ts, ok)
	}
	fd.Info.Assert_tu.Nsec = 1e9
	if _, _, ok := Edge(&fd, false); ok {
		t.Error("nanoseconds out of range accepted")
	}
}

func TestPPSNotADevice(t *testing.T) {
	// /dev/null answers PPS_GETCAP with ENOTTY: a clear error, not a hang.
	p := &PPS{Device: "/dev/null"}
	_, err := p.Open()
	if err == nil || !strings.Contains(err.Error(), "is not a PPS device") {
		t.Fatalf("%v", err)
	}
	if _, err := (&PPS{Device: "/nonexistent/pps0"}).Open(); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("%v", err)
	}
}

func TestSock(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "chrony.ttyS0.sock")
	// A stale socket is replaced; any other file is refused.
	old, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: path, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	old.Close()
	notSock := filepath.Join(dir, "file")
	os.WriteFile(notSock, nil, 0o600)
	if _, err := (&Sock{Path: notSock}).Listen(); err == nil {
		t.Fatal("bound over a regular file")
	}
	s := &Sock{Path: path}
	c, err := s.Listen()
	if err != nil {
		t.Fatal(err)
	}
	if fi, _ := os.Stat(path); fi.Mode().Perm() != 0o600 {
		t.Errorf("mode %v", fi.Mode())
	}
	ctx, cancel := context.WithCancel(context.Background())
	col := newCollector()
	done := make(chan error)
	go func() { done <- s.Serve(ctx, c, col.emit) }()
	w, err := net.DialUnix("unixgram", nil, &net.UnixAddr{Name: path, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	tv := time.Date(2026, 12, 7, 10, 0, 0, 5000, time.UTC)
	w.Write(EncodeForTest(tv, -0.0015))
	w.Write([]byte("garbage"))
	col.wait(t, "a sample and an error", func(rs []Report) bool {
		var errs int
		for _, r := range rs {
			errs += len(r.Errs)
		}
		return len(samples(rs)) == 1 && errs == 1
	})
	if got := samples(col.reports())[0]; got.Local != tv || got.Offset() != -1500*time.Microsecond {
		t.Errorf("%+v", got)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if _, err := os.Lstat(path); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("socket left behind: %v", err)
	}
}

// EncodeForTest is a 64-bit struct sock_sample in the host's byte order.
func EncodeForTest(tv time.Time, off float64) []byte {
	return erc.EncodeSock(nil, binary.NativeEndian, erc.SockSample{TV: tv, Offset: off})
}

func TestSHM(t *testing.T) {
	// A unit far from gpsd's 0..7 so as not to meet a real writer.
	s := &SHM{Unit: 100 + os.Getpid()%100, Interval: 20 * time.Millisecond}
	id, err := unix.SysvShmGet(s.Key(), erc.SHMSize, unix.IPC_CREAT|unix.IPC_EXCL|0o600)
	if err != nil {
		t.Skipf("cannot create a SysV segment: %v", err)
	}
	defer unix.SysvShmCtl(id, unix.IPC_RMID, nil)
	seg, err := unix.SysvShmAttach(id, 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.SysvShmDetach(seg)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	col := newCollector()
	go s.Run(ctx, col.emit)
	col.wait(t, "attach", func(rs []Report) bool { return len(rs) > 0 && rs[0].Receiver != nil && rs[0].Receiver.Connected })
	clk := time.Date(2026, 12, 7, 10, 0, 1, 0, time.UTC)
	for i := range 3 {
		rcv := clk.Add(time.Duration(i)*time.Second + 700*time.Microsecond)
		erc.EncodeSHM(seg, binary.NativeEndian, erc.SHMSample{Clock: clk.Add(time.Duration(i) * time.Second), Receive: rcv, Count: int32(i), Precision: -20})
		col.wait(t, fmt.Sprintf("sample %d", i), func(rs []Report) bool { return len(samples(rs)) == i+1 })
		if binary.NativeEndian.Uint32(seg[48:]) != 0 {
			t.Error("valid not cleared")
		}
	}
	for _, s := range samples(col.reports()) {
		if s.Offset() != -700*time.Microsecond {
			t.Errorf("%+v", s)
		}
	}
	// A torn update (count moves during the copy) is not used.
	erc.EncodeSHM(seg, binary.NativeEndian, erc.SHMSample{Clock: clk, Receive: clk, Count: 9})
	img := make([]byte, erc.SHMSize)
	cnt := int32(10)
	valid := int32(1)
	if _, err := ReadSHM(img, seg, &cnt, &valid); !errors.Is(err, erc.ErrSHMBusy) || valid != 0 {
		t.Errorf("torn read: %v valid %d", err, valid)
	}
}

func TestGPSDReconnect(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	watch := make(chan string, 10)
	go func() {
		for i := 0; ; i++ {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			line, _ := bufio.NewReader(c).ReadString('\n')
			watch <- line
			now := time.Now().UTC()
			fmt.Fprintf(c, `{"class":"VERSION","release":"3.22"}`+"\n")
			fmt.Fprintf(c, `{"class":"TPV","device":"/dev/x","mode":3,"time":%q}`+"\n", now.Format(time.RFC3339Nano))
			fmt.Fprintf(c, `{"class":"TOFF","device":"/dev/x","real_sec":%d,"real_nsec":0,"clock_sec":%d,"clock_nsec":1000}`+"\n", now.Unix(), now.Unix())
			c.Close() // gpsd goes away
		}
	}()
	g := &GPSD{Address: ln.Addr().String(), MinBackoff: 10 * time.Millisecond, MaxBackoff: 50 * time.Millisecond}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	col := newCollector()
	go g.Run(ctx, col.emit)
	col.wait(t, "samples over three connections", func(rs []Report) bool { return len(samples(rs)) >= 3 })
	if w := <-watch; w != `?WATCH={"enable":true,"json":true,"pps":true};`+"\n" {
		t.Errorf("watch %q", w)
	}
	var disconnected bool
	for _, r := range col.reports() {
		if r.Receiver != nil && !r.Receiver.Connected {
			disconnected = true
		}
	}
	if !disconnected {
		t.Error("disconnection not reported")
	}
	if g.Network() != "tcp" || (&GPSD{Address: "/run/gpsd.sock"}).Network() != "unix" {
		t.Error("network")
	}
}
