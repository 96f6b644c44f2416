package client

import (
	"context"
	"errors"
	"strings"
	"unicode"

	godbus "github.com/godbus/dbus/v5"
)

// SourceCounters is a Source's Counters property: what gnomond's client
// did with the source since it got its socket.
type SourceCounters struct {
	Sent         uint64            `json:"sent"`
	Received     uint64            `json:"received"`
	Rejected     uint64            `json:"rejected"`
	SocketErrors uint64            `json:"socket_errors"`
	RejectedBy   map[string]uint64 `json:"rejected_by"`
}

func countersOf(p map[string]godbus.Variant) *SourceCounters {
	var m map[string]godbus.Variant
	get(p, "Counters", &m)
	if len(m) == 0 {
		return nil
	}
	c := &SourceCounters{RejectedBy: map[string]uint64{}}
	get(m, "Sent", &c.Sent)
	get(m, "Received", &c.Received)
	get(m, "Rejected", &c.Rejected)
	get(m, "SocketErrors", &c.SocketErrors)
	get(m, "RejectedBy", &c.RejectedBy)
	if c.RejectedBy == nil {
		c.RejectedBy = map[string]uint64{}
	}
	return c
}

// Server is one listening address of gnomond's NTP or NTS-KE servers, from
// Manager.GetServers. Counters' names are the D-Bus names in snake case
// (Requests → requests, KoDRate → kod_rate, NTSAnswers → nts_answers).
type Server struct {
	Protocol string            `json:"protocol"`
	Listen   string            `json:"listen"`
	Counters map[string]uint64 `json:"counters"`
}

// Servers reads every server's counters. A gnomond without GetServers
// (older) gives none.
func (c *Client) Servers(ctx context.Context) ([]Server, error) {
	var raw []map[string]godbus.Variant
	call := c.manager.CallWithContext(ctx, ManagerIface+".GetServers", 0)
	if call.Err != nil {
		var de godbus.Error
		var dep *godbus.Error
		if errors.As(call.Err, &dep) {
			de = *dep
		} else {
			errors.As(call.Err, &de)
		}
		if de.Name == errUnknownMethod {
			return []Server{}, nil
		}
		return nil, sort("reading gnomond's servers", call.Err)
	}
	if err := call.Store(&raw); err != nil {
		return nil, sort("reading gnomond's servers", err)
	}
	out := make([]Server, 0, len(raw))
	for _, d := range raw {
		s := Server{Counters: map[string]uint64{}}
		get(d, "Protocol", &s.Protocol)
		get(d, "Listen", &s.Listen)
		for k, v := range d {
			if n, ok := v.Value().(uint64); ok {
				s.Counters[SnakeCase(k)] = n
			}
		}
		out = append(out, s)
	}
	return out, nil
}

// SnakeCase turns a D-Bus counter name into its JSON and metric form:
// KoDRate → kod_rate, NTSAnswers → nts_answers, LimitedConns →
// limited_conns. A run of capitals is one word, except its last capital
// when a lower-case letter follows (NTSAnswers: NTS, Answers); "KoD" is one
// word.
func SnakeCase(s string) string {
	s = strings.ReplaceAll(s, "KoD", "Kod")
	r := []rune(s)
	var b strings.Builder
	for i, c := range r {
		if unicode.IsUpper(c) && i > 0 {
			prevLower := unicode.IsLower(r[i-1])
			nextLower := i+1 < len(r) && unicode.IsLower(r[i+1])
			if prevLower || (unicode.IsUpper(r[i-1]) && nextLower) {
				b.WriteByte('_')
			}
		}
		b.WriteRune(unicode.ToLower(c))
	}
	return b.String()
}
