package ptp

import (
	"errors"
	"fmt"
	"math"
	"os"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"

	"gnomon.dev/gnomon/engine/clock"
)

// The PTP clock ioctls and their structures (linux/ptp_clock.h). They are
// declared here, not taken from x/sys's "2" variants alone, so the
// layouts are visible and tested (TestPHCLayouts) and the original
// ioctls remain usable on kernels without the newer numbers.

// ptpClockTime is struct ptp_clock_time.
type ptpClockTime struct {
	Sec      int64
	Nsec     uint32
	Reserved uint32
}

func (t ptpClockTime) time() time.Time { return time.Unix(t.Sec, int64(t.Nsec)) }

const ptpMaxSamples = 25

// ptpSysOffset is struct ptp_sys_offset: n_samples pairs of system and
// PHC readings, system first and last: sys, phc, sys, phc, ..., sys.
type ptpSysOffset struct {
	NSamples uint32
	Rsv      [3]uint32
	TS       [2*ptpMaxSamples + 1]ptpClockTime
}

// ptpSysOffsetExtended is struct ptp_sys_offset_extended: per sample the
// system time before, the PHC time, and the system time after.
type ptpSysOffsetExtended struct {
	NSamples uint32
	ClockID  int32 // 0 (CLOCK_REALTIME) on older kernels, which ignore it
	Rsv      [2]uint32
	TS       [ptpMaxSamples][3]ptpClockTime
}

// ptpSysOffsetPrecise is struct ptp_sys_offset_precise (cross
// timestamping by the hardware).
type ptpSysOffsetPrecise struct {
	Device     ptpClockTime
	SysRealtim ptpClockTime
	SysMonoRaw ptpClockTime
	Rsv        [4]uint32
}

// ioctl numbers: _IOW('=', 5, struct ptp_sys_offset), _IOWR('=', 9,
// struct ptp_sys_offset_extended), _IOWR('=', 8, struct
// ptp_sys_offset_precise).
func iocNum(dir, nr, size uintptr) uintptr { return dir<<30 | size<<16 | uintptr('=')<<8 | nr }

const (
	iocWrite = 1
	iocRead  = 2
)

var (
	ioctlSysOffset         = iocNum(iocWrite, 5, unsafe.Sizeof(ptpSysOffset{}))
	ioctlSysOffsetExtended = iocNum(iocWrite|iocRead, 9, unsafe.Sizeof(ptpSysOffsetExtended{}))
	ioctlSysOffsetPrecise  = iocNum(iocWrite|iocRead, 8, unsafe.Sizeof(ptpSysOffsetPrecise{}))
)

// PHC is a PTP hardware clock (/dev/ptpN) as an engine/clock.Clock:
// read with clock_gettime and steered with clock_adjtime on its dynamic
// clock id (FD_TO_CLOCKID).
type PHC struct {
	f       *os.File
	id      int32
	maxPPM  float64
	ioctl   func(fd uintptr, req uintptr, arg unsafe.Pointer) error
	adjtime func(id int32, tx *unix.Timex) (int, error)
	gettime func(id int32, ts *unix.Timespec) error
	// Method is the ioctl the last SysOffset used.
	Method string
}

// OpenPHC opens /dev/ptpN (writable to steer it).
func OpenPHC(index int, write bool) (*PHC, error) {
	flag := os.O_RDONLY
	if write {
		flag = os.O_RDWR
	}
	f, err := os.OpenFile(fmt.Sprintf("/dev/ptp%d", index), flag, 0)
	if err != nil {
		return nil, fmt.Errorf("ptp: %w", err)
	}
	return newPHC(f), nil
}

func newPHC(f *os.File) *PHC {
	return &PHC{f: f, id: unix.FdToClockID(int(f.Fd())), maxPPM: 500,
		ioctl: func(fd, req uintptr, arg unsafe.Pointer) error {
			if _, _, e := unix.Syscall(unix.SYS_IOCTL, fd, req, uintptr(arg)); e != 0 {
				return e
			}
			return nil
		},
		adjtime: func(id int32, tx *unix.Timex) (int, error) { return unix.ClockAdjtime(id, tx) },
		gettime: func(id int32, ts *unix.Timespec) error { return unix.ClockGettime(id, ts) },
	}
}

// Close closes the device.
func (p *PHC) Close() error { return p.f.Close() }

// ClockID is the dynamic POSIX clock id.
func (p *PHC) ClockID() int32 { return p.id }

// Now reads the PHC.
func (p *PHC) Now() time.Time {
	var ts unix.Timespec
	if err := p.gettime(p.id, &ts); err != nil {
		return time.Time{}
	}
	return time.Unix(int64(ts.Sec), int64(ts.Nsec))
}

