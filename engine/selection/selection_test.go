package selection

import (
	"math"
	"math/rand/v2"
	"slices"
	"testing"
	"time"
)

func ms(x float64) time.Duration { return time.Duration(math.Round(x * 1e6)) }
func us(x float64) time.Duration { return time.Duration(math.Round(x * 1e3)) }

// cand builds a candidate with the usual fields; stratum 2, jitter 0.5 ms.
func cand(id int, offsetMS, distMS float64) Candidate {
	return Candidate{ID: id, Offset: ms(offsetMS), RootDistance: ms(distMS), Jitter: us(500), Stratum: 2}
}

func with(c Candidate, f func(*Candidate)) Candidate { f(&c); return c }

func prefer(c *Candidate)   { c.Prefer = true }
func noSelect(c *Candidate) { c.NoSelect = true }

const (
	N  = StateNone
	NS = StateNoSelect
	TF = StateTooFar
	FT = StateFalseticker
	OU = StateOutlier
	CA = StateCandidate
	CO = StateCombined
	SE = StateSelected
)

type selCase struct {
	name     string
	cands    []Candidate
	p        Params
	states   []State
	sync     bool
	peer     int
	trues    int
	offset   *time.Duration    // exact expected Offset, if set
	offsetIn *[2]time.Duration // Offset must lie in this closed range, if set
	jitter   *time.Duration
	weights  []float64 // expected weights (±1e-12), if set
}

func dur(d time.Duration) *time.Duration { return &d }

