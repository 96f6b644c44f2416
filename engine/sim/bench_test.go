package sim

import (
	"testing"
	"time"

	"gnomon.dev/gnomon/engine/ntp"
)

// BenchmarkDay simulates 24 hours of four LAN sources (make bench-sim).
// The acceptance target is under 5 s of real time per simulated day.
func BenchmarkDay(b *testing.B) {
	for i := 0; i < b.N; i++ {
		run, err := New(Setup{Clock: osc, Servers: servers(lan), Engine: lanEngine,
			Source: ntp.SourceConfig{MinPoll: 4, MaxPoll: 10, IBurst: true}, Duration: 24 * time.Hour, Seed: uint64(i + 1)})
		if err != nil {
			b.Fatal(err)
		}
		run.Run()
		b.ReportMetric(float64(run.Sent()), "packets/op")
	}
}
