// Package selection decides which time sources agree and what time they
// agree on: the intersection (falseticker detection), clustering (outlier
// pruning) and combining steps of RFC 5905 section 11.2, with chrony's
// stratum weight and combine limit.
//
// It is sans-IO and deterministic: the caller hands in one Candidate per
// source that currently has a usable estimate and gets back a Result. With a
// Result reused across calls, Select does not allocate once the Result has
// grown to the number of candidates.
//
// # Decisions a time engineer should know about
//
// Exclusion. NoSelect candidates are excluded from everything (they do not
// count towards n in the intersection) and are reported as StateNoSelect.
// Candidates whose RootDistance exceeds Params.MaxDistance (when it is > 0)
// are excluded the same way and reported as StateTooFar. A RootDistance
// that is not positive is treated as 1 ns (the smallest interval there is),
// a negative Jitter as 0.
//
// Intersection. RFC 5905 11.2.1's search, with the rule of ntpd 4.2.8 and
// (nearly) chrony for who is a truechimer: each candidate contributes the
// closed correctness interval [Offset-RootDistance, Offset+RootDistance].
// For f = 0, 1, ... while 2f < n, low is the lowest point covered by at
// least n-f intervals and high the highest; the first f for which such a
// point exists gives the intersection [low, high]. A candidate is a
// truechimer when its interval overlaps [low, high]; everyone else is
// StateFalseticker. The RFC's reference code also requires each
// truechimer's midpoint to lie inside [low, high]; that rejects honest
// sources whose offsets sit near the edges of their intervals (asymmetric
// paths do that) and can leave a set of agreeing servers unsynchronized,
// so it is not used: a source that is merely off-centre is left to the
// clustering step, which drops outliers by their offsets.
//
// No majority. When no f < n/2 succeeds there is no majority clique and no
// candidate can be shown to be a truechimer, so every participating candidate
// is reported as StateFalseticker (as chrony marks them 'x'), Truechimers is
// 0 and nothing is selected. When a majority clique exists but has fewer
// than Params.MinSources members, its members are reported as StateCandidate,
// the others as StateFalseticker, Truechimers is the clique's size and again
// nothing is selected. In both cases Synchronized is false, SystemPeer is -1
// and Offset, Jitter and every weight are 0.
//
// Clustering. RFC 5905 11.2.2: while there are more than
// Params.MinSurvivors survivors, compute each survivor's selection jitter,
// the RMS of the differences between its offset and the other survivors'
// offsets (sqrt of the sum of squares over n-1, unweighted, as the RFC
// text). The survivor with the largest selection jitter (ties: the worse
// peer metric below, then the higher ID) is dropped as StateOutlier unless
// that largest selection jitter is below the smallest peer Jitter among the
// survivors. A Prefer survivor is never dropped: if it has the largest
// selection jitter, clustering stops there (as ntpd does) rather than
// pruning the sources that agree with each other because they disagree with
// it.
//
// System peer. A Prefer survivor if there is one (the one with the lowest
// RootDistance, ties by ID); otherwise the survivor with the lowest
// Stratum*StratumWeight + RootDistance, ties by ID. StratumWeight is 1 ms per
// stratum, chrony's default stratumweight; RFC 5905 uses MAXDIST (1 s), which
// makes the stratum dominate the distance.
//
// Combining. Like chrony's combinelimit: a survivor is StateCombined when its
// RootDistance is at most CombineLimit times the system peer's, otherwise it
// stays StateCandidate. The peer (StateSelected) and the combined survivors
// get weights proportional to 1/RootDistance (RFC 5905 11.2.3), normalised to
// sum to 1, and Offset is the weighted mean of their offsets. Jitter is the
// RFC 5905 system jitter: the 1/RootDistance-weighted RMS of all survivors'
// offsets about the system peer's offset (the RFC combines all survivors, so
// its jitter covers all of them), combined in quadrature with the system
// peer's own Jitter.
//
// Determinism. Every computation runs over the candidates in (ID, input
// index) order, so for candidates with distinct IDs the result, floating
// point rounding included, does not depend on the order of the input slice.
package selection

import (
	"cmp"
	"math"
	"slices"
	"strconv"
	"time"
)

// StratumWeight is what one stratum adds to a survivor's root distance when
// the system peer is chosen among survivors without Prefer (chrony's default
// stratumweight).
const StratumWeight = time.Millisecond

// Defaults used when a Params field is zero (or, for CombineLimit, not a
// positive number).
const (
	DefaultMinSources   = 1
	DefaultMinSurvivors = 3 // RFC 5905 NMIN
	DefaultCombineLimit = 3.0
)

