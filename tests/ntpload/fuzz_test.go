package main

import (
	"bytes"
	"encoding/hex"
	mrand "math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"gnomon.dev/gnomon/engine/nts"
)

// FuzzReply feeds arbitrary datagrams to the reply matcher, as a server
// (or anyone spoofing one) could send them: it must never panic, count each
// datagram exactly once, and match at most the requests it has outstanding.
// Seeds: real replies captured from chronyd 4.3 and NTPsec (engine/ntp's
// golden packets), and a reply to the tracker's own outstanding request.
func FuzzReply(f *testing.F) {
	files, _ := filepath.Glob("../../engine/ntp/testdata/*.hex")
	for _, name := range files {
		if b, err := readHex(name); err == nil {
			f.Add(b)
		}
	}
	if len(files) == 0 {
		f.Fatal("no golden packets found in engine/ntp/testdata")
	}
	tr := newTracker(7)
	req := make([]byte, pktLen)
	n := tr.request(req, time.Date(2026, 11, 25, 22, 0, 0, 0, time.UTC), 0)
	f.Add(answer(f, req[:n], &serverState, 0))
	f.Add(req[:n])
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		tr := newTracker(7)
		req := make([]byte, pktLen)
		tr.request(req, time.Date(2026, 11, 25, 22, 0, 0, 0, time.UTC), 0)
		for range 2 {
			tr.reply(b, 100)
		}
		s := tr.stats
		if got := s.answered + s.unmatched + s.malformed; got != 2 {
			t.Fatalf("2 datagrams counted %d times: %+v", got, s)
		}
		if s.answered > 1 {
			t.Fatalf("one request answered %d times", s.answered)
		}
		if s.valid+s.kod+s.unsync+s.invalid != s.answered {
			t.Fatalf("answers not classified exactly once: %+v", s)
		}
		if tr.hist.total != s.answered {
			t.Fatalf("%d latencies for %d answers", tr.hist.total, s.answered)
		}
	})
}

// readHex reads a golden packet: '#' comment lines, then hex.
func readHex(name string) ([]byte, error) {
	data, err := os.ReadFile(name)
	if err != nil {
		return nil, err
	}
	var sb strings.Builder
	for _, line := range strings.Split(string(data), "\n") {
		if line = strings.TrimSpace(line); line != "" && !strings.HasPrefix(line, "#") {
			sb.WriteString(line)
		}
	}
	return hex.DecodeString(sb.String())
}

// ntsFixture is a client tracker whose one session has sealed one
// outstanding request, all deterministic (the same request, unique
// identifier and keys every time), and the server key ring that made its
// cookie: the reply a server gives to that request authenticates in every
// fuzz iteration. tr, if not nil, is reset and reused (a tracker's ring is
// 2 MB: allocating one per iteration makes fuzzing slow).
func ntsFixture(tb testing.TB, tr *tracker) (t *ntsTracker, req []byte, ring *nts.KeyRing) {
	tb.Helper()
	if tr == nil {
		tr = newTracker(7)
	}
	tr.seq = 7 // the request goes to slot 8 again, which it resets
	tr.stats = stats{}
	tr.hist = histogram{}
	rng := mrand.NewChaCha8([32]byte{1, 2, 3})
	ring, err := nts.NewKeyRing(rng, time.Date(2026, 11, 25, 0, 0, 0, 0, time.UTC), 0, 0)
	if err != nil {
		tb.Fatal(err)
	}
	keys := nts.Keys{Algorithm: nts.AEADAESSIVCMAC256, C2S: make([]byte, 32), S2C: make([]byte, 32)}
	rng.Read(keys.C2S)
	rng.Read(keys.S2C)
	cookie, err := ring.SealCookie(keys)
	if err != nil {
		tb.Fatal(err)
	}
	s, err := nts.NewClientSession(&nts.KEResult{Keys: keys, Cookies: [][]byte{cookie}}, rng)
	if err != nil {
		tb.Fatal(err)
	}
	st := &ntsState{pools: [][]*ntsSession{{{s: s}}}, rekeyCh: make(chan *ntsSession, 1)}
	t = st.tracker(0, tr)
	b := make([]byte, ntsPktLen)
	n := t.request(b, time.Date(2026, 11, 25, 22, 0, 0, 0, time.UTC), 0)
	if n == 0 {
		tb.Fatal("the session sealed nothing")
	}
	return t, b[:n], ring
}

