package nts

import (
	"errors"
	"fmt"
	"io"
	"slices"
	"strconv"
)

// AEADAlgorithm is an AEAD algorithm identifier from the IANA registry
// (RFC 5116), as negotiated in NTS-KE.
type AEADAlgorithm uint16

// The algorithms this package implements. AES-SIV-CMAC-256 is the one
// RFC 8915 makes mandatory and the only one chrony 4.3 uses for NTP.
const (
	AEADAESSIVCMAC256 AEADAlgorithm = 15
	AEADAESSIVCMAC384 AEADAlgorithm = 16
	AEADAESSIVCMAC512 AEADAlgorithm = 17
)

// DefaultAlgorithms is what a client offers and a server accepts, in order
// of preference.
var DefaultAlgorithms = []AEADAlgorithm{AEADAESSIVCMAC256, AEADAESSIVCMAC512, AEADAESSIVCMAC384}

// KeyLen is the key length of the algorithm, or 0 if it is not supported.
func (a AEADAlgorithm) KeyLen() int {
	switch a {
	case AEADAESSIVCMAC256:
		return 32
	case AEADAESSIVCMAC384:
		return 48
	case AEADAESSIVCMAC512:
		return 64
	}
	return 0
}

// Supported reports whether this package implements a.
func (a AEADAlgorithm) Supported() bool { return a.KeyLen() > 0 }

func (a AEADAlgorithm) String() string {
	switch a {
	case AEADAESSIVCMAC256:
		return "AEAD_AES_SIV_CMAC_256"
	case AEADAESSIVCMAC384:
		return "AEAD_AES_SIV_CMAC_384"
	case AEADAESSIVCMAC512:
		return "AEAD_AES_SIV_CMAC_512"
	}
	return "AEAD(" + strconv.Itoa(int(a)) + ")"
}

// Keys are the two NTS keys of one association, with their algorithm.
type Keys struct {
	Algorithm AEADAlgorithm
	C2S, S2C  []byte
}

// Exporter derives keying material from a TLS 1.3 session: it has the
// signature of crypto/tls.ConnectionState.ExportKeyingMaterial.
type Exporter func(label string, context []byte, length int) ([]byte, error)

// ExporterLabel is the TLS exporter label of RFC 8915 section 5.1.
const ExporterLabel = "EXPORTER-network-time-security"

// ExportKeys derives the C2S and S2C keys for NTPv4 with algorithm a
// (RFC 8915 section 5.1: the context is the protocol ID, the AEAD ID, and
// 0x00 for C2S or 0x01 for S2C).
func ExportKeys(export Exporter, a AEADAlgorithm) (Keys, error) {
	n := a.KeyLen()
	if n == 0 {
		return Keys{}, fmt.Errorf("nts: unsupported AEAD algorithm %v", a)
	}
	ctx := []byte{byte(ProtocolNTPv4 >> 8), byte(ProtocolNTPv4), byte(a >> 8), byte(a), 0}
	c2s, err := export(ExporterLabel, ctx, n)
	if err != nil {
		return Keys{}, fmt.Errorf("nts: exporting the C2S key: %w", err)
	}
	ctx[4] = 1
	s2c, err := export(ExporterLabel, ctx, n)
	if err != nil {
		return Keys{}, fmt.Errorf("nts: exporting the S2C key: %w", err)
	}
	if len(c2s) != n || len(s2c) != n {
		return Keys{}, errors.New("nts: exporter returned keys of the wrong length")
	}
	return Keys{Algorithm: a, C2S: c2s, S2C: s2c}, nil
}

// ClientRequest is the NTS-KE request a client sends: NTPv4 as the next
// protocol and algs (DefaultAlgorithms if empty) in order of preference.
func ClientRequest(algs []AEADAlgorithm) []byte {
	if len(algs) == 0 {
		algs = DefaultAlgorithms
	}
	m := Message{
		NextProtocols: []uint16{ProtocolNTPv4}, HasNextProtocol: true,
		AEADs: algs, HasAEAD: true,
		CriticalFlags: 1 << RecordAEADAlgorithm,
	}
	b, err := m.Append(nil)
	if err != nil {
		panic("nts: client request does not encode: " + err.Error()) // a few bytes: impossible
	}
	return b
}

// KEResult is what a successful key exchange yields to a client.
type KEResult struct {
	Keys    Keys
	Cookies [][]byte
	// Server and Port are the NTP server the KE server named; "" and 0
	// when it sent no such records (then the NTP server is the KE host
	// and the port is 123).
	Server   string
	Port     uint16
	Warnings []uint16
}

// Errors of the client's response check.
var (
	ErrNoProtocol = errors.New("nts: NTS-KE server supports no offered next protocol (NTPv4)")
	ErrNoAEAD     = errors.New("nts: NTS-KE server chose no offered AEAD algorithm")
	ErrNoCookies  = errors.New("nts: NTS-KE server sent no cookies")
)

