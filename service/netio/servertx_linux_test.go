package netio

import (
	"net/netip"
	"os"
	"testing"
	"time"
)

// Replies sent with transmit timestamps on come back from the error queue,
// one per sent message, under the IDs WriteBatch gave them, with times
// between just before and just after the send; a message that could not
// be sent gets no ID.
func TestServerTxTimestamps(t *testing.T) {
	ss := listenCase("127.0.0.1:0")(t)
	sc := ss.Conns[0]
	if err := sc.EnableTxTimestamps(); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal(err)
		}
		t.Skip(err)
	}
	a := listenUDP(t, "udp4", netip.MustParseAddrPort("127.0.0.1:0"))
	seen := map[uint32]bool{}
	for round := range 3 {
		msgs := newMessages(4)
		for i := range msgs {
			msgs[i].Peer, msgs[i].N = udpAddrPort(a), copy(msgs[i].Buf, "reply")
		}
		msgs[2].Peer = netip.MustParseAddrPort("[::1]:9") // cannot be sent from a v4 socket
		before := time.Now()
		if n, _ := sc.WriteBatch(msgs); n != 3 {
			t.Fatalf("round %d: sent %d, want 3", round, n)
		}
		after := time.Now()
		want := map[uint32]bool{}
		for i, m := range msgs {
			if m.TxSent != (i != 2) {
				t.Errorf("round %d message %d: TxSent %v", round, i, m.TxSent)
			}
			if m.TxSent {
				if seen[m.TxID] {
					t.Errorf("ID %d given twice", m.TxID)
				}
				seen[m.TxID], want[m.TxID] = true, true
			}
		}
		var got []TxStamp
		buf := make([]TxStamp, 8)
		for deadline := time.Now().Add(5 * time.Second); len(got) < 3 && time.Now().Before(deadline); {
			n, err := sc.ReadTxTimestamps(buf)
			if err != nil {
				t.Fatal(err)
			}
			got = append(got, buf[:n]...)
			if n == 0 {
				time.Sleep(time.Millisecond)
			}
		}
		if len(got) != 3 {
			t.Fatalf("round %d: %d timestamps, want 3", round, len(got))
		}
		for _, ts := range got {
			if !want[ts.ID] {
				t.Errorf("timestamp for ID %d, not one of %v", ts.ID, want)
			}
			if !wallLE(before, ts.Time) || !wallLE(ts.Time, after) {
				t.Errorf("timestamp %v outside [%v, %v]", ts.Time, before, after)
			}
		}
		for range 3 {
			readWithin(t, a, make([]byte, 64))
		}
	}
}
