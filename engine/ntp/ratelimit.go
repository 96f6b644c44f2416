package ntp

import (
	"encoding/binary"
	"math/bits"
	"strconv"
	"time"
)

// RateLimitConfig configures a RateLimiter.
type RateLimitConfig struct {
	// Interval is the average minimum interval between answers to one
	// client. Zero or negative disables limiting: Check always answers.
	Interval time.Duration
	// Burst is how many answers a client that has been quiet may get back
	// to back before the Interval applies; less than 1 means 1.
	Burst int
	// KoDEvery makes 1 in KoDEvery dropped requests of a client a Kiss
	// (the first drop, then every KoDEvery-th); 0 means never.
	KoDEvery int
	// TableSize is how many clients are tracked at once. It is rounded up
	// to a power of two of at least 8; 0 means DefaultRateLimitTableSize.
	TableSize int
}

// DefaultRateLimitTableSize is the table size used when TableSize is 0
// (about 384 KiB).
const DefaultRateLimitTableSize = 16384

// Verdict is a RateLimiter's decision about one request.
type Verdict uint8

const (
	Answer Verdict = iota // answer normally
	Drop                  // send nothing
	Kiss                  // answer with a RATE Kiss-o'-Death (RespondKiss)
)

func (v Verdict) String() string {
	switch v {
	case Answer:
		return "answer"
	case Drop:
		return "drop"
	case Kiss:
		return "kiss"
	}
	return "verdict(" + strconv.Itoa(int(v)) + ")"
}

// RateLimiter limits how often each client is answered. It is pure and
// deterministic: its decisions depend only on the sequence of (client, now)
// it is handed. It is not safe for concurrent use.
//
// Each client is limited by the generic cell rate algorithm (a token bucket
// kept as one time per client, the "theoretical arrival time" tat): a
// request at now is answered if tat - now <= (Burst-1)*Interval, and then
// tat = max(tat, now) + Interval. So a client gets at most Burst answers
// back to back and then one per Interval on average, however fast it sends.
// Dropped requests do not push tat further (a flooder still gets one answer
// per Interval, and so does a victim whose address a flooder spoofs; the
// output to any address stays bounded by the same rate plus the KoDs).
//
// Clients are keyed by IPv4 address and by IPv6 /64 prefix (a single host
// usually has a whole /64 to pick source addresses from); IPv4-mapped IPv6
// addresses count as IPv4, and the zone is ignored.
//
// The table is fixed in size: a hash of the client picks a bucket of 8
// entries. A new client replaces, in its bucket, an empty entry or else the
// entry with the earliest tat: the client closest to having no restriction
// left. An entry whose tat has passed carries no state (a new entry would
// behave the same), so the only clients ever forgotten early are the least
// restricted ones, and a flood from spoofed sources, each sending little,
// evicts its own entries rather than a heavy sender's. Memory never grows.
//
// Pass a monotonic reading for now. If now goes backwards, a client's debt
// is capped at one Interval past a full burst, so it recovers within one
// Interval of forward time.
type RateLimiter struct {
	interval int64 // ns
	tau      int64 // (burst-1)*interval, ns: how far ahead tat may run
	kodEvery uint32
	mask     uint64 // number of buckets - 1
	entries  []rateEntry
}

const rateWays = 8

type rateEntry struct {
	key   uint64 // IPv4 address or IPv6 /64 prefix
	tat   int64  // ns since the Unix epoch
	drops uint32 // requests dropped so far, for KoDEvery
	kind  uint8  // 0 empty, else one of keyV4, keyV6, keyOther
}

const (
	keyV4 uint8 = 1 + iota
	keyV6
	keyOther // unused: every address is IPv4 or IPv6
)

// NewRateLimiter returns a limiter with an empty table.
func NewRateLimiter(cfg RateLimitConfig) *RateLimiter {
	r := &RateLimiter{}
	if cfg.Interval <= 0 {
		return r
	}
	r.interval = int64(cfg.Interval)
	burst := int64(cfg.Burst)
	if burst < 1 {
		burst = 1
	}
	const maxTau = 1 << 62
	if burst-1 > maxTau/r.interval {
		r.tau = maxTau
	} else {
		r.tau = (burst - 1) * r.interval
	}
	if cfg.KoDEvery > 0 {
		r.kodEvery = uint32(min(int64(cfg.KoDEvery), 1<<31))
	}
	size := cfg.TableSize
	if size == 0 {
		size = DefaultRateLimitTableSize
	}
	size = max(size, rateWays)
	size = min(size, 1<<30)
	size = 1 << bits.Len(uint(size-1)) // next power of two
	r.entries = make([]rateEntry, size)
	r.mask = uint64(size/rateWays - 1)
	return r
}

// Check records a request from client at now and says what to do with it.
// It does not allocate.
func (r *RateLimiter) Check(client [16]byte, now time.Time) Verdict {
	if r.interval <= 0 {
		return Answer
	}
	key, kind := rateKey(client)
	t := now.UnixNano()
	b := (mix64(key^uint64(kind)<<56) & r.mask) * rateWays
	bucket := r.entries[b : b+rateWays : b+rateWays]
	var e *rateEntry
	victim := 0
	for i := range bucket {
		c := &bucket[i]
		if c.kind == kind && c.key == key {
			e = c
			break
		}
		v := &bucket[victim]
		if v.kind != 0 && (c.kind == 0 || c.tat < v.tat) {
			victim = i
		}
	}
	if e == nil {
		e = &bucket[victim]
		*e = rateEntry{key: key, kind: kind, tat: t}
	}
	if e.tat < t {
		e.tat = t
	}
	if limit := t + r.tau + r.interval; e.tat > limit && limit > t { // now went backwards
		e.tat = limit
	}
	if e.tat-t > r.tau {
		e.drops++
		if r.kodEvery > 0 && (e.drops-1)%r.kodEvery == 0 {
			return Kiss
		}
		return Drop
	}
	e.tat += r.interval
	return Answer
}

// rateKey maps a client to its table key.
func rateKey(a [16]byte) (uint64, uint8) {
	var mapped = [12]byte{10: 0xff, 11: 0xff}
	if [12]byte(a[:12]) == mapped {
		return uint64(binary.BigEndian.Uint32(a[12:])), keyV4
	}
	return binary.BigEndian.Uint64(a[:8]), keyV6
}

// mix64 is a 64-bit finalizer (splitmix64's): every input bit affects every
// output bit, so neighbouring addresses land in unrelated buckets.
func mix64(x uint64) uint64 {
	x ^= x >> 30
	x *= 0xbf58476d1ce4e5b9
	x ^= x >> 27
	x *= 0x94d049bb133111eb
	x ^= x >> 31
	return x
}