var selCases = []selCase{
	{
		name: "four agreeing sources all combined",
		cands: []Candidate{
			cand(0, 1.0, 10), cand(1, 1.2, 20), cand(2, 1.4, 20), cand(3, 1.6, 25),
		},
		states: []State{SE, CO, CO, CO}, sync: true, peer: 0, trues: 4,
		// weights 1/10:1/20:1/20:1/25 = .1:.05:.05:.04, sum .24;
		// (.1*1.0+.05*1.2+.05*1.4+.04*1.6)/.24 = .294/.24 = 1.225 ms
		offset:  dur(1225 * time.Microsecond),
		weights: []float64{0.1 / 0.24, 0.05 / 0.24, 0.05 / 0.24, 0.04 / 0.24},
		// sqrt((.05*.2^2+.05*.4^2+.04*.6^2)/.24 + .5^2) ms = 593.0149 us
		jitter: dur(593015),
	},
	{
		name: "three good and a liar at +1s",
		cands: []Candidate{
			cand(0, 0.5, 10), cand(1, -0.3, 12), cand(2, 0.1, 15),
			with(cand(3, 1000, 10), func(c *Candidate) { c.Stratum = 1; c.RootDistance = ms(5) }),
		},
		states: []State{SE, CO, CO, FT}, sync: true, peer: 0, trues: 3,
		offsetIn: &[2]time.Duration{ms(-0.3), ms(0.5)},
	},
	{
		// Its interval [5, 25] still reaches the intersection [-9, 9], so
		// the intersection keeps it (chrony and ntpd 4.2.8 agree); the
		// clustering step then drops it as the outlier.
		name: "interval overlaps the intersection, midpoint outside: kept, then clustered out",
		cands: []Candidate{
			cand(0, 0, 10), cand(1, 1, 10), cand(2, -1, 10), cand(3, 15, 10),
		},
		states: []State{SE, CO, CO, OU}, sync: true, peer: 0, trues: 4,
		offset: dur(0),
	},
	{
		name: "interval entirely outside the intersection: falseticker",
		cands: []Candidate{
			cand(0, 0, 10), cand(1, 1, 10), cand(2, -1, 10), cand(3, 25, 10),
		},
		states: []State{SE, CO, CO, FT}, sync: true, peer: 0, trues: 3,
		offset: dur(0),
	},
	{
		name: "two against two: no majority",
		cands: []Candidate{
			cand(0, 0, 1), cand(1, 0.2, 1), cand(2, 100, 1), cand(3, 100.2, 1),
		},
		states: []State{FT, FT, FT, FT}, sync: false, peer: -1, trues: 0,
	},
	{
		name:   "one against one: no majority",
		cands:  []Candidate{cand(0, 0, 1), cand(1, 50, 1)},
		states: []State{FT, FT}, sync: false, peer: -1, trues: 0,
	},
	{
		name:   "single source, MinSources 1",
		cands:  []Candidate{cand(7, 3.5, 20)},
		p:      Params{MinSources: 1},
		states: []State{SE}, sync: true, peer: 0, trues: 1,
		offset: dur(ms(3.5)), jitter: dur(us(500)), weights: []float64{1},
	},
	{
		name:   "single source, MinSources 2",
		cands:  []Candidate{cand(7, 3.5, 20)},
		p:      Params{MinSources: 2},
		states: []State{CA}, sync: false, peer: -1, trues: 1,
	},
	{
		name: "three agreeing but MinSources 4",
		cands: []Candidate{
			cand(0, 0, 10), cand(1, 1, 10), cand(2, 2, 10), cand(3, 500, 10),
		},
		p:      Params{MinSources: 4},
		states: []State{CA, CA, CA, FT}, sync: false, peer: -1, trues: 3,
	},
	{
		name: "prefer wins the peer among survivors",
		cands: []Candidate{
			cand(0, 0.1, 10), with(cand(1, 0.3, 14), prefer), cand(2, -0.2, 11),
		},
		states: []State{CO, SE, CO}, sync: true, peer: 1, trues: 3,
	},
	{
		name: "lowest distance prefer wins among two prefers",
		cands: []Candidate{
			cand(0, 0.1, 10), with(cand(1, 0.3, 14), prefer), with(cand(2, -0.2, 12), prefer),
		},
		states: []State{CO, CO, SE}, sync: true, peer: 2, trues: 3,
	},
	{
		name: "prefer that is a falseticker is rejected",
		cands: []Candidate{
			cand(0, 0.1, 10), cand(1, 0.3, 14), cand(2, -0.2, 11),
			with(cand(3, 1000, 1), prefer),
		},
		states: []State{SE, CO, CO, FT}, sync: true, peer: 0, trues: 3,
	},
	{
		name: "noselect is neither selected nor combined",
		cands: []Candidate{
			cand(0, 0.1, 10), cand(1, 0.3, 14), with(cand(2, 0.2, 1), noSelect), cand(3, -0.2, 11),
		},
		states: []State{SE, CO, NS, CO}, sync: true, peer: 0, trues: 3,
	},
	{
		name: "noselect does not count towards the majority",
		cands: []Candidate{
			cand(0, 0, 10), with(cand(1, 100, 10), noSelect), with(cand(2, 200, 10), noSelect),
		},
		states: []State{SE, NS, NS}, sync: true, peer: 0, trues: 1,
		offset: dur(0),
	},
	{
		name: "toofar excluded by MaxDistance",
		cands: []Candidate{
			cand(0, 0.1, 10), cand(1, 0.3, 60), cand(2, -0.2, 11), cand(3, 400, 70),
		},
		p:      Params{MaxDistance: ms(50)},
		states: []State{SE, TF, CO, TF}, sync: true, peer: 0, trues: 2,
	},
	{
		name:   "everything excluded",
		cands:  []Candidate{with(cand(0, 0, 10), noSelect), cand(1, 0, 60)},
		p:      Params{MaxDistance: ms(50)},
		states: []State{NS, TF}, sync: false, peer: -1, trues: 0,
	},
	{
		name:  "no candidates",
		cands: nil, states: []State{}, sync: false, peer: -1, trues: 0,
	},
	{
		name: "combine limit leaves a distant survivor a candidate",
		cands: []Candidate{
			cand(0, 0, 10), cand(1, 0.2, 30), cand(2, 0.4, 31),
		},
		states: []State{SE, CO, CA}, sync: true, peer: 0, trues: 3,
		// 1/10 : 1/30
		weights: []float64{0.75, 0.25, 0},
		offset:  dur(ms(0.05)),
	},
	{
		name: "custom combine limit",
		cands: []Candidate{
			cand(0, 0, 10), cand(1, 0.2, 30), cand(2, 0.4, 31),
		},
		p:      Params{CombineLimit: 1.5},
		states: []State{SE, CA, CA}, sync: true, peer: 0, trues: 3,
		offset: dur(0), weights: []float64{1, 0, 0},
	},
	{
		name: "one stratum is worth 1 ms of distance (lower stratum wins)",
		cands: []Candidate{
			with(cand(0, 0, 10), func(c *Candidate) { c.Stratum = 3 }),   // 13 ms
			with(cand(1, 0, 11.5), func(c *Candidate) { c.Stratum = 1 }), // 12.5 ms
		},
		states: []State{CO, SE}, sync: true, peer: 1, trues: 2,
	},
	{
		name: "one stratum is worth 1 ms of distance (shorter distance wins)",
		cands: []Candidate{
			with(cand(0, 0, 10), func(c *Candidate) { c.Stratum = 3 }),   // 13 ms
			with(cand(1, 0, 12.5), func(c *Candidate) { c.Stratum = 1 }), // 13.5 ms
		},
		states: []State{SE, CO}, sync: true, peer: 0, trues: 2,
	},
	{
		name: "equal metric: lower ID wins",
		cands: []Candidate{
			cand(9, 0.1, 10), cand(4, 0.2, 10), cand(6, 0.3, 10),
		},
		states: []State{CO, SE, CO}, sync: true, peer: 1, trues: 3,
	},
	{
		name: "clustering drops the noisy outlier of five",
		cands: []Candidate{
			cand(0, 0, 100), cand(1, 0.1, 100), cand(2, -0.1, 100), cand(3, 30, 100), cand(4, 0.2, 100),
		},
		p: Params{MinSurvivors: 3},
		// jitter 0.5 ms: after the outlier the largest selection jitter
		// is sqrt((.2^2+.1^2+.3^2)/3) = 0.216 ms < 0.5 ms, so it stops.
		states: []State{SE, CO, CO, OU, CO}, sync: true, peer: 0, trues: 5,
		offset: dur(ms(0.05)),
	},
	{
		name: "clustering stops at MinSurvivors",
		cands: []Candidate{
			with(cand(0, 0, 100), func(c *Candidate) { c.Jitter = 1 }),
			with(cand(1, 1, 100), func(c *Candidate) { c.Jitter = 1 }),
			with(cand(2, -1, 100), func(c *Candidate) { c.Jitter = 1 }),
			with(cand(3, 7, 100), func(c *Candidate) { c.Jitter = 1 }),
			with(cand(4, -5, 100), func(c *Candidate) { c.Jitter = 1 }),
		},
		p:      Params{MinSurvivors: 3},
		states: []State{SE, CO, CO, OU, OU}, sync: true, peer: 0, trues: 5,
		offset: dur(0),
	},
	{
		name: "clustering never drops a prefer survivor",
		cands: []Candidate{
			cand(0, 0, 100), cand(1, 0.1, 100), cand(2, -0.1, 100),
			with(cand(3, 30, 100), prefer), cand(4, 0.2, 100),
		},
		p:      Params{MinSurvivors: 3},
		states: []State{CO, CO, CO, SE, CO}, sync: true, peer: 3, trues: 5,
	},
	{
		// Duplicate IDs: ties fall back to the input index. Negative
		// jitter counts as 0, so clustering runs down to MinSurvivors;
		// -1 ms and +1 ms tie on selection jitter, distance and ID, and
		// the later one in the input goes.
		name: "duplicate IDs and negative jitter",
		cands: []Candidate{
			with(cand(5, -1, 10), func(c *Candidate) { c.Jitter = -1 }),
			with(cand(5, 0, 10), func(c *Candidate) { c.Jitter = -1 }),
			with(cand(5, 1, 10), func(c *Candidate) { c.Jitter = -1 }),
			with(cand(5, 0, 10), func(c *Candidate) { c.Jitter = -1 }),
		},
		p:      Params{MinSurvivors: 3},
		states: []State{SE, CO, OU, CO}, sync: true, peer: 0, trues: 4,
		offset: dur(-333333), jitter: dur(816497), // sqrt(2/3) ms
	},
	{
		name: "non-positive root distance treated as 1 ns",
		cands: []Candidate{
			{ID: 0, Offset: 0, RootDistance: 0},
			{ID: 1, Offset: 0, RootDistance: -5},
			{ID: 2, Offset: 1, RootDistance: 10},
		},
		// intervals [-1,1], [-1,1], [-9,11]; 10 > 3*1 so the third is not combined
		states: []State{SE, CO, CA}, sync: true, peer: 0, trues: 3,
	},
}

