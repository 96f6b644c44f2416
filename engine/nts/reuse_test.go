package nts

import (
	"bytes"
	"testing"

	"gnomon.dev/gnomon/engine/ntp"
)

// TestServerReplyReuse: one ServerReply kept across requests (as a server
// worker keeps it) answers every request as a fresh one would: the client
// accepts each reply and refills its jar, whatever came before in the
// reply (more cookies, a NAK, a malformed request), and the reply has the
// same shape as Verify's.
func TestServerReplyReuse(t *testing.T) {
	p := newPair(t)
	var r ServerReply
	p.reuse = &r
	fresh := newPair(t) // answered with Verify, for the shape
	for i := range 40 {
		req := p.request(t)
		freq := fresh.request(t)
		if i%7 == 3 {
			// Lose this reply: the next request carries placeholders,
			// and its answer more cookies than this one's.
			continue
		}
		if i%11 == 5 {
			// A forged cookie first: a NAK through the same reply.
			bad := bytes.Clone(req)
			bad[ntp.HeaderLen+4+UniqueIDLen+4+30] ^= 1
			if _, nak := p.serve(t, bad); !nak {
				t.Fatalf("request %d: a forged cookie was not NAKed", i)
			}
			// And a malformed one: an error, the reply not to be used.
			var pk ntp.Packet
			if err := ntp.Parse(bad[:ntp.HeaderLen], &pk); err == nil {
				if err := p.server.VerifyInto(&r, bad[:ntp.HeaderLen], &pk); err == nil {
					t.Fatalf("request %d: a request without NTS fields was accepted", i)
				}
			}
		}
		reply, nak := p.serve(t, req)
		if nak {
			t.Fatalf("request %d: NAK for a good request", i)
		}
		freply, _ := fresh.serve(t, freq)
		if len(reply) != len(freply) {
			t.Errorf("request %d: reply of %d bytes through a reused ServerReply, %d through Verify", i, len(reply), len(freply))
		}
		if err := open(p.client, reply); err != nil {
			t.Fatalf("request %d: the client rejects the reply: %v", i, err)
		}
		if err := open(fresh.client, freply); err != nil {
			t.Fatalf("request %d: the client rejects Verify's reply: %v", i, err)
		}
		if n := p.client.Cookies(); n != MaxCookies {
			t.Errorf("request %d: %d cookies in the jar after the reply, want %d", i, n, MaxCookies)
		}
	}
}

// TestServerUpgradeFromSIVCookies: a client still holding cookies of the
// format before (AES-SIV, from a gnomond before 2026-12) is answered, not
// NAKed, and gets cookies of the current format, the same through a
// reused ServerReply; after a lost reply its request carries placeholders
// as long as its old cookie, and the reply is then shorter than the
// request (never longer).
func TestServerUpgradeFromSIVCookies(t *testing.T) {
	ring := testRing(t, 40)
	keys := testKeys(AEADAESSIVCMAC256, 0x60)
	var jar [][]byte
	for i := range MaxCookies {
		jar = append(jar, sealSIVCookie(t, ring, keys, byte(i)))
	}
	cs, err := NewClientSession(&KEResult{Keys: keys, Cookies: jar}, newRand(41))
	if err != nil {
		t.Fatal(err)
	}
	var r ServerReply
	p := &pair{ring: ring, server: &Server{Keys: ring, Rand: newRand(42)}, client: cs, reuse: &r}
	for i := range 2 * MaxCookies {
		req := p.request(t)
		if i == 2 {
			continue // lost: the next request carries placeholders
		}
		reply, nak := p.serve(t, req)
		if nak {
			t.Fatalf("request %d: NAK", i)
		}
		if len(reply) > len(req) {
			t.Fatalf("request %d: reply of %d bytes to a request of %d", i, len(reply), len(req))
		}
		if err := open(cs, reply); err != nil {
			t.Fatalf("request %d: the client rejects the reply: %v", i, err)
		}
		newest := cs.cookies[len(cs.cookies)-1]
		if len(newest) != cookieLen(32) {
			t.Fatalf("request %d: fresh cookie of %d bytes, want %d (GCM format)", i, len(newest), cookieLen(32))
		}
	}
	for _, c := range cs.cookies {
		if len(c) != cookieLen(32) {
			t.Fatalf("after %d requests the jar still holds a cookie of %d bytes", 2*MaxCookies, len(c))
		}
	}
}
