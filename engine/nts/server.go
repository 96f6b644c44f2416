package nts

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"sync"

	"gnomon.dev/gnomon/engine/ntp"
)

// Errors of the server's request check. ErrNotNTS means "serve it as plain
// NTP"; every other error means "drop the request".
var (
	ErrNotNTS     = errors.New("nts: request carries no NTS extension fields")
	ErrNTSRequest = errors.New("nts: malformed NTS request")
)

// Server is the NTS side of an NTP server: it checks authenticated client
// requests and authenticates the replies, with cookies sealed under Keys.
// Rand gives the nonces of the replies and of their fresh cookies. A
// Server is pure and safe for concurrent use when Rand is.
type Server struct {
	Keys *KeyRing
	Rand io.Reader

	sivs sivCache
}

// sivCache keeps the expanded keys of recent clients: a client sends
// request after request with cookies that carry the same keys, and
// expanding them (two AES key schedules and the CMAC subkeys per
// direction) was the largest cost of an answer after the cipher itself.
// It is bounded; when full, an arbitrary entry makes room.
type sivCache struct {
	mu sync.Mutex
	m  map[string]*sivPair
}

type sivPair struct{ c2s, s2c *SIV }

// sivCacheSize bounds the cache: 4096 clients, about 2 MiB.
const sivCacheSize = 4096

func (c *sivCache) get(k Keys) (*sivPair, error) {
	var buf [2 * 64]byte
	n := copy(buf[:], k.C2S)
	n += copy(buf[n:], k.S2C)
	c.mu.Lock()
	p := c.m[string(buf[:n])]
	c.mu.Unlock()
	if p != nil {
		return p, nil
	}
	c2s, err := NewSIV(k.C2S)
	if err != nil {
		return nil, err
	}
	s2c, err := NewSIV(k.S2C)
	if err != nil {
		return nil, err
	}
	p = &sivPair{c2s: c2s, s2c: s2c}
	c.mu.Lock()
	if c.m == nil {
		c.m = make(map[string]*sivPair)
	}
	if len(c.m) >= sivCacheSize {
		for old := range c.m {
			delete(c.m, old)
			break
		}
	}
	c.m[string(buf[:n])] = p
	c.mu.Unlock()
	return p, nil
}

// ServerReply is the NTS part of the answer to one request, produced by
// Verify or VerifyInto. If NAK() the caller answers with a Kiss-o'-Death
// NTSN header (ntp.RespondKiss with ntp.KissNTSN); otherwise with its normal
// reply header. In both cases it then calls Append to add the extension
// fields.
//
// A server worker keeps one ServerReply and hands it to VerifyInto for
// every request: its buffers are then reused, and answering allocates
// nothing. A ServerReply is not safe for concurrent use.
type ServerReply struct {
	nak      bool
	uid      []byte // the request's unique identifier (a copy)
	s2c      *SIV
	nonce    [NonceLen]byte
	cookies  []byte // the fresh cookies as cookie extension fields: the plaintext Append seals
	ncookies int
	padTo    int // the request's length: the reply is made as long

	// Reused from request to request:
	keyBuf []byte // the opened cookie's plaintext (the client's keys), cleared after use
	inPT   []byte // the request's decrypted extension fields
	rnd    []byte // random bytes read ahead from Server.Rand, used from the front
	sc     scratch
}

// NAK reports that the request's cookie or authenticator was not accepted:
// the reply must be an NTS NAK.
func (r *ServerReply) NAK() bool { return r.nak }

// Cookies is how many fresh cookies the reply will carry.
func (r *ServerReply) Cookies() int { return r.ncookies }

// randAhead is how many random bytes a reused ServerReply reads from
// Server.Rand at a time: 64 nonces (an answer takes one: its cookies'
// nonces are the key ring's counters).
const randAhead = 64 * NonceLen

// random fills b from the bytes read ahead, reading more from rnd when they
// run out: randAhead bytes when ahead is true, else just len(b).
//
// Reading ahead changes nothing for the nonces' quality: they are the
// same bytes of the same source (crypto/rand in gnomond), taken in batches
// instead of one system call or vDSO call each. They are not secret (a
// nonce is sent in clear); held in memory beforehand they reveal no more
// than the master keys next to them. Should two copies of a process ever
// share a batch (a cloned VM), AES-SIV stays secure with repeated nonces
// (RFC 5297: it is misuse-resistant; only equal plaintexts would show).
func (r *ServerReply) random(rnd io.Reader, b []byte, ahead bool) error {
	if len(r.rnd) < len(b) {
		n := len(b)
		if ahead {
			n = max(randAhead, n)
		}
		if cap(r.rnd) < n {
			r.rnd = make([]byte, n)
		}
		r.rnd = r.rnd[:n]
		if err := readFull(rnd, r.rnd); err != nil {
			r.rnd = r.rnd[:0]
			return err
		}
	}
	copy(b, r.rnd)
	clear(r.rnd[:len(b)])
	r.rnd = r.rnd[len(b):]
	return nil
}

// Verify checks the NTS request req (p parsed from it), in the manner of
// RFC 8915 section 5.7:
//
//   - no NTS extension field: ErrNotNTS (plain NTP);
//   - not a mode-3 request, a missing or repeated unique identifier or
//     cookie, no authenticator or one that is not the last field, a MAC,
//     placeholders of differing lengths, malformed encrypted fields: an
//     error wrapping ErrNTSRequest (drop it);
//   - a cookie that does not open or an authenticator that does not
//     verify: a reply with NAK() true, and a nil error;
//   - otherwise a reply carrying as many fresh cookies as the request had
//     cookies and placeholders (at most MaxCookies).
func (s *Server) Verify(req []byte, p *ntp.Packet) (*ServerReply, error) {
	r := new(ServerReply)
	if err := s.verify(r, req, p, false); err != nil {
		return nil, err
	}
	return r, nil
}

