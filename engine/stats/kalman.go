package stats

import (
	"math"
	"time"
)

// Kalman is a two-state (offset and frequency) Kalman filter over the
// samples of every combined source: the joint estimate of where the
// engine's clock stands against the sources and how fast it drifts, with
// the oscillator's random-walk wander as the process noise and each
// sample's own variance (from its source's regression and its delay) as
// the measurement noise. Unlike a regression over a window, its frequency
// does not lag a wandering oscillator by half a window, and every sample
// counts once.
//
// Offsets are reference minus local (s), the frequency the correction the
// local clock needs (s/s), times the engine's (cooked) local times.
type Kalman struct {
	q2            float64 // wander² ((s/s)²/s)
	t             time.Time
	x, y          float64
	pxx, pxy, pyy float64
	n             int
}

// NewKalman returns an empty filter for an oscillator whose frequency
// random-walks at wander (s/s per √s).
func NewKalman(wander float64) *Kalman { return &Kalman{q2: wander * wander} }

// Len is how many samples the filter has taken since it was started.
func (k *Kalman) Len() int { return k.n }

// Reset forgets everything (after a clock jump).
func (k *Kalman) Reset() { *k = Kalman{q2: k.q2} }

// Start sets the state: offset x (s) with variance vx, frequency y (s/s)
// with variance vy, at time t.
func (k *Kalman) Start(t time.Time, x, vx, y, vy float64) {
	k.t, k.x, k.y, k.pxx, k.pxy, k.pyy = t, x, y, vx, 0, vy
	k.n = 1
}

// predict moves the state to t (never backwards: a sample a few
// milliseconds older than the state is taken as of the state's time).
func (k *Kalman) predict(t time.Time) {
	dt := t.Sub(k.t).Seconds()
	if dt <= 0 {
		return
	}
	k.x += k.y * dt
	pxx := k.pxx + 2*dt*k.pxy + dt*dt*k.pyy + k.q2*dt*dt*dt/3
	pxy := k.pxy + dt*k.pyy + k.q2*dt*dt/2
	k.pyy += k.q2 * dt
	k.pxx, k.pxy = pxx, pxy
	k.t = t
}

// Update takes a sample: the offset measured at t, with variance r.
// A sample far outside what the filter expects is weighed down (its
// variance inflated), so one popcorn spike cannot move the estimate far,
// while a real change still gets in over a few samples.
func (k *Kalman) Update(t time.Time, offset, r float64) {
	if k.n == 0 {
		return
	}
	k.predict(t)
	nu := offset - k.x
	s := k.pxx + r
	if lim := 9 * s; nu*nu > lim {
		r *= nu * nu / lim
		s = k.pxx + r
	}
	gx, gy := k.pxx/s, k.pxy/s
	k.x += gx * nu
	k.y += gy * nu
	pxx := (1 - gx) * k.pxx
	pxy := (1 - gx) * k.pxy
	pyy := k.pyy - gy*k.pxy
	k.pxx, k.pxy, k.pyy = pxx, pxy, math.Max(pyy, 0)
	k.n++
}

// Estimate is the state predicted to t: offset (s) and its standard
// error, frequency (s/s) and its standard error.
func (k *Kalman) Estimate(t time.Time) (x, sdx, y, sdy float64) {
	dt := math.Max(t.Sub(k.t).Seconds(), 0)
	x = k.x + k.y*dt
	pxx := k.pxx + 2*dt*k.pxy + dt*dt*k.pyy + k.q2*dt*dt*dt/3
	pyy := k.pyy + k.q2*dt
	return x, math.Sqrt(math.Max(pxx, 0)), k.y, math.Sqrt(pyy)
}

// Adjust follows a change of the local clock made at time at (see
// Stats.Adjust): its reading jumped by offset (s) and its frequency
// changed by freqPPM.
func (k *Kalman) Adjust(at time.Time, offset, freqPPM float64) {
	if k.n == 0 {
		return
	}
	shift := offset + freqPPM*1e-6*k.t.Sub(at).Seconds()
	k.x -= shift
	k.y -= freqPPM * 1e-6
	k.t = k.t.Add(time.Duration(shift * 1e9))
}

// NewestDelayVar is the variance of the newest sample's offset that its
// extra delay allows: a round trip e longer than the window's quickest
// splits e between the two ways, and when the queueing delays of the two
// ways are alike and independent every split is about equally likely, so
// the offset is off by a uniform amount within ±e/2, variance e²/12;
// floor is added for what the quickest sample itself may be off (s²).
func (s *Stats) NewestDelayVar(floor float64) float64 {
	n := len(s.pts)
	if n == 0 {
		return math.Inf(1)
	}
	e := math.Max(s.pts[n-1].Delay-s.minDelay, 0)
	return e*e/12 + floor*floor
}

// ExcessFloor is the mean half-excess delay of the fitted window (s).
func (s *Stats) ExcessFloor() float64 { return s.exFloor }
