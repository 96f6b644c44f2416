package tdhelper

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"slices"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// Files makes the changes and reads the RTC; sysfiles.Direct is the real
// one.
type Files interface {
	SetTimezone(ctx context.Context, zone string) error
	SetLocalRTC(ctx context.Context, local bool) error
	SetRTC(ctx context.Context, t time.Time, local bool) error
	// ReadRTC is the RTC's broken-down time as if it kept UTC.
	ReadRTC(ctx context.Context) (time.Time, error)
}

// Server answers requests one connection at a time, so changes never
// overlap.
type Server struct {
	Files Files
	// AllowUIDs may send requests besides uid 0, checked with SO_PEERCRED.
	AllowUIDs []uint32
	Log       *slog.Logger
	// IdleTimeout ends Serve after that long without a connection; zero
	// means never.
	IdleTimeout time.Duration
	// RequestTimeout bounds reading one request and making the change;
	// zero means 10 s.
	RequestTimeout time.Duration
}

// ErrPeerRefused is the refusal of a peer whose uid is not allowed.
var ErrPeerRefused = fmt.Errorf("%w: this peer may not use gnomon-timedate-helper", syscall.EPERM)

// Serve accepts on l until ctx ends or IdleTimeout passes without a
// connection; both return nil.
func (s *Server) Serve(ctx context.Context, l *net.UnixListener) error {
	log := s.Log
	if log == nil {
		log = slog.Default()
	}
	stop := context.AfterFunc(ctx, func() { l.SetDeadline(time.Unix(1, 0)) })
	defer stop()
	for {
		if s.IdleTimeout > 0 {
			l.SetDeadline(time.Now().Add(s.IdleTimeout))
		}
		if ctx.Err() != nil {
			return nil
		}
		conn, err := l.AcceptUnix()
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			if errors.Is(err, syscall.ETIMEDOUT) || isTimeout(err) {
				log.Debug("idle: exiting", "idle", s.IdleTimeout)
				return nil
			}
			if errors.Is(err, net.ErrClosed) {
				return err
			}
			log.Warn("accept", "err", err)
			time.Sleep(50 * time.Millisecond)
			continue
		}
		s.handle(ctx, log, conn)
	}
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// PeerCred is the peer's credentials from SO_PEERCRED.
func PeerCred(conn *net.UnixConn) (*unix.Ucred, error) {
	raw, err := conn.SyscallConn()
	if err != nil {
		return nil, err
	}
	var cred *unix.Ucred
	var cerr error
	if err := raw.Control(func(fd uintptr) {
		cred, cerr = unix.GetsockoptUcred(int(fd), unix.SOL_SOCKET, unix.SO_PEERCRED)
	}); err != nil {
		return nil, err
	}
	return cred, cerr
}

func (s *Server) handle(ctx context.Context, log *slog.Logger, conn *net.UnixConn) {
	defer func() {
		// Closing with unread input would reset the connection and could
		// lose the reply: end the reply, then take what the peer still
		// sends (a little, briefly) until it closes.
		conn.CloseWrite()
		conn.SetReadDeadline(time.Now().Add(time.Second))
		io.Copy(io.Discard, io.LimitReader(conn, 64<<10))
		conn.Close()
	}()
	timeout := s.RequestTimeout
	if timeout <= 0 {
		timeout = 10 * time.Second
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	conn.SetDeadline(time.Now().Add(timeout))
	cred, err := PeerCred(conn)
	if err != nil {
		log.Warn("no peer credentials", "err", err)
		conn.Write(EncodeReply(fmt.Errorf("%w: no peer credentials", syscall.EPERM)))
		return
	}
	if cred.Uid != 0 && !slices.Contains(s.AllowUIDs, cred.Uid) {
		log.Warn("refused a peer", "uid", cred.Uid, "pid", cred.Pid)
		conn.Write(EncodeReply(ErrPeerRefused))
		return
	}
	br := bufio.NewReaderSize(io.LimitReader(conn, MaxLine+1), MaxLine+1)
	line, err := br.ReadSlice('\n')
	if err == nil && br.Buffered() > 0 {
		err = badRequest("more than one request on a connection")
	}
	if err != nil && !errors.Is(err, bufio.ErrBufferFull) {
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			err = badRequest("no complete line")
		} else {
			log.Warn("reading a request", "uid", cred.Uid, "err", err)
		}
		conn.Write(EncodeReply(err))
		return
	}
	req, err := ParseRequest(line)
	reply := []byte("ok\n")
	if err == nil {
		reply, err = s.do(ctx, req)
	}
	attrs := []any{"uid", cred.Uid, "pid", cred.Pid}
	// Changes are logged; reads, asked for by every timedate1 GetAll, only
	// at debug level, and so are the failures that mean "no RTC time".
	quiet := false
	switch req.Op {
	case OpTimezone:
		attrs = append(attrs, "op", "timezone", "zone", req.Zone)
	case OpLocalRTC:
		attrs = append(attrs, "op", "local-rtc", "local", req.Local)
	case OpSetRTC:
		attrs = append(attrs, "op", "rtc-set", "time", req.Time.UTC().Format(time.RFC3339), "local", req.Local)
	case OpReadRTC:
		attrs = append(attrs, "op", "rtc-read")
		var errno syscall.Errno
		quiet = err == nil || (errors.As(err, &errno) && (errno == syscall.ENOENT || errno == syscall.EBUSY || errno == syscall.EINVAL))
	}
	switch {
	case err != nil && !quiet:
		log.Warn("request failed", append(attrs, "err", err)...)
	case err != nil:
		log.Debug("request failed", append(attrs, "err", err)...)
	case quiet:
		log.Debug("done", append(attrs, "reply", string(reply[:len(reply)-1]))...)
	default:
		log.Info("done", attrs...)
	}
	if err != nil {
		reply = EncodeReply(err)
	}
	conn.Write(reply)
}

// do carries out r and returns its success line.
func (s *Server) do(ctx context.Context, r Request) ([]byte, error) {
	ok := []byte("ok\n")
	switch r.Op {
	case OpTimezone:
		return ok, s.Files.SetTimezone(ctx, r.Zone)
	case OpLocalRTC:
		return ok, s.Files.SetLocalRTC(ctx, r.Local)
	case OpSetRTC:
		return ok, s.Files.SetRTC(ctx, r.Time, r.Local)
	case OpReadRTC:
		t, err := s.Files.ReadRTC(ctx)
		if err != nil {
			return nil, err
		}
		return EncodeRTCReply(t)
	}
	return nil, badRequest("unknown request")
}
