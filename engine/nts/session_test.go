package nts

import (
	"bytes"
	"encoding/hex"
	"errors"
	"os"
	"strings"
	"testing"
	"time"

	"gnomon.dev/gnomon/engine/ntp"
	"gnomon.dev/gnomon/engine/sample"
)

func readHex(t testing.TB, name string) []byte {
	t.Helper()
	raw, err := os.ReadFile("testdata/" + name)
	if err != nil {
		t.Fatal(err)
	}
	var sb strings.Builder
	for _, line := range strings.Split(string(raw), "\n") {
		if !strings.HasPrefix(line, "#") {
			sb.WriteString(strings.TrimSpace(line))
		}
	}
	b, err := hex.DecodeString(sb.String())
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// pair is a client session and a server sharing one key exchange.
type pair struct {
	ring   *KeyRing
	server *Server
	client *ClientSession
	reuse  *ServerReply // if not nil, serve answers with VerifyInto into it
}

func newPair(t testing.TB) *pair { return newPairSecret(t, "pair") }

func newPairSecret(t testing.TB, secret string) *pair {
	t.Helper()
	ring := testRing(t, 10)
	exp := fakeExporter(secret)
	resp, err := (&KEServer{Keys: ring}).Respond(ClientRequest(nil), exp)
	if err != nil {
		t.Fatal(err)
	}
	ke, err := ParseKEResponse(resp, nil, exp)
	if err != nil {
		t.Fatal(err)
	}
	cs, err := NewClientSession(ke, newRand(11))
	if err != nil {
		t.Fatal(err)
	}
	return &pair{ring: ring, server: &Server{Keys: ring, Rand: newRand(12)}, client: cs}
}

var reqHeader = ntp.Header{Leap: sample.LeapUnsync, Version: 4, Mode: ntp.ModeClient, TransmitTime: 0x1122334455667788}

// request makes one sealed client request.
func (p *pair) request(t testing.TB) []byte {
	t.Helper()
	b := make([]byte, 2048)
	n, _ := reqHeader.MarshalTo(b)
	n, err := p.client.Seal(b, n)
	if err != nil {
		t.Fatal(err)
	}
	return b[:n]
}

// serve answers req like an NTP server would; nak says which it sent.
func (p *pair) serve(t testing.TB, req []byte) (reply []byte, nak bool) {
	t.Helper()
	var pk ntp.Packet
	if err := ntp.Parse(req, &pk); err != nil {
		t.Fatalf("request does not parse: %v", err)
	}
	r, err := p.server.Verify(req, &pk)
	if p.reuse != nil {
		r, err = p.reuse, p.server.VerifyInto(p.reuse, req, &pk)
	}
	if err != nil {
		t.Fatalf("Verify: %v", err)
	}
	var h ntp.Header
	if r.NAK() {
		ntp.RespondKiss(&pk.Header, ntp.KissNTSN, &h)
	} else {
		st := ntp.ServerState{Stratum: 1, ReferenceID: 0x47505300}
		ntp.Respond(&pk.Header, t0, t0, &st, &h)
	}
	b := make([]byte, len(req))
	n, _ := h.MarshalTo(b)
	n, err = r.Append(b, n)
	if err != nil {
		t.Fatalf("Append: %v", err)
	}
	return b[:n], r.NAK()
}

func open(c *ClientSession, reply []byte) error {
	var pk ntp.Packet
	if err := ntp.Parse(reply, &pk); err != nil {
		return err
	}
	return c.Open(reply, &pk)
}

// TestSessionExchange: request, reply, cookies refilled; a cookie is never
// sent twice; the reply is as long as the request.
func TestSessionExchange(t *testing.T) {
	p := newPair(t)
	sent := map[string]bool{}
	for i := range 20 {
		req := p.request(t)
		var pk ntp.Packet
		ntp.Parse(req, &pk)
		f := scanFields(&pk)
		if sent[string(f.cookie)] {
			t.Fatalf("request %d reuses a cookie", i)
		}
		sent[string(f.cookie)] = true
		if f.placeholders != 0 {
			t.Fatalf("request %d with a full jar has %d placeholders", i, f.placeholders)
		}
		reply, nak := p.serve(t, req)
		if nak {
			t.Fatalf("request %d: NAK", i)
		}
		if len(reply) != len(req) {
			t.Errorf("reply %d bytes, request %d", len(reply), len(req))
		}
		if err := open(p.client, reply); err != nil {
			t.Fatalf("request %d: Open: %v", i, err)
		}
		if p.client.Cookies() != MaxCookies || p.client.NeedsKeyExchange() {
			t.Fatalf("after exchange %d: %d cookies", i, p.client.Cookies())
		}
	}
}

// TestSessionLostReplies: lost replies drain the jar; the next request
// asks for the missing cookies with placeholders and gets them; an empty
// jar needs a key exchange and sends nothing.
func TestSessionLostReplies(t *testing.T) {
	p := newPair(t)
	for range 3 {
		p.request(t) // lost
	}
	req := p.request(t)
	var pk ntp.Packet
	ntp.Parse(req, &pk)
	if f := scanFields(&pk); f.placeholders != 3 || f.placeLen != len(f.cookie) {
		t.Fatalf("placeholders %d of length %d (cookie %d)", f.placeholders, f.placeLen, len(f.cookie))
	}
	reply, _ := p.serve(t, req)
	if err := open(p.client, reply); err != nil || p.client.Cookies() != MaxCookies {
		t.Fatalf("Open: %v, %d cookies", err, p.client.Cookies())
	}
	for range MaxCookies {
		p.request(t)
	}
	if !p.client.NeedsKeyExchange() {
		t.Fatal("empty jar does not need a key exchange")
	}
	b := make([]byte, 2048)
	n, _ := reqHeader.MarshalTo(b)
	if _, err := p.client.Seal(b, n); !errors.Is(err, ErrNeedKeyExchange) {
		t.Fatalf("Seal with an empty jar: %v", err)
	}
}

// TestSessionReplayAndForgery: the client accepts a reply once, only for
// the last request, and only if authentic.
func TestSessionReplayAndForgery(t *testing.T) {
	p := newPair(t)
	req1 := p.request(t)
	reply1, _ := p.serve(t, req1)

	// Tampered: any byte of header or fields.
	for _, i := range []int{1, 40, 47, 60, len(reply1) - 20, len(reply1) - 1} {
		bad := bytes.Clone(reply1)
		bad[i] ^= 4
		if err := open(p.client, bad); err == nil {
			t.Fatalf("reply with byte %d changed accepted", i)
		}
	}
	if err := open(p.client, reply1); err != nil {
		t.Fatalf("genuine reply: %v", err)
	}
	if err := open(p.client, reply1); !errors.Is(err, ErrUnexpectedReply) {
		t.Fatalf("replayed reply: %v", err)
	}
	// A late reply to an older request is refused too.
	req2 := p.request(t)
	reply2, _ := p.serve(t, req2)
	req3 := p.request(t)
	if err := open(p.client, reply2); !errors.Is(err, ErrUnexpectedReply) {
		t.Fatalf("reply to the previous request: %v", err)
	}
	reply3, _ := p.serve(t, req3)
	if err := open(p.client, reply3); err != nil {
		t.Fatalf("reply to the last request: %v", err)
	}
	// A reply without authenticator (a plain NTP reply with our UID).
	req4 := p.request(t)
	plain := bytes.Clone(req4[:ntp.HeaderLen+4+UniqueIDLen])
	plain[0] = 0x24
	if err := open(p.client, plain); !errors.Is(err, ErrNotAuthenticated) {
		t.Fatalf("unauthenticated reply: %v", err)
	}
}

// TestSessionNAK: a forged or stale cookie gets an NTS NAK carrying the
// request's unique identifier; the client then needs a key exchange.
func TestSessionNAK(t *testing.T) {
	p := newPair(t)
	req := p.request(t)
	// The server forgot all its keys (rotated them all away).
	for i := range DefaultKeep {
		p.ring.Rotate(t0.Add(time.Duration(i+1) * time.Hour))
	}
	reply, nak := p.serve(t, req)
	if !nak {
		t.Fatal("stale cookie accepted")
	}
	var pk ntp.Packet
	if err := ntp.Parse(reply, &pk); err != nil {
		t.Fatal(err)
	}
	var kiss *ntp.KissError
	if err := ntp.CheckReply(&pk.Header, reqHeader.TransmitTime, 0); !errors.As(err, &kiss) || kiss.Code != ntp.KissNTSN {
		t.Fatalf("NAK is not a KoD NTSN: %v", err)
	}
	// A NAK with another unique identifier is not ours.
	forged := bytes.Clone(reply)
	forged[ntp.HeaderLen+10] ^= 1
	if err := open(p.client, forged); !errors.Is(err, ErrUnexpectedReply) || p.client.NeedsKeyExchange() {
		t.Fatalf("NAK with a foreign unique identifier: %v", err)
	}
	if err := open(p.client, reply); !errors.Is(err, ErrNAK) || !errors.Is(err, ntp.ErrNTSNak) {
		t.Fatalf("genuine NAK: %v", err)
	}
	if !p.client.NeedsKeyExchange() {
		t.Fatal("NAK did not empty the jar (Open)")
	}
	fr := scanFields(&pk)
	var rq ntp.Packet
	ntp.Parse(req, &rq)
	if fq := scanFields(&rq); !bytes.Equal(fr.uid, fq.uid) || fr.authOff != 0 || fr.cookies != 0 {
		t.Fatalf("NAK fields: uid match %v, auth %d", bytes.Equal(fr.uid, fq.uid), fr.authOff)
	}
	p.client.Nak()
	if !p.client.NeedsKeyExchange() || p.client.Cookies() != 0 {
		t.Fatal("NAK did not empty the jar")
	}
	// Rekey brings it back.
	exp := fakeExporter("again")
	resp, _ := (&KEServer{Keys: p.ring}).Respond(ClientRequest(nil), exp)
	ke, _ := ParseKEResponse(resp, nil, exp)
	if err := p.client.Rekey(ke); err != nil || p.client.NeedsKeyExchange() {
		t.Fatalf("Rekey: %v", err)
	}
	reply, nak = p.serve(t, p.request(t))
	if nak || open(p.client, reply) != nil {
		t.Fatal("exchange after rekey failed")
	}
}

// TestServerRotationAcceptsPrevious: a cookie from the previous key is
// still served after a rotation, with fresh cookies under the new key.
func TestServerRotationAcceptsPrevious(t *testing.T) {
	p := newPair(t)
	p.ring.Rotate(t0.Add(24 * time.Hour))
	reply, nak := p.serve(t, p.request(t))
	if nak {
		t.Fatal("cookie of the previous key got a NAK")
	}
	if err := open(p.client, reply); err != nil {
		t.Fatal(err)
	}
	newest := p.client.cookies[len(p.client.cookies)-1]
	if id := p.ring.KeyIDs()[0]; uint32(newest[0])<<24|uint32(newest[1])<<16|uint32(newest[2])<<8|uint32(newest[3]) != id {
		t.Fatal("fresh cookie not made under the current key")
	}
}

// TestServerWrongKeyNAK: a valid cookie with a request authenticated under
// other keys gets a NAK.
func TestServerWrongKeyNAK(t *testing.T) {
	p := newPair(t)
	q := newPairSecret(t, "other") // same ring seed, other session keys
	q.client.mu.Lock()
	q.client.cookies = p.client.cookies[:1]
	q.client.mu.Unlock()
	req := q.request(t)
	if _, nak := p.serve(t, req); !nak {
		t.Fatal("request sealed with the wrong C2S key was accepted")
	}
}

// TestServerMalformed: requests that are not well-formed NTS are dropped,
// plain NTP is left to the NTP server.
func TestServerMalformed(t *testing.T) {
	p := newPair(t)
	good := p.request(t)
	var gp ntp.Packet
	ntp.Parse(good, &gp)
	f := scanFields(&gp)
	hdr := good[:ntp.HeaderLen]
	uidEF := good[ntp.HeaderLen : ntp.HeaderLen+36]
	cookieEF := good[ntp.HeaderLen+36 : f.authOff]
	authEF := good[f.authOff:]
	mode4 := bytes.Clone(hdr)
	mode4[0] = 0x24
	shortUID := ntp.AppendExtension(nil, EFUniqueIdentifier, make([]byte, 16), 0)
	other := ntp.AppendExtension(nil, 0x2005, make([]byte, 24), 0)
	place := ntp.AppendExtension(nil, EFCookiePlaceholder, make([]byte, 8), 0)
	tests := []struct {
		name string
		pkt  []byte
		want error
	}{
		{"plain", hdr, ErrNotNTS},
		{"plain with other field", cat(hdr, other), ErrNotNTS},
		{"server mode", cat(mode4, uidEF, cookieEF, authEF), ErrNTSRequest},
		{"no uid", cat(hdr, cookieEF, authEF), ErrNTSRequest},
		{"two uids", cat(hdr, uidEF, uidEF, cookieEF, authEF), ErrNTSRequest},
		{"short uid", cat(hdr, shortUID, cookieEF, authEF), ErrNTSRequest},
		{"no cookie", cat(hdr, uidEF, authEF), ErrNTSRequest},
		{"two cookies", cat(hdr, uidEF, cookieEF, cookieEF, authEF), ErrNTSRequest},
		{"no auth", cat(hdr, uidEF, cookieEF, other), ErrNTSRequest},
		{"auth not last", cat(hdr, uidEF, cookieEF, authEF, other), ErrNTSRequest},
		{"odd placeholder", cat(hdr, uidEF, cookieEF, place, authEF), ErrNTSRequest},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var pk ntp.Packet
			if err := ntp.Parse(tt.pkt, &pk); err != nil {
				t.Fatalf("test packet does not parse: %v", err)
			}
			r, err := p.server.Verify(tt.pkt, &pk)
			if !errors.Is(err, tt.want) || r != nil {
				t.Fatalf("Verify = %v, %v; want %v", r, err, tt.want)
			}
		})
	}
}