// VerifyInto is Verify writing the reply into r, reusing r's buffers: a
// worker that keeps one ServerReply answers without allocating. On an
// error r must not be used (until the next VerifyInto).
func (s *Server) VerifyInto(r *ServerReply, req []byte, p *ntp.Packet) error {
	return s.verify(r, req, p, true)
}

func (s *Server) verify(r *ServerReply, req []byte, p *ntp.Packet, reuse bool) error {
	if !IsNTS(p) {
		return ErrNotNTS
	}
	if p.Mode != ntp.ModeClient {
		return fmt.Errorf("%w: mode %v", ErrNTSRequest, p.Mode)
	}
	f := scanFields(p)
	switch {
	case f.uids != 1 || len(f.uid) < 32:
		return fmt.Errorf("%w: %d unique identifiers", ErrNTSRequest, f.uids)
	case f.cookies != 1:
		return fmt.Errorf("%w: %d cookies", ErrNTSRequest, f.cookies)
	case f.authOff == 0 || f.afterAuth || p.MAC != nil:
		return fmt.Errorf("%w: the authenticator is missing or not last", ErrNTSRequest)
	case f.placeholders > 0 && f.placeLen != len(f.cookie):
		return fmt.Errorf("%w: placeholders differ from the cookie in length", ErrNTSRequest)
	}
	r.nak, r.s2c, r.ncookies, r.padTo = true, nil, 0, 0
	r.uid = append(r.uid[:0], f.uid...)
	r.cookies = r.cookies[:0]
	sc := &r.sc
	keys, kb, err := s.Keys.openCookie(sc, r.keyBuf, f.cookie)
	r.keyBuf = kb[:0]
	if err != nil {
		return nil
	}
	defer clear(kb) // the client's keys: not left lying in the buffer
	pair, err := s.sivs.get(keys)
	if err != nil {
		return nil
	}
	af, err := ParseAuthField(f.auth)
	if err != nil {
		return fmt.Errorf("%w: %w", ErrNTSRequest, err)
	}
	pt, err := pair.c2s.open(sc, r.inPT[:0], af.Ciphertext, req[:f.authOff], af.Nonce)
	if err != nil {
		return nil
	}
	r.inPT = pt[:0]
	want := 1 + f.placeholders
	var bad error
	if err := walkPlaintext(pt, func(ef ntp.ExtensionField) {
		if ef.Type == EFCookiePlaceholder {
			if len(ef.Value) != len(f.cookie) {
				bad = errors.New("encrypted placeholder differs from the cookie in length")
			}
			want++
		}
	}); err != nil {
		return fmt.Errorf("%w: %w", ErrNTSRequest, err)
	}
	if bad != nil {
		return fmt.Errorf("%w: %w", ErrNTSRequest, bad)
	}
	want = min(want, MaxCookies)
	// The reply's nonce (the cookies' are counters of the key ring).
	if err := r.random(s.Rand, r.nonce[:], reuse); err != nil {
		return err
	}
	cl := cookieLen(keys.Algorithm.KeyLen())
	if need := want * (4 + cl); cap(r.cookies) < need {
		r.cookies = make([]byte, 0, need)
	}
	for range want {
		// A cookie extension field: cookies are a multiple of 4 bytes
		// and longer than 12, so the field needs no padding.
		r.cookies = binary.BigEndian.AppendUint16(r.cookies, EFCookie)
		r.cookies = binary.BigEndian.AppendUint16(r.cookies, uint16(4+cl))
		if r.cookies, err = s.Keys.appendCookie(r.cookies, keys); err != nil {
			return err
		}
	}
	r.nak, r.s2c, r.ncookies, r.padTo = false, pair.s2c, want, len(req)
	return nil
}

// Append adds the reply's NTS extension fields after the reply header
// b[:n] and returns the new length: the request's unique identifier, and
// (unless NAK) the authenticator with the fresh cookies encrypted in it,
// padded so that the reply is as long as the request when b has room for
// that (as chrony does). It fails with ErrBufferTooSmall only when b cannot
// hold the fields at all (a buffer of the request's length is always
// enough).
func (r *ServerReply) Append(b []byte, n int) (int, error) {
	if n < ntp.HeaderLen || n > len(b) {
		return 0, ErrBufferTooSmall
	}
	uidLen := pad4(max(4+len(r.uid), 16))
	pt := r.cookies
	minAuth := 0
	need := uidLen
	if !r.nak {
		need += authFieldLen(len(r.nonce), len(pt), 0)
		// Pad to the request's length when the buffer allows.
		minAuth = r.padTo - n - uidLen
		if len(b)-n < uidLen+authFieldLen(len(r.nonce), len(pt), minAuth) {
			minAuth = 0
		}
	}
	if len(b)-n < need {
		return 0, ErrBufferTooSmall
	}
	pkt := b[:n:len(b)]
	pkt = ntp.AppendExtension(pkt, EFUniqueIdentifier, r.uid, 0)
	if r.nak {
		return len(pkt), nil
	}
	pkt = appendAuthField(&r.sc, pkt, r.s2c, r.nonce[:], pt, minAuth)
	return len(pkt), nil
}
