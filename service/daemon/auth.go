package daemon

import (
	"errors"
	"slices"
	"sync/atomic"

	"gnomon.dev/gnomon/engine/ntp"
	"gnomon.dev/gnomon/engine/nts"
	"gnomon.dev/gnomon/service/config"
)

// authState is the symmetric keys ([authentication] key-file) and what
// the servers did with signed requests.
type authState struct {
	keys *ntp.KeySet
	// Requests: answered signed; refused without MAC (require-key);
	// refused for an unknown or not accepted key ID; refused for a MAC
	// that does not verify (wrong key, altered, truncated).
	signed, unsigned, unknownKey, badMAC atomic.Uint64
}

// AuthCounts is what the NTP servers did with symmetric-key requests.
type AuthCounts struct {
	Signed, RefusedUnsigned, RefusedUnknownKey, RefusedBadMAC uint64
}

// AuthCounts returns the servers' authentication counters.
func (d *Daemon) AuthCounts() AuthCounts {
	a := &d.auth
	return AuthCounts{a.signed.Load(), a.unsigned.Load(), a.unknownKey.Load(), a.badMAC.Load()}
}

// loadKeys reads the key file (as root, before the privilege drop).
func (d *Daemon) loadKeys() error {
	if d.cfg.Authentication.KeyFile == "" {
		return nil
	}
	keys, err := config.LoadKeyFile(d.cfg.Authentication.KeyFile)
	if err != nil {
		return err
	}
	for _, id := range keys.IDs() {
		if k := keys.Key(id); k.Bits() < 80 {
			d.log.Warn("short symmetric key: use at least 128 random bits", "key", id, "type", k.Type, "bits", k.Bits())
		}
	}
	d.auth.keys = keys
	d.log.Info("read key file", "path", d.cfg.Authentication.KeyFile, "keys", keys.Len())
	return nil
}

// sourceAuth is the authenticator of a new source: its NTS session, or
// its symmetric key.
func (d *Daemon) sourceAuth(src config.SourceConfig, session *nts.ClientSession) ntp.Authenticator {
	if session != nil {
		return session
	}
	if src.Key != 0 {
		if k := d.auth.keys.Key(src.Key); k != nil {
			return &ntp.SymmetricAuth{Key: k}
		}
	}
	return nil
}

// checkRequestAuth verifies a request's MAC under the server's policy. It
// returns the key to sign the answer with (nil: answer unsigned) and
// whether to answer at all: a request with a MAC that does not verify,
// or with a key this server does not accept, is dropped and counted, as
// is an unsigned one when the server requires a key. A crypto-NAK or NTS
// request (no MAC of its own) is left to the other checks.
func (w *worker) checkRequestAuth(b []byte, p *ntp.Packet) (*ntp.Key, bool) {
	a := &w.d.auth
	if _, hasKey := ntp.MACKeyID(p); !hasKey {
		if w.cur.cfg.RequireKey && !(w.d.nts.Load() != nil && hasNTSAuthenticator(p)) {
			a.unsigned.Add(1)
			w.d.logLimited("auth-unsigned", "unsigned request refused (require-key)", "count", a.unsigned.Load())
			return nil, false
		}
		return nil, true
	}
	if a.keys == nil {
		// No key file: answered as before, unsigned (the client will
		// refuse it, as it would from any server that lacks its key).
		return nil, !w.cur.cfg.RequireKey
	}
	k, err := a.keys.Verify(b, p)
	if err == nil && w.cur.cfg.Keys != nil && !slices.Contains(w.cur.cfg.Keys, k.ID) {
		err = ntp.ErrUnknownKey
	}
	switch {
	case err == nil:
		a.signed.Add(1)
		return k, true
	case errors.Is(err, ntp.ErrUnknownKey):
		a.unknownKey.Add(1)
		w.d.logLimited("auth-unknown", "request with an unknown key refused", "count", a.unknownKey.Load())
	default:
		a.badMAC.Add(1)
		w.d.logLimited("auth-bad", "request with a bad MAC refused", "count", a.badMAC.Load(), "err", err)
	}
	return nil, false
}

// hasNTSAuthenticator reports whether p carries an NTS Authenticator
// extension field: NTS requests authenticate themselves, require-key does
// not apply to them (the NTS check that follows refuses forgeries).
func hasNTSAuthenticator(p *ntp.Packet) bool {
	it := p.ExtensionFields()
	for f, ok := it.Next(); ok; f, ok = it.Next() {
		if f.Type == 0x0404 {
			return true
		}
	}
	return false
}
