package nts

import (
	"bytes"
	"encoding/hex"
	"errors"
	"slices"
	"testing"
)

func TestExportKeysContext(t *testing.T) {
	var calls []string
	exp := func(label string, ctx []byte, n int) ([]byte, error) {
		calls = append(calls, label+" "+hex.EncodeToString(ctx))
		return bytes.Repeat([]byte{byte(len(calls))}, n), nil
	}
	k, err := ExportKeys(exp, AEADAESSIVCMAC256)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"EXPORTER-network-time-security 0000000f00", "EXPORTER-network-time-security 0000000f01"}
	if !slices.Equal(calls, want) {
		t.Fatalf("exporter calls %q, want %q", calls, want)
	}
	if len(k.C2S) != 32 || k.C2S[0] != 1 || k.S2C[0] != 2 {
		t.Fatalf("keys %x %x", k.C2S, k.S2C)
	}
	if _, err := ExportKeys(exp, 30); err == nil {
		t.Fatal("ExportKeys accepted an unsupported algorithm")
	}
}

// TestKERoundTrip: our client request, our server's answer, our client's
// check: both ends hold the same keys, and the cookies carry them.
func TestKERoundTrip(t *testing.T) {
	tests := []struct {
		name    string
		offer   []AEADAlgorithm
		accept  []AEADAlgorithm
		want    AEADAlgorithm
		server  string
		port    uint16
		cookies int
	}{
		{"defaults", nil, nil, AEADAESSIVCMAC256, "", 0, MaxCookies},
		{"server prefers 512", []AEADAlgorithm{15, 17}, []AEADAlgorithm{17, 15}, AEADAESSIVCMAC512, "ntp.example.org", 4123, 3},
		{"only 384 in common", []AEADAlgorithm{30, 16}, []AEADAlgorithm{15, 16}, AEADAESSIVCMAC384, "127.0.0.1", 123, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ring := testRing(t, 1)
			srv := &KEServer{Keys: ring, Algorithms: tt.accept, Server: tt.server, Port: tt.port, Cookies: tt.cookies}
			exp := fakeExporter("session")
			resp, err := srv.Respond(ClientRequest(tt.offer), exp)
			if err != nil {
				t.Fatal(err)
			}
			res, err := ParseKEResponse(resp, tt.offer, exp)
			if err != nil {
				t.Fatal(err)
			}
			if res.Keys.Algorithm != tt.want || res.Server != tt.server || res.Port != tt.port || len(res.Cookies) != tt.cookies {
				t.Fatalf("result %v %q %d cookies=%d", res.Keys.Algorithm, res.Server, res.Port, len(res.Cookies))
			}
			want, _ := ExportKeys(exp, tt.want)
			for i, c := range res.Cookies {
				k, err := ring.OpenCookie(c)
				if err != nil {
					t.Fatalf("cookie %d: %v", i, err)
				}
				if k.Algorithm != tt.want || !bytes.Equal(k.C2S, want.C2S) || !bytes.Equal(k.S2C, want.S2C) {
					t.Fatalf("cookie %d carries other keys", i)
				}
			}
			if slices.ContainsFunc(res.Cookies[1:], func(c []byte) bool { return bytes.Equal(c, res.Cookies[0]) }) {
				t.Fatal("two identical cookies")
			}
		})
	}
}