func checkInvariants(t *testing.T, cands []Candidate, p Params, r *Result) {
	t.Helper()
	if len(r.States) != len(cands) || len(r.Weights) != len(cands) {
		t.Fatalf("len(States)=%d len(Weights)=%d, want %d", len(r.States), len(r.Weights), len(cands))
	}
	p = withDefaults(p)
	selected, participants := 0, 0
	sum := 0.0
	lo, hi := time.Duration(math.MaxInt64), time.Duration(math.MinInt64)
	for i, s := range r.States {
		c := cands[i]
		switch {
		case c.NoSelect:
			if s != StateNoSelect {
				t.Errorf("cand %d: NoSelect but %v", i, s)
			}
		case p.MaxDistance > 0 && c.RootDistance > p.MaxDistance:
			if s != StateTooFar {
				t.Errorf("cand %d: too far but %v", i, s)
			}
		default:
			participants++
			if s < StateFalseticker || s > StateSelected {
				t.Errorf("cand %d: participant with state %v", i, s)
			}
		}
		if c.Prefer && s == StateOutlier {
			t.Errorf("cand %d: Prefer dropped by clustering", i)
		}
		w := r.Weights[i]
		if s == StateCombined || s == StateSelected {
			if !(w > 0) {
				t.Errorf("cand %d: %v with weight %v", i, s, w)
			}
			lo, hi = min(lo, c.Offset), max(hi, c.Offset)
		} else if w != 0 {
			t.Errorf("cand %d: %v with weight %v", i, s, w)
		}
		if s == StateSelected {
			selected++
		}
		sum += w
	}
	if !r.Synchronized {
		if r.SystemPeer != -1 || selected != 0 || sum != 0 || r.Offset != 0 || r.Jitter != 0 {
			t.Errorf("not synchronized but peer=%d selected=%d weights=%v offset=%v jitter=%v",
				r.SystemPeer, selected, sum, r.Offset, r.Jitter)
		}
		for i, s := range r.States {
			if s == StateOutlier || s == StateCombined {
				t.Errorf("not synchronized but cand %d is %v", i, s)
			}
		}
		return
	}
	if r.SystemPeer < 0 || r.SystemPeer >= len(cands) || r.States[r.SystemPeer] != StateSelected || selected != 1 {
		t.Fatalf("synchronized: SystemPeer=%d, %d selected", r.SystemPeer, selected)
	}
	if math.Abs(sum-1) > 1e-9 {
		t.Errorf("weights sum to %v, want 1", sum)
	}
	if r.Offset < lo || r.Offset > hi {
		t.Errorf("Offset %v outside the combined offsets [%v, %v]", r.Offset, lo, hi)
	}
	if r.Jitter < 0 {
		t.Errorf("negative Jitter %v", r.Jitter)
	}
	if r.Truechimers < p.MinSources || 2*r.Truechimers <= participants {
		t.Errorf("synchronized with %d truechimers of %d (MinSources %d)", r.Truechimers, participants, p.MinSources)
	}
	preferSurvived := false
	for i, s := range r.States {
		if cands[i].Prefer && s >= StateCandidate {
			preferSurvived = true
		}
	}
	if preferSurvived && !cands[r.SystemPeer].Prefer {
		t.Errorf("a Prefer candidate survived but the peer %d is not Prefer", r.SystemPeer)
	}
}

