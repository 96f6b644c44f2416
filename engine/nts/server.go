package nts

import (
	"errors"
	"fmt"
	"io"
	"slices"
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
// It is pure and safe for concurrent use when Rand is.
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
// Verify. If NAK() the caller answers with a Kiss-o'-Death NTSN header
// (ntp.RespondKiss with ntp.KissNTSN); otherwise with its normal reply
// header. In both cases it then calls Append to add the extension fields.
type ServerReply struct {
	nak     bool
	uid     []byte
	s2c     *SIV
	nonce   []byte
	cookies [][]byte
	padTo   int // the request's length: the reply is made as long
}

// NAK reports that the request's cookie or authenticator was not accepted:
// the reply must be an NTS NAK.
func (r *ServerReply) NAK() bool { return r.nak }

// Cookies is how many fresh cookies the reply will carry.
func (r *ServerReply) Cookies() int { return len(r.cookies) }

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
	if !IsNTS(p) {
		return nil, ErrNotNTS
	}
	if p.Mode != ntp.ModeClient {
		return nil, fmt.Errorf("%w: mode %v", ErrNTSRequest, p.Mode)
	}
	f := scanFields(p)
	switch {
	case f.uids != 1 || len(f.uid) < 32:
		return nil, fmt.Errorf("%w: %d unique identifiers", ErrNTSRequest, f.uids)
	case f.cookies != 1:
		return nil, fmt.Errorf("%w: %d cookies", ErrNTSRequest, f.cookies)
	case f.authOff == 0 || f.afterAuth || p.MAC != nil:
		return nil, fmt.Errorf("%w: the authenticator is missing or not last", ErrNTSRequest)
	case f.placeholders > 0 && f.placeLen != len(f.cookie):
		return nil, fmt.Errorf("%w: placeholders differ from the cookie in length", ErrNTSRequest)
	}
	nak := &ServerReply{nak: true, uid: slices.Clone(f.uid)}
	keys, err := s.Keys.OpenCookie(f.cookie)
	if err != nil {
		return nak, nil
	}
	pair, err := s.sivs.get(keys)
	if err != nil {
		return nak, nil
	}
	c2s := pair.c2s
	af, err := ParseAuthField(f.auth)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrNTSRequest, err)
	}
	pt, err := c2s.Open(nil, af.Ciphertext, req[:f.authOff], af.Nonce)
	if err != nil {
		return nak, nil
	}
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
		return nil, fmt.Errorf("%w: %w", ErrNTSRequest, err)
	}
	if bad != nil {
		return nil, fmt.Errorf("%w: %w", ErrNTSRequest, bad)
	}
	s2c := pair.s2c
	r := &ServerReply{uid: nak.uid, s2c: s2c, nonce: make([]byte, NonceLen), padTo: len(req)}
	if err := readFull(s.Rand, r.nonce); err != nil {
		return nil, err
	}
	for range min(want, MaxCookies) {
		c, err := s.Keys.SealCookie(keys)
		if err != nil {
			return nil, err
		}
		r.cookies = append(r.cookies, c)
	}
	return r, nil
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
	var pt []byte
	minAuth := 0
	need := uidLen
	if !r.nak {
		for _, c := range r.cookies {
			pt = ntp.AppendExtension(pt, EFCookie, c, 0)
		}
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
	pkt = appendAuthField(pkt, r.s2c, r.nonce, pt, minAuth)
	return len(pkt), nil
}