// TestChronyGolden: chrony 4.3's real packets parse as NTS; its request
// carries a cookie our server cannot open, so it gets a NAK.
func TestChronyGolden(t *testing.T) {
	req := readHex(t, "chronyd-4.3-nts-request.hex")
	var pk ntp.Packet
	if err := ntp.Parse(req, &pk); err != nil {
		t.Fatal(err)
	}
	f := scanFields(&pk)
	if f.uids != 1 || len(f.uid) != 32 || f.cookies != 1 || f.authOff == 0 || f.afterAuth {
		t.Fatalf("chrony request fields: %+v", f)
	}
	af, err := ParseAuthField(f.auth)
	if err != nil || len(af.Nonce) != 16 || len(af.Ciphertext) != TagSize {
		t.Fatalf("chrony authenticator: %+v, %v", af, err)
	}
	srv := &Server{Keys: testRing(t, 13), Rand: newRand(14)}
	r, err := srv.Verify(req, &pk)
	if err != nil || !r.NAK() {
		t.Fatalf("Verify of chrony's request: %v, %v", r, err)
	}
	reply := readHex(t, "chronyd-4.3-nts-reply.hex")
	if err := ntp.Parse(reply, &pk); err != nil {
		t.Fatal(err)
	}
	f = scanFields(&pk)
	if f.uids != 1 || f.authOff == 0 || f.afterAuth {
		t.Fatalf("chrony reply fields: %+v", f)
	}
	if af, err := ParseAuthField(f.auth); err != nil || len(af.Ciphertext) <= TagSize {
		t.Fatalf("chrony reply authenticator: %+v, %v", af, err)
	}
}

