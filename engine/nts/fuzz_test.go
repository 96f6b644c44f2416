package nts

import (
	"bytes"
	"errors"
	"testing"

	"gnomon.dev/gnomon/engine/ntp"
)

func keSeeds(t testing.TB) [][]byte {
	ring := testRing(t, 20)
	exp := fakeExporter("fuzz")
	ok, _ := (&KEServer{Keys: ring, Server: "ntp.example", Port: 123}).Respond(ClientRequest(nil), exp)
	bad, _ := (&KEServer{Keys: ring}).Respond([]byte{0x80, 1}, exp)
	return [][]byte{
		ClientRequest(nil),
		ClientRequest([]AEADAlgorithm{30, 15}),
		ok, bad,
		cat(rec(true, 1, 0, 0), rec(true, 0x4444), eom),
		cat(rec(false, 0x4444, 1, 2), rec(true, 1, 0, 0), rec(true, 4, 0, 15), eom),
	}
}

// FuzzParseMessage: decoding never panics, MessageLen agrees with
// ParseMessage, and a decoded message re-encodes to a fixed point.
func FuzzParseMessage(f *testing.F) {
	for _, s := range keSeeds(f) {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		n, complete, lerr := MessageLen(b)
		m, err := ParseMessage(b)
		if err == nil && (!complete || n != len(b) || lerr != nil) {
			t.Fatalf("ParseMessage ok but MessageLen = %d, %v, %v", n, complete, lerr)
		}
		if complete {
			if _, err := ParseMessage(b[:n]); errors.Is(err, ErrTruncated) {
				t.Fatalf("MessageLen says complete at %d, ParseMessage says truncated", n)
			}
		}
		if err != nil {
			return
		}
		b1, err := m.Append(nil)
		if err != nil {
			return // e.g. too large once every record is canonical
		}
		m2, err := ParseMessage(b1)
		if err != nil {
			t.Fatalf("re-encoded message does not parse: %v", err)
		}
		b2, _ := m2.Append(nil)
		if !bytes.Equal(b1, b2) {
			t.Fatalf("encoding is not a fixed point:\n%x\n%x", b1, b2)
		}
	})
}

// FuzzKEServerRespond: whatever a client sends, the server answers with a
// well-formed message, and a success carries usable cookies.
func FuzzKEServerRespond(f *testing.F) {
	for _, s := range keSeeds(f) {
		f.Add(s)
	}
	ring := testRing(f, 21)
	srv := &KEServer{Keys: ring, Port: 4123}
	exp := fakeExporter("fuzz")
	f.Fuzz(func(t *testing.T, req []byte) {
		resp, err := srv.Respond(req, exp)
		m, perr := ParseMessage(resp)
		if perr != nil {
			t.Fatalf("response does not parse: %v", perr)
		}
		if err == nil {
			if len(m.Cookies) != MaxCookies {
				t.Fatalf("success with %d cookies", len(m.Cookies))
			}
			if _, err := ring.OpenCookie(m.Cookies[0]); err != nil {
				t.Fatal(err)
			}
		} else if len(m.Cookies) != 0 {
			t.Fatal("failure with cookies")
		}
	})
}

// FuzzParseKEResponse: the client's check of a server's answer.
func FuzzParseKEResponse(f *testing.F) {
	for _, s := range keSeeds(f) {
		f.Add(s)
	}
	exp := fakeExporter("fuzz")
	f.Fuzz(func(t *testing.T, b []byte) {
		res, err := ParseKEResponse(b, nil, exp)
		if err == nil && (len(res.Cookies) == 0 || len(res.Cookies) > MaxCookies || !res.Keys.Algorithm.Supported()) {
			t.Fatalf("accepted %+v", res)
		}
	})
}

// FuzzOpenCookie: arbitrary bytes never open unless they are a cookie the
// ring made.
func FuzzOpenCookie(f *testing.F) {
	ring := testRing(f, 22)
	genuine := map[string]bool{}
	for _, alg := range []AEADAlgorithm{AEADAESSIVCMAC256, AEADAESSIVCMAC384, AEADAESSIVCMAC512} {
		c, _ := ring.SealCookie(testKeys(alg, 3))
		genuine[string(c)] = true
		f.Add(c)
		// The format before (AES-SIV), still opened.
		c = sealSIVCookie(f, ring, testKeys(alg, 4), 5)
		genuine[string(c)] = true
		f.Add(c)
	}
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, c []byte) {
		k, err := ring.OpenCookie(c)
		if err == nil && !genuine[string(c)] {
			t.Fatalf("forged cookie %x opened: %+v", c, k)
		}
		if err != nil && !errors.Is(err, ErrCookie) {
			t.Fatalf("error %v is not ErrCookie", err)
		}
	})
}

