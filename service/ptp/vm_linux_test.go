package ptp

import (
	"math"
	"os"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	eptp "gnomon.dev/gnomon/engine/ptp"
)

// TestVMHardware runs inside a qemu guest with an emulated e1000e NIC
// (tests/ptp/vm.sh, make test-ptp-vm): the hardware timestamping and PHC
// paths against a real kernel driver. QEMU's e1000e accepts every PHC call
// but its clock does not advance, so this checks the API path (the
// requests are accepted, the answers decode), not timing.
func TestVMHardware(t *testing.T) {
	iface := os.Getenv("GNOMON_PTP_VM_IFACE")
	if iface == "" {
		t.Skip("only inside the qemu guest of tests/ptp/vm.sh")
	}
	info, err := GetTSInfo(iface)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("ETHTOOL_GET_TS_INFO %s: capabilities %#x, PHC %d, tx types %#x, rx filters %#x, hardware %v",
		iface, info.Capabilities, info.PHCIndex, info.TxTypes, info.RxFilters, info.Hardware())
	if !info.Hardware() || info.PHCIndex < 0 {
		t.Fatalf("e1000e reports no hardware timestamping")
	}
	idx, phc := vmPHC(t, iface)
	t0 := phc.Now()
	if t0.IsZero() {
		t.Error("clock_gettime on the PHC failed")
	}
	if err := phc.SetFrequency(12.5); err != nil {
		t.Errorf("clock_adjtime ADJ_FREQUENCY: %v", err)
	}
	if err := phc.Step(1500 * time.Millisecond); err != nil {
		t.Errorf("clock_adjtime ADJ_SETOFFSET: %v", err)
	}
	t1 := phc.Now()
	off, unc, err := phc.SysOffset(5)
	t.Logf("PHC %d: read %v, after +1.5 s step %v; PHC minus CLOCK_REALTIME %v ± %v by %s (err %v)", idx, t0, t1, off, unc, phc.Method, err)
	if d := t1.Sub(t0); d < 1500*time.Millisecond || d > 1600*time.Millisecond {
		t.Errorf("the step of 1.5 s moved the PHC by %v", d)
	}
	if err != nil {
		t.Errorf("PTP_SYS_OFFSET*: %v", err)
	}
	tr, err := Open(Options{Kind: UDP4, Interface: iface, Hardware: true, TxTimeout: 200 * time.Millisecond})
	if err != nil {
		t.Fatalf("hardware-timestamping transport: %v", err)
	}
	defer tr.Close()
	m := &eptp.Sync{Header: eptp.Header{Version: 2, Sequence: 1, Source: eptp.PortIdentity{Port: 1}}}
	b := make([]byte, eptp.MaxLen)
	n, _ := m.MarshalTo(b)
	tx, fallback, err := tr.Send(b[:n], true, false, true)
	t.Logf("Sync sent with hardware timestamping: hardware TX timestamp %v, software %v, fell back to the send time: %v, err %v",
		tx.Hardware, tx.Software, fallback, err)
	if err != nil {
		t.Errorf("send: %v", err)
	}
}

// TestVMPHCFollow: the PHC following the system clock against the e1000e
// driver's /dev/ptp0 (in the guest of tests/ptp/vm.sh): the comparisons
// go through PTP_SYS_OFFSET_EXTENDED, the steps and frequencies through
// clock_adjtime on the dynamic clock id, and the PHC ends up on the
// system clock after each step. QEMU's PHC does not advance, so it falls
// one second behind between comparisons and is stepped every time: the
// API path, not timing.
func TestVMPHCFollow(t *testing.T) {
	iface := os.Getenv("GNOMON_PTP_VM_IFACE")
	if iface == "" {
		t.Skip("only inside the qemu guest of tests/ptp/vm.sh")
	}
	_, phc := vmPHC(t, iface)
	// start the PHC 1000 s further from the system clock
	before, _, err := phc.SysOffset(5)
	if err != nil {
		t.Fatal(err)
	}
	if err := phc.Step(-1000 * time.Second); err != nil {
		t.Fatal(err)
	}
	f := newPHCFollow(FollowOptions{StepThreshold: eptp.DefaultFollowStepThreshold}, phc, phc, nil, 0)
	f.method = func() string { return phc.Method }
	steady := time.Now()
	for i := range 4 {
		step, ppm, did, err := f.run(steady)
		if err != nil || !did {
			t.Fatalf("comparison %d: did %v, err %v", i, did, err)
		}
		after, unc, err := phc.SysOffset(5)
		if err != nil {
			t.Fatal(err)
		}
		var tx unix.Timex
		if _, err := unix.ClockAdjtime(phc.ClockID(), &tx); err != nil {
			t.Fatalf("clock_adjtime read: %v", err)
		}
		st := f.status()
		t.Logf("comparison %d (%s): PHC − system %v, step %v, frequency set %+.3f ppm, read back %+.3f ppm; after: PHC − system %v ± %v",
			i, st.Method, st.Offset, step, ppm, float64(tx.Freq)/65536, after, unc)
		if st.Method != "PTP_SYS_OFFSET_EXTENDED" && st.Method != "PTP_SYS_OFFSET_PRECISE" && st.Method != "PTP_SYS_OFFSET" {
			t.Errorf("method %q", st.Method)
		}
		if i >= 1 && step == 0 {
			t.Errorf("comparison %d: no step with the PHC %v from the system clock", i, st.Offset)
		}
		if i >= 1 && (after < -250*time.Millisecond || after > 250*time.Millisecond) {
			t.Errorf("comparison %d: the PHC is %v from the system clock after its step", i, after)
		}
		if got := float64(tx.Freq) / 65536; math.Abs(got-ppm) > 0.001 {
			t.Errorf("frequency read back %+.3f ppm, set %+.3f", got, ppm)
		}
		if want := before - 1000*time.Second; i == 0 && (st.Offset > want+2*time.Second || st.Offset < want-2*time.Second) {
			t.Errorf("first comparison: PHC − system %v, want about %v", st.Offset, want)
		}
		time.Sleep(time.Second)
		steady = steady.Add(time.Second)
	}
	if st := f.status(); st.Steps < 3 || st.Samples != 4 {
		t.Errorf("status %+v", st)
	}
}

// vmPHC turns hardware timestamping on for iface and opens its PHC for
// writing, closed when the test ends.
func vmPHC(t *testing.T, iface string) (int, *PHC) {
	t.Helper()
	idx, err := EnableHardware(iface, UDP4)
	if err != nil {
		t.Fatalf("SIOCSHWTSTAMP: %v", err)
	}
	phc, err := OpenPHC(idx, true)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { phc.Close() })
	return idx, phc
}
