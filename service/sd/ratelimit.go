package sd

import (
	"context"
	"fmt"
	"log/slog"
	"sort"
	"sync"
	"time"
)

// OverflowKey is the key under which RateLimited counts the keys it no
// longer tracks: new keys while its table is full share one allowance,
// and counts of keys swept out of a full table are added to it.
const OverflowKey = "(other)"

// RateLimited lets one log line per key through per interval and counts
// the lines it holds back, for logging about bad input that a peer could
// otherwise use to flood the log. It reads no clock: every call is given
// the time. It tracks at most maxKeys keys plus OverflowKey; call Expire
// now and then to report and forget the keys that went quiet. It is safe
// for concurrent use.
type RateLimited struct {
	interval time.Duration
	maxKeys  int

	mu       sync.Mutex
	keys     map[string]*rateEntry
	overflow *rateEntry // nil until needed
	// A full table is swept only when a key can have gone quiet: from
	// the last sweep's time (a clock going back sweeps at once) until
	// the oldest key it kept is an interval old, none can.
	sweptAt, nextSweep time.Time
}

type rateEntry struct {
	last       time.Time // when a line was last let through
	suppressed int       // lines held back since
	state      string    // AllowState: the state the last line reported
}

// Suppressed is a count of lines held back for a key.
type Suppressed struct {
	Key   string
	Count int
}

// NewRateLimited returns a limiter letting one line per key through every
// interval, tracking at most maxKeys keys (at least 1).
func NewRateLimited(interval time.Duration, maxKeys int) *RateLimited {
	return &RateLimited{interval: interval, maxKeys: max(maxKeys, 1), keys: make(map[string]*rateEntry)}
}

func (r *RateLimited) over(e *rateEntry, now time.Time) bool {
	d := now.Sub(e.last)
	return d >= r.interval || d < 0
}

// Allow reports whether a line for key may be logged at now, and if so
// how many lines for key were held back since the last one let through.
// A now before the last line let through (a clock that went back) counts
// as a new interval.
func (r *RateLimited) Allow(key string, now time.Time) (ok bool, suppressed int) {
	return r.AllowState(key, "", now)
}

// AllowState is Allow for a line that reports a state (an error's text,
// a source's condition): a line whose state differs from the last one let
// through for key is always let through, so a change is never held back,
// only its repetitions are.
func (r *RateLimited) AllowState(key, state string, now time.Time) (ok bool, suppressed int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	e := r.keys[key]
	if e != nil && e.state != state {
		n := e.suppressed
		e.last, e.suppressed, e.state = now, 0, state
		return true, n
	}
	if e == nil && key != OverflowKey && len(r.keys) >= r.maxKeys {
		r.sweep(now)
	}
	switch {
	case e != nil:
	case key != OverflowKey && len(r.keys) < r.maxKeys:
		r.keys[key] = &rateEntry{last: now, state: state}
		return true, 0
	default:
		if r.overflow == nil {
			r.overflow = &rateEntry{last: now}
			return true, 0
		}
		e = r.overflow
	}
	if r.over(e, now) {
		n := e.suppressed
		e.last, e.suppressed = now, 0
		return true, n
	}
	e.suppressed++
	return false, 0
}

// sweep drops the keys whose interval is over, moving what they held back
// to the overflow count.
func (r *RateLimited) sweep(now time.Time) {
	if !now.Before(r.sweptAt) && now.Before(r.nextSweep) {
		return
	}
	r.sweptAt = now
	r.nextSweep = now.Add(r.interval)
	for k, e := range r.keys {
		if !r.over(e, now) {
			if next := e.last.Add(r.interval); next.Before(r.nextSweep) {
				r.nextSweep = next
			}
			continue
		}
		if e.suppressed > 0 {
			if r.overflow == nil {
				r.overflow = &rateEntry{}
			}
			r.overflow.suppressed += e.suppressed
		}
		delete(r.keys, k)
	}
}

// Expire forgets the keys whose interval is over at now and returns,
// sorted by key, the counts they still held back, for the caller to
// report. Call it every interval or so.
func (r *RateLimited) Expire(now time.Time) []Suppressed {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []Suppressed
	for k, e := range r.keys {
		if r.over(e, now) {
			if e.suppressed > 0 {
				out = append(out, Suppressed{Key: k, Count: e.suppressed})
			}
			delete(r.keys, k)
		}
	}
	if e := r.overflow; e != nil && r.over(e, now) {
		if e.suppressed > 0 {
			out = append(out, Suppressed{Key: OverflowKey, Count: e.suppressed})
		}
		r.overflow = nil
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Key < out[j].Key })
	return out
}

// Log logs msg with args at level on l if key is allowed at now, adding
// " (suppressed N similar messages)" and a "suppressed" attribute when
// lines were held back. A line held back is still logged at debug level
// (marked "rate_limited"), so that nothing is hidden from a debug log. It
// reports whether the line was logged at level.
func (r *RateLimited) Log(ctx context.Context, l *slog.Logger, now time.Time, level slog.Level, key, msg string, args ...any) bool {
	return r.LogState(ctx, l, now, level, key, "", msg, args...)
}

// LogState is Log for a line reporting state (AllowState): a new state is
// always logged.
func (r *RateLimited) LogState(ctx context.Context, l *slog.Logger, now time.Time, level slog.Level, key, state, msg string, args ...any) bool {
	ok, n := r.AllowState(key, state, now)
	if !ok {
		if level > slog.LevelDebug && l.Enabled(ctx, slog.LevelDebug) {
			l.Log(ctx, slog.LevelDebug, msg, append(args, slog.Bool("rate_limited", true))...)
		}
		return false
	}
	if n > 0 {
		msg = fmt.Sprintf("%s (suppressed %d similar messages)", msg, n)
		args = append(args, slog.Int("suppressed", n))
	}
	l.Log(ctx, level, msg, args...)
	return true
}
