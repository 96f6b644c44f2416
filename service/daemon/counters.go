package daemon

import (
	"context"
	"errors"
	"strings"
	"sync/atomic"

	gdbus "gnomon.dev/gnomon/dbus"
	"gnomon.dev/gnomon/engine/ntp"
	"gnomon.dev/gnomon/engine/nts"
	"gnomon.dev/gnomon/engine/system"
)

var _ gdbus.CountersBackend = (*Daemon)(nil)

// serverCounters are one NTP worker's counters. Each worker has its own
// (no cache line is shared between workers on the hot path); readers sum
// them with atomic loads.
type serverCounters struct {
	requests    atomic.Uint64 // datagrams read
	answers     atomic.Uint64 // replies with our time (NTS ones included)
	ntsAnswers  atomic.Uint64 // of answers: authenticated with NTS
	kodRate     atomic.Uint64 // RATE kisses sent
	kodDeny     atomic.Uint64 // DENY kisses sent (deny-listed clients)
	ntsNAKs     atomic.Uint64 // NTSN kisses sent: the cookie did not open or the authenticator failed
	rateLimited atomic.Uint64 // dropped by the rate limiter (no KoD)
	filtered    atomic.Uint64 // dropped by an allow or deny list (action "ignore")
	malformed   atomic.Uint64 // too long, truncated, not NTP, malformed NTS fields
	ignored     atomic.Uint64 // well-formed but not a client request (mode 6/7, ...)
	sendErrors  atomic.Uint64 // replies the kernel refused to send
	_           [64]byte
}

// add sums c into m under the names documented in docs/dbus.md.
func (c *serverCounters) add(m map[string]uint64) {
	m["Requests"] += c.requests.Load()
	m["Answers"] += c.answers.Load()
	m["NTSAnswers"] += c.ntsAnswers.Load()
	m["KoDRate"] += c.kodRate.Load()
	m["KoDDeny"] += c.kodDeny.Load()
	m["KoDNTSN"] += c.ntsNAKs.Load()
	m["RateLimited"] += c.rateLimited.Load()
	m["Filtered"] += c.filtered.Load()
	m["Malformed"] += c.malformed.Load()
	m["Ignored"] += c.ignored.Load()
	m["SendErrors"] += c.sendErrors.Load()
}

// countKiss counts a KoD of code sent.
func (c *serverCounters) countKiss(code uint32) {
	switch code {
	case ntp.KissRate:
		c.kodRate.Add(1)
	case ntp.KissDeny:
		c.kodDeny.Add(1)
	case ntp.KissNTSN:
		c.ntsNAKs.Add(1)
	}
}

// ntpServerCounters lists one entry per listening address of g: the
// configured address, or each activated socket's own.
func (g *serverGroup) counters() []gdbus.ServerCounters {
	if !g.activated {
		m := map[string]uint64{}
		for _, w := range g.ws {
			w.ctr.add(m)
		}
		listen := g.listen
		if len(g.ss.Conns) > 0 && listen.Port() == 0 {
			listen = g.ss.Conns[0].LocalAddr()
		}
		return []gdbus.ServerCounters{{Protocol: "ntp", Listen: listen.String(), Counters: m}}
	}
	var out []gdbus.ServerCounters
	for i, c := range g.ss.Conns {
		m := map[string]uint64{}
		if i < len(g.ws) {
			g.ws[i].ctr.add(m)
		}
		out = append(out, gdbus.ServerCounters{Protocol: "ntp", Listen: c.LocalAddr().String(), Counters: m})
	}
	return out
}

