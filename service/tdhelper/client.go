package tdhelper

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"time"
)

// DefaultSocket is where gnomon-timedate-helper.socket listens.
const DefaultSocket = "/run/gnomon/timedate-helper.sock"

// Client asks gnomon-timedate-helper to make timedate1's changes and to
// read the RTC; its methods match dbus.SystemFiles and dbus.RTCReader. The
// zero value uses DefaultSocket.
type Client struct {
	// Path is the helper's socket; "" means DefaultSocket.
	Path string
	// Timeout bounds one request when ctx has no earlier deadline; zero
	// means 20 s (the helper may have to be started by systemd first).
	Timeout time.Duration
}

// SetTimezone asks the helper to point /etc/localtime at zone.
func (c *Client) SetTimezone(ctx context.Context, zone string) error {
	return c.Do(ctx, Request{Op: OpTimezone, Zone: zone})
}

// SetLocalRTC asks the helper to rewrite /etc/adjtime.
func (c *Client) SetLocalRTC(ctx context.Context, local bool) error {
	return c.Do(ctx, Request{Op: OpLocalRTC, Local: local})
}

// SetRTC asks the helper to set the RTC to t.
func (c *Client) SetRTC(ctx context.Context, t time.Time, local bool) error {
	return c.Do(ctx, Request{Op: OpSetRTC, Time: t, Local: local})
}

// ReadRTC asks the helper to read the RTC: its broken-down time as if it
// kept UTC, in UTC. The helper's errors are *Error (ENOENT: no RTC).
func (c *Client) ReadRTC(ctx context.Context) (time.Time, error) {
	reply, err := c.exchange(ctx, Request{Op: OpReadRTC})
	if err != nil {
		return time.Time{}, err
	}
	return ParseRTCReply(reply)
}

// Do sends one request on a new connection and waits for the reply: nil
// for "ok" (for OpReadRTC, "ok <unix-micros>", whose time it drops), an
// *Error for the helper's "error: ...", another error when the helper
// cannot be reached or breaks the protocol.
func (c *Client) Do(ctx context.Context, r Request) error {
	reply, err := c.exchange(ctx, r)
	if err != nil {
		return err
	}
	if r.Op == OpReadRTC {
		_, err = ParseRTCReply(reply)
		return err
	}
	return ParseReply(reply)
}

// exchange sends r on a new connection and returns the reply line, not
// yet parsed.
func (c *Client) exchange(ctx context.Context, r Request) ([]byte, error) {
	line, err := r.Encode()
	if err != nil {
		return nil, err
	}
	path := c.Path
	if path == "" {
		path = DefaultSocket
	}
	timeout := c.Timeout
	if timeout <= 0 {
		timeout = 20 * time.Second
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var d net.Dialer
	conn, err := d.DialContext(ctx, "unix", path)
	if err != nil {
		return nil, fmt.Errorf("gnomon-timedate-helper: %w", err)
	}
	defer conn.Close()
	if dl, ok := ctx.Deadline(); ok {
		conn.SetDeadline(dl)
	}
	stop := context.AfterFunc(ctx, func() { conn.SetDeadline(time.Unix(1, 0)) })
	defer stop()
	if _, err := conn.Write(line); err != nil {
		return nil, fmt.Errorf("gnomon-timedate-helper: send: %w", err)
	}
	reply, err := bufio.NewReaderSize(io.LimitReader(conn, MaxLine+1), MaxLine+1).ReadSlice('\n')
	if err != nil {
		if ctx.Err() != nil {
			err = ctx.Err()
		} else if errors.Is(err, io.EOF) {
			err = errors.New("connection closed without a reply")
		}
		return nil, fmt.Errorf("gnomon-timedate-helper: %w", err)
	}
	return reply, nil
}
