package ptp

import (
	"testing"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// TestPHCLayouts: the structures and ioctl numbers match the kernel's
// (the sizes are those of linux/ptp_clock.h; x/sys's numbers, generated
// from the kernel headers, agree with ours).
func TestPHCLayouts(t *testing.T) {
	if s := unsafe.Sizeof(ptpClockTime{}); s != 16 {
		t.Errorf("ptp_clock_time %d", s)
	}
	if s := unsafe.Sizeof(ptpSysOffset{}); s != 832 {
		t.Errorf("ptp_sys_offset %d, want 832", s)
	}
	if s := unsafe.Sizeof(ptpSysOffsetExtended{}); s != 1216 {
		t.Errorf("ptp_sys_offset_extended %d, want 1216", s)
	}
	if s := unsafe.Sizeof(ptpSysOffsetPrecise{}); s != 64 {
		t.Errorf("ptp_sys_offset_precise %d, want 64", s)
	}
	if ioctlSysOffset != unix.PTP_SYS_OFFSET {
		t.Errorf("PTP_SYS_OFFSET %#x, x/sys %#x", ioctlSysOffset, unix.PTP_SYS_OFFSET)
	}
	if ioctlSysOffsetExtended != unix.PTP_SYS_OFFSET_EXTENDED {
		t.Errorf("PTP_SYS_OFFSET_EXTENDED %#x, x/sys %#x", ioctlSysOffsetExtended, uint32(unix.PTP_SYS_OFFSET_EXTENDED))
	}
	if ioctlSysOffsetPrecise != unix.PTP_SYS_OFFSET_PRECISE {
		t.Errorf("PTP_SYS_OFFSET_PRECISE %#x, x/sys %#x", ioctlSysOffsetPrecise, uint32(unix.PTP_SYS_OFFSET_PRECISE))
	}
	if s := unsafe.Sizeof(unix.HwTstampConfig{}); s != 12 {
		t.Errorf("hwtstamp_config %d", s)
	}
	if s := unsafe.Sizeof(unix.EthtoolTsInfo{}); s != 44 {
		t.Errorf("ethtool_ts_info %d", s)
	}
	if unix.SIOCSHWTSTAMP != 0x89b0 || unix.ETHTOOL_GET_TS_INFO != 0x41 {
		t.Error("request numbers")
	}
	// FD_TO_CLOCKID: ((~fd) << 3) | CLOCKFD(3)
	if id := unix.FdToClockID(3); id != -29 {
		t.Errorf("FD_TO_CLOCKID(3) = %d, want -29", id)
	}
}

func ct(t time.Time) ptpClockTime {
	return ptpClockTime{Sec: t.Unix(), Nsec: uint32(t.Nanosecond())}
}

// TestPHCFake drives the PHC code through fake syscalls: the requests it
// makes and how it reads the answers.
func TestPHCFake(t *testing.T) {
	p := &PHC{id: -29, maxPPM: 500}
	var lastTx unix.Timex
	p.adjtime = func(id int32, tx *unix.Timex) (int, error) { lastTx = *tx; return 0, nil }
	p.gettime = func(id int32, ts *unix.Timespec) error { ts.Sec, ts.Nsec = 100, 5; return nil }
	if got := p.Now(); !got.Equal(time.Unix(100, 5)) {
		t.Errorf("Now %v", got)
	}
	if err := p.SetFrequency(-12.5); err != nil || lastTx.Modes != unix.ADJ_FREQUENCY || lastTx.Freq != -12.5*65536 {
		t.Errorf("SetFrequency: %v %+v", err, lastTx)
	}
	if err := p.SetFrequency(600); err == nil {
		t.Error("600 ppm accepted")
	}
	if err := p.Step(-1500 * time.Millisecond); err != nil || lastTx.Modes != unix.ADJ_SETOFFSET|unix.ADJ_NANO ||
		lastTx.Time.Sec != -2 || lastTx.Time.Usec != 500_000_000 {
		t.Errorf("Step: %v %+v", err, lastTx.Time)
	}
	// PTP_SYS_OFFSET_PRECISE unsupported, _EXTENDED gives three samples,
	// the middle one narrowest
	sys := time.Unix(1000, 0)
	phcAhead := 37*time.Second + 250*time.Nanosecond
	p.f = nil
	p.ioctl = func(fd, req uintptr, arg unsafe.Pointer) error {
		switch req {
		case ioctlSysOffsetPrecise:
			return unix.EOPNOTSUPP
		case ioctlSysOffsetExtended:
			e := (*ptpSysOffsetExtended)(arg)
			if e.NSamples != 3 {
				t.Errorf("asked for %d samples", e.NSamples)
			}
			for i, w := range []time.Duration{3000, 1000, 2000} {
				b := sys.Add(time.Duration(i) * time.Millisecond)
				e.TS[i] = [3]ptpClockTime{ct(b), ct(b.Add(w / 2).Add(phcAhead + time.Duration(i))), ct(b.Add(w))}
			}
			return nil
		}
		return unix.EINVAL
	}
	off, unc, err := p.sysOffsetFD(0, 3)
	if err != nil || off != phcAhead+1 || unc != 500 || p.Method != "PTP_SYS_OFFSET_EXTENDED" {
		t.Errorf("extended: offset %v uncertainty %v err %v", off, unc, err)
	}
	// only the original ioctl
	p.ioctl = func(fd, req uintptr, arg unsafe.Pointer) error {
		if req != ioctlSysOffset {
			return unix.ENOTTY
		}
		s := (*ptpSysOffset)(arg)
		for i := 0; i < int(s.NSamples); i++ {
			b := sys.Add(time.Duration(i) * time.Microsecond * 10)
			s.TS[2*i] = ct(b)
			s.TS[2*i+1] = ct(b.Add(400).Add(phcAhead))
			s.TS[2*i+2] = ct(b.Add(800))
		}
		return nil
	}
	off, unc, err = p.sysOffsetFD(0, 2)
	if err != nil || off != phcAhead || unc != 400 {
		t.Errorf("basic: offset %v uncertainty %v err %v", off, unc, err)
	}
}

func TestHwConfig(t *testing.T) {
	info := TSInfo{Capabilities: unix.SOF_TIMESTAMPING_TX_HARDWARE | unix.SOF_TIMESTAMPING_RX_HARDWARE | unix.SOF_TIMESTAMPING_RAW_HARDWARE,
		PHCIndex: 0, TxTypes: 1 << unix.HWTSTAMP_TX_ON, RxFilters: 1<<unix.HWTSTAMP_FILTER_PTP_V2_L4_EVENT | 1<<unix.HWTSTAMP_FILTER_ALL}
	if !info.Hardware() {
		t.Error("Hardware")
	}
	cfg, err := hwConfig(info, UDP4)
	if err != nil || cfg.Rx_filter != unix.HWTSTAMP_FILTER_PTP_V2_L4_EVENT || cfg.Tx_type != unix.HWTSTAMP_TX_ON {
		t.Errorf("%+v %v", cfg, err)
	}
	cfg, err = hwConfig(info, Ethernet)
	if err != nil || cfg.Rx_filter != unix.HWTSTAMP_FILTER_ALL {
		t.Errorf("L2 falls back to ALL: %+v %v", cfg, err)
	}
	info.TxTypes = 0
	if _, err := hwConfig(info, UDP4); err == nil {
		t.Error("no TX type accepted")
	}
	if (TSInfo{PHCIndex: -1, Capabilities: info.Capabilities}).Hardware() {
		t.Error("no PHC")
	}
}

func putCmsg(level, typ int32, data []byte) []byte {
	l := cmsgHdrLen + len(data)
	b := make([]byte, cmsgAlign(l))
	if cmsgLenSize == 8 {
		*(*uint64)(unsafe.Pointer(&b[0])) = uint64(l)
	} else {
		*(*uint32)(unsafe.Pointer(&b[0])) = uint32(l)
	}
	*(*int32)(unsafe.Pointer(&b[cmsgLenSize])) = level
	*(*int32)(unsafe.Pointer(&b[cmsgLenSize+4])) = typ
	copy(b[cmsgHdrLen:], data)
	return b
}

func tsBytes(ts ...unix.Timespec) []byte {
	var out []byte
	for i := range ts {
		out = append(out, unsafe.Slice((*byte)(unsafe.Pointer(&ts[i])), unsafe.Sizeof(ts[i]))...)
	}
	return out
}

func TestParseControl(t *testing.T) {
	sw := unix.Timespec{Sec: 1700000000, Nsec: 123}
	hw := unix.Timespec{Sec: 37, Nsec: 456}
	ee := make([]byte, 16)
	*(*uint32)(unsafe.Pointer(&ee[0])) = uint32(unix.ENOMSG)
	ee[4] = unix.SO_EE_ORIGIN_TIMESTAMPING
	*(*uint32)(unsafe.Pointer(&ee[8])) = unix.SCM_TSTAMP_SND
	b := append(putCmsg(unix.SOL_SOCKET, unix.SCM_TIMESTAMPING, tsBytes(sw, unix.Timespec{}, hw)), putCmsg(unix.SOL_PACKET, unix.PACKET_TX_TIMESTAMP, ee)...)
	s := ParseControl(b)
	if !s.Software.Equal(time.Unix(sw.Unix())) || !s.Hardware.Equal(time.Unix(37, 456)) || !s.TxReport {
		t.Errorf("%+v", s)
	}
	if got := ParseControl(b[:len(b)-3]); got.TxReport {
		t.Error("truncated extended error accepted")
	}
}

func FuzzParseControl(f *testing.F) {
	f.Add(putCmsg(unix.SOL_SOCKET, unix.SCM_TIMESTAMPING, tsBytes(unix.Timespec{Sec: 1, Nsec: 2}, unix.Timespec{}, unix.Timespec{Sec: 3})))
	f.Fuzz(func(t *testing.T, b []byte) {
		s := ParseControl(b)
		if !s.Software.IsZero() && (s.Software.Nanosecond() >= 1e9 || s.Software.Unix() < 0) {
			t.Fatal("bad time accepted")
		}
	})
}
