package nts

import (
	"crypto/subtle"
	"errors"
	"fmt"
	"io"
	"slices"
	"sync"

	"gnomon.dev/gnomon/engine/ntp"
)

// Errors of the client session.
var (
	// ErrNeedKeyExchange: no cookie is left, or the server sent an NTS
	// NAK: run NTS-KE again and Rekey.
	ErrNeedKeyExchange = errors.New("nts: no usable cookie: a new NTS key exchange is needed")
	// ErrBufferTooSmall: Seal's buffer cannot hold the NTS fields.
	ErrBufferTooSmall = errors.New("nts: request buffer too small for the NTS extension fields")
	// ErrUnexpectedReply: the reply does not answer our outstanding
	// request (no request outstanding, or a different unique identifier:
	// a replayed or foreign reply).
	ErrUnexpectedReply = errors.New("nts: reply does not carry the unique identifier of our outstanding request")
	// ErrNotAuthenticated: the reply lacks a valid authenticator.
	ErrNotAuthenticated = errors.New("nts: reply is not authenticated")
	// ErrNAK: the reply is an NTS NAK (KoD NTSN with our unique
	// identifier); it wraps ntp.ErrNTSNak.
	ErrNAK = fmt.Errorf("nts: server refused our cookie: %w", ntp.ErrNTSNak)
)

// ClientSession is the NTS state of one NTP association on the client:
// the keys from NTS-KE and a jar of up to MaxCookies cookies. It
// implements ntp.Authenticator: Seal spends one cookie per request (a
// cookie is never sent twice) and asks for as many new ones as are
// missing with placeholders; Open accepts only an authenticated reply
// carrying the unique identifier of the last request, once, and keeps the
// cookies inside it. It is safe for concurrent use.
type ClientSession struct {
	mu       sync.Mutex
	rand     io.Reader
	keys     Keys
	c2s, s2c *SIV
	cookies  [][]byte // oldest first
	uid      [UniqueIDLen]byte
	pending  bool // uid belongs to a request still unanswered
	nak      bool
}

// NewClientSession starts a session from a key exchange. rand is the
// source of unique identifiers and nonces (crypto/rand.Reader in
// production).
func NewClientSession(ke *KEResult, rand io.Reader) (*ClientSession, error) {
	s := &ClientSession{rand: rand}
	if err := s.Rekey(ke); err != nil {
		return nil, err
	}
	return s, nil
}

// Rekey replaces keys and cookies with those of a new key exchange and
// clears a NAK; an outstanding request's reply will no longer be accepted.
func (s *ClientSession) Rekey(ke *KEResult) error {
	c2s, err := NewSIV(ke.Keys.C2S)
	if err != nil {
		return err
	}
	s2c, err := NewSIV(ke.Keys.S2C)
	if err != nil {
		return err
	}
	if ke.Keys.Algorithm.KeyLen() != len(ke.Keys.C2S) || len(ke.Keys.C2S) != len(ke.Keys.S2C) {
		return fmt.Errorf("nts: keys do not match algorithm %v", ke.Keys.Algorithm)
	}
	var cookies [][]byte
	for _, c := range ke.Cookies {
		if len(c) > 0 && len(c) <= MaxCookieLen && len(cookies) < MaxCookies {
			cookies = append(cookies, slices.Clone(c))
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.keys = Keys{Algorithm: ke.Keys.Algorithm, C2S: slices.Clone(ke.Keys.C2S), S2C: slices.Clone(ke.Keys.S2C)}
	s.c2s, s.s2c = c2s, s2c
	s.cookies = cookies
	s.pending = false
	s.nak = false
	return nil
}

// Cookies is how many unused cookies the session holds.
func (s *ClientSession) Cookies() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.cookies)
}

// NeedsKeyExchange reports that the session cannot authenticate another
// request: no cookie is left, or the server sent an NTS NAK.
func (s *ClientSession) NeedsKeyExchange() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.nak || len(s.cookies) == 0
}

// Nak records an NTS NAK (KoD NTSN) from the server: the cookies are no
// longer accepted, so they are dropped and NeedsKeyExchange turns true.
// (The source accepted the NAK because it echoed our random transmit
// timestamp; a NAK is not authenticated, per RFC 8915.)
func (s *ClientSession) Nak() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.nak = true
	s.pending = false
	clear(s.cookies)
	s.cookies = nil
}

// minAuthLen is the smallest authenticator field a request carries
// (chrony: the longest legacy MAC plus 4, so the packet can never be read
// as carrying a MAC).
const minAuthLen = 28