// FuzzUnmarshalKeyRing: the persisted master key file.
func FuzzUnmarshalKeyRing(f *testing.F) {
	ring := testRing(f, 23)
	b, _ := ring.MarshalBinary()
	f.Add(b)
	ring.Rotate(t0.Add(1))
	b, _ = ring.MarshalBinary()
	f.Add(b)
	f.Fuzz(func(t *testing.T, b []byte) {
		k, err := UnmarshalKeyRing(b, newRand(1))
		if err != nil {
			if !errors.Is(err, ErrKeyRing) {
				t.Fatal(err)
			}
			return
		}
		b2, _ := k.MarshalBinary()
		if !bytes.Equal(b, b2) {
			t.Fatal("accepted key file does not round-trip")
		}
		if _, err := k.SealCookie(testKeys(15, 1)); err != nil {
			t.Fatal(err)
		}
	})
}

// FuzzParseAuthField: the authenticator field body.
func FuzzParseAuthField(f *testing.F) {
	f.Add(make([]byte, 36))
	f.Add([]byte{0, 16, 0, 16})
	f.Fuzz(func(t *testing.T, v []byte) {
		af, err := ParseAuthField(v)
		if err == nil && (len(af.Nonce) == 0 || len(af.Ciphertext) < TagSize) {
			t.Fatalf("accepted %+v", af)
		}
	})
}

// FuzzServerVerify: the server's NTS handler on any datagram: it never
// panics, whatever it accepts it can answer within the request's size, and
// a ServerReply reused from input to input (VerifyInto, as a server worker
// does) decides and answers like a fresh one (Verify).
func FuzzServerVerify(f *testing.F) {
	p := newPair(f)
	f.Add(p.request(f))
	p.request(f) // lost: the next one has placeholders
	f.Add(p.request(f))
	f.Add(readHex(f, "chronyd-4.3-nts-request.hex"))
	var reuse ServerReply
	f.Fuzz(func(t *testing.T, req []byte) {
		var pk ntp.Packet
		if ntp.Parse(req, &pk) != nil {
			return
		}
		r, err := p.server.Verify(req, &pk)
		errInto := p.server.VerifyInto(&reuse, req, &pk)
		if (err == nil) != (errInto == nil) {
			t.Fatalf("Verify: %v; VerifyInto: %v", err, errInto)
		}
		if err != nil {
			return
		}
		if r.NAK() != reuse.NAK() || r.Cookies() != reuse.Cookies() {
			t.Fatalf("Verify: NAK %v, %d cookies; VerifyInto: NAK %v, %d cookies", r.NAK(), r.Cookies(), reuse.NAK(), reuse.Cookies())
		}
		var h ntp.Header
		ntp.RespondKiss(&pk.Header, ntp.KissNTSN, &h)
		var lens [2]int
		for i, r := range []*ServerReply{r, &reuse} {
			b := make([]byte, len(req))
			n, _ := h.MarshalTo(b)
			n, err = r.Append(b, n)
			if err != nil {
				t.Fatalf("Append within the request's length: %v", err)
			}
			if err := ntp.Parse(b[:n], &pk); err != nil {
				t.Fatalf("reply does not parse: %v", err)
			}
			lens[i] = n
		}
		if lens[0] != lens[1] {
			t.Fatalf("replies of %d (Verify) and %d bytes (VerifyInto)", lens[0], lens[1])
		}
	})
}

// FuzzClientOpen: the client's check of any reply to its request.
func FuzzClientOpen(f *testing.F) {
	p := newPair(f)
	req := p.request(f)
	reply, _ := p.serve(f, req)
	f.Add(reply)
	f.Add(readHex(f, "chronyd-4.3-nts-reply.hex"))
	f.Fuzz(func(t *testing.T, b []byte) {
		var pk ntp.Packet
		if ntp.Parse(b, &pk) != nil {
			return
		}
		// A fresh copy of the session waiting for the reply.
		c := &ClientSession{rand: p.client.rand, keys: p.client.keys, c2s: p.client.c2s,
			s2c: p.client.s2c, uid: p.client.uid, pending: true}
		if err := c.Open(b, &pk); err == nil && len(c.cookies) == 0 {
			t.Fatal("accepted a reply without cookies")
		}
	})
}
