package ptp

import (
	"os"
	"testing"
	"time"

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
	idx, err := EnableHardware(iface, UDP4)
	if err != nil {
		t.Fatalf("SIOCSHWTSTAMP: %v", err)
	}
	phc, err := OpenPHC(idx, true)
	if err != nil {
		t.Fatal(err)
	}
	defer phc.Close()
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