// TestSessionWithSource: the session as the Authenticator of an
// engine/ntp Source, answered by the server handler, yields samples.
func TestSessionWithSource(t *testing.T) {
	p := newPair(t)
	src := ntp.NewSource(ntp.SourceConfig{MinPoll: 4, MaxPoll: 6, Auth: p.client}, t0)
	now := t0
	got := 0
	for i := range 10 {
		b := make([]byte, 1500)
		n := src.MakeRequest(now, uint64(0xabc0+i), b)
		if n == 0 {
			t.Fatalf("poll %d: no request (%v)", i, src.LastError())
		}
		reply, _ := p.serve(t, b[:n])
		if _, ok, err := src.Receive(now.Add(2*time.Millisecond), reply); err != nil {
			t.Fatalf("poll %d: %v", i, err)
		} else if ok {
			got++
		}
		now = now.Add(16 * time.Second)
	}
	if sent, valid := src.Counts(); valid != sent || got == 0 {
		t.Fatalf("sent %d valid %d samples %d", sent, valid, got)
	}
	// The server loses its keys: the next reply is a NAK, the source
	// reports it, and the session needs a key exchange.
	for i := range DefaultKeep {
		p.ring.Rotate(t0.Add(time.Duration(i+1) * time.Hour))
	}
	b := make([]byte, 1500)
	n := src.MakeRequest(now, 0xdead, b)
	reply, nak := p.serve(t, b[:n])
	if _, _, err := src.Receive(now.Add(time.Millisecond), reply); !nak || !errors.Is(err, ntp.ErrNTSNak) {
		t.Fatalf("stale cookie through the source: nak %v, %v", nak, err)
	}
	if !p.client.NeedsKeyExchange() {
		t.Fatal("no key exchange needed after a NAK")
	}
	if n := src.MakeRequest(now.Add(time.Minute), 0xbeef, b); n != 0 {
		t.Fatal("a request was sent without cookies")
	}
}

// BenchmarkServerExchange is the server's NTS work per request: verify,
// one fresh cookie, authenticated reply.
func BenchmarkServerExchange(b *testing.B) {
	p := newPair(b)
	req := p.request(b)
	var pk ntp.Packet
	ntp.Parse(req, &pk)
	out := make([]byte, len(req))
	var h ntp.Header
	st := ntp.ServerState{Stratum: 1}
	ntp.Respond(&pk.Header, t0, t0, &st, &h)
	for b.Loop() {
		r, err := p.server.Verify(req, &pk)
		if err != nil || r.NAK() {
			b.Fatal(err)
		}
		n, _ := h.MarshalTo(out)
		if _, err := r.Append(out, n); err != nil {
			b.Fatal(err)
		}
	}
}