// FuzzNTSReply feeds arbitrary datagrams to the NTS reply path (matching by
// origin timestamp, then nts.ClientSession.Open), as a server or anyone
// spoofing one could send them: it must never panic, count each datagram
// exactly once, classify each matched reply exactly once, and count at
// most one answer for the one request outstanding. Seeds: the
// authenticated reply engine/nts.Server gives to the outstanding request,
// the same with its authenticator damaged, an NTS NAK (another server's
// key ring), the request itself, and the plain-NTP golden packets.
func FuzzNTSReply(f *testing.F) {
	_, req, ring := ntsFixture(f, nil)
	out := make([]byte, ntsPktLen)
	n, r, ok := ntsAnswer(&nts.Server{Keys: ring, Rand: mrand.NewChaCha8([32]byte{9})}, nil, req, out)
	if !ok || r.NAK() {
		f.Fatal("the server did not answer the fixture's request")
	}
	good := bytes.Clone(out[:n])
	f.Add(good)
	bad := bytes.Clone(good)
	bad[len(bad)-1] ^= 1
	f.Add(bad)
	other, err := nts.NewKeyRing(mrand.NewChaCha8([32]byte{4}), time.Now(), 0, 0)
	if err != nil {
		f.Fatal(err)
	}
	if n, r, ok = ntsAnswer(&nts.Server{Keys: other, Rand: mrand.NewChaCha8([32]byte{5})}, nil, req, out); !ok || !r.NAK() {
		f.Fatal("another server did not NAK the fixture's request")
	}
	f.Add(bytes.Clone(out[:n]))
	f.Add(req)
	files, _ := filepath.Glob("../../engine/ntp/testdata/*.hex")
	for _, name := range files {
		if b, err := readHex(name); err == nil {
			f.Add(b)
		}
	}
	// The fixture must work, or the fuzzing explores nothing.
	reused := newTracker(7)
	for range 2 { // and again with the tracker reused
		t0, _, _ := ntsFixture(f, reused)
		t0.reply(good, 100)
		if t0.valid != 1 || t0.hist.total != 1 {
			f.Fatalf("the seed reply was not an authenticated answer: %+v", t0.stats)
		}
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		tr, _, _ := ntsFixture(t, reused)
		for range 2 {
			tr.reply(b, 100)
		}
		s := tr.stats
		if got := s.answered + s.unmatched + s.malformed; got != 2 {
			t.Fatalf("2 datagrams counted %d times: %+v", got, s)
		}
		if s.answered > 1 {
			t.Fatalf("one request answered %d times", s.answered)
		}
		if s.answers()+s.nak+s.unauth+s.late != s.answered {
			t.Fatalf("answers not classified exactly once: %+v", s)
		}
		if tr.hist.total != s.answers() {
			t.Fatalf("%d latencies for %d answers", tr.hist.total, s.answers())
		}
		ss := tr.pool[0]
		switch st := ss.state.Load(); {
		case s.nak == 1 && st != sessRekey:
			t.Fatalf("NAK, but the session is in state %d", st)
		case s.answers() == 1 && ss.s.Cookies() == 0:
			t.Fatalf("authenticated answer without cookies")
		}
	})
}

// FuzzReplayReply: whatever a -replay client receives, each datagram is
// counted exactly once, and an answer is a classified one.
func FuzzReplayReply(f *testing.F) {
	_, req, ring := ntsFixture(f, nil)
	out := make([]byte, ntsPktLen)
	n, r, ok := ntsAnswer(&nts.Server{Keys: ring, Rand: mrand.NewChaCha8([32]byte{9})}, nil, req, out)
	if !ok || r.NAK() {
		f.Fatal("the server did not answer the fixture's request")
	}
	f.Add(bytes.Clone(out[:n]))
	f.Add(req)
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		rt := &replayTracker{tracker: newTracker(7), reqs: [][]byte{req}}
		for range 2 {
			rt.reply(b, 100)
		}
		s := rt.stats
		if got := s.answered + s.malformed; got != 2 {
			t.Fatalf("2 datagrams counted %d times: %+v", got, s)
		}
		if s.answers()+s.nak+s.unauth != s.answered {
			t.Fatalf("answers not classified exactly once: %+v", s)
		}
	})
}

// FuzzParseProcStat: /proc/PID/stat lines, including command names with
// spaces and parentheses; never a panic, never a negative time. Seeds: a
// real line of this process and of a chronyd.
func FuzzParseProcStat(f *testing.F) {
	if b, err := os.ReadFile("/proc/self/stat"); err == nil {
		f.Add(b)
	}
	f.Add([]byte("1234 (chronyd) S 1 1234 1234 0 -1 4194560 300 0 0 0 150 25 0 0 20 0 1 0 100 1000 200 18446744073709551615"))
	f.Add([]byte("99 (a) b (c)) R 1 1 1 0 -1 0 0 0 0 0 7 3 0 0 20 0 1 0 1 1 1"))
	f.Fuzz(func(t *testing.T, b []byte) {
		d, err := parseProcStat(b)
		if err == nil && d < 0 {
			t.Fatalf("negative CPU time %v", d)
		}
	})
}
