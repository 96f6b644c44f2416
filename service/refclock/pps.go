package refclock

import (
	"context"
	"errors"
	"fmt"
	"os"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"

	erc "gnomon.dev/gnomon/engine/refclock"
)

// RFC 2783 on Linux (include/uapi/linux/pps.h): the PPS device answers
// four ioctls, PPS_GETCAP (the mode bits it supports), PPS_GETPARAMS and
// PPS_SETPARAMS (struct pps_kparams: which edges to capture) and
// PPS_FETCH (struct pps_fdata: the newest assert and clear timestamps
// with their sequence numbers, waiting up to a timeout for a new edge).
// golang.org/x/sys/unix has the request numbers and the structs; the mode
// bits are here.
const (
	ppsCaptureAssert = 0x01
	ppsCaptureClear  = 0x02
	ppsCanWait       = 0x100
	ppsTsfmtTspec    = 0x1000
	ppsAPIVersion    = 1
	ppsTimeInvalid   = 1 << 0
)

// PPS reads an RFC 2783 PPS device (/dev/ppsN): the timestamps of the
// chosen edge (Clear false: assert) as pulses, whose second another
// source gives (lock).
type PPS struct {
	Device string
	Clear  bool
}

func (p *PPS) edgeMode() int32 {
	if p.Clear {
		return ppsCaptureClear
	}
	return ppsCaptureAssert
}

// Open opens the device (read-only: the ioctls need no write access, and
// PPS_SETPARAMS needs CAP_SYS_TIME instead) and sets it to capture the
// edge; the daemon calls it before dropping privileges.
func (p *PPS) Open() (*os.File, error) {
	f, err := os.OpenFile(p.Device, os.O_RDONLY, 0)
	if err != nil {
		return nil, err
	}
	if err := p.setup(int(f.Fd())); err != nil {
		f.Close()
		return nil, err
	}
	return f, nil
}

func (p *PPS) setup(fd int) error {
	var caps int32
	if err := ioctlPtr(fd, unix.PPS_GETCAP, unsafe.Pointer(&caps)); err != nil {
		if errors.Is(err, unix.ENOTTY) || errors.Is(err, unix.EINVAL) {
			return fmt.Errorf("%s is not a PPS device (PPS_GETCAP: %w)", p.Device, err)
		}
		return fmt.Errorf("%s: PPS_GETCAP: %w", p.Device, err)
	}
	if caps&p.edgeMode() == 0 {
		return fmt.Errorf("%s cannot capture the %s edge (capabilities 0x%x)", p.Device, p.edgeName(), caps)
	}
	if caps&ppsCanWait == 0 {
		return fmt.Errorf("%s cannot wait for an edge (capabilities 0x%x)", p.Device, caps)
	}
	var params unix.PPSKParams
	if err := ioctlPtr(fd, unix.PPS_GETPARAMS, unsafe.Pointer(&params)); err != nil {
		return fmt.Errorf("%s: PPS_GETPARAMS: %w", p.Device, err)
	}
	want := ModeFor(params.Mode, p.edgeMode())
	if params.Mode != want {
		params.Api_version = ppsAPIVersion
		params.Mode = want
		if err := ioctlPtr(fd, unix.PPS_SETPARAMS, unsafe.Pointer(&params)); err != nil {
			return fmt.Errorf("%s: PPS_SETPARAMS (capture the %s edge): %w", p.Device, p.edgeName(), err)
		}
	}
	return nil
}

// ModeFor is the pps_kparams mode that captures edge, in timespec format,
// keeping the other bits of cur.
func ModeFor(cur, edge int32) int32 { return cur | edge | ppsTsfmtTspec }

func (p *PPS) edgeName() string {
	if p.Clear {
		return "clear"
	}
	return "assert"
}

func ioctlPtr(fd int, req uint, arg unsafe.Pointer) error {
	_, _, e := unix.Syscall(unix.SYS_IOCTL, uintptr(fd), uintptr(req), uintptr(arg))
	if e != 0 {
		return e
	}
	return nil
}

// Run opens the device and reads until ctx is done.
func (p *PPS) Run(ctx context.Context, emit Emit) error {
	f, err := p.Open()
	if err != nil {
		return err
	}
	return p.Serve(ctx, f, emit)
}

// Serve fetches edges from an opened device until ctx is done.
func (p *PPS) Serve(ctx context.Context, f *os.File, emit Emit) error {
	defer f.Close()
	emit(Report{Receiver: &erc.Receiver{Connected: true, Device: p.Device}})
	var last uint32
	first := true
	for ctx.Err() == nil {
		var fd unix.PPSFData
		fd.Timeout = unix.PPSKTime{Sec: 1, Nsec: 500_000_000}
		if err := ioctlPtr(int(f.Fd()), unix.PPS_FETCH, unsafe.Pointer(&fd)); err != nil {
			if errors.Is(err, unix.ETIMEDOUT) || errors.Is(err, unix.EINTR) {
				continue
			}
			emit(Report{Errs: []error{fmt.Errorf("%s: PPS_FETCH: %w", p.Device, err)}})
			if !sleep(ctx, time.Second) {
				break
			}
			continue
		}
		seq, ts, ok := Edge(&fd, p.Clear)
		if !ok || (!first && seq == last) {
			continue
		}
		first, last = false, seq
		emit(Report{Samples: []erc.Sample{{Local: ts, Ref: ts.Truncate(time.Second), Pulse: true}}})
	}
	return nil
}

// Edge takes the chosen edge's sequence number and timestamp out of a
// PPS_FETCH result; ok is false before the first edge or for an invalid
// time.
func Edge(fd *unix.PPSFData, clear bool) (seq uint32, ts time.Time, ok bool) {
	seq, kt := fd.Info.Assert_sequence, fd.Info.Assert_tu
	if clear {
		seq, kt = fd.Info.Clear_sequence, fd.Info.Clear_tu
	}
	if seq == 0 || kt.Flags&ppsTimeInvalid != 0 || kt.Nsec < 0 || kt.Nsec >= 1e9 || kt.Sec <= 0 {
		return 0, time.Time{}, false
	}
	return seq, time.Unix(kt.Sec, int64(kt.Nsec)).UTC(), true
}
