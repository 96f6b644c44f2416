package daemon

import (
	"bufio"
	"bytes"
	"os"
	"strconv"
	"strings"
	"testing"

	"gnomon.dev/gnomon/service/config"
)

func TestReadOnlyMappings(t *testing.T) {
	const exe = "/usr/sbin/gnomond"
	smaps := `00400000-008c5000 r-xp 00000000 fe:00 10027641                           /usr/sbin/gnomond
Size:               4884 kB
Rss:                4308 kB
Anonymous:             0 kB
008c5000-00dca000 r--p 004c5000 fe:00 10027641                           /usr/sbin/gnomond
Rss:                3924 kB
Anonymous:             0 kB
00dca000-00dcc000 r--p 009ca000 fe:00 10027641                           /usr/sbin/gnomond
Rss:                   8 kB
Anonymous:             8 kB
00dcc000-00e11000 rw-p 009cc000 fe:00 10027641                           /usr/sbin/gnomond
Anonymous:             0 kB
00e11000-02e54000 rw-p 00000000 00:00 0
Anonymous:            92 kB
3664f7000000-3664f7400000 rw-p 00000000 00:00 0
7f0000000000-7f0000001000 r--s 00000000 fe:00 77                         /usr/sbin/gnomond
7f0000001000-7f0000002000 r--p 00000000 fe:00 78                         /usr/sbin/gnomond-other
Anonymous:             0 kB
7f9ccad72000-7f9ccad74000 r-xp 00000000 00:00 0                          [vdso]
`
	got, err := readOnlyMappings([]byte(smaps), exe)
	if err != nil {
		t.Fatal(err)
	}
	want := []addrRange{{0x400000, 0x8c5000}, {0x8c5000, 0xdca000}}
	if len(got) != len(want) {
		t.Fatalf("got %#v, want %#v (the text and read-only data only: never writable, shared, holding written pages (RELRO) or another file's)", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("mapping %d = %#x-%#x, want %#x-%#x", i, got[i].start, got[i].end, want[i].start, want[i].end)
		}
	}

	deleted := "00400000-00500000 r-xp 00000000 fe:00 1 /tmp/x/gnomond (deleted)\nAnonymous: 0 kB\n"
	if got, err := readOnlyMappings([]byte(deleted), "/tmp/x/gnomond (deleted)"); err != nil || len(got) != 1 {
		t.Errorf("a deleted executable: got %v, %v; want its one mapping", got, err)
	}
	if _, err := readOnlyMappings([]byte("zz-00500000 r-xp 0 fe:00 1 "+exe+"\n"), exe); err == nil {
		t.Error("a bad address range was accepted")
	}
}

// exeRSS is the resident kB of this test binary's read-only mappings, from
// /proc/self/smaps.
func exeRSS(t *testing.T) int {
	t.Helper()
	exe, err := os.Readlink("/proc/self/exe")
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile("/proc/self/smaps")
	if err != nil {
		t.Skip("no /proc/self/smaps:", err)
	}
	kb, in := 0, false
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) >= 5 && strings.Contains(f[0], "-") && !strings.HasSuffix(f[0], ":") {
			in = len(f) >= 6 && strings.Join(f[5:], " ") == exe && (f[1] == "r-xp" || f[1] == "r--p")
			continue
		}
		if in && len(f) >= 2 && f[0] == "Rss:" {
			n, _ := strconv.Atoi(f[1])
			kb += n
		}
	}
	return kb
}

// TestTrimMemory: after trimMemory this process keeps fewer pages of its
// own binary resident than before, and it still runs (the pages come
// back from the file as they are used).
func TestTrimMemory(t *testing.T) {
	before := exeRSS(t)
	n, err := trimMemory(true)
	if err != nil {
		t.Fatal(err)
	}
	after := exeRSS(t)
	t.Logf("advised %d kB; the binary's resident read-only pages: %d kB before, %d kB after", n/1024, before, after)
	if n == 0 {
		t.Fatal("no mapping of the executable found")
	}
	if after >= before {
		t.Errorf("resident read-only pages of the binary: %d kB after the trim, %d kB before; want fewer", after, before)
	}
	// Code that had not run since the trim still runs.
	if _, err := readOnlyMappings([]byte("00400000-00500000 r-xp 0 fe:00 1 /x\n"), "/x"); err != nil {
		t.Fatal(err)
	}
}

// TestLowGC: the lean setting of the collector applies only when
// gnomond serves nothing or plain NTP only and the environment sets
// neither GOGC nor GOMEMLIMIT.
func TestLowGC(t *testing.T) {
	none := func(string) string { return "" }
	env := func(k, v string) func(string) string {
		return func(s string) string {
			if s == k {
				return v
			}
			return ""
		}
	}
	file, err := os.Open(os.DevNull)
	if err != nil {
		t.Fatal(err)
	}
	defer file.Close()
	for _, tc := range []struct {
		name      string
		cfg       config.Config
		listeners map[string][]*os.File
		getenv    func(string) string
		want      bool
	}{
		{name: "a client", getenv: none, want: true},
		{name: "an NTP server", cfg: config.Config{Servers: []config.ServerConfig{{}}}, getenv: none, want: true},
		{name: "an NTP and an NTS-KE server", cfg: config.Config{Servers: []config.ServerConfig{{}}, NTSKEServers: []config.NTSKEServerConfig{{}}}, getenv: none},
		{name: "an NTS-KE server", cfg: config.Config{NTSKEServers: []config.NTSKEServerConfig{{}}}, getenv: none},
		{name: "a PTP port", cfg: config.Config{PTPPorts: []config.PTPPortConfig{{}}}, getenv: none},
		{name: "a CSPTP server", cfg: config.Config{CSPTPServers: []config.CSPTPServerConfig{{}}}, getenv: none},
		{name: "an NTP socket from systemd", listeners: map[string][]*os.File{"ntp": {file}}, getenv: none, want: true},
		{name: "an NTS-KE socket from systemd", listeners: map[string][]*os.File{"nts-ke": {file}}, getenv: none},
		{name: "an NTP server and GOGC set", cfg: config.Config{Servers: []config.ServerConfig{{}}}, getenv: env("GOGC", "100")},
		{name: "no socket under a name", listeners: map[string][]*os.File{"ntp": nil}, getenv: none, want: true},
		{name: "GOGC set", getenv: env("GOGC", "100")},
		{name: "GOMEMLIMIT set", getenv: env("GOMEMLIMIT", "64MiB")},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := lowGC(&tc.cfg, tc.listeners, tc.getenv); got != tc.want {
				t.Errorf("lowGC = %v, want %v", got, tc.want)
			}
		})
	}
}