func TestSelect(t *testing.T) {
	var r Result
	for _, tc := range selCases {
		t.Run(tc.name, func(t *testing.T) {
			Select(tc.cands, tc.p, &r)
			checkInvariants(t, tc.cands, tc.p, &r)
			if !slices.Equal(r.States, tc.states) {
				t.Errorf("States = %v, want %v", r.States, tc.states)
			}
			if r.Synchronized != tc.sync || r.SystemPeer != tc.peer || r.Truechimers != tc.trues {
				t.Errorf("Synchronized=%v SystemPeer=%d Truechimers=%d, want %v %d %d",
					r.Synchronized, r.SystemPeer, r.Truechimers, tc.sync, tc.peer, tc.trues)
			}
			if tc.offset != nil && r.Offset != *tc.offset {
				t.Errorf("Offset = %v, want %v", r.Offset, *tc.offset)
			}
			if tc.offsetIn != nil && (r.Offset < tc.offsetIn[0] || r.Offset > tc.offsetIn[1]) {
				t.Errorf("Offset = %v, want within %v", r.Offset, *tc.offsetIn)
			}
			if tc.jitter != nil && r.Jitter != *tc.jitter {
				t.Errorf("Jitter = %v, want %v", r.Jitter, *tc.jitter)
			}
			if tc.weights != nil {
				for i, w := range tc.weights {
					if math.Abs(r.Weights[i]-w) > 1e-12 {
						t.Errorf("Weights = %v, want %v", r.Weights, tc.weights)
						break
					}
				}
			}
		})
	}
}

