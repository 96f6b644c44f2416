package dbus

import (
	"context"
	"errors"
	"io/fs"
	"os"
	"slices"
	"strings"
	"sync"
	"time"
)

// timesync1's four server lists and where gnomond takes them from:
//
//   - SystemNTPServers: the sources the administrator wrote in
//     gnomon.toml (a [[source]] list that differs from the packaged one);
//   - FallbackNTPServers: the packaged default sources, while the
//     configuration still lists exactly those;
//   - LinkNTPServers: systemd-networkd's per-link servers, the NTP= line
//     of /run/systemd/netif/state that networkd writes and
//     systemd-timesyncd reads;
//   - RuntimeNTPServers: SetRuntimeNTPServers.
//
// The daemon uses them with timesyncd's precedence: Runtime, else System
// and Link, else Fallback (the daemon's SetLinkServers and
// SetRuntimeServers apply it).

// ServerLists is what a Backend may implement to tell its configured
// sources apart; without it every configured source counts as System.
type ServerLists interface {
	SystemServers() []string
	FallbackServers() []string
}

// LinkSetter is what a Backend may implement to use networkd's servers.
type LinkSetter interface {
	SetLinkServers(ctx context.Context, servers []string) error
}

// LinkServers reads systemd-networkd's NTP servers.
type LinkServers interface {
	LinkNTPServers() ([]string, error)
}

// NetifState reads the NTP= line of networkd's state file (Path, normally
// /run/systemd/netif/state) as sd_network_get_ntp does; a missing file
// (networkd not running) means none. Invalid names are dropped, as
// timesyncd drops them.
type NetifState struct{ Path string }

// DefaultNetifState is networkd's state file.
const DefaultNetifState = "/run/systemd/netif/state"

// LinkNTPServers implements LinkServers.
func (n NetifState) LinkNTPServers() ([]string, error) {
	p := n.Path
	if p == "" {
		p = DefaultNetifState
	}
	data, err := os.ReadFile(p)
	if errors.Is(err, fs.ErrNotExist) {
		return []string{}, nil
	}
	if err != nil {
		return nil, err
	}
	return ParseNetifNTP(data), nil
}

// ParseNetifNTP returns the valid, distinct names of the NTP= line of a
// networkd state file.
func ParseNetifNTP(data []byte) []string {
	out := []string{}
	for _, line := range strings.Split(string(data), "\n") {
		v, ok := strings.CutPrefix(line, "NTP=")
		if !ok {
			continue
		}
		out = out[:0]
		for _, name := range strings.Fields(v) {
			if ValidServerName(name) && !slices.Contains(out, name) {
				out = append(out, name)
			}
		}
	}
	return out
}

// links follows networkd's servers for LinkNTPServers and hands changes
// to the backend.
type links struct {
	s    *Service
	mu   sync.Mutex
	last []string
}

func (l *links) get() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]string{}, l.last...)
}

// watch re-reads networkd's servers every interval until ctx ends.
func (l *links) watch(ctx context.Context, interval time.Duration) {
	src := l.s.opts.Link
	if src == nil {
		src = NetifState{}
	}
	setter, _ := l.s.b.(LinkSetter)
	first := true
	for {
		cur, err := src.LinkNTPServers()
		if err != nil {
			l.s.log.Debug("cannot read systemd-networkd's NTP servers", "err", err)
		} else {
			l.mu.Lock()
			changed := first || !slices.Equal(cur, l.last)
			l.last = cur
			l.mu.Unlock()
			if changed && setter != nil {
				cctx, cancel := context.WithTimeout(ctx, l.s.opts.CallTimeout)
				if err := setter.SetLinkServers(cctx, cur); err != nil && ctx.Err() == nil {
					l.s.log.Warn("cannot use systemd-networkd's NTP servers", "servers", cur, "err", err)
				}
				cancel()
			}
			first = false
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(interval):
		}
	}
}

// systemServers and fallbackServers are timesync1's lists.
func (s *Service) systemServers() []string {
	if sl, ok := s.b.(ServerLists); ok {
		return nonNil(sl.SystemServers())
	}
	return nonNil(s.b.ConfigServers())
}

func (s *Service) fallbackServers() []string {
	if sl, ok := s.b.(ServerLists); ok {
		return nonNil(sl.FallbackServers())
	}
	return []string{}
}
