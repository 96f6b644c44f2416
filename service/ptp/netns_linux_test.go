package ptp

import (
	"crypto/rand"
	"encoding/hex"
	"os"
	"os/exec"
	"testing"
	"time"

	eptp "gnomon.dev/gnomon/engine/ptp"
	"gnomon.dev/gnomon/tests/peers"
)

func needRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		if os.Getenv("CI") == "true" {
			t.Fatal("needs root for network namespaces (CI=true: may not be skipped)")
		}
		t.Skip("needs root for network namespaces")
	}
}

// vethPair makes two namespaces gn-ptp-<hex>-a/-b joined by a veth
// pair (interfaces "pa" and "pb", 10.72.0.1/24 and .2/24) and removes
// them when the test ends.
func vethPair(t *testing.T) (a, b string) {
	t.Helper()
	needRoot(t)
	var r [3]byte
	rand.Read(r[:])
	base := "gn-ptp-" + hex.EncodeToString(r[:])
	a, b = base+"-a", base+"-b"
	run := func(args ...string) {
		t.Helper()
		if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
			t.Fatalf("ip %v: %v\n%s", args, err, out)
		}
	}
	run("netns", "add", a)
	t.Cleanup(func() { exec.Command("ip", "netns", "del", a).Run() })
	run("netns", "add", b)
	t.Cleanup(func() { exec.Command("ip", "netns", "del", b).Run() })
	run("link", "add", "gnptp"+hex.EncodeToString(r[:2]), "type", "veth", "peer", "name", "gnptq"+hex.EncodeToString(r[:2]))
	run("link", "set", "gnptp"+hex.EncodeToString(r[:2]), "netns", a, "name", "pa")
	run("link", "set", "gnptq"+hex.EncodeToString(r[:2]), "netns", b, "name", "pb")
	for _, x := range []struct{ ns, dev, addr string }{{a, "pa", "10.72.0.1/24"}, {b, "pb", "10.72.0.2/24"}} {
		run("-n", x.ns, "addr", "add", x.addr, "dev", x.dev)
		run("-n", x.ns, "link", "set", x.dev, "up")
		run("-n", x.ns, "link", "set", "lo", "up")
	}
	return a, b
}

func openIn(t *testing.T, ns string, o Options) *Transport {
	t.Helper()
	var tr *Transport
	var err error
	peers.InNetnsDo(t, ns, func() { tr, err = Open(o) })
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tr.Close() })
	return tr
}

// TestTransportsOverVeth: each transport carries event and general
// messages (and peer-delay ones) between two namespaces, with software
// receive timestamps and transmit timestamps from the error queue.
func TestTransportsOverVeth(t *testing.T) {
	a, b := vethPair(t)
	var info TSInfo
	var err error
	peers.InNetnsDo(t, a, func() { info, err = GetTSInfo("pa") })
	if err != nil || !info.Software() || info.Hardware() || info.PHCIndex != -1 {
		t.Errorf("veth timestamping info %+v %v: want software only, no PHC", info, err)
	}
	peers.InNetnsDo(t, a, func() { _, err = EnableHardware("pa", UDP4) })
	if err == nil {
		t.Error("hardware timestamping enabled on veth")
	}
	time.Sleep(2 * time.Second) // IPv6 duplicate address detection on the link-local addresses
	for _, kind := range []Kind{UDP4, UDP6, Ethernet} {
		ta := openIn(t, a, Options{Kind: kind, Interface: "pa", Peer: true})
		tb := openIn(t, b, Options{Kind: kind, Interface: "pb", Peer: true})
		for _, c := range []struct{ event, peer bool }{{true, false}, {false, false}, {true, true}} {
			m := &eptp.Sync{Header: eptp.Header{Version: 2, Sequence: 9, Source: eptp.PortIdentity{Port: 1}}}
			if !c.event {
				m2 := &eptp.Announce{Header: m.Header}
				data := make([]byte, eptp.MaxLen)
				n, _ := m2.MarshalTo(data)
				sendRecv(t, kind, ta, tb, data[:n], c.event, c.peer)
				continue
			}
			data := make([]byte, eptp.MaxLen)
			n, _ := m.MarshalTo(data)
			sendRecv(t, kind, ta, tb, data[:n], c.event, c.peer)
		}
		if ta.TxFallbacks != 0 {
			t.Errorf("%s: %d transmit timestamps missing", kind, ta.TxFallbacks)
		}
	}
}

func sendRecv(t *testing.T, kind Kind, ta, tb *Transport, msg []byte, event, peer bool) {
	t.Helper()
	before := time.Now()
	tx, fallback, err := ta.Send(msg, event, peer, event)
	if err != nil {
		t.Fatalf("%s send: %v", kind, err)
	}
	if event && (fallback || tx.Software.Before(before) || tx.Software.After(time.Now())) {
		t.Errorf("%s: transmit timestamp %v fallback %v", kind, tx.Software, fallback)
	}
	var got []Packet
	deadline := time.Now().Add(3 * time.Second)
	for len(got) == 0 && time.Now().Before(deadline) {
		got, err = tb.Receive(100*time.Millisecond, got)
		if err != nil {
			t.Fatal(err)
		}
	}
	if len(got) != 1 {
		t.Fatalf("%s event=%v peer=%v: received %d messages", kind, event, peer, len(got))
	}
	p := got[0]
	if string(p.Data[:len(msg)]) != string(msg) || p.Event != event && kind != Ethernet {
		t.Errorf("%s: got %x event=%v", kind, p.Data, p.Event)
	}
	if event && (p.Stamps.Software.IsZero() || p.Stamps.Software.Before(tx.Software)) {
		t.Errorf("%s: receive timestamp %v, sent at %v", kind, p.Stamps.Software, tx.Software)
	}
}