// TestResultReuse runs every case through one Result in turn, then again in
// reverse, so that stale state from a bigger or different call would show.
func TestResultReuse(t *testing.T) {
	var shared Result
	order := make([]int, 0, 2*len(selCases))
	for i := range selCases {
		order = append(order, i)
	}
	for i := len(selCases) - 1; i >= 0; i-- {
		order = append(order, i)
	}
	for _, k := range order {
		tc := selCases[k]
		var fresh Result
		Select(tc.cands, tc.p, &fresh)
		Select(tc.cands, tc.p, &shared)
		if !sameResult(&fresh, &shared) {
			t.Errorf("%s: reused Result differs: %+v vs %+v", tc.name, shared, fresh)
		}
	}
}

func sameResult(a, b *Result) bool {
	return slices.Equal(a.States, b.States) && slices.Equal(a.Weights, b.Weights) &&
		a.SystemPeer == b.SystemPeer && a.Synchronized == b.Synchronized &&
		a.Offset == b.Offset && a.Jitter == b.Jitter && a.Truechimers == b.Truechimers
}

// permEqual checks that r2, computed over the permutation perm of the
// candidates behind r1 (cands2[k] = cands1[perm[k]]), is the same result.
func permEqual(t *testing.T, name string, perm []int, r1, r2 *Result) {
	t.Helper()
	for k, i := range perm {
		if r2.States[k] != r1.States[i] || r2.Weights[k] != r1.Weights[i] {
			t.Fatalf("%s perm %v: candidate %d: %v/%v, want %v/%v",
				name, perm, i, r2.States[k], r2.Weights[k], r1.States[i], r1.Weights[i])
		}
	}
	peer2 := -1
	if r2.SystemPeer >= 0 {
		peer2 = perm[r2.SystemPeer]
	}
	if peer2 != r1.SystemPeer || r2.Offset != r1.Offset || r2.Jitter != r1.Jitter ||
		r2.Synchronized != r1.Synchronized || r2.Truechimers != r1.Truechimers {
		t.Fatalf("%s perm %v: peer %d offset %v jitter %v, want %d %v %v",
			name, perm, peer2, r2.Offset, r2.Jitter, r1.SystemPeer, r1.Offset, r1.Jitter)
	}
}

func TestDeterministicUnderPermutation(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	var r1, r2 Result
	cases := slices.Clone(selCases)
	// Add a case whose floating point sums would differ with the order.
	odd := make([]Candidate, 7)
	for i := range odd {
		odd[i] = Candidate{ID: 100 - 3*i, Offset: time.Duration(rng.Int64N(3e6)), RootDistance: time.Duration(5e6 + rng.Int64N(5e6)),
			Jitter: time.Duration(rng.Int64N(2e6)), Stratum: uint8(1 + i%3)}
	}
	cases = append(cases, selCase{name: "random seven", cands: odd})
	for _, tc := range cases {
		n := len(tc.cands)
		if n < 2 || hasDuplicateIDs(tc.cands) {
			continue // the order of equal IDs is the input order
		}
		Select(tc.cands, tc.p, &r1)
		perm := make([]int, n)
		cands2 := make([]Candidate, n)
		for range 50 {
			for k := range perm {
				perm[k] = k
			}
			rng.Shuffle(n, func(a, b int) { perm[a], perm[b] = perm[b], perm[a] })
			for k, i := range perm {
				cands2[k] = tc.cands[i]
			}
			Select(cands2, tc.p, &r2)
			permEqual(t, tc.name, perm, &r1, &r2)
		}
	}
}

func hasDuplicateIDs(cands []Candidate) bool {
	seen := map[int]bool{}
	for _, c := range cands {
		if seen[c.ID] {
			return true
		}
		seen[c.ID] = true
	}
	return false
}