// SetFrequency sets the PHC's frequency offset (ADJ_FREQUENCY, in
// parts per million scaled by 2^16).
func (p *PHC) SetFrequency(freqPPM float64) error {
	if math.IsNaN(freqPPM) || math.Abs(freqPPM) > p.maxPPM {
		return fmt.Errorf("ptp: PHC frequency %.3f ppm out of range", freqPPM)
	}
	tx := unix.Timex{Modes: unix.ADJ_FREQUENCY}
	setLong(&tx.Freq, int64(math.Round(freqPPM*65536)))
	_, err := p.adjtime(p.id, &tx)
	return err
}

// Step moves the PHC by offset (ADJ_SETOFFSET with nanoseconds).
func (p *PHC) Step(offset time.Duration) error {
	tx := unix.Timex{Modes: unix.ADJ_SETOFFSET | unix.ADJ_NANO}
	sec := int64(offset / time.Second)
	nsec := int64(offset % time.Second)
	if nsec < 0 {
		sec--
		nsec += 1e9
	}
	// With ADJ_NANO the microseconds field holds nanoseconds.
	setLong(&tx.Time.Sec, sec)
	setLong(&tx.Time.Usec, nsec)
	_, err := p.adjtime(p.id, &tx)
	return err
}

// MaxFrequencyPPM is the adjustment range assumed (drivers report theirs in
// PTP_CLOCK_GETCAPS max_adj; 500 ppm is within every driver's).
func (p *PHC) MaxFrequencyPPM() float64 { return p.maxPPM }

// SysOffset compares the PHC with CLOCK_REALTIME: the PHC minus the
// system clock, and the uncertainty of the comparison (the width of the
// narrowest sample). It tries PTP_SYS_OFFSET_PRECISE (hardware cross
// timestamps), then _EXTENDED, then the original PTP_SYS_OFFSET.
func (p *PHC) SysOffset(samples int) (offset, uncertainty time.Duration, err error) {
	return p.sysOffsetFD(p.f.Fd(), samples)
}

func (p *PHC) sysOffsetFD(fd uintptr, samples int) (offset, uncertainty time.Duration, err error) {
	samples = min(max(samples, 1), ptpMaxSamples)
	var pr ptpSysOffsetPrecise
	if p.ioctl(fd, ioctlSysOffsetPrecise, unsafe.Pointer(&pr)) == nil {
		p.Method = "PTP_SYS_OFFSET_PRECISE"
		return pr.Device.time().Sub(pr.SysRealtim.time()), 0, nil
	}
	ext := ptpSysOffsetExtended{NSamples: uint32(samples)}
	if p.ioctl(fd, ioctlSysOffsetExtended, unsafe.Pointer(&ext)) == nil {
		p.Method = "PTP_SYS_OFFSET_EXTENDED"
		return bestExtended(&ext)
	}
	so := ptpSysOffset{NSamples: uint32(samples)}
	if err := p.ioctl(fd, ioctlSysOffset, unsafe.Pointer(&so)); err != nil {
		return 0, 0, fmt.Errorf("ptp: PTP_SYS_OFFSET: %w", err)
	}
	p.Method = "PTP_SYS_OFFSET"
	return bestBasic(&so)
}

var errNoSamples = errors.New("ptp: the PHC returned no samples")

func bestExtended(e *ptpSysOffsetExtended) (time.Duration, time.Duration, error) {
	n := min(int(e.NSamples), ptpMaxSamples)
	best := time.Duration(-1)
	var off time.Duration
	for i := 0; i < n; i++ {
		before, phc, after := e.TS[i][0].time(), e.TS[i][1].time(), e.TS[i][2].time()
		w := after.Sub(before)
		if w < 0 {
			continue
		}
		if best < 0 || w < best {
			best = w
			off = phc.Sub(before.Add(w / 2))
		}
	}
	if best < 0 {
		return 0, 0, errNoSamples
	}
	return off, best / 2, nil
}

func bestBasic(s *ptpSysOffset) (time.Duration, time.Duration, error) {
	n := min(int(s.NSamples), ptpMaxSamples)
	best := time.Duration(-1)
	var off time.Duration
	for i := 0; i < n; i++ {
		before, phc, after := s.TS[2*i].time(), s.TS[2*i+1].time(), s.TS[2*i+2].time()
		w := after.Sub(before)
		if w < 0 {
			continue
		}
		if best < 0 || w < best {
			best = w
			off = phc.Sub(before.Add(w / 2))
		}
	}
	if best < 0 {
		return 0, 0, errNoSamples
	}
	return off, best / 2, nil
}

// SetStatus does nothing: a PHC has no leap or synchronization status
// (the system clock's is set from the PTP source's announcements).
func (p *PHC) SetStatus(clock.Status) error { return nil }

// setLong stores v in a C long field of the kernel's structures: int64 on
// 64-bit platforms, int32 on 32-bit ones (every value here fits).
func setLong[T ~int32 | ~int64](p *T, v int64) { *p = T(v) }
