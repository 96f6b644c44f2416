package main

import (
	"errors"
	"sync/atomic"
	"time"

	"gnomon.dev/gnomon/engine/ntp"
)

// ringSize is how many requests per client can be outstanding before the
// oldest is forgotten (and its reply, if it ever comes, counts as
// unmatched). At 100 000 requests/s on one client that is 0.65 s.
const ringSize = 1 << 16

// slot is one outstanding request. The sender writes it before the request
// leaves; the receiver claims it when the reply comes. Both run at once, so
// every field is atomic.
type slot struct {
	tx     atomic.Uint64 // the request's transmit timestamp (the reply's origin)
	sentNS atomic.Int64  // when it was sent, ns since the run's start (monotonic)
	state  atomic.Uint32 // slotPending, then slotDone
	sess   atomic.Int32  // NTS: the index of the session that sealed it
}

const (
	slotFree uint32 = iota
	slotPending
	slotDone
)

// tracker matches one client's replies to its requests by the origin
// timestamp, which a server copies from the request's transmit timestamp.
// A request's transmit timestamp has the real seconds of when it was sent
// in its upper half (so it looks like any client's) and the client's
// sequence number in its lower half, which picks the slot.
type tracker struct {
	ring []slot
	seq  uint32 // sender side only
	pad  int    // sender side only: runConfig.pad
	// Receiver side only:
	stats
	hist histogram
}

// stats are one client's receive counts.
type stats struct {
	answered  uint64 // first reply to a request we sent
	valid     uint64 // ... that also passed ntp.CheckReply (NTS: and was authenticated)
	kod       uint64 // ... that was a Kiss-o'-Death
	unsync    uint64 // ... from an unsynchronized server (leap 3 or stratum >= 16)
	invalid   uint64 // ... that failed some other check
	nak       uint64 // ... NTS only: an NTS NAK carrying our unique identifier
	unauth    uint64 // ... NTS only: not authenticated (bad or missing authenticator)
	late      uint64 // ... NTS only: its session had moved on to a newer request
	unmatched uint64 // a reply to nothing outstanding: duplicate, too late, forged
	malformed uint64 // not an NTP packet at all (Parse failed) or truncated
}

func (s *stats) add(o *stats) {
	s.answered += o.answered
	s.valid += o.valid
	s.kod += o.kod
	s.unsync += o.unsync
	s.invalid += o.invalid
	s.nak += o.nak
	s.unauth += o.unauth
	s.late += o.late
	s.unmatched += o.unmatched
	s.malformed += o.malformed
}

// answers are the replies that count as answers: every matched reply in
// plain NTP; in NTS only the authenticated ones (not NAKs, replies that
// fail authentication, or replies a session can no longer open).
func (s *stats) answers() uint64 { return s.valid + s.kod + s.unsync + s.invalid }

// protocol is what a client sends and how it reads the replies: plain NTP
// (tracker) or NTS (ntsTracker). request runs on the sender goroutine,
// reply on the receiver goroutine, at the same time.
type protocol interface {
	// request writes the next request into b and returns its length,
	// or 0 when nothing can be sent now (NTS: no session is free).
	request(b []byte, wall time.Time, sentNS int64) int
	// reply handles one datagram received at rxNS; it never panics.
	reply(b []byte, rxNS int64)
	// counts are the receive counts and latencies (receiver side).
	counts() (*stats, *histogram)
}

func newTracker(firstSeq uint32) *tracker {
	return &tracker{ring: make([]slot, ringSize), seq: firstSeq}
}

func (t *tracker) counts() (*stats, *histogram) { return &t.stats, &t.hist }

// request writes the next client request into b (at least 48 bytes) and
// records it as sent at sentNS; wall is the wall-clock time, for the
// seconds of the transmit timestamp. It returns the request's length.
func (t *tracker) request(b []byte, wall time.Time, sentNS int64) int {
	n, _ := t.requestFor(b, wall, sentNS, -1)
	if t.pad > n {
		// One field of zeros, pad-48 bytes in all (pad is checked: a
		// multiple of 4, at least 64, and b has room).
		n = len(ntp.AppendExtension(b[:n], padType, nil, t.pad-n))
	}
	return n
}

// padType is the type of the extension field that pads a plain request
// (-pad): one no server knows (RFC 7822 leaves a server free to ignore it).
const padType uint16 = 0xf0f0

// requestFor is request for session sess (-1: none), also returning the
// transmit timestamp.
func (t *tracker) requestFor(b []byte, wall time.Time, sentNS int64, sess int32) (int, ntp.Timestamp) {
	t.seq++
	tx := ntp.Timestamp(uint64(ntp.TimestampFromTime(wall).Seconds())<<32 | uint64(t.seq))
	h := ntp.Header{
		Version:      4,
		Mode:         ntp.ModeClient,
		Poll:         6,
		Precision:    -20,
		TransmitTime: tx,
	}
	n, err := h.MarshalTo(b)
	if err != nil {
		panic("ntpload: request buffer: " + err.Error()) // b is ours and large enough
	}
	s := &t.ring[t.seq%ringSize]
	s.state.Store(slotFree) // a receiver must not claim it half-written
	s.tx.Store(uint64(tx))
	s.sentNS.Store(sentNS)
	s.sess.Store(sess)
	s.state.Store(slotPending)
	return n, tx
}

// reply handles one datagram received at rxNS (ns since the run's start).
// It parses it, finds the request it answers, counts it and records its
// latency. It never panics, whatever b holds.
func (t *tracker) reply(b []byte, rxNS int64) {
	var p ntp.Packet
	if ntp.Parse(b, &p) != nil {
		t.malformed++
		return
	}
	sent, _, ok := t.match(p.OriginTime)
	if !ok {
		return
	}
	t.answered++
	t.classify(&p.Header, time.Duration(rxNS-sent))
}

// match claims the outstanding request whose transmit timestamp was
// origin and returns when it was sent and by which session; a reply to
// nothing outstanding is counted as unmatched.
func (t *tracker) match(origin ntp.Timestamp) (sentNS int64, sess int32, ok bool) {
	s := &t.ring[uint32(origin)%ringSize]
	if s.tx.Load() != uint64(origin) || !s.state.CompareAndSwap(slotPending, slotDone) {
		t.unmatched++
		return 0, 0, false
	}
	sent, sess := s.sentNS.Load(), s.sess.Load()
	if s.tx.Load() != uint64(origin) {
		// The sender reused the slot while we looked: too late to tell.
		t.unmatched++
		return 0, 0, false
	}
	return sent, sess, true
}

// classify counts an answer by its header, as a client checks it, and
// records its latency.
func (t *tracker) classify(h *ntp.Header, latency time.Duration) {
	t.hist.add(latency)
	var kiss *ntp.KissError
	switch err := ntp.CheckReply(h, h.OriginTime, 0); {
	case err == nil:
		t.valid++
	case errors.As(err, &kiss):
		t.kod++
	case errors.Is(err, ntp.ErrUnsynchronized), errors.Is(err, ntp.ErrStratum):
		t.unsync++
	default:
		t.invalid++
	}
}