// TestPropertyTruechimersWin: k truechimers whose intervals contain the true
// offset, m < k falsetickers far away (sometimes colluding at one offset).
func TestPropertyTruechimersWin(t *testing.T) {
	type variant struct {
		name     string
		errFrac  float64 // truechimer error, as a fraction of its root distance
		minD     float64 // root distance range, ms
		maxD     float64
		mustSync bool // the midpoint rule is sure to accept the clique
	}
	// With errors <= RootDistance/4 and distances within a factor 3 of each
	// other, every truechimer's midpoint lies inside every other's
	// interval, so the RFC midpoint rule cannot reject the clique, and the
	// combined offset is within max(distance)/4 < min(distance) <= peer
	// distance of the truth. With errors anywhere in the interval neither
	// holds, but the combined offset is still within the weighted mean
	// distance of the combined sources.
	variants := []variant{
		{"tight", 0.25, 10, 25, true},
		{"anywhere in interval", 1, 1, 100, false},
	}
	for vi, v := range variants {
		t.Run(v.name, func(t *testing.T) {
			rng := rand.New(rand.NewPCG(42, uint64(vi)))
			var r Result
			synced := 0
			const trials = 2000
			for trial := range trials {
				k := 1 + rng.IntN(8)
				m := rng.IntN(k)
				truth := time.Duration(rng.Int64N(2e9) - 1e9)
				cands := make([]Candidate, 0, k+m)
				isTrue := make([]bool, 0, k+m)
				for range k {
					d := ms(v.minD + rng.Float64()*(v.maxD-v.minD))
					e := time.Duration((2*rng.Float64() - 1) * v.errFrac * float64(d))
					cands = append(cands, Candidate{Offset: truth + e, RootDistance: d,
						Jitter: us(rng.Float64() * 300), Stratum: uint8(1 + rng.IntN(4)), Prefer: rng.IntN(10) == 0})
					isTrue = append(isTrue, true)
				}
				collude := rng.IntN(2) == 0
				far := time.Duration(1e9 + rng.Int64N(9e9))
				if rng.IntN(2) == 0 {
					far = -far
				}
				for range m {
					off := far
					if !collude {
						off = time.Duration(1e9 + rng.Int64N(9e9))
						if rng.IntN(2) == 0 {
							off = -off
						}
					}
					cands = append(cands, Candidate{Offset: truth + off, RootDistance: ms(v.minD + rng.Float64()*(v.maxD-v.minD)),
						Jitter: us(rng.Float64() * 300), Stratum: uint8(rng.IntN(3)), Prefer: rng.IntN(3) == 0})
					isTrue = append(isTrue, false)
				}
				// Shuffle, and give IDs in shuffled order.
				rng.Shuffle(len(cands), func(a, b int) {
					cands[a], cands[b] = cands[b], cands[a]
					isTrue[a], isTrue[b] = isTrue[b], isTrue[a]
				})
				for i := range cands {
					cands[i].ID = i
				}
				Select(cands, Params{}, &r)
				checkInvariants(t, cands, Params{}, &r)
				for i, s := range r.States {
					if !isTrue[i] && s != StateFalseticker {
						t.Fatalf("trial %d: falseticker %d (%v) is %v; cands %+v", trial, i, cands[i].Offset-truth, s, cands)
					}
					if v.mustSync && isTrue[i] && s == StateFalseticker {
						t.Fatalf("trial %d: truechimer %d is a falseticker; cands %+v", trial, i, cands)
					}
				}
				if !r.Synchronized {
					if v.mustSync {
						t.Fatalf("trial %d: not synchronized; cands %+v", trial, cands)
					}
					continue
				}
				synced++
				errNS := r.Offset - truth
				if errNS < 0 {
					errNS = -errNS
				}
				bound := 0.0 // sum of w_i * RootDistance_i: always holds
				for i, w := range r.Weights {
					bound += w * float64(cands[i].RootDistance)
				}
				if float64(errNS) > bound+1 {
					t.Fatalf("trial %d: |Offset-truth| = %v > weighted distance %v", trial, errNS, time.Duration(bound))
				}
				if v.mustSync && errNS > cands[r.SystemPeer].RootDistance {
					t.Fatalf("trial %d: |Offset-truth| = %v > peer distance %v", trial, errNS, cands[r.SystemPeer].RootDistance)
				}
			}
			t.Logf("%d of %d trials synchronized", synced, trials)
			if synced == 0 {
				t.Fatalf("no trial synchronized")
			}
		})
	}
}