// ParseKEResponse checks a server's whole NTS-KE response to
// ClientRequest(offered) and derives the keys through export. An Error
// record gives a *KEError.
func ParseKEResponse(resp []byte, offered []AEADAlgorithm, export Exporter) (*KEResult, error) {
	if len(offered) == 0 {
		offered = DefaultAlgorithms
	}
	m, err := ParseMessage(resp)
	if err != nil {
		return nil, err
	}
	if len(m.Errors) > 0 {
		return nil, &KEError{Code: m.Errors[0]}
	}
	if !m.HasNextProtocol {
		return nil, fmt.Errorf("%w: no next protocol record", ErrMalformed)
	}
	if len(m.NextProtocols) != 1 || m.NextProtocols[0] != ProtocolNTPv4 {
		return nil, ErrNoProtocol
	}
	if !m.HasAEAD || len(m.AEADs) != 1 || !slices.Contains(offered, m.AEADs[0]) || !m.AEADs[0].Supported() {
		return nil, ErrNoAEAD
	}
	var cookies [][]byte
	for _, c := range m.Cookies {
		if len(cookies) == MaxCookies {
			break
		}
		if len(c) > MaxCookieLen {
			continue
		}
		cookies = append(cookies, slices.Clone(c))
	}
	if len(cookies) == 0 {
		return nil, ErrNoCookies
	}
	keys, err := ExportKeys(export, m.AEADs[0])
	if err != nil {
		return nil, err
	}
	return &KEResult{
		Keys:     keys,
		Cookies:  cookies,
		Server:   m.Server,
		Port:     m.Port,
		Warnings: m.Warnings,
	}, nil
}

// KEServer answers NTS-KE requests. It is pure: the TLS session is behind
// the Exporter, the master keys behind the KeyRing, randomness behind Rand.
// Its fields must not change while it serves; it is safe for concurrent use
// when Rand is.
type KEServer struct {
	Keys *KeyRing
	// Algorithms this server accepts, in order of preference
	// (DefaultAlgorithms if empty). The server picks its most preferred
	// algorithm that the client offered.
	Algorithms []AEADAlgorithm
	// Server, when not "", is sent as the NTPv4 Server Negotiation
	// record; Port, when not 0, as the Port Negotiation record.
	Server string
	Port   uint16
	// Cookies per response (MaxCookies if 0).
	Cookies int
}

// Respond builds the response to one whole client request. It always
// returns a response to send (an Error record when the request is bad or
// the server fails) and, when the exchange did not succeed, an error for
// the log.
func (s *KEServer) Respond(req []byte, export Exporter) ([]byte, error) {
	fail := func(code uint16, err error) ([]byte, error) {
		m := Message{Errors: []uint16{code}}
		b, _ := m.Append(nil)
		return b, err
	}
	m, err := ParseMessage(req)
	switch {
	case errors.Is(err, ErrUnrecognizedCritical):
		return fail(ErrorUnrecognizedCritical, err)
	case err != nil:
		return fail(ErrorBadRequest, err)
	case !m.HasNextProtocol:
		return fail(ErrorBadRequest, fmt.Errorf("%w: request without a next protocol record", ErrMalformed))
	case len(m.Errors) > 0 || len(m.Cookies) > 0:
		return fail(ErrorBadRequest, fmt.Errorf("%w: request with error or cookie records", ErrMalformed))
	}
	resp := Message{HasNextProtocol: true, NextProtocols: []uint16{}}
	if !slices.Contains(m.NextProtocols, ProtocolNTPv4) {
		b, err := resp.Append(nil)
		if err == nil {
			err = ErrNoProtocol
		}
		return b, err
	}
	resp.NextProtocols = []uint16{ProtocolNTPv4}
	if !m.HasAEAD {
		return fail(ErrorBadRequest, fmt.Errorf("%w: NTPv4 request without an AEAD record", ErrMalformed))
	}
	algs := s.Algorithms
	if len(algs) == 0 {
		algs = DefaultAlgorithms
	}
	alg := AEADAlgorithm(0)
	for _, a := range algs {
		if a.Supported() && slices.Contains(m.AEADs, a) {
			alg = a
			break
		}
	}
	resp.HasAEAD = true
	resp.CriticalFlags = 1 << RecordAEADAlgorithm
	if alg == 0 {
		resp.AEADs = []AEADAlgorithm{}
		b, err := resp.Append(nil)
		if err == nil {
			err = ErrNoAEAD
		}
		return b, err
	}
	resp.AEADs = []AEADAlgorithm{alg}
	keys, err := ExportKeys(export, alg)
	if err != nil {
		return fail(ErrorInternalServer, err)
	}
	n := s.Cookies
	if n <= 0 || n > MaxCookies {
		n = MaxCookies
	}
	for range n {
		c, err := s.Keys.SealCookie(keys)
		if err != nil {
			return fail(ErrorInternalServer, err)
		}
		resp.Cookies = append(resp.Cookies, c)
	}
	resp.Server = s.Server
	if s.Port != 0 {
		resp.Port, resp.HasPort = s.Port, true
	}
	b, err := resp.Append(nil)
	if err != nil {
		return fail(ErrorInternalServer, err)
	}
	return b, nil
}

// readFull is io.ReadFull for the package's randomness sources.
func readFull(r io.Reader, b []byte) error {
	if _, err := io.ReadFull(r, b); err != nil {
		return fmt.Errorf("nts: reading randomness: %w", err)
	}
	return nil
}