// Candidate is one source's current estimate, as the selection sees it.
type Candidate struct {
	ID int // caller's index; ties are broken by ID so results are deterministic
	// Offset is the source's current offset estimate (reference - local).
	Offset time.Duration
	// RootDistance is the half-width of its correctness interval: the true
	// time is within Offset ± RootDistance if the source is a truechimer.
	// It should be > 0; values <= 0 are treated as 1 ns.
	RootDistance time.Duration
	// Jitter is the source's own statistical jitter (RMS), >= 0.
	Jitter  time.Duration
	Stratum uint8
	// Prefer: chosen as system peer when it survives, and never dropped by
	// clustering (chrony/ntpd prefer).
	Prefer bool
	// NoSelect: excluded entirely (not counted in the intersection, never
	// selected, never combined); reported as StateNoSelect.
	NoSelect bool
	// Trust: assumed correct (chrony's trust). When any candidate has it,
	// the intersection is taken over the trusted candidates alone, and
	// every candidate that overlaps it is a truechimer: the others cannot
	// outvote a trusted source, only another trusted one can.
	Trust bool
}

// Params tune the selection. The zero value means the defaults.
type Params struct {
	// MinSources is the minimum number of agreeing sources (truechimers)
	// needed to synchronize; DefaultMinSources when <= 0.
	MinSources int
	// MaxDistance excludes candidates with a larger RootDistance
	// (StateTooFar); no limit when <= 0.
	MaxDistance time.Duration
	// MinSurvivors is where clustering stops; DefaultMinSurvivors when <= 0.
	MinSurvivors int
	// CombineLimit: a survivor is combined only if its RootDistance is at
	// most CombineLimit times the system peer's; DefaultCombineLimit when
	// not a positive number.
	CombineLimit float64
}

// State is what the selection made of one candidate.
type State uint8

const (
	StateNone        State = iota // not set (zero value); Select never reports it
	StateNoSelect                 // excluded: the caller marked it NoSelect
	StateTooFar                   // excluded: RootDistance above Params.MaxDistance
	StateFalseticker              // outside the majority clique, or no majority clique exists
	StateOutlier                  // a truechimer dropped by clustering
	StateCandidate                // a truechimer kept but not combined
	StateCombined                 // a survivor combined into the system offset
	StateSelected                 // the system peer (also combined)
)

// String returns a short lower-case name for the state.
func (s State) String() string {
	switch s {
	case StateNone:
		return "none"
	case StateNoSelect:
		return "noselect"
	case StateTooFar:
		return "toofar"
	case StateFalseticker:
		return "falseticker"
	case StateOutlier:
		return "outlier"
	case StateCandidate:
		return "candidate"
	case StateCombined:
		return "combined"
	case StateSelected:
		return "selected"
	}
	return "state(" + strconv.Itoa(int(s)) + ")"
}

// Result is the outcome of one Select call. Reuse one Result across calls:
// its slices and its internal scratch space are resized, not reallocated.
// So the next Select on the same Result overwrites States and Weights in
// place: clone them (slices.Clone) to keep them, e.g. in a snapshot. A
// Result is not safe for concurrent use.
type Result struct {
	// States is indexed like the input candidates slice (not by ID).
	States []State
	// Weights is indexed like the input; it sums to 1 over Combined and
	// Selected candidates and is 0 elsewhere (all 0 when not synchronized).
	Weights []float64
	// SystemPeer is an index into the candidates, -1 if none.
	SystemPeer int
	// Synchronized: a majority clique of at least MinSources truechimers
	// exists.
	Synchronized bool
	// Offset is the weighted combination of the Selected and Combined
	// offsets (0 when not synchronized).
	Offset time.Duration
	// Jitter is the RFC 5905 system jitter: the weighted RMS of the
	// survivors' offsets about the system peer's, combined with the system
	// peer's own jitter (0 when not synchronized).
	Jitter time.Duration
	// Truechimers is the size of the majority clique (0 when none exists).
	Truechimers int

	s scratch
}

// scratch is reused working space, so that Select does not allocate.
type scratch struct {
	order []int32    // participating candidate indices, sorted by (ID, index)
	eps   []endpoint // interval ends, sorted by value
	surv  []int32    // truechimers, then survivors, in (ID, index) order
	// trusted candidates' indices (intersectTrusted)
	trusted []int32
}

type endpoint struct {
	v   int64
	typ uint8 // edgeLow, edgeHigh: at equal values lows sort first
}

const (
	edgeLow uint8 = iota
	edgeHigh
)