func TestStateString(t *testing.T) {
	want := map[State]string{
		StateNone: "none", StateNoSelect: "noselect", StateTooFar: "toofar", StateFalseticker: "falseticker",
		StateOutlier: "outlier", StateCandidate: "candidate", StateCombined: "combined", StateSelected: "selected",
		State(200): "state(200)",
	}
	for s, w := range want {
		if got := s.String(); got != w {
			t.Errorf("State(%d).String() = %q, want %q", uint8(s), got, w)
		}
	}
}

func TestArithmeticHelpers(t *testing.T) {
	const max, min = math.MaxInt64, math.MinInt64
	for _, tc := range []struct{ a, b, add, sub int64 }{
		{1, 2, 3, -1},
		{max, 1, max, max - 1},
		{min, -1, min, min + 1},
		{min, 1, min + 1, min},
		{0, min, min, max},
		{-1, min, min, max},
		{max, min, -1, max},
	} {
		if got := satAdd(tc.a, tc.b); got != tc.add {
			t.Errorf("satAdd(%d, %d) = %d, want %d", tc.a, tc.b, got, tc.add)
		}
		if got := satSub(tc.a, tc.b); got != tc.sub {
			t.Errorf("satSub(%d, %d) = %d, want %d", tc.a, tc.b, got, tc.sub)
		}
	}
	for _, tc := range []struct {
		a, b int64
		want float64
	}{
		{5, 7, -2},
		{max, -1, float64(max) + 1},
		{min, 1, float64(min) - 1},
		{1 << 60, -(1 << 60), 1 << 61},
		{max, min, math.Exp2(64)},
	} {
		if got := diffNS(tc.a, tc.b); got != tc.want {
			t.Errorf("diffNS(%d, %d) = %v, want %v", tc.a, tc.b, got, tc.want)
		}
	}
	for _, tc := range []struct {
		base int64
		x    float64
		want int64
	}{
		{10, 2.4, 12},
		{10, -2.6, 7},
		{max, 5, max},
		{min, -1e30, min},
		{0, math.Exp2(70), max},
		{0, math.NaN(), 0},
	} {
		if got := addFloat(tc.base, tc.x); got != tc.want {
			t.Errorf("addFloat(%d, %v) = %d, want %d", tc.base, tc.x, got, tc.want)
		}
	}
}

func benchCands() []Candidate {
	return []Candidate{
		cand(0, 0.31, 12), cand(1, -0.12, 18), cand(2, 0.05, 9), cand(3, 0.4, 25),
		cand(4, 250, 10), cand(5, 0.2, 14), with(cand(6, -0.3, 11), noSelect), cand(7, 0.9, 30),
	}
}

func TestSelectDoesNotAllocate(t *testing.T) {
	cands := benchCands()
	var r Result
	Select(cands, Params{}, &r)
	if !r.Synchronized {
		t.Fatalf("benchmark input does not synchronize: %+v", r)
	}
	allocs := testing.AllocsPerRun(100, func() { Select(cands, Params{}, &r) })
	if allocs != 0 {
		t.Errorf("Select with a reused Result allocates %v times per call", allocs)
	}
}

func BenchmarkSelect(b *testing.B) {
	cands := benchCands()
	var r Result
	b.ReportAllocs()
	for b.Loop() {
		Select(cands, Params{}, &r)
	}
}

func BenchmarkSelect50(b *testing.B) {
	rng := rand.New(rand.NewPCG(7, 7))
	cands := make([]Candidate, 50)
	for i := range cands {
		cands[i] = Candidate{ID: i, Offset: time.Duration(rng.Int64N(2e6)), RootDistance: time.Duration(5e6 + rng.Int64N(2e7)),
			Jitter: time.Duration(rng.Int64N(1e5)), Stratum: uint8(1 + rng.IntN(3))}
	}
	var r Result
	b.ReportAllocs()
	for b.Loop() {
		Select(cands, Params{}, &r)
	}
}
