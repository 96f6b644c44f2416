package refclock

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"os"
	"time"

	erc "gnomon.dev/gnomon/engine/refclock"
)

// Sock is chrony's SOCK reference clock: it binds a unix datagram socket
// at Path (replacing a stale socket left there, never another kind of
// file) and takes struct sock_sample datagrams from whoever sends them
// (gpsd writes /run/chrony.<device>.sock when it exists).
type Sock struct {
	Path string
	// Mode is the socket file's permission bits (default 0600: only the
	// daemon's user, and root, may send).
	Mode os.FileMode

	bound os.FileInfo
}

// Listen binds the socket; the daemon calls it before dropping privileges.
func (s *Sock) Listen() (*net.UnixConn, error) {
	if fi, err := os.Lstat(s.Path); err == nil {
		if fi.Mode().Type() != os.ModeSocket {
			return nil, fmt.Errorf("%s exists and is not a socket", s.Path)
		}
		if err := os.Remove(s.Path); err != nil {
			return nil, err
		}
	}
	c, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: s.Path, Net: "unixgram"})
	if err != nil {
		return nil, err
	}
	mode := s.Mode
	if mode == 0 {
		mode = 0o600
	}
	if err := os.Chmod(s.Path, mode); err != nil {
		c.Close()
		return nil, err
	}
	s.bound, _ = os.Lstat(s.Path)
	return c, nil
}

// Run binds and reads until ctx is done.
func (s *Sock) Run(ctx context.Context, emit Emit) error {
	c, err := s.Listen()
	if err != nil {
		return err
	}
	return s.Serve(ctx, c, emit)
}

// Serve reads datagrams from c until ctx is done, then closes it.
func (s *Sock) Serve(ctx context.Context, c *net.UnixConn, emit Emit) error {
	defer s.unlink()
	defer c.Close()
	stop := context.AfterFunc(ctx, func() { c.Close() })
	defer stop()
	emit(Report{Receiver: &erc.Receiver{Connected: true, Device: s.Path}})
	buf := make([]byte, 256)
	for {
		n, _, err := c.ReadFromUnix(buf)
		if err != nil {
			if ctx.Err() != nil || errors.Is(err, net.ErrClosed) {
				return nil
			}
			emit(Report{Errs: []error{err}})
			if !sleep(ctx, 100*time.Millisecond) {
				return nil
			}
			continue
		}
		ss, err := erc.DecodeSock(buf[:n], binary.NativeEndian)
		if err != nil {
			emit(Report{Errs: []error{err}})
			continue
		}
		emit(Report{Samples: []erc.Sample{ss.Sample()}})
	}
}

// unlink removes the socket file if it is still the one Listen bound.
func (s *Sock) unlink() {
	if s.bound == nil {
		return
	}
	if fi, err := os.Lstat(s.Path); err == nil && os.SameFile(fi, s.bound) {
		_ = os.Remove(s.Path)
	}
}