// ServerCounters lists the counters of every NTP server address and every
// NTS-KE server (docs/dbus.md). It reads the server lists on the owner
// loop; the counters themselves are atomics the workers update.
func (d *Daemon) ServerCounters(ctx context.Context) ([]gdbus.ServerCounters, error) {
	var out []gdbus.ServerCounters
	err := d.call(ctx, func() error {
		for _, g := range d.servers {
			out = append(out, g.counters()...)
		}
		for _, g := range d.keServers {
			if g.srv == nil {
				continue
			}
			st := g.srv.Stats()
			var addrs []string
			for _, h := range g.lns {
				addrs = append(addrs, h.Addr().String())
			}
			out = append(out, gdbus.ServerCounters{Protocol: "nts-ke", Listen: strings.Join(addrs, ","), Counters: map[string]uint64{
				"Accepted":     st.Accepted,
				"Served":       st.Served,
				"Failed":       st.Failed,
				"Timeouts":     st.Timeouts,
				"LimitedConns": st.LimitedConns,
				"LimitedRate":  st.LimitedRate,
				"Evicted":      st.Evicted,
				"Refused":      st.Refused,
			}})
		}
		return nil
	})
	if out == nil {
		out = []gdbus.ServerCounters{}
	}
	return out, err
}

// sourceCounters are a client source's counters; the owner loop alone
// updates and reads them.
type sourceCounters struct {
	sent, received, rejected, socketErrors uint64
	rejectedBy                             map[string]uint64
}

func (c *sourceCounters) reject(err error) {
	c.rejected++
	if c.rejectedBy == nil {
		c.rejectedBy = map[string]uint64{}
	}
	c.rejectedBy[rejectReason(err)]++
}

// rejectReason is the short name (docs/dbus.md) of why a reply was not
// used.
func rejectReason(err error) string {
	var kiss *ntp.KissError
	switch {
	case errors.As(err, &kiss):
		switch kiss.Code {
		case ntp.KissRate, ntp.KissDeny, ntp.KissNTSN, ntp.KissRstr:
			return "kod-" + strings.ToLower(ntp.KissCodeString(kiss.Code))
		}
		return "kod-other"
	case errors.Is(err, ntp.ErrNTSNak):
		return "nts-nak"
	case errors.Is(err, ntp.ErrNotPending):
		return "not-pending"
	case errors.Is(err, ntp.ErrOriginMismatch):
		return "origin-mismatch"
	case errors.Is(err, nts.ErrNotAuthenticated), errors.Is(err, nts.ErrUnexpectedReply), errors.Is(err, nts.ErrAuthField):
		return "auth"
	case errors.Is(err, ntp.ErrShort), errors.Is(err, ntp.ErrVersion), errors.Is(err, ntp.ErrExtension),
		errors.Is(err, ntp.ErrHeaderField), errors.Is(err, ntp.ErrMode):
		return "malformed"
	case errors.Is(err, ntp.ErrZeroTimestamp):
		return "zero-timestamp"
	case errors.Is(err, ntp.ErrUnsynchronized):
		return "unsynchronized"
	case errors.Is(err, ntp.ErrStratum):
		return "stratum"
	case errors.Is(err, ntp.ErrRootDistance):
		return "root-distance"
	case errors.Is(err, ntp.ErrNegativeDelay):
		return "negative-delay"
	}
	return "other"
}

// SourceCounters copies every live source's counters on the owner loop.
func (d *Daemon) SourceCounters(ctx context.Context) (map[system.ID]gdbus.SourceCounters, error) {
	out := map[system.ID]gdbus.SourceCounters{}
	err := d.call(ctx, func() error {
		for id, ls := range d.sources {
			c := ls.ctr
			by := make(map[string]uint64, len(c.rejectedBy))
			for k, v := range c.rejectedBy {
				by[k] = v
			}
			out[id] = gdbus.SourceCounters{Sent: c.sent, Received: c.received, Rejected: c.rejected,
				SocketErrors: c.socketErrors, RejectedBy: by}
		}
		return nil
	})
	return out, err
}

// countReply counts a reply about to be sent: a KoD by its code, else an
// answer (and an NTS one when it carries NTS fields).
func (c *serverCounters) countReply(h *ntp.Header, ntsReply *nts.ServerReply) {
	if h.Stratum == 0 { // RespondKiss; other replies have stratum 1..16
		c.countKiss(h.ReferenceID)
		return
	}
	c.answers.Add(1)
	if ntsReply != nil {
		c.ntsAnswers.Add(1)
	}
}