// Select classifies cands and combines the survivors into r. See the
// package documentation for the algorithm and its choices.
func Select(cands []Candidate, p Params, r *Result) {
	p = withDefaults(p)
	n := len(cands)
	r.States = resize(r.States, n)
	r.Weights = resize(r.Weights, n)
	clear(r.States)
	clear(r.Weights)
	r.SystemPeer = -1
	r.Synchronized = false
	r.Offset = 0
	r.Jitter = 0
	r.Truechimers = 0

	// 1. Exclusion.
	s := &r.s
	s.order = s.order[:0]
	for i := range cands {
		c := &cands[i]
		switch {
		case c.NoSelect:
			r.States[i] = StateNoSelect
		case p.MaxDistance > 0 && c.RootDistance > p.MaxDistance:
			r.States[i] = StateTooFar
		default:
			s.order = append(s.order, int32(i))
		}
	}
	slices.SortFunc(s.order, func(a, b int32) int {
		if c := cmp.Compare(cands[a].ID, cands[b].ID); c != 0 {
			return c
		}
		return cmp.Compare(a, b)
	})
	m := len(s.order)
	if m == 0 {
		return
	}

	// 2. Intersection (over the trusted candidates when there are any).
	low, high, ok := intersectTrusted(cands, s)
	s.surv = s.surv[:0]
	for _, i := range s.order {
		o, d := int64(cands[i].Offset), rootDist(&cands[i])
		if ok && satSub(o, d) <= high && satAdd(o, d) >= low {
			r.States[i] = StateCandidate
			s.surv = append(s.surv, i)
		} else {
			r.States[i] = StateFalseticker
		}
	}
	r.Truechimers = len(s.surv)
	if !ok || r.Truechimers < p.MinSources {
		return
	}
	r.Synchronized = true

	// 3. Clustering.
	cluster(cands, p.MinSurvivors, s, r.States)

	// 4. System peer.
	peer := systemPeer(cands, s.surv)
	r.SystemPeer = int(peer)

	// 5. Combining.
	combine(cands, p.CombineLimit, peer, s.surv, r)
}

func withDefaults(p Params) Params {
	if p.MinSources <= 0 {
		p.MinSources = DefaultMinSources
	}
	if p.MinSurvivors <= 0 {
		p.MinSurvivors = DefaultMinSurvivors
	}
	if !(p.CombineLimit > 0) { // also catches NaN
		p.CombineLimit = DefaultCombineLimit
	}
	return p
}

func resize[T any](s []T, n int) []T {
	if cap(s) < n {
		return make([]T, n)
	}
	return s[:n]
}

// rootDist is c's root distance in ns, at least 1.
func rootDist(c *Candidate) int64 {
	if c.RootDistance < 1 {
		return 1
	}
	return int64(c.RootDistance)
}

func jitterNS(c *Candidate) float64 {
	if c.Jitter < 0 {
		return 0
	}
	return float64(c.Jitter)
}

// intersect runs the RFC 5905 intersection over the participating
// candidates (s.order) and returns the intersection [low, high], ok=false
// when there is no majority clique.
func intersect(cands []Candidate, s *scratch) (low, high int64, ok bool) {
	s.eps = s.eps[:0]
	for _, i := range s.order {
		c := &cands[i]
		o, d := int64(c.Offset), rootDist(c)
		s.eps = append(s.eps,
			endpoint{satSub(o, d), edgeLow},
			endpoint{satAdd(o, d), edgeHigh})
	}
	slices.SortFunc(s.eps, func(a, b endpoint) int {
		if c := cmp.Compare(a.v, b.v); c != 0 {
			return c
		}
		return cmp.Compare(a.typ, b.typ)
	})
	n := len(s.order)
	for f := 0; 2*f < n; f++ {
		need := n - f
		depth, found := 0, false
		for _, e := range s.eps {
			switch e.typ {
			case edgeLow:
				depth++
			case edgeHigh:
				depth--
			}
			if e.typ == edgeLow && depth >= need {
				low, found = e.v, true
				break
			}
		}
		if !found {
			continue
		}
		depth, found = 0, false
		for k := len(s.eps) - 1; k >= 0; k-- {
			e := s.eps[k]
			switch e.typ {
			case edgeHigh:
				depth++
			case edgeLow:
				depth--
			}
			if e.typ == edgeHigh && depth >= need {
				high, found = e.v, true
				break
			}
		}
		// found is always true here: some point is covered n-f times.
		if found && low <= high {
			return low, high, true
		}
	}
	return 0, 0, false
}

// intersectTrusted is intersect over the trusted candidates of s.order
// when there are any, over all of them otherwise. s.order is unchanged.
func intersectTrusted(cands []Candidate, s *scratch) (low, high int64, ok bool) {
	all := s.order
	s.trusted = s.trusted[:0]
	for _, i := range all {
		if cands[i].Trust {
			s.trusted = append(s.trusted, i)
		}
	}
	if len(s.trusted) == 0 {
		return intersect(cands, s)
	}
	s.order = s.trusted
	low, high, ok = intersect(cands, s)
	s.order = all
	return low, high, ok
}

// metric is the peer-choice score: Stratum*StratumWeight + RootDistance.
func metric(c *Candidate) int64 {
	return satAdd(int64(c.Stratum)*int64(StratumWeight), rootDist(c))
}

