package refclock

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"sync/atomic"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"

	erc "gnomon.dev/gnomon/engine/refclock"
)

// SHM reads ntpd's shared-memory segment NTP<Unit> (key 0x4e545030+Unit),
// creating it (mode 0600, as chrony does) when no writer has yet. It looks
// for a new sample every Interval (default 250 ms).
type SHM struct {
	Unit     int
	Interval time.Duration
	Log      *slog.Logger
}

// Key is the segment's SysV IPC key.
func (s *SHM) Key() int { return erc.SHMKeyBase + s.Unit }

// Run attaches and reads until ctx is done; it retries the attach every
// 10 s while it fails (a segment of another user's, mode 0600).
func (s *SHM) Run(ctx context.Context, emit Emit) error {
	log := s.Log
	if log == nil {
		log = slog.Default()
	}
	for ctx.Err() == nil {
		seg, err := s.Attach()
		if err != nil {
			log.Warn("cannot attach SHM segment; retrying in 10 s", "unit", s.Unit, "key", fmt.Sprintf("0x%08x", s.Key()), "err", err)
			emit(Report{Errs: []error{err}})
			if !sleep(ctx, 10*time.Second) {
				break
			}
			continue
		}
		s.Serve(ctx, seg, emit)
	}
	return nil
}

// Attach gets (or creates) and attaches the segment; the daemon calls it
// before dropping privileges (gpsd's units 0 and 1 are root's, mode 0600).
func (s *SHM) Attach() ([]byte, error) {
	id, err := unix.SysvShmGet(s.Key(), erc.SHMSize, unix.IPC_CREAT|0o600)
	if err != nil {
		return nil, fmt.Errorf("shmget: %w", err)
	}
	seg, err := unix.SysvShmAttach(id, 0, 0)
	if err != nil {
		return nil, fmt.Errorf("shmat: %w", err)
	}
	if len(seg) < erc.SHMSize {
		_ = unix.SysvShmDetach(seg)
		return nil, fmt.Errorf("segment is %d bytes, want at least %d", len(seg), erc.SHMSize)
	}
	return seg, nil
}

// Serve reads an attached segment until ctx is done, then detaches it.
func (s *SHM) Serve(ctx context.Context, seg []byte, emit Emit) {
	defer unix.SysvShmDetach(seg)
	emit(Report{Receiver: &erc.Receiver{Connected: true, Device: fmt.Sprintf("NTP%d", s.Unit)}})
	iv := s.Interval
	if iv <= 0 {
		iv = 250 * time.Millisecond
	}
	t := time.NewTicker(iv)
	defer t.Stop()
	var img [erc.SHMSize]byte
	count := (*int32)(unsafe.Pointer(&seg[erc.SHMCountOffset]))
	valid := (*int32)(unsafe.Pointer(&seg[erc.SHMValidOffset]))
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		smp, err := ReadSHM(img[:], seg, count, valid)
		switch {
		case errors.Is(err, erc.ErrSHMNotValid):
		case err != nil:
			emit(Report{Errs: []error{err}})
		default:
			emit(Report{Samples: []erc.Sample{smp.Sample()}})
		}
	}
}

// ReadSHM runs the reader's side of the protocol once: copy the segment
// into img, read count again, decode, and clear valid when the sample was
// taken or was torn (so the writer's next one is seen).
func ReadSHM(img, seg []byte, count, valid *int32) (erc.SHMSample, error) {
	for i := range img {
		img[i] = seg[i]
	}
	after := atomic.LoadInt32(count)
	smp, err := erc.DecodeSHM(img, after, binary.NativeEndian)
	if err == nil || errors.Is(err, erc.ErrSHMBusy) || errors.Is(err, erc.ErrSHMValue) {
		atomic.StoreInt32(valid, 0)
	}
	return smp, err
}
