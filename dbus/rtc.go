package dbus

import (
	"context"
	"errors"
	"io/fs"
	"syscall"
	"time"

	"gnomon.dev/gnomon/service/sysfiles"
	"gnomon.dev/gnomon/service/tdhelper"
)

// RTCReader reads the RTC for timedate1 (RTCTimeUSec, and
// SetLocalRTC(fix_system=true)). A SystemFiles in Options.Files that also
// implements it is asked: sysfiles.Direct reads /dev/rtc itself,
// tdhelper.Client asks gnomon-timedate-helper, which runs as root, because
// /dev/rtc is root's alone. Any other SystemFiles leaves the reading to
// sysfiles.Direct on Options.Paths. Nothing is cached: every Get reads.
type RTCReader interface {
	// ReadRTC is the RTC's broken-down time read as if it kept UTC
	// (timegm), a whole number of µs since 1970 (sysfiles.CheckRTCTime).
	// With no RTC the error wraps fs.ErrNotExist, with an RTC holding no
	// valid time syscall.EINVAL.
	ReadRTC(ctx context.Context) (time.Time, error)
}

var (
	_ RTCReader = sysfiles.Direct{}
	_ RTCReader = (*tdhelper.Client)(nil)
)

// rtcReadTimeout bounds one RTC read through the helper (which systemd may
// have to start first): a property Get waits for it.
const rtcReadTimeout = 5 * time.Second

// rtcReader is the RTCReader in use, and whether it reads the device in
// this process (as opposed to asking the helper).
func (s *Service) rtcReader() (r RTCReader, direct bool) {
	switch f := s.opts.Files.(type) {
	case sysfiles.Direct, *sysfiles.Direct:
		return f.(RTCReader), true
	case RTCReader:
		return f, false
	}
	return sysfiles.Direct{Paths: s.opts.Paths}, true
}

// readRTC reads the RTC through the seam.
func (s *Service) readRTC() (time.Time, bool, error) {
	r, direct := s.rtcReader()
	ctx, cancel := context.WithTimeout(s.ctx, rtcReadTimeout)
	defer cancel()
	t, err := r.ReadRTC(ctx)
	return t, direct, err
}

// rtcTimeUSec is the RTCTimeUSec getter.
func (t *timedate) rtcTimeUSec() (any, error) {
	rt, direct, err := t.s.readRTC()
	us, warn, err := rtcUSec(rt, direct, err)
	if warn != "" {
		t.s.log.Warn(warn, "err", err)
		err = nil
	}
	if err != nil {
		return nil, errnoError("Failed to read RTC", err)
	}
	return us, nil
}

// rtcUSec is timedate1's RTCTimeUSec for an RTC read that gave rt or err:
// rt in µs; 0 when there is no RTC (ENOENT), it is busy (EBUSY, with a
// warning) or holds no valid time (EINVAL, which includes a reading out of
// the µs range: timedated 262 gives 0 for an overflow too). Other errors
// fail the read, and with it the whole GetAll, as in timedated, except:
//
//   - direct: permission denied (EACCES, EPERM) is 0 with a warning. Under
//     User=gnomon without the helper the device is root's alone, and a
//     failing GetAll would take "timedatectl status" with it.
//   - through the helper: a helper that cannot be reached (no reply, as
//     opposed to its "error: ..." reply) is 0 with a warning, for the same
//     reason.
//
// warn is the message to log, when there is one; err is then the cause.
func rtcUSec(rt time.Time, direct bool, err error) (us uint64, warn string, _ error) {
	if err == nil {
		if sysfiles.CheckRTCTime(rt) != nil {
			return 0, "RTC time out of range: RTCTimeUSec reads 0", sysfiles.ErrRTCRange
		}
		return uint64(rt.UnixMicro()), "", nil
	}
	var he *tdhelper.Error
	if !direct && !errors.As(err, &he) {
		return 0, "cannot ask gnomon-timedate-helper to read the RTC: RTCTimeUSec reads 0", err
	}
	var errno syscall.Errno
	errors.As(err, &errno)
	switch {
	case errno == syscall.EBUSY:
		return 0, "RTC busy: RTCTimeUSec reads 0", err
	case errors.Is(err, fs.ErrNotExist) || errno == syscall.EINVAL:
		return 0, "", nil
	case direct && errors.Is(err, fs.ErrPermission):
		return 0, "cannot read the RTC (root's alone?): RTCTimeUSec reads 0", err
	}
	return 0, "", err
}
