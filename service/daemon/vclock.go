package daemon

import (
	"sync/atomic"
	"time"

	"gnomon.dev/gnomon/engine/clock"
)

// publishedVirtual is observe mode's clock as the engine sees it: the
// Virtual clock, owned by the daemon's loop, which after every step or
// frequency change publishes the new Mapping by value. Other goroutines
// (the NTP server workers) map their timestamps through the published
// copy and never touch the Virtual.
type publishedVirtual struct {
	*clock.Virtual
	pub *atomic.Pointer[clock.Mapping]
}

func newPublishedVirtual(v *clock.Virtual, pub *atomic.Pointer[clock.Mapping]) publishedVirtual {
	p := publishedVirtual{Virtual: v, pub: pub}
	p.publish()
	return p
}

func (p publishedVirtual) publish() {
	m := p.Mapping()
	p.pub.Store(&m)
}

func (p publishedVirtual) SetFrequency(freqPPM float64) error {
	defer p.publish()
	return p.Virtual.SetFrequency(freqPPM)
}

func (p publishedVirtual) Step(offset time.Duration) error {
	defer p.publish()
	return p.Virtual.Step(offset)
}