// TestKEServerBadRequests: each bad request gets the right answer records.
func TestKEServerBadRequests(t *testing.T) {
	np := rec(true, 1, 0, 0)
	aead := rec(true, 4, 0, 15)
	tests := []struct {
		name     string
		req      []byte
		errCode  int // -1: no error record
		protos   []uint16
		aeads    []AEADAlgorithm
		wantCrit bool
	}{
		{"unknown critical", cat(np, aead, rec(true, 0x2222, 1), eom), int(ErrorUnrecognizedCritical), nil, nil, false},
		{"truncated", cat(np, aead), int(ErrorBadRequest), nil, nil, false},
		{"no next protocol", cat(aead, eom), int(ErrorBadRequest), nil, nil, false},
		{"no aead", cat(np, eom), int(ErrorBadRequest), nil, nil, false},
		{"cookie in request", cat(np, aead, rec(false, 5, 1, 2, 3, 4), eom), int(ErrorBadRequest), nil, nil, false},
		{"error in request", cat(np, aead, rec(true, 2, 0, 2), eom), int(ErrorBadRequest), nil, nil, false},
		{"unknown protocol", cat(rec(true, 1, 0x80, 1), aead, eom), -1, []uint16{}, nil, false},
		{"no common aead", cat(np, rec(true, 4, 0, 30), eom), -1, []uint16{0}, []AEADAlgorithm{}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := &KEServer{Keys: testRing(t, 2)}
			resp, err := srv.Respond(tt.req, fakeExporter("x"))
			if err == nil {
				t.Fatal("Respond reported success")
			}
			m, perr := ParseMessage(resp)
			if perr != nil {
				t.Fatalf("response does not parse: %v", perr)
			}
			if tt.errCode >= 0 {
				if len(m.Errors) != 1 || int(m.Errors[0]) != tt.errCode || len(m.Cookies) != 0 {
					t.Fatalf("response %+v, want error %d", m, tt.errCode)
				}
				_, cerr := ParseKEResponse(resp, nil, fakeExporter("x"))
				var ke *KEError
				if !errors.As(cerr, &ke) || int(ke.Code) != tt.errCode {
					t.Fatalf("client sees %v", cerr)
				}
				return
			}
			if len(m.Errors) != 0 || len(m.Cookies) != 0 || !slices.Equal(m.NextProtocols, tt.protos) ||
				(tt.aeads != nil && !slices.Equal(m.AEADs, tt.aeads)) {
				t.Fatalf("response %+v", m)
			}
		})
	}
}

// TestParseKEResponseBad: the client refuses answers it cannot use.
func TestParseKEResponseBad(t *testing.T) {
	np := rec(true, 1, 0, 0)
	aead := rec(true, 4, 0, 15)
	cookie := rec(false, 5, 1, 2, 3, 4)
	tests := []struct {
		name string
		resp []byte
		want error
	}{
		{"ok", cat(np, aead, cookie, eom), nil},
		{"no next protocol", cat(aead, cookie, eom), ErrMalformed},
		{"empty next protocol", cat(rec(true, 1), aead, cookie, eom), ErrNoProtocol},
		{"two protocols", cat(rec(true, 1, 0, 0, 0, 1), aead, cookie, eom), ErrNoProtocol},
		{"no aead", cat(np, cookie, eom), ErrNoAEAD},
		{"unoffered aead", cat(np, rec(true, 4, 0, 17), cookie, eom), ErrNoAEAD},
		{"two aeads", cat(np, rec(true, 4, 0, 15, 0, 15), cookie, eom), ErrNoAEAD},
		{"no cookies", cat(np, aead, eom), ErrNoCookies},
		{"unknown critical", cat(np, aead, cookie, rec(true, 99), eom), ErrUnrecognizedCritical},
		{"truncated", cat(np, aead, cookie), ErrTruncated},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res, err := ParseKEResponse(tt.resp, []AEADAlgorithm{15}, fakeExporter("y"))
			if !errors.Is(err, tt.want) {
				t.Fatalf("ParseKEResponse: %v, want %v", err, tt.want)
			}
			if err == nil && (len(res.Cookies) != 1 || res.Port != 0 || res.Server != "") {
				t.Fatalf("result %+v", res)
			}
		})
	}
	// More than MaxCookies cookies: the rest are dropped.
	many := cat(np, aead, bytes.Repeat(cookie, 12), eom)
	res, err := ParseKEResponse(many, nil, fakeExporter("y"))
	if err != nil || len(res.Cookies) != MaxCookies {
		t.Fatalf("12 cookies: %v, %v", res, err)
	}
}