// Seal implements ntp.Authenticator: it appends, after the request header
// b[:n], a fresh Unique Identifier, one cookie, placeholders for the
// missing cookies, and the authenticator (no encrypted fields), and returns
// the new length. b must be long enough (about 1 KB covers 8 cookies of
// 104 bytes; ErrBufferTooSmall otherwise). The cookie is spent even if the
// request is never answered.
func (s *ClientSession) Seal(b []byte, n int) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.nak || len(s.cookies) == 0 {
		return 0, ErrNeedKeyExchange
	}
	if n < ntp.HeaderLen || n > len(b) {
		return 0, ErrBufferTooSmall
	}
	cookie := s.cookies[0]
	ef := pad4(max(4+len(cookie), 16))
	// Ask for the cookies we will be missing after this one, but keep
	// the request (and so the reply) within a sane size.
	placeholders := MaxCookies - len(s.cookies)
	for placeholders > 0 && ef*(1+placeholders) > 1024 {
		placeholders--
	}
	need := 4 + UniqueIDLen + ef*(1+placeholders) + authFieldLen(NonceLen, 0, minAuthLen)
	if len(b)-n < need {
		return 0, ErrBufferTooSmall
	}
	var uid [UniqueIDLen]byte
	nonce := make([]byte, NonceLen)
	if err := readFull(s.rand, uid[:]); err != nil {
		return 0, err
	}
	if err := readFull(s.rand, nonce); err != nil {
		return 0, err
	}
	pkt := b[:n:len(b)]
	pkt = ntp.AppendExtension(pkt, EFUniqueIdentifier, uid[:], 0)
	pkt = ntp.AppendExtension(pkt, EFCookie, cookie, 0)
	zero := make([]byte, len(cookie))
	for range placeholders {
		pkt = ntp.AppendExtension(pkt, EFCookiePlaceholder, zero, 0)
	}
	sc := scratches.Get().(*scratch)
	pkt = appendAuthField(sc, pkt, s.c2s, nonce, nil, minAuthLen)
	scratches.Put(sc)
	// The cookie is spent: never send it again.
	clear(s.cookies[0])
	s.cookies = slices.Delete(s.cookies, 0, 1)
	s.uid = uid
	s.pending = true
	return len(pkt), nil
}

// Open implements ntp.Authenticator: it accepts reply (p parsed from it)
// only if it carries the unique identifier of the outstanding request and
// an authenticator, last in the packet, that verifies under the S2C key;
// then it keeps the cookies it carries (encrypted) and clears the
// outstanding request, so the same reply is never accepted twice.
//
// A reply with our unique identifier, no authenticator, stratum 0 and kiss
// code NTSN is a genuine NTS NAK (RFC 8915 section 5.7): Open drops the
// cookies (NeedsKeyExchange turns true) and returns ErrNAK, which wraps
// ntp.ErrNTSNak. Without our unique identifier it is ErrUnexpectedReply.
func (s *ClientSession) Open(reply []byte, p *ntp.Packet) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.pending {
		return ErrUnexpectedReply
	}
	f := scanFields(p)
	if f.uids != 1 || subtle.ConstantTimeCompare(f.uid, s.uid[:]) != 1 {
		return ErrUnexpectedReply
	}
	if f.authOff == 0 && p.Stratum == 0 && p.ReferenceID == ntp.KissNTSN {
		// An NTS NAK: not authenticated (the server cannot), but it
		// carries our fresh unique identifier, so it answers our request.
		s.pending = false
		s.nak = true
		clear(s.cookies)
		s.cookies = nil
		return ErrNAK
	}
	if f.authOff == 0 || f.afterAuth || p.MAC != nil {
		return ErrNotAuthenticated
	}
	af, err := ParseAuthField(f.auth)
	if err != nil {
		return err
	}
	pt, err := s.s2c.Open(nil, af.Ciphertext, reply[:f.authOff], af.Nonce)
	if err != nil {
		return ErrNotAuthenticated
	}
	var fresh [][]byte
	if err := walkPlaintext(pt, func(ef ntp.ExtensionField) {
		if ef.Type == EFCookie && len(ef.Value) > 0 && len(ef.Value) <= MaxCookieLen {
			fresh = append(fresh, slices.Clone(ef.Value))
		}
	}); err != nil {
		return err
	}
	s.pending = false
	for _, c := range fresh {
		if len(s.cookies) < MaxCookies {
			s.cookies = append(s.cookies, c)
		}
	}
	return nil
}

var _ ntp.Authenticator = (*ClientSession)(nil)
