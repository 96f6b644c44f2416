package ntp

import (
	"math/bits"
	"time"
)

// Interleaved client/server mode (draft-ietf-ntp-interleaved-modes, chrony's
// xleave). A reply's transmit timestamp is taken before the reply is sent;
// the kernel's timestamp of when it actually left comes only after. In the
// interleaved mode the server sends that better timestamp in its next
// reply to the same client:
//
//   - the client's request carries, as origin, the receive timestamp of
//     the server's previous reply, and in its receive field a value of its
//     own that differs from its transmit field;
//   - the server, finding that origin among the receive timestamps it
//     saved, answers with origin = the request's receive field, receive =
//     now, and transmit = the saved transmit time of its previous reply;
//   - the client, seeing its receive field come back as origin, takes the
//     previous exchange's four timestamps: its own send and receive times
//     of that exchange, and the server's receive and (now exact) transmit
//     times.
//
// Anything else is answered and read as the basic mode, so a client and a
// server that do not both speak it fall back without a lost exchange.

// IsInterleavedRequest reports whether a client request asks for an
// interleaved answer: a non-zero origin and a receive field that differs
// from the transmit field. (A basic request has origin and receive zero.)
func IsInterleavedRequest(req *Header) bool {
	return !req.OriginTime.IsZero() && req.ReceiveTime != req.TransmitTime
}

// MakeInterleaved turns resp, filled by Respond for req, into an
// interleaved answer whose transmit timestamp is prevTx, the transmit time
// of the previous answer to the same client.
func MakeInterleaved(resp, req *Header, prevTx Timestamp) {
	resp.OriginTime = req.ReceiveTime
	resp.TransmitTime = prevTx
}

// InterleavedTable is a server's memory of the answers it sent: for each
// receive timestamp it put in an answer, the client and the best known
// transmit time of that answer. It holds at most its size; the oldest
// entries go first.
type InterleavedTable struct {
	m    map[Timestamp]xlEntry
	ring []Timestamp
	next int
}

type xlEntry struct {
	client [16]byte
	tx     Timestamp
}

// NewInterleavedTable holds up to size answers (at least 1).
func NewInterleavedTable(size int) *InterleavedTable {
	size = max(size, 1)
	return &InterleavedTable{m: make(map[Timestamp]xlEntry, size), ring: make([]Timestamp, size)}
}

// Len is the number of answers held.
func (t *InterleavedTable) Len() int { return len(t.m) }

// Unique returns rx, or the next value not yet in the table, so that every
// receive timestamp the server sends names one answer (draft section 3:
// after a backward clock step, two answers could have the same).
func (t *InterleavedTable) Unique(rx Timestamp) Timestamp {
	for range 16 {
		if _, dup := t.m[rx]; !dup {
			return rx
		}
		rx++
	}
	return rx
}

// Save records an answer to client with receive timestamp rx, sent at tx
// (as well as the server knows before sending).
func (t *InterleavedTable) Save(client [16]byte, rx, tx Timestamp) {
	if _, ok := t.m[rx]; ok {
		t.m[rx] = xlEntry{client: client, tx: tx}
		return
	}
	if old := t.ring[t.next]; !old.IsZero() {
		delete(t.m, old)
	}
	t.ring[t.next] = rx
	t.next = (t.next + 1) % len(t.ring)
	t.m[rx] = xlEntry{client: client, tx: tx}
}

// SetTransmit replaces the transmit time of the answer with receive
// timestamp rx by the kernel's; false if it is no longer held.
func (t *InterleavedTable) SetTransmit(rx, tx Timestamp) bool {
	e, ok := t.m[rx]
	if !ok {
		return false
	}
	e.tx = tx
	t.m[rx] = e
	return true
}

// Lookup returns the transmit time of the answer to client whose receive
// timestamp was origin.
func (t *InterleavedTable) Lookup(client [16]byte, origin Timestamp) (Timestamp, bool) {
	e, ok := t.m[origin]
	if !ok || e.client != client {
		return 0, false
	}
	return e.tx, true
}

// xleaveState is a source's memory of its previous valid exchange, which
// an interleaved reply completes.
type xleaveState struct {
	valid  bool
	t1, t4 time.Time // our send (kernel) and receive times of it
	t2raw  Timestamp // the server's receive timestamp, as sent
	t2     time.Time
	xrcv   Timestamp // what the pending request carries in its receive field
	count  uint64    // interleaved replies taken
	held   uint64    // valid replies that gave no sample (see Receive)
	// interleaved: the reply that ended this exchange was interleaved;
	// used: this exchange was measured already, from its basic reply.
	interleaved, used bool
}

// interleavedReceiveField derives the request's receive field from the
// request's random value: unpredictable, and never equal to the transmit
// field (so the server can tell the modes apart).
func interleavedReceiveField(rnd uint64) Timestamp {
	v := Timestamp(bits.RotateLeft64(rnd, 32) ^ 0x9e3779b97f4a7c15)
	if v == Timestamp(rnd) || v.IsZero() {
		v++
	}
	return v
}

// SetInterleaved lets a source configured for the interleaved mode ask
// for it (the default) or not for now. An interleaved sample measures the
// previous exchange, a poll old: the engine turns the mode off while its
// frequency is unknown or the poll long, when that age costs more than
// the server's transmit-timestamp lead it removes.
func (s *Source) SetInterleaved(on bool) { s.xlOff = !on }

// InterleavedCount is how many interleaved replies came.
func (s *Source) InterleavedCount() uint64 { return s.xl.count }

// HeldCount is how many valid replies gave no sample (ErrNoSample).
func (s *Source) HeldCount() uint64 { return s.xl.held }