// cluster prunes s.surv in place (keeping (ID, index) order) and marks the
// dropped ones StateOutlier.
func cluster(cands []Candidate, minSurvivors int, s *scratch, states []State) {
	for len(s.surv) > minSurvivors {
		n := len(s.surv)
		worst, worstJ := -1, -1.0
		minPeerJ := math.Inf(1)
		for a, i := range s.surv {
			ci := &cands[i]
			minPeerJ = min(minPeerJ, jitterNS(ci))
			sum := 0.0
			for _, j := range s.surv {
				d := diffNS(int64(ci.Offset), int64(cands[j].Offset))
				sum += d * d
			}
			sj := math.Sqrt(sum / float64(n-1))
			if worst < 0 || sj > worstJ || (sj == worstJ && worseTie(cands, i, s.surv[worst])) {
				worst, worstJ = a, sj
			}
		}
		if worstJ < minPeerJ {
			return
		}
		w := s.surv[worst]
		if cands[w].Prefer {
			return
		}
		states[w] = StateOutlier
		s.surv = slices.Delete(s.surv, worst, worst+1)
	}
}

// worseTie reports whether candidate a should be dropped before b when their
// selection jitters are equal: the worse metric, then the higher ID.
func worseTie(cands []Candidate, a, b int32) bool {
	ma, mb := metric(&cands[a]), metric(&cands[b])
	if ma != mb {
		return ma > mb
	}
	if cands[a].ID != cands[b].ID {
		return cands[a].ID > cands[b].ID
	}
	return a > b
}

// systemPeer picks the system peer among the survivors (non-empty, in
// (ID, index) order, so strict comparisons break ties by ID).
func systemPeer(cands []Candidate, surv []int32) int32 {
	best := int32(-1)
	for _, i := range surv {
		if !cands[i].Prefer {
			continue
		}
		if best < 0 || rootDist(&cands[i]) < rootDist(&cands[best]) {
			best = i
		}
	}
	if best >= 0 {
		return best
	}
	for _, i := range surv {
		if best < 0 || metric(&cands[i]) < metric(&cands[best]) {
			best = i
		}
	}
	return best
}

func combine(cands []Candidate, limit float64, peer int32, surv []int32, r *Result) {
	pc := &cands[peer]
	peerO := int64(pc.Offset)
	maxD := limit * float64(rootDist(pc))

	var wsum, osum, jw, jsum float64
	lo, hi := peerO, peerO
	for _, i := range surv {
		c := &cands[i]
		w := 1 / float64(rootDist(c))
		d := diffNS(int64(c.Offset), peerO)
		jw += w
		jsum += w * d * d
		switch {
		case i == peer:
			r.States[i] = StateSelected
		case float64(rootDist(c)) <= maxD:
			r.States[i] = StateCombined
		default:
			continue // stays StateCandidate
		}
		r.Weights[i] = w
		lo, hi = min(lo, int64(c.Offset)), max(hi, int64(c.Offset))
		wsum += w
		osum += w * d
	}
	for _, i := range surv {
		r.Weights[i] /= wsum
	}
	// A weighted mean lies between the offsets it averages; clamping only
	// undoes float64 rounding, which matters for offsets of years.
	r.Offset = time.Duration(min(max(addFloat(peerO, osum/wsum), lo), hi))
	pj := jitterNS(pc)
	r.Jitter = time.Duration(clampFloat(math.Sqrt(jsum/jw + pj*pj)))
}

// diffNS returns a-b in ns as a float64, exact when it fits in an int64.
func diffNS(a, b int64) float64 {
	d := a - b
	if (a >= 0) != (b >= 0) && (d >= 0) != (a >= 0) { // overflow
		return float64(a) - float64(b)
	}
	return float64(d)
}

func satAdd(a, b int64) int64 {
	s := a + b
	if a > 0 && b > 0 && s < 0 {
		return math.MaxInt64
	}
	if a < 0 && b < 0 && s >= 0 {
		return math.MinInt64
	}
	return s
}

func satSub(a, b int64) int64 {
	if b == math.MinInt64 {
		if a >= 0 {
			return math.MaxInt64
		}
		return a - b
	}
	return satAdd(a, -b)
}

// clampFloat rounds x to an int64, saturating.
func clampFloat(x float64) int64 {
	x = math.Round(x)
	switch {
	case x >= math.MaxInt64: // float64(MaxInt64) is 2^63
		return math.MaxInt64
	case x <= math.MinInt64:
		return math.MinInt64
	case x != x:
		return 0
	}
	return int64(x)
}

// addFloat returns base + round(x), saturating.
func addFloat(base int64, x float64) int64 {
	r := math.Round(x)
	if r > -(1<<62) && r < 1<<62 {
		return satAdd(base, int64(r))
	}
	return clampFloat(float64(base) + x)
}
