package daemon

import (
	"io"
	"log/slog"
	"testing"
	"time"

	"gnomon.dev/gnomon/engine/ntp"
	"gnomon.dev/gnomon/service/config"
	"gnomon.dev/gnomon/service/sd"
)

// The server's MAC policy: what is answered (and signed with which key),
// what is refused, and how each refusal is counted.
func TestCheckRequestAuth(t *testing.T) {
	keys, err := ntp.ParseKeyFile([]byte("1 AES128 HEX:7EA62AE64D190114D46D5A082F948EC1\n2 SHA1 HEX:0F1E2D3C4B5A69788796A5B4C3D2E1F00F1E2D3C\n"))
	if err != nil {
		t.Fatal(err)
	}
	other, _ := ntp.NewKey(9, ntp.KeyAES128, []byte("0123456789abcdef"))
	wrong, _ := ntp.NewKey(1, ntp.KeyAES128, []byte("0123456789abcdef")) // key 1, another secret
	req := func(k *ntp.Key, cut int) ([]byte, *ntp.Packet) {
		h := ntp.Header{Version: 4, Mode: ntp.ModeClient, TransmitTime: 77}
		b := make([]byte, 128)
		n, _ := h.MarshalTo(b)
		if k != nil {
			n, _ = k.AppendMAC(b, n)
		}
		b = b[:n-cut]
		var p ntp.Packet
		if err := ntp.Parse(b, &p); err != nil {
			t.Fatal(err)
		}
		return b, &p
	}
	for _, tc := range []struct {
		name    string
		pol     config.ServerConfig
		key     *ntp.Key
		cut     int
		answer  bool
		signKey uint32
		counts  AuthCounts
	}{
		{"unsigned, key optional", config.ServerConfig{}, nil, 0, true, 0, AuthCounts{}},
		{"unsigned, require-key", config.ServerConfig{RequireKey: true}, nil, 0, false, 0, AuthCounts{RefusedUnsigned: 1}},
		{"AES128 key 1", config.ServerConfig{}, keys.Key(1), 0, true, 1, AuthCounts{Signed: 1}},
		{"SHA1 key 2", config.ServerConfig{RequireKey: true}, keys.Key(2), 0, true, 2, AuthCounts{Signed: 1}},
		{"key 2 not among keys = [1]", config.ServerConfig{Keys: []uint32{1}}, keys.Key(2), 0, false, 0, AuthCounts{RefusedUnknownKey: 1}},
		{"unknown key 9", config.ServerConfig{}, other, 0, false, 0, AuthCounts{RefusedUnknownKey: 1}},
		{"key 1 with another secret", config.ServerConfig{}, wrong, 0, false, 0, AuthCounts{RefusedBadMAC: 1}},
		{"SHA1 MAC cut by 4 bytes", config.ServerConfig{}, keys.Key(2), 4, false, 0, AuthCounts{RefusedBadMAC: 1}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := &Daemon{log: slog.New(slog.NewTextHandler(io.Discard, nil)), limiter: sd.NewRateLimited(time.Minute, 16)}
			d.auth.keys = keys
			w := &worker{d: d, cur: &workerPolicy{cfg: tc.pol}}
			b, p := req(tc.key, tc.cut)
			k, ok := w.checkRequestAuth(b, p)
			if ok != tc.answer {
				t.Errorf("answer %v, want %v", ok, tc.answer)
			}
			if (k == nil && tc.signKey != 0) || (k != nil && k.ID != tc.signKey) {
				t.Errorf("signed with %v, want key %d", k, tc.signKey)
			}
			if got := d.AuthCounts(); got != tc.counts {
				t.Errorf("counts %+v, want %+v", got, tc.counts)
			}
		})
	}
}
