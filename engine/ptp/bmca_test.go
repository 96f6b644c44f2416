package ptp

import "testing"

func cid(n byte) ClockIdentity { return ClockIdentity{0, 1, 2, 0xff, 0xfe, 3, 4, n} }

func TestCompareGrandmasterAttributes(t *testing.T) {
	base := Candidate{GMPriority1: 128, GMQuality: ClockQuality{248, 0xfe, 0xffff}, GMPriority2: 128, GMIdentity: cid(5),
		Sender: PortIdentity{cid(5), 1}, Receiver: PortIdentity{cid(9), 1}}
	better := []func(c *Candidate){
		func(c *Candidate) { c.GMPriority1 = 127 },
		func(c *Candidate) { c.GMQuality.Class = 6 },
		func(c *Candidate) { c.GMQuality.Accuracy = 0x21 },
		func(c *Candidate) { c.GMQuality.OffsetScaledLogVariance = 0x4e5d },
		func(c *Candidate) { c.GMPriority2 = 1 },
		func(c *Candidate) { c.GMIdentity = cid(4) },
	}
	for i, f := range better {
		a := base
		a.GMIdentity = cid(6) // a different grandmaster, worse identity unless f changes it
		b := base
		f(&a)
		if i == len(better)-1 {
			a.GMIdentity = cid(4)
		}
		if got := Compare(&a, &b); got != ABetter {
			t.Errorf("attribute %d: Compare = %d, want ABetter", i, got)
		}
		if got := Compare(&b, &a); got != BBetter {
			t.Errorf("attribute %d mirrored: Compare = %d, want BBetter", i, got)
		}
	}
	// priority1 outranks everything below it
	a, b := base, base
	a.GMIdentity, b.GMIdentity = cid(1), cid(2)
	a.GMPriority1, b.GMQuality.Class = 129, 6
	if Compare(&a, &b) != BBetter {
		t.Error("priority1 must outrank class")
	}
}

func TestCompareTopology(t *testing.T) {
	gm := cid(1)
	rx := PortIdentity{cid(9), 1}
	mk := func(steps uint16, sender PortIdentity) Candidate {
		return Candidate{GMIdentity: gm, StepsRemoved: steps, Sender: sender, Receiver: rx}
	}
	s1 := PortIdentity{cid(2), 1}
	s2 := PortIdentity{cid(3), 1}
	cases := []struct {
		a, b Candidate
		want int
	}{
		{mk(1, s1), mk(3, s2), ABetter},
		{mk(3, s1), mk(1, s2), BBetter},
		{mk(2, s1), mk(1, s2), BBetterByTopology}, // one step more, its receiver above its sender
		{mk(1, s1), mk(1, s2), ABetterByTopology}, // same steps: lower sender wins
		{mk(1, s2), mk(1, s1), BBetterByTopology},
		{mk(1, s1), mk(1, s1), Unordered}, // the same Announce twice
	}
	for i, c := range cases {
		if got := Compare(&c.a, &c.b); got != c.want {
			t.Errorf("case %d: Compare = %d, want %d", i, got, c.want)
		}
	}
	// a one step further whose receiver is lower than its sender: B better
	a := Candidate{GMIdentity: gm, StepsRemoved: 2, Sender: PortIdentity{cid(9), 1}, Receiver: PortIdentity{cid(2), 1}}
	b := mk(1, s1)
	if got := Compare(&a, &b); got != BBetter {
		t.Errorf("receiver < sender: %d", got)
	}
}

func TestDecide(t *testing.T) {
	self := DefaultDS{Priority1: 128, Priority2: 128, Quality: ClockQuality{248, 0xfe, 0xffff}, Identity: cid(5)}
	d0 := LocalCandidate(&self)
	better := Candidate{GMPriority1: 100, GMIdentity: cid(1), Sender: PortIdentity{cid(1), 1}, Receiver: PortIdentity{cid(5), 1}}
	worse := Candidate{GMPriority1: 200, GMIdentity: cid(2), Sender: PortIdentity{cid(2), 1}, Receiver: PortIdentity{cid(5), 1}}
	cases := []struct {
		name                  string
		class                 uint8
		erbest, ebest         *Candidate
		here, slave, masterOn bool
		want                  Decision
	}{
		{"alone", 248, nil, nil, false, false, false, DecisionM2},
		{"better master here", 248, &better, &better, true, false, false, DecisionS1},
		{"worse master", 248, &worse, &worse, true, false, false, DecisionM2},
		{"class 6 beats a better priority? no: priority1 first", 6, &better, &better, true, false, false, DecisionP1},
		{"class 6 and better than erbest", 6, &worse, &worse, true, false, false, DecisionM1},
		{"slave only, nothing", 255, nil, nil, false, true, false, DecisionListening},
		{"slave only, worse master", 255, &worse, &worse, true, true, false, DecisionS1},
		{"master only, better master", 248, &better, &better, true, false, true, DecisionM2},
		{"ebest elsewhere, same as erbest", 248, &better, &better, false, false, false, DecisionM3},
	}
	for _, c := range cases {
		if got := Decide(&d0, c.class, c.erbest, c.ebest, c.here, c.slave, c.masterOn); got != c.want {
			t.Errorf("%s: %s, want %s", c.name, got, c.want)
		}
	}
	// P2: ebest (elsewhere) better by topology than erbest here
	eb := Candidate{GMPriority1: 100, GMIdentity: cid(1), StepsRemoved: 1, Sender: PortIdentity{cid(2), 1}, Receiver: PortIdentity{cid(5), 2}}
	er := Candidate{GMPriority1: 100, GMIdentity: cid(1), StepsRemoved: 1, Sender: PortIdentity{cid(3), 1}, Receiver: PortIdentity{cid(5), 1}}
	if got := Decide(&d0, 248, &er, &eb, false, false, false); got != DecisionP2 {
		t.Errorf("P2: %s", got)
	}
}
