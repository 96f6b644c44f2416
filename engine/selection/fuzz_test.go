package selection

import (
	"encoding/binary"
	"math"
	"slices"
	"testing"
	"time"
)

// Fuzz input layout (little endian):
//
//	0      MinSources   (int8)
//	1      MinSurvivors (int8)
//	2..9   CombineLimit (float64 bits)
//	10..17 MaxDistance  (int64 ns)
//	then up to maxFuzzCands records of candRecord bytes:
//	0..7 Offset, 8..15 RootDistance, 16..23 Jitter (int64 ns),
//	24 Stratum, 25 flags: bit 0 Prefer, bit 1 NoSelect, bits 2..7 ID high part.
const (
	paramsLen    = 18
	candRecord   = 26
	maxFuzzCands = 64
)

func decodeFuzz(data []byte) ([]Candidate, Params, bool) {
	if len(data) < paramsLen {
		return nil, Params{}, false
	}
	p := Params{
		MinSources:   int(int8(data[0])),
		MinSurvivors: int(int8(data[1])),
		CombineLimit: math.Float64frombits(binary.LittleEndian.Uint64(data[2:])),
		MaxDistance:  time.Duration(binary.LittleEndian.Uint64(data[10:])),
	}
	data = data[paramsLen:]
	var cands []Candidate
	for i := 0; len(data) >= candRecord && i < maxFuzzCands; i++ {
		flags := data[25]
		cands = append(cands, Candidate{
			// IDs are distinct (index in the low bits) but not in input order.
			ID:           int(flags>>2)*maxFuzzCands + i,
			Offset:       time.Duration(binary.LittleEndian.Uint64(data[0:])),
			RootDistance: time.Duration(binary.LittleEndian.Uint64(data[8:])),
			Jitter:       time.Duration(binary.LittleEndian.Uint64(data[16:])),
			Stratum:      data[24],
			Prefer:       flags&1 != 0,
			NoSelect:     flags&2 != 0,
		})
		data = data[candRecord:]
	}
	return cands, p, true
}

// encodeFuzz is decodeFuzz's inverse, for the seed corpus. ID is encoded
// only in its high part (ID / maxFuzzCands).
func encodeFuzz(cands []Candidate, p Params) []byte {
	b := make([]byte, 0, paramsLen+candRecord*len(cands))
	b = append(b, byte(int8(p.MinSources)), byte(int8(p.MinSurvivors)))
	b = binary.LittleEndian.AppendUint64(b, math.Float64bits(p.CombineLimit))
	b = binary.LittleEndian.AppendUint64(b, uint64(p.MaxDistance))
	for _, c := range cands {
		b = binary.LittleEndian.AppendUint64(b, uint64(c.Offset))
		b = binary.LittleEndian.AppendUint64(b, uint64(c.RootDistance))
		b = binary.LittleEndian.AppendUint64(b, uint64(c.Jitter))
		flags := byte(c.ID/maxFuzzCands) << 2
		if c.Prefer {
			flags |= 1
		}
		if c.NoSelect {
			flags |= 2
		}
		b = append(b, c.Stratum, flags)
	}
	return b
}

func TestFuzzCodecRoundTrip(t *testing.T) {
	for _, tc := range selCases {
		cands, p, ok := decodeFuzz(encodeFuzz(tc.cands, tc.p))
		if !ok || len(cands) != len(tc.cands) || p.MinSources != tc.p.MinSources ||
			p.MinSurvivors != tc.p.MinSurvivors || p.MaxDistance != tc.p.MaxDistance ||
			math.Float64bits(p.CombineLimit) != math.Float64bits(tc.p.CombineLimit) {
			t.Fatalf("%s: round trip gave %+v %+v", tc.name, cands, p)
		}
		for i, c := range cands {
			want := tc.cands[i]
			want.ID = want.ID/maxFuzzCands*maxFuzzCands + i
			if c != want {
				t.Fatalf("%s: candidate %d: %+v, want %+v", tc.name, i, c, want)
			}
		}
	}
}

func FuzzSelect(f *testing.F) {
	for _, tc := range selCases {
		f.Add(encodeFuzz(tc.cands, tc.p))
	}
	// Values as chronyc sources / ntpq -p show them for a pool of public
	// servers: offsets of a few ms, root distances of 10-60 ms, one server
	// that is off by 37 s, one refclock with stratum 0.
	f.Add(encodeFuzz([]Candidate{
		{ID: 0, Offset: us(-412), RootDistance: ms(23.4), Jitter: us(310), Stratum: 2},
		{ID: 1, Offset: us(1210), RootDistance: ms(41.0), Jitter: us(890), Stratum: 2},
		{ID: 2, Offset: us(-95), RootDistance: ms(11.9), Jitter: us(120), Stratum: 1},
		{ID: 3, Offset: 37 * time.Second, RootDistance: ms(15.2), Jitter: us(200), Stratum: 1},
		{ID: 4, Offset: us(2), RootDistance: us(1), Jitter: 300, Stratum: 0, Prefer: true},
		{ID: 5, Offset: us(-700), RootDistance: ms(58.7), Jitter: ms(2.1), Stratum: 3},
	}, Params{MaxDistance: 3 * time.Second}))
	f.Add(encodeFuzz([]Candidate{
		{Offset: math.MaxInt64, RootDistance: math.MaxInt64, Jitter: math.MinInt64},
		{Offset: math.MinInt64, RootDistance: math.MaxInt64, Jitter: math.MaxInt64, Prefer: true},
		{Offset: 0, RootDistance: math.MinInt64},
	}, Params{CombineLimit: math.Inf(1), MinSources: -3, MinSurvivors: 1}))
	f.Add(encodeFuzz([]Candidate{{Offset: 5}, {Offset: 5}}, Params{CombineLimit: math.NaN()}))

	var r, fresh, rev Result
	f.Fuzz(func(t *testing.T, data []byte) {
		cands, p, ok := decodeFuzz(data)
		if !ok {
			return
		}
		Select(cands, p, &r)
		checkInvariants(t, cands, p, &r)

		Select(cands, p, &fresh)
		if !sameResult(&r, &fresh) {
			t.Fatalf("Result depends on what the Result held before")
		}
		fresh = Result{}
		Select(cands, p, &fresh)
		if !sameResult(&r, &fresh) {
			t.Fatalf("fresh Result differs from reused one")
		}

		reversed := slices.Clone(cands)
		slices.Reverse(reversed)
		perm := make([]int, len(cands))
		for k := range perm {
			perm[k] = len(cands) - 1 - k
		}
		Select(reversed, p, &rev)
		permEqual(t, "reversed", perm, &r, &rev)
	})
}
