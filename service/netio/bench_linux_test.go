package netio

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// BenchmarkServerEcho measures a loopback echo server built on
// ReadBatch/WriteBatch: clients each keep one 48-byte request in flight
// (like NTP clients), one server goroutine answers. Reports answers/s and
// the mean batch size the server saw.
func BenchmarkServerEcho(b *testing.B) {
	for _, clients := range []int{1, 16} {
		b.Run(fmt.Sprintf("clients=%d", clients), func(b *testing.B) {
			benchEcho(b, clients)
		})
	}
}

func benchEcho(b *testing.B, clients int) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ss, err := ListenServer(ctx, netip.MustParseAddrPort("127.0.0.1:0"), 1)
	if err != nil {
		b.Fatal(err)
	}
	defer ss.Close()
	sc := ss.Conns[0]
	var reads, msgsRead atomic.Int64
	var srv sync.WaitGroup
	srv.Add(1)
	go func() {
		defer srv.Done()
		msgs := newMessages(32)
		for {
			n, err := sc.ReadBatch(ctx, msgs)
			if err != nil {
				return
			}
			reads.Add(1)
			msgsRead.Add(int64(n))
			sc.WriteBatch(msgs[:n])
		}
	}()

	conns := make([]*net.UDPConn, clients)
	for i := range conns {
		c, err := net.DialUDP("udp4", nil, net.UDPAddrFromAddrPort(sc.LocalAddr()))
		if err != nil {
			b.Fatal(err)
		}
		defer c.Close()
		conns[i] = c
	}
	var next atomic.Int64
	var failed atomic.Value
	b.ReportAllocs()
	b.ResetTimer()
	var wg sync.WaitGroup
	for _, c := range conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			req := make([]byte, 48)
			buf := make([]byte, 1500)
			for next.Add(1) <= int64(b.N) {
				// A lost datagram would hang the benchmark: give up instead.
				c.SetReadDeadline(time.Now().Add(10 * time.Second))
				if _, err := c.Write(req); err != nil {
					failed.Store(err)
					return
				}
				if _, err := c.Read(buf); err != nil {
					failed.Store(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	b.StopTimer()
	if err, _ := failed.Load().(error); err != nil {
		b.Fatal(err)
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "answers/s")
	if r := reads.Load(); r > 0 {
		b.ReportMetric(float64(msgsRead.Load())/float64(r), "msgs/batch")
	}
	cancel()
	srv.Wait()
}
